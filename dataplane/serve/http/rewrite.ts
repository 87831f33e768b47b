// Istio HTTPRewrite of the path: `uri` replaces the part a prefix match matched (a route
// without a uri match is a prefix "/" route in Envoy), or the whole path for exact and regex
// matches; `uriRegexRewrite` substitutes in the path. The query string is kept.

import type { RewritePolicy, RouteMatch } from '../../snapshot/types.js';

export function rewritePath(rewrite: RewritePolicy, match: RouteMatch | undefined, path: string): string {
  if (rewrite.uri !== undefined) {
    const uri = match?.uri;
    if (uri === undefined) return rewrite.uri + path.slice(1);
    if (uri.kind === 'prefix') return rewrite.uri + path.slice(uri.value.length);
    const q = path.indexOf('?');
    return q < 0 ? rewrite.uri : rewrite.uri + path.slice(q);
  }
  if (rewrite.uriRegex !== undefined) {
    const q = path.indexOf('?');
    const pathOnly = q < 0 ? path : path.slice(0, q);
    const replaced = rewrite.uriRegex.replace(pathOnly);
    return q < 0 ? replaced : replaced + path.slice(q);
  }
  return path;
}

// Compiles Istio StringMatch objects ({exact|prefix|regex}) once, at translate time.
// Regexes use RE2 (linear time, Istio's syntax) and must match the whole value, as in Envoy.

import RE2 from 're2';
import type { StringMatcher } from '../snapshot/types.js';

/** `field`: where inside the compiled object the problem is (`regex`), for the diagnostic's path. */
export type Compiled<T> = { ok: true; value: T } | { ok: false; error: string; field?: string };

const regexCache = new Map<string, Compiled<(value: string) => boolean>>();

/** A whole-string RE2 matcher, or the RE2 syntax error. Cached: the same source compiles once. */
export function compileRegex(source: string): Compiled<(value: string) => boolean> {
  const cached = regexCache.get(source);
  if (cached) return cached;
  let result: Compiled<(value: string) => boolean>;
  try {
    new RE2(source, 'u'); // reports errors in the user's own terms
    const re = new RE2(`^(?:${source})$`, 'u');
    result = { ok: true, value: (value: string) => re.test(value) };
  } catch (err) {
    result = { ok: false, error: `invalid RE2 regex ${JSON.stringify(source)}: ${(err as Error).message}` };
  }
  if (regexCache.size > 10_000) regexCache.clear();
  regexCache.set(source, result);
  return result;
}

/** Compiles `{exact|prefix|regex}`; `ignoreCase` applies to exact and prefix (Istio's ignoreUriCase). */
export function compileStringMatch(spec: unknown, ignoreCase = false): Compiled<StringMatcher> {
  if (spec === null || typeof spec !== 'object') return { ok: false, error: 'must be an object with exact, prefix or regex' };
  const s = spec as Record<string, unknown>;
  const kinds = ['exact', 'prefix', 'regex'].filter((k) => s[k] !== undefined);
  if (kinds.length !== 1) return { ok: false, error: 'must set exactly one of exact, prefix, regex' };
  const kind = kinds[0] as 'exact' | 'prefix' | 'regex';
  const raw = s[kind];
  if (typeof raw !== 'string') return { ok: false, error: 'must be a string', field: kind };
  if (kind === 'regex') {
    const re = compileRegex(raw);
    return re.ok ? { ok: true, value: { kind: 'regex', source: raw, test: re.value } } : { ...re, field: 'regex' };
  }
  return { ok: true, value: { kind, value: ignoreCase ? raw.toLowerCase() : raw, ignoreCase } };
}

export function stringMatches(m: StringMatcher, value: string): boolean {
  switch (m.kind) {
    case 'exact':
      return (m.ignoreCase ? value.toLowerCase() : value) === m.value;
    case 'prefix':
      return (m.ignoreCase ? value.toLowerCase() : value).startsWith(m.value);
    case 'regex':
      return m.test(value);
  }
}

/** Envoy's regex_rewrite: every match of `match` in the path replaced; groups are \1, \2… */
export function compileRegexRewrite(match: string, rewrite: string): Compiled<(path: string) => string> {
  let re: RE2;
  try {
    re = new RE2(match, 'gu');
  } catch (err) {
    return { ok: false, error: `invalid RE2 regex: ${(err as Error).message}` };
  }
  // JavaScript's replace names groups $1: escape literal "$", then turn \N into $N.
  const substitution = rewrite.replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1');
  return { ok: true, value: (path: string) => path.replace(re as unknown as RegExp, substitution) };
}

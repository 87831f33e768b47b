// Host names as Istio compares them: exact names, left-most wildcards ("*.example.com"),
// and "*" for any host. Wildcards match any number of labels, as Envoy's suffix match does.

export function normalizeHost(host: string): string {
  return host.trim().toLowerCase().replace(/\.$/, '');
}

export function isWildcard(host: string): boolean {
  return host.startsWith('*');
}

/** Does `pattern` (exact, "*.suffix" or "*") cover the concrete or wildcard `host`? */
export function hostCovers(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*')) {
    const suffix = pattern.slice(1); // ".example.com"
    if (host.startsWith('*')) return host.slice(1).endsWith(suffix);
    return host.endsWith(suffix) && host.length > suffix.length;
  }
  return pattern === host;
}

/** The more specific of two hosts when they overlap (the host traffic can actually carry), else undefined. */
export function intersectHosts(a: string, b: string): string | undefined {
  if (hostCovers(a, b)) return b;
  if (hostCovers(b, a)) return a;
  return undefined;
}

/** A Gateway server host "[namespace/]dnsName": namespace "*" any, "." the Gateway's own. */
export interface ServerHost {
  namespace: string; // "*", or a concrete namespace
  host: string;
}

export function parseServerHost(raw: string, gatewayNamespace: string): ServerHost | { error: string } {
  const parts = raw.split('/');
  if (parts.length > 2) return { error: `invalid host ${JSON.stringify(raw)}: expected [namespace/]dnsName` };
  const [ns, name] = parts.length === 2 ? [parts[0]!, parts[1]!] : ['*', parts[0]!];
  const host = normalizeHost(name);
  if (!validHostPattern(host)) return { error: `invalid host ${JSON.stringify(raw)}: wildcards are allowed only as the left-most label` };
  return { namespace: ns === '.' ? gatewayNamespace : ns, host };
}

export function validHostPattern(host: string): boolean {
  if (host === '*') return true;
  const body = host.startsWith('*.') ? host.slice(2) : host;
  if (body.length === 0 || body.includes('*')) return false;
  return /^[a-z0-9]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*$/.test(body) || /^[0-9.:a-f]+$/.test(body);
}

/** Short names in a VirtualService resolve in its namespace, as Istio's ResolveShortnameToFQDN does. */
export function resolveShortName(host: string, namespace: string, clusterDomain = 'cluster.local'): string {
  const h = normalizeHost(host);
  if (h === '*' || h.includes('.') || h.startsWith('*')) return h;
  return `${h}.${namespace}.svc.${clusterDomain}`;
}

/** Strips the port from a Host header or :authority ("a.com:8080" → "a.com", "[::1]:80" → "[::1]"). */
export function hostWithoutPort(authority: string): string {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end === -1 ? authority : authority.slice(0, end + 1);
  }
  const colon = authority.lastIndexOf(':');
  return colon === -1 ? authority : authority.slice(0, colon);
}

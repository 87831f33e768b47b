// The proxy pod's annotations, as the Kubernetes downward API writes them to a file
// (`metadata.annotations`: one `key="value"` line each, the value quoted as Go's %q does), and
// the part of Istio's `proxy.istio.io/config` annotation (a ProxyConfig in YAML or JSON) that
// the proxy honours: gatewayTopology.numTrustedProxies.

import { parse as parseYaml } from 'yaml';

export const PROXY_CONFIG_ANNOTATION = 'proxy.istio.io/config';

/** `key="value"` lines → a map; lines that are not of that shape are skipped. */
export function parseDownwardApiFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    const raw = line.slice(eq + 1).trim();
    const value = raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2 ? unquoteGo(raw.slice(1, -1)) : raw;
    if (value !== undefined) out[key] = value;
  }
  return out;
}

const SIMPLE_ESCAPES: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"', "'": "'" };

/** The body of a Go %q string; undefined if an escape is malformed. */
function unquoteGo(body: string): string | undefined {
  if (!body.includes('\\')) return body;
  let out = '';
  const bytes: number[] = [];
  const flushBytes = () => {
    if (bytes.length > 0) out += Buffer.from(bytes).toString('utf8');
    bytes.length = 0;
  };
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      flushBytes();
      out += c;
      continue;
    }
    const e = body[++i];
    if (e === undefined) return undefined;
    if (e in SIMPLE_ESCAPES) {
      flushBytes();
      out += SIMPLE_ESCAPES[e];
    } else if (e === 'x') {
      // \xNN is one byte of a UTF-8 sequence (Go escapes invalid or unprintable bytes so).
      const n = Number.parseInt(body.slice(i + 1, i + 3), 16);
      if (Number.isNaN(n)) return undefined;
      bytes.push(n);
      i += 2;
    } else if (e === 'u' || e === 'U') {
      const len = e === 'u' ? 4 : 8;
      const n = Number.parseInt(body.slice(i + 1, i + 1 + len), 16);
      if (Number.isNaN(n)) return undefined;
      flushBytes();
      out += String.fromCodePoint(n);
      i += len;
    } else {
      return undefined;
    }
  }
  flushBytes();
  return out;
}

/** gatewayTopology.numTrustedProxies from the annotations, if the pod sets it. */
export function numTrustedProxiesFromAnnotations(annotations: Record<string, string>): number | undefined {
  const text = annotations[PROXY_CONFIG_ANNOTATION];
  if (text === undefined) return undefined;
  let config: unknown;
  try {
    config = parseYaml(text);
  } catch (err) {
    throw new Error(`annotation ${PROXY_CONFIG_ANNOTATION}: not YAML or JSON: ${(err as Error).message}`);
  }
  const n = (config as { gatewayTopology?: { numTrustedProxies?: unknown } } | null)?.gatewayTopology?.numTrustedProxies;
  if (n === undefined || n === null) return undefined;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
    throw new Error(`annotation ${PROXY_CONFIG_ANNOTATION}: gatewayTopology.numTrustedProxies must be a whole number ≥ 0, got ${JSON.stringify(n)}`);
  }
  return n;
}

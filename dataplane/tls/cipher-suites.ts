// Istio/Envoy cipher suite names (BoringSSL names, as in Gateway tls.cipherSuites) mapped to
// an OpenSSL cipher string for Node. The lists only govern TLS 1.2: like Envoy, TLS 1.3
// suites are not configurable, and Node keeps its TLS 1.3 defaults when the string names
// no TLS 1.3 suite. Envoy's equal-preference groups "[A|B]" have no OpenSSL counterpart, so
// a group's members keep the order they are written in.

/** Envoy's accepted names → OpenSSL names (identical for most, but not assumed to be). */
const ENVOY_TO_OPENSSL: ReadonlyMap<string, string> = new Map([
  ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES128-GCM-SHA256'],
  ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256'],
  ['ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-AES256-GCM-SHA384'],
  ['ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384'],
  ['ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-ECDSA-CHACHA20-POLY1305'],
  ['ECDHE-RSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305'],
  ['ECDHE-PSK-CHACHA20-POLY1305', 'ECDHE-PSK-CHACHA20-POLY1305'],
  ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES128-SHA'],
  ['ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES128-SHA'],
  ['ECDHE-PSK-AES128-CBC-SHA', 'ECDHE-PSK-AES128-CBC-SHA'],
  ['ECDHE-ECDSA-AES256-SHA', 'ECDHE-ECDSA-AES256-SHA'],
  ['ECDHE-RSA-AES256-SHA', 'ECDHE-RSA-AES256-SHA'],
  ['ECDHE-PSK-AES256-CBC-SHA', 'ECDHE-PSK-AES256-CBC-SHA'],
  ['AES128-GCM-SHA256', 'AES128-GCM-SHA256'],
  ['AES256-GCM-SHA384', 'AES256-GCM-SHA384'],
  ['AES128-SHA', 'AES128-SHA'],
  ['AES256-SHA', 'AES256-SHA'],
  ['PSK-AES128-CBC-SHA', 'PSK-AES128-CBC-SHA'],
  ['PSK-AES256-CBC-SHA', 'PSK-AES256-CBC-SHA'],
  // BoringSSL also accepts the standard (IANA) names.
  ['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'ECDHE-ECDSA-AES128-GCM-SHA256'],
  ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'ECDHE-RSA-AES128-GCM-SHA256'],
  ['TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', 'ECDHE-ECDSA-AES256-GCM-SHA384'],
  ['TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', 'ECDHE-RSA-AES256-GCM-SHA384'],
  ['TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256', 'ECDHE-ECDSA-CHACHA20-POLY1305'],
  ['TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256', 'ECDHE-RSA-CHACHA20-POLY1305'],
  ['TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA', 'ECDHE-ECDSA-AES128-SHA'],
  ['TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA', 'ECDHE-RSA-AES128-SHA'],
  ['TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA', 'ECDHE-ECDSA-AES256-SHA'],
  ['TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA', 'ECDHE-RSA-AES256-SHA'],
  ['TLS_RSA_WITH_AES_128_GCM_SHA256', 'AES128-GCM-SHA256'],
  ['TLS_RSA_WITH_AES_256_GCM_SHA384', 'AES256-GCM-SHA384'],
  ['TLS_RSA_WITH_AES_128_CBC_SHA', 'AES128-SHA'],
  ['TLS_RSA_WITH_AES_256_CBC_SHA', 'AES256-SHA'],
]);

const TLS13_SUITES = new Set(['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']);
const NOT_IN_OPENSSL3 = new Set(['DES-CBC3-SHA', 'TLS_RSA_WITH_3DES_EDE_CBC_SHA']);

/**
 * Maps cipherSuites entries (each a name or an "[A|B|…]" group; a single ":"-joined string
 * is split first) to an OpenSSL cipher string. Duplicates keep their first position. An
 * Error names the first entry that cannot be mapped.
 */
export function mapCipherSuites(entries: readonly string[] | string): string | Error {
  const list = typeof entries === 'string' ? splitTopLevel(entries) : entries;
  const out: string[] = [];
  for (const raw of list) {
    const entry = raw.trim();
    if (!entry) continue;
    let names: string[];
    if (entry.startsWith('[') || entry.endsWith(']')) {
      if (!entry.startsWith('[') || !entry.endsWith(']')) return new Error(`cipher suite entry ${JSON.stringify(entry)}: unbalanced brackets`);
      names = entry.slice(1, -1).split('|').map((n) => n.trim());
      if (names.some((n) => !n)) return new Error(`cipher suite entry ${JSON.stringify(entry)}: empty name in the group`);
    } else {
      names = [entry];
    }
    for (const name of names) {
      const mapped = ENVOY_TO_OPENSSL.get(name.toUpperCase());
      if (!mapped) return new Error(`cipher suite entry ${JSON.stringify(entry)}: ${whyUnknown(name)}`);
      if (!out.includes(mapped)) out.push(mapped);
    }
  }
  if (out.length === 0) return new Error('cipherSuites is empty');
  return out.join(':');
}

function whyUnknown(name: string): string {
  const upper = name.toUpperCase();
  if (TLS13_SUITES.has(upper)) return `${name} is a TLS 1.3 suite; TLS 1.3 suites are not configurable (as in Envoy)`;
  if (NOT_IN_OPENSSL3.has(upper)) return `${name} (3DES) is not available in Node's OpenSSL`;
  return `unknown cipher suite ${JSON.stringify(name)}`;
}

/** Splits "A:[B|C]:D" on the colons outside brackets. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '[') depth++;
    else if (text[i] === ']') depth--;
    else if (text[i] === ':' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

// X-Forwarded-For and X-Forwarded-Proto from trusted hops: Istio's
// gatewayTopology.numTrustedProxies, which it renders as Envoy's xff_num_trusted_hops on a
// connection manager with use_remote_address (pilot/pkg/networking/core/gateway.go):
//   - the trusted client address is the Nth address from the right of the X-Forwarded-For
//     the gateway received (its own peer is appended after it); with fewer than N addresses,
//     or one that is not an IP address, it is the peer's;
//   - X-Forwarded-Proto is believed only when N > 0; with N = 0 it is overwritten with the
//     scheme of the downstream connection.

import { isIP } from 'node:net';

/** The Nth address from the right of an X-Forwarded-For value (N ≥ 1), if it is an IP address. */
export function trustedClientAddress(xff: string | string[], hops: number): string | undefined {
  const text = Array.isArray(xff) ? xff.join(',') : xff;
  let end = text.length;
  // Walk back over N entries without splitting the whole header.
  for (let n = 1; ; n++) {
    const comma = text.lastIndexOf(',', end - 1);
    if (n === hops) {
      const entry = text.slice(comma + 1, end).trim();
      return isIP(entry) !== 0 ? entry : undefined;
    }
    if (comma < 0) return undefined;
    end = comma;
  }
}

/** A trusted X-Forwarded-Proto: forwarded as received; the scheme it names, for redirects and matches. */
export function trustedForwardedProto(value: string | string[] | undefined): { value: string; scheme: string } | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text === '') return undefined;
  const first = text.split(',', 1)[0]!.trim().toLowerCase();
  if (first !== 'http' && first !== 'https') return undefined;
  return { value: text, scheme: first };
}

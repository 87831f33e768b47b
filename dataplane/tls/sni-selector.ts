// Picks the filter chain for a TLS handshake by SNI, the way Envoy matches server_names: an
// exact name first, then the longest matching wildcard ("*.example.com" covers any name
// ending in ".example.com", however many labels deep), then a chain with no server names.
// Among chains naming the same pattern, the first in listener order wins. The lookup tables
// are compiled once per listener; the context is asked for at handshake time, so rotated
// credentials apply to the next handshake with no listener restart.

import type { SecureContext } from 'node:tls';

export interface SniChain {
  /** Exact names or "*.suffix"; empty (or "*") = any name, and clients sending no SNI. */
  serverNames: readonly string[];
  /** The chain's current context, or why it cannot serve (the handshake then fails). */
  contextProvider: () => SecureContext | Error;
}

export type SniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;

export interface SniSelector<C extends SniChain> extends SniCallback {
  /** The chain for an SNI (undefined = the client sent none), without building anything. */
  select(servername: string | undefined): C | undefined;
}

/** A tls.Server SNICallback over `chains` (in listener order), with `select` for other uses. */
export function createSniSelector<C extends SniChain>(chains: readonly C[]): SniSelector<C> {
  const exact = new Map<string, C>();
  const wildcards: Array<{ suffix: string; chain: C }> = [];
  let catchAll: C | undefined;
  for (const chain of chains) {
    if (chain.serverNames.length === 0) catchAll ??= chain;
    for (const pattern of chain.serverNames.map(normalize)) {
      if (pattern === '*') catchAll ??= chain;
      else if (pattern.startsWith('*.')) {
        const suffix = pattern.slice(1);
        if (!wildcards.some((w) => w.suffix === suffix)) wildcards.push({ suffix, chain });
      } else if (!exact.has(pattern)) exact.set(pattern, chain);
    }
  }
  // Longest suffix first; each suffix appears once, so no ties to break.
  wildcards.sort((a, b) => b.suffix.length - a.suffix.length);

  const select = (servername: string | undefined): C | undefined => {
    if (!servername) return catchAll;
    const name = normalize(servername);
    const hit = exact.get(name);
    if (hit) return hit;
    for (const { suffix, chain } of wildcards) {
      if (name.length > suffix.length && name.endsWith(suffix)) return chain;
    }
    return catchAll;
  };

  const callback: SniCallback = (servername, cb) => {
    const chain = select(servername);
    if (!chain) {
      cb(new Error(`no TLS server for SNI ${JSON.stringify(servername)}`));
      return;
    }
    let context: SecureContext | Error;
    try {
      context = chain.contextProvider();
    } catch (err) {
      context = err instanceof Error ? err : new Error(String(err));
    }
    if (context instanceof Error) cb(context);
    else cb(null, context);
  };
  return Object.assign(callback, { select });
}

/** Lower case without a trailing dot: "API.Example.com." and "api.example.com" are one name. */
function normalize(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

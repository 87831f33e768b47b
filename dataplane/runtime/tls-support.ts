// TLS for the proxy process: feeds the credential store from Secrets and files, serves
// HTTPS/TLS listeners (SecureServerFactory), and gives upstream TLS origination options.
// Not wired yet: until it is, HTTPS/TLS listeners are reported "unsupported" and clusters
// with DestinationRule tls get no TLS options (the upstream layer answers UH for them).

import type { Registry } from 'prom-client';
import type { SecureServerFactory } from '../serve/data-plane.js';
import type { Snapshot } from '../snapshot/types.js';
import type { ObjectStore } from '../store/object-store.js';
import type { TlsOptionsFor } from '../upstream/cluster-runtime.js';

export interface TlsSupportOptions {
  registry: Registry;
  store: ObjectStore;
  namespace: string;
  log: (line: string) => void;
}

export interface TlsSupport {
  secureServerFactory?: SecureServerFactory;
  upstreamTlsOptions?: TlsOptionsFor;
  onSnapshot(snapshot: Snapshot): void;
  close(): void;
}

export function createTlsSupport(_options: TlsSupportOptions): TlsSupport {
  return { onSnapshot: () => undefined, close: () => undefined };
}

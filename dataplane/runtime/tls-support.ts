// TLS for the proxy process, wired from the dataplane/tls building blocks:
//   - a credential feeder, the proxy's SDS: every credential key the current snapshot uses
//     ("secret:ns/name", "ca:ns/name", "file:…", downstream and upstream) is kept filled in
//     the CredentialStore from the object store (Secrets, "<name>-cacert" Secrets, ConfigMaps;
//     a worker's store holds what credentialObjectsOf picked in the primary) or from watched
//     files. It reacts to every store change, with no new snapshot needed, so
//     a rotated Secret is used from the next handshake on; bad material is logged with its
//     namespace/name and reason and the last good material keeps serving;
//   - the SecureServerFactory of the stream listeners: one DownstreamTlsChain per terminating
//     filter chain (kept across snapshots while its policy is unchanged, so contexts, session
//     tickets and the handshake server survive reloads), ALPN h2 + http/1.1 on HTTP chains,
//     cipher names mapped to OpenSSL's, failures logged once per change;
//   - upstream TLS origination options (DestinationRule tls SIMPLE/MUTUAL) read from the
//     same store; a cluster whose credentials are not available answers 503 UH.

import { readFileSync } from 'node:fs';
import type { Registry } from 'prom-client';
import type { SecureServerFactory, TlsTerminator } from '../serve/data-plane.js';
import type { Cluster, FilterChain, Listener, Snapshot, UpstreamTlsPolicy } from '../snapshot/types.js';
import type { ObjectStore } from '../store/object-store.js';
import type { StoredObject } from '../config/resources.js';
import type { CertificateMaterial } from '../tls/certificate-material.js';
import { mapCipherSuites } from '../tls/cipher-suites.js';
import { CredentialFileWatcher, filesFromCredentialKey, type CredentialFiles } from '../tls/credential-files.js';
import { CredentialStore, describeCredentialKey, type CredentialRejection } from '../tls/credential-store.js';
import { DownstreamTlsChain } from '../tls/downstream-context.js';
import { caFromConfigMap, caFromSecret, caSecretName, certificateFromSecret, materialFromSecrets, type MaterialResult } from '../tls/secret-formats.js';
import { UpstreamTls } from '../tls/upstream-options.js';
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
  /** The live certificate material (for tests and the admin side). */
  readonly credentials: CredentialStore;
  /** Call before the data plane applies `snapshot`: its credentials are loaded synchronously. */
  onSnapshot(snapshot: Snapshot): void;
  close(): void;
}

/** A TLS handshake that never completes is abandoned after this long (Envoy: 15 s listener filter timeout). */
const HANDSHAKE_TIMEOUT = 10_000;
const HTTP_ALPN = ['h2', 'http/1.1'];

export function createTlsSupport(options: TlsSupportOptions): TlsSupport {
  const { log } = options;
  const credentials = new CredentialStore({ registry: options.registry });
  credentials.on('rejected', (r) => log(rejectionLine(r)));
  const feeder = new CredentialFeeder(options.store, credentials, log);
  const chains = new ChainTerminators(credentials, log);
  const origination = new UpstreamOrigination(credentials, log);
  return {
    credentials,
    secureServerFactory: {
      serves: () => true,
      terminator: (listener, chain) => chains.get(listener, chain),
    },
    upstreamTlsOptions: (policy, cluster) => origination.options(policy, cluster),
    onSnapshot(snapshot) {
      feeder.track(credentialKeysOf(snapshot));
      chains.retain(snapshot);
      origination.retain(snapshot);
    },
    close() {
      feeder.close();
    },
  };
}

/** Every credential key a snapshot uses: listener chains (Snapshot.credentials) and cluster origination. */
export function credentialKeysOf(snapshot: Snapshot): Set<string> {
  const keys = new Set(snapshot.credentials.keys());
  for (const listener of snapshot.listeners) {
    for (const chain of listener.filterChains) {
      for (const key of chain.tls?.credentials ?? []) keys.add(key);
      if (chain.tls?.caCredential) keys.add(chain.tls.caCredential);
    }
  }
  for (const cluster of snapshot.clusters.values()) {
    const tls = cluster.policy.tls;
    if (tls?.credential) keys.add(tls.credential);
    if (tls?.caCredential) keys.add(tls.caCredential);
  }
  return keys;
}

function rejectionLine(r: CredentialRejection): string {
  const outcome = r.keptPrevious ? 'the last good certificate keeps serving' : 'servers and clusters using it stay unavailable until it is fixed';
  return `error: TLS credential ${r.source} rejected: ${r.reason}; ${outcome}`;
}

// ---------------------------------------------------------------------------------------
// The credential feeder.

type Objects = { kind: 'secret' | 'ca'; namespace: string; name: string };

class CredentialFeeder {
  private wanted = new Set<string>();
  /** What was last read for a key (the objects' data): unchanged objects are not parsed again. */
  private readonly seen = new Map<string, string>();
  private readonly watchers = new Map<string, CredentialFileWatcher>();
  private readonly onChange = () => this.syncObjects();

  constructor(
    private readonly store: ObjectStore,
    private readonly credentials: CredentialStore,
    private readonly log: (line: string) => void,
  ) {
    store.on('change', this.onChange);
    // One line per material change, from Secrets and from the file watchers alike.
    credentials.on('change', (key) => {
      const c = credentials.get(key);
      if (c === undefined) return;
      const { info } = c;
      const what = info.subject ? `certificate ${info.subjectAltName ?? info.subject}` : `${info.caCount} CA certificate(s)`;
      const expiry = info.notAfter ? `, expires ${info.notAfter.toISOString()}${info.expired ? ' (EXPIRED)' : ''}` : '';
      log(`info: TLS credential ${describeCredentialKey(key).source}: serving ${what}${expiry}`);
    });
  }

  /** The keys of a new snapshot: new ones are loaded now, ones no longer used are dropped. */
  track(keys: Set<string>): void {
    for (const key of this.wanted) if (!keys.has(key)) this.forget(key);
    this.wanted = keys;
    for (const key of keys) if (key.startsWith('file:') && !this.watchers.has(key)) this.watchFiles(key);
    this.syncObjects();
  }

  close(): void {
    this.store.off('change', this.onChange);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  private forget(key: string): void {
    this.watchers.get(key)?.close();
    this.watchers.delete(key);
    this.seen.delete(key);
    this.credentials.remove(key);
  }

  private syncObjects(): void {
    for (const key of this.wanted) {
      const ref = objectsOf(key);
      if (ref === undefined) continue;
      try {
        this.syncObjectKey(key, ref);
      } catch (err) {
        this.log(`error: TLS credential ${describeCredentialKey(key).source}: ${(err as Error).message}`);
      }
    }
  }

  private syncObjectKey(key: string, ref: Objects): void {
    const source = describeCredentialKey(key).source;
    const { secret, companion } = objectsFor(this.store, ref);
    const fingerprint = JSON.stringify([dataOf(secret), dataOf(companion)]);
    if (this.seen.get(key) === fingerprint) return;
    const first = !this.seen.has(key);
    this.seen.set(key, fingerprint);

    if (secret === undefined && (ref.kind === 'secret' || companion === undefined)) {
      if (this.credentials.remove(key)) this.log(`warning: TLS credential ${source} was deleted; handshakes and connections that need it fail until it is back`);
      else if (first) this.log(`warning: TLS credential ${source} does not exist (yet); what uses it is not served until it appears`);
      return;
    }
    const result = ref.kind === 'secret' ? credentialFromSecret(secret!, companion) : secret ? caFromSecret(secret) : caFromConfigMap(companion!);
    if (!result.ok) {
      this.credentials.reject(key, result.error);
      return;
    }
    this.push(key, result.material);
  }

  private push(key: string, material: CertificateMaterial): void {
    // Rejections and changes are logged from the store's events.
    this.credentials.update(key, material);
  }

  private watchFiles(key: string): void {
    const files = filesFromCredentialKey(key);
    if (files === undefined) return;
    // Read once now, so what the snapshot needs is there before it is applied (upstream
    // clusters take their TLS options at apply time); the watcher keeps it current.
    const read = readFilesNow(files);
    if ('error' in read) this.credentials.reject(key, read.error);
    else this.push(key, read.material);
    const watcher = new CredentialFileWatcher(this.credentials, key, files);
    this.watchers.set(key, watcher);
    void watcher.start();
  }
}

function objectsOf(key: string): Objects | undefined {
  const m = /^(secret|ca):([^/]*)\/(.+)$/.exec(key);
  if (m === null) return undefined;
  return { kind: m[1] as 'secret' | 'ca', namespace: m[2]!, name: m[3]! };
}

/**
 * The store objects a credential key is read from: the Secret of that name and a companion.
 * A gateway credential's CA may live in "<name>-cacert"; a caCertCredentialName names a Secret
 * or, when there is no such Secret, a ConfigMap (Istio's order).
 */
function objectsFor(store: ObjectStore, ref: Objects): { secret?: StoredObject; companion?: StoredObject } {
  const secret = store.get('Secret', ref.namespace, ref.name);
  if (ref.kind === 'secret') return { secret, companion: store.get('Secret', ref.namespace, caSecretName(ref.name)) };
  return { secret, companion: secret ? undefined : store.get('ConfigMap', ref.namespace, ref.name) };
}

/**
 * The Secrets and ConfigMaps that the credential keys are read from, for a process that has no
 * store of its own (a --concurrency worker): given these, its feeder resolves the same material.
 */
export function credentialObjectsOf(store: ObjectStore, keys: Iterable<string>): StoredObject[] {
  const out = new Map<string, StoredObject>();
  for (const key of keys) {
    const ref = objectsOf(key);
    if (ref === undefined) continue;
    const { secret, companion } = objectsFor(store, ref);
    for (const obj of [secret, companion]) if (obj) out.set(`${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}`, obj);
  }
  return [...out.values()];
}

function dataOf(obj: StoredObject | undefined): unknown {
  if (obj === undefined) return null;
  const o = obj as unknown as Record<string, unknown>;
  return [o.type, o.data, o.stringData, o.binaryData];
}

/**
 * A credentialName: cert and key (and CRL) from the Secret, the CA from "<name>-cacert" when
 * it exists, else from the Secret (Istio's order). A Secret holding only a CA is CA material
 * (DestinationRule SIMPLE with credentialName); a server chain then reports the missing key.
 */
function credentialFromSecret(secret: StoredObject, caSecret: StoredObject | undefined): MaterialResult {
  const full = materialFromSecrets(secret, caSecret);
  if (full.ok) return full;
  if (!certificateFromSecret(secret).ok) {
    const caOnly = caFromSecret(caSecret ?? secret);
    if (caOnly.ok) return caOnly;
  }
  return full;
}

function readFilesNow(files: CredentialFiles): { material: CertificateMaterial } | { error: string } {
  const material: CertificateMaterial = {};
  const fields: Array<[keyof CertificateMaterial, string | undefined]> = [
    ['certChain', files.cert],
    ['privateKey', files.key],
    ['caCertificates', files.ca],
    ['crl', files.crl],
  ];
  for (const [field, path] of fields) {
    if (!path) continue;
    try {
      material[field] = readFileSync(path, 'utf8');
    } catch (err) {
      return { error: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    }
  }
  return { material };
}

// ---------------------------------------------------------------------------------------
// Terminating filter chains.

class ChainTerminators {
  private readonly chains = new Map<string, { fingerprint: string; terminator: TlsTerminator }>();

  constructor(
    private readonly credentials: CredentialStore,
    private readonly log: (line: string) => void,
  ) {}

  get(listener: Listener, chain: FilterChain): TlsTerminator {
    const key = `${listener.name}|${chain.name}`;
    const fingerprint = JSON.stringify([chain.serverNames, chain.tls, chain.http !== undefined]);
    let entry = this.chains.get(key);
    if (entry?.fingerprint !== fingerprint) {
      entry = { fingerprint, terminator: this.build(listener, chain) };
      this.chains.set(key, entry);
    }
    return entry.terminator;
  }

  /** Forgets chains the snapshot no longer has (connections using them keep their objects). */
  retain(snapshot: Snapshot): void {
    const live = new Set<string>();
    for (const l of snapshot.listeners) for (const c of l.filterChains) live.add(`${l.name}|${c.name}`);
    for (const key of this.chains.keys()) if (!live.has(key)) this.chains.delete(key);
  }

  private build(listener: Listener, chain: FilterChain): TlsTerminator {
    const where = `listener ${listener.name} chain ${chain.name} (${chain.servers.join(', ')})`;
    const policy = chain.tls!;
    let ciphers: string | undefined;
    if (policy.ciphers) {
      const mapped = mapCipherSuites(policy.ciphers);
      if (mapped instanceof Error) {
        const err = new Error(`cipherSuites: ${mapped.message}`);
        this.log(`error: TLS ${where}: ${err.message}; its handshakes fail`);
        return { handshakeServer: () => err, verifyPeer: () => err.message };
      }
      ciphers = mapped;
    }
    const downstream = new DownstreamTlsChain({
      name: chain.name,
      serverNames: chain.serverNames,
      policy: { ...policy, ciphers },
      store: this.credentials,
      serverOptions: { handshakeTimeout: HANDSHAKE_TIMEOUT, ...(chain.http !== undefined ? { ALPNProtocols: HTTP_ALPN } : {}) },
    });
    // Logged when the chain's state changes, not per handshake.
    let reported: string | undefined;
    const report = (problem: string | undefined, failing: boolean) => {
      if (problem === reported) return;
      if (problem !== undefined) this.log(`error: TLS ${where}: ${problem}; ${failing ? 'its handshakes fail' : 'the last good certificate keeps serving'}`);
      else if (reported !== undefined) this.log(`info: TLS ${where}: serving again`);
      reported = problem;
    };
    return {
      handshakeServer() {
        const server = downstream.handshakeServer();
        if (server instanceof Error) report(server.message, true);
        else report(downstream.error, false);
        return server;
      },
      verifyPeer: (socket) => downstream.verifyPeer(socket),
    };
  }
}

// ---------------------------------------------------------------------------------------
// Upstream origination.

class UpstreamOrigination {
  private readonly byPolicy = new Map<string, UpstreamTls>();
  private readonly reported = new Map<string, string>();

  constructor(
    private readonly credentials: CredentialStore,
    private readonly log: (line: string) => void,
  ) {}

  options(policy: UpstreamTlsPolicy, cluster: Cluster): ReturnType<TlsOptionsFor> {
    const key = JSON.stringify(policy);
    let tls = this.byPolicy.get(key);
    if (tls === undefined) {
      tls = new UpstreamTls(policy, this.credentials);
      this.byPolicy.set(key, tls);
    }
    const options = tls.options(policy.sni || cluster.host);
    if (options instanceof Error) {
      if (this.reported.get(cluster.name) !== options.message) {
        this.reported.set(cluster.name, options.message);
        this.log(`error: TLS origination for cluster ${cluster.name}: ${options.message}; its requests get 503 (no healthy upstream) until it is available`);
      }
      return undefined;
    }
    if (this.reported.delete(cluster.name)) this.log(`info: TLS origination for cluster ${cluster.name}: available`);
    return options;
  }

  /** Keeps the policies the snapshot's clusters use (same options objects: pools are not rebuilt). */
  retain(snapshot: Snapshot): void {
    const live = new Set<string>();
    for (const c of snapshot.clusters.values()) if (c.policy.tls) live.add(JSON.stringify(c.policy.tls));
    for (const key of this.byPolicy.keys()) if (!live.has(key)) this.byPolicy.delete(key);
  }
}

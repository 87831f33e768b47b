// Gateway objects → the servers this proxy runs: selector against the proxy's labels,
// server validation, and the Gateway port → listening port translation.

import type { StoredObject } from '../config/resources.js';
import type { DownstreamTls, ListenerProtocol } from '../snapshot/types.js';
import type { DiagnosticSink } from './diagnostics.js';
import { parseServerHost, type ServerHost } from './hosts.js';
import { byAge, fileCredentialKey, secretCredentialKey } from './traffic-policy.js';
import type { CredentialRef } from '../snapshot/types.js';
import { mapCipherSuites } from '../tls/cipher-suites.js';

export interface ProxyIdentity {
  namespace: string;
  labels: Record<string, string>;
  /** Gateway (Service) port → port to listen on; overrides the Service's targetPort. */
  portMap?: ReadonlyMap<number, number>;
  bindAddress?: string;
}

export type ProtocolFamily = 'http' | 'tls' | 'tcp';

export interface GatewayServer {
  gateway: StoredObject;
  /** "ns/name" */
  gatewayName: string;
  /** "ns/name#index" */
  id: string;
  index: number;
  portNumber: number;
  portName: string;
  protocol: ListenerProtocol;
  family: ProtocolFamily;
  bindPort: number;
  hosts: ServerHost[];
  httpsRedirect: boolean;
  /** Downstream TLS for HTTPS/TLS servers (undefined for plaintext). */
  tls?: DownstreamTls;
}

const PROTOCOLS: Record<string, ProtocolFamily> = {
  HTTP: 'http',
  HTTP2: 'http',
  GRPC: 'http',
  'GRPC-WEB': 'http',
  HTTPS: 'tls',
  TLS: 'tls',
  TCP: 'tcp',
  MONGO: 'tcp',
};

const TLS_VERSIONS: Record<string, 'TLSv1.2' | 'TLSv1.3' | 'weak' | undefined> = {
  TLS_AUTO: undefined,
  TLSV1_0: 'weak',
  TLSV1_1: 'weak',
  TLSV1_2: 'TLSv1.2',
  TLSV1_3: 'TLSv1.3',
};

export function selectorMatches(selector: Record<string, string> | undefined | null, labels: Record<string, string>): boolean {
  if (!selector) return true;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The Gateways whose selector matches this proxy, oldest first (the order conflicts are decided in). */
export function selectGateways(gateways: readonly StoredObject[], identity: ProxyIdentity): StoredObject[] {
  return gateways
    .filter((gw) => selectorMatches((gw.spec as { selector?: Record<string, string> } | undefined)?.selector, identity.labels))
    .sort(byAge);
}

/**
 * The port a Gateway port number listens on: --port-map first, then a Service in the proxy's
 * namespace that selects this proxy and exposes the port (its numeric targetPort), else the number.
 */
export function resolveBindPort(portNumber: number, identity: ProxyIdentity, services: readonly StoredObject[]): number {
  const mapped = identity.portMap?.get(portNumber);
  if (mapped !== undefined) return mapped;
  for (const svc of services) {
    if ((svc.metadata.namespace ?? 'default') !== identity.namespace) continue;
    const spec = (svc.spec ?? {}) as { selector?: Record<string, string>; ports?: Array<{ port: number; targetPort?: number | string }> };
    if (!spec.selector || Object.keys(spec.selector).length === 0 || !selectorMatches(spec.selector, identity.labels)) continue;
    const port = spec.ports?.find((p) => Number(p.port) === portNumber);
    if (port && typeof port.targetPort === 'number') return port.targetPort;
    if (port && typeof port.targetPort === 'string' && /^\d+$/.test(port.targetPort)) return Number(port.targetPort);
    if (port) return portNumber;
  }
  return portNumber;
}

interface RawServer {
  port?: { number?: number; name?: string; protocol?: string; targetPort?: number };
  hosts?: string[];
  tls?: Record<string, unknown>;
  bind?: string;
  name?: string;
}

export function parseGatewayServers(
  gateway: StoredObject,
  identity: ProxyIdentity,
  services: readonly StoredObject[],
  sink: DiagnosticSink,
  credentials: Map<string, CredentialRef>,
): GatewayServer[] {
  const ns = gateway.metadata.namespace ?? 'default';
  const servers = ((gateway.spec as { servers?: RawServer[] } | undefined)?.servers ?? []) as RawServer[];
  if (!Array.isArray(servers) || servers.length === 0) {
    sink.warning(gateway, 'spec.servers', 'no servers: this Gateway opens no port');
    return [];
  }
  const result: GatewayServer[] = [];
  servers.forEach((server, index) => {
    const at = `spec.servers[${index}]`;
    const number = Number(server?.port?.number);
    if (!Number.isInteger(number) || number < 1 || number > 65535) {
      sink.error(gateway, `${at}.port.number`, 'must be a port number 1-65535');
      return;
    }
    const protocol = String(server.port?.protocol ?? '').toUpperCase();
    const family = PROTOCOLS[protocol];
    if (!family) {
      sink.error(gateway, `${at}.port.protocol`, `unsupported protocol ${JSON.stringify(server.port?.protocol)}: expected one of ${Object.keys(PROTOCOLS).join(', ')}`);
      return;
    }
    if (!Array.isArray(server.hosts) || server.hosts.length === 0) {
      sink.error(gateway, `${at}.hosts`, 'at least one host is required');
      return;
    }
    const hosts: ServerHost[] = [];
    server.hosts.forEach((raw, i) => {
      const parsed = parseServerHost(String(raw), ns);
      if ('error' in parsed) sink.error(gateway, `${at}.hosts[${i}]`, parsed.error);
      else hosts.push(parsed);
    });
    if (hosts.length === 0) return;

    const httpsRedirect = server.tls?.httpsRedirect === true;
    let tls: DownstreamTls | undefined;
    if (family === 'tls') {
      const compiled = compileServerTls(server.tls, `${at}.tls`, gateway, identity, sink, credentials);
      if (!compiled) return;
      tls = compiled;
    } else if (server.tls && server.tls.mode !== undefined && !httpsRedirect) {
      sink.warning(gateway, `${at}.tls.mode`, `ignored on a ${protocol} server`);
    }
    result.push({
      gateway,
      gatewayName: `${ns}/${gateway.metadata.name}`,
      id: `${ns}/${gateway.metadata.name}#${index}`,
      index,
      portNumber: number,
      portName: server.port?.name ?? `${protocol.toLowerCase()}-${number}`,
      protocol: protocol as ListenerProtocol,
      family,
      bindPort: resolveBindPort(number, identity, services),
      hosts,
      httpsRedirect,
      tls,
    });
  });
  return result;
}

function compileServerTls(
  tls: Record<string, unknown> | undefined,
  at: string,
  gateway: StoredObject,
  identity: ProxyIdentity,
  sink: DiagnosticSink,
  credentials: Map<string, CredentialRef>,
): DownstreamTls | undefined {
  if (!tls) {
    sink.error(gateway, at, 'HTTPS and TLS servers need a tls block');
    return undefined;
  }
  const mode = String(tls.mode ?? 'SIMPLE');
  if (mode === 'ISTIO_MUTUAL' || mode === 'AUTO_PASSTHROUGH' || mode === 'OPTIONAL_MUTUAL_ISTIO') {
    sink.error(gateway, `${at}.mode`, `${mode} is not supported by Portway (it needs Istio mesh identities); use SIMPLE, MUTUAL, OPTIONAL_MUTUAL or PASSTHROUGH`);
    return undefined;
  }
  if (!['SIMPLE', 'MUTUAL', 'OPTIONAL_MUTUAL', 'PASSTHROUGH'].includes(mode)) {
    sink.error(gateway, `${at}.mode`, `unknown TLS mode ${JSON.stringify(mode)}`);
    return undefined;
  }
  const base: DownstreamTls = {
    mode: mode as DownstreamTls['mode'],
    credentials: [],
    subjectAltNames: stringList(tls.subjectAltNames),
    verifyCertificateSpki: stringList(tls.verifyCertificateSpki),
    verifyCertificateHash: stringList(tls.verifyCertificateHash),
    minProtocolVersion: 'TLSv1.2',
  };
  if (mode === 'PASSTHROUGH') return base;

  const addSecret = (name: string) => {
    const key = secretCredentialKey(identity.namespace, name);
    credentials.set(key, { key, kind: 'secret', namespace: identity.namespace, name });
    base.credentials.push(key);
  };
  const addFiles = (files: { cert?: string; key?: string; ca?: string; crl?: string }) => {
    const key = fileCredentialKey(files);
    credentials.set(key, { key, kind: 'files', files });
    base.credentials.push(key);
  };
  const names = stringList(tls.credentialNames);
  if (typeof tls.credentialName === 'string' && tls.credentialName) addSecret(tls.credentialName);
  if (names.length > 2) sink.error(gateway, `${at}.credentialNames`, 'at most 2 credentials (one RSA, one ECDSA)');
  for (const n of names.slice(0, 2)) addSecret(n);
  if (typeof tls.serverCertificate === 'string' || typeof tls.privateKey === 'string') {
    if (typeof tls.serverCertificate !== 'string' || typeof tls.privateKey !== 'string') {
      sink.error(gateway, at, 'serverCertificate and privateKey go together');
      return undefined;
    }
    addFiles({ cert: tls.serverCertificate, key: tls.privateKey, ca: str(tls.caCertificates), crl: str(tls.caCrl) });
  }
  const tlsCertificates = Array.isArray(tls.tlsCertificates) ? (tls.tlsCertificates as Array<Record<string, unknown>>) : [];
  tlsCertificates.forEach((c, i) => {
    if (typeof c.serverCertificate !== 'string' || typeof c.privateKey !== 'string') {
      sink.error(gateway, `${at}.tlsCertificates[${i}]`, 'serverCertificate and privateKey are required');
      return;
    }
    addFiles({ cert: c.serverCertificate, key: c.privateKey, ca: str(c.caCertificates ?? tls.caCertificates), crl: str(tls.caCrl) });
  });
  if (base.credentials.length === 0) {
    sink.error(gateway, at, `${mode} needs credentialName, credentialNames, serverCertificate/privateKey or tlsCertificates`);
    return undefined;
  }
  if (typeof tls.caCertCredentialName === 'string' && tls.caCertCredentialName) {
    const key = `ca:${identity.namespace}/${tls.caCertCredentialName}`;
    credentials.set(key, { key, kind: 'secret', namespace: identity.namespace, name: tls.caCertCredentialName });
    base.caCredential = key;
  } else if (typeof tls.caCertificates === 'string' && base.credentials.every((k) => k.startsWith('secret:'))) {
    const key = fileCredentialKey({ ca: tls.caCertificates, crl: str(tls.caCrl) });
    credentials.set(key, { key, kind: 'files', files: { ca: tls.caCertificates, crl: str(tls.caCrl) } });
    base.caCredential = key;
  }

  const min = TLS_VERSIONS[String(tls.minProtocolVersion ?? 'TLS_AUTO')];
  const max = TLS_VERSIONS[String(tls.maxProtocolVersion ?? 'TLS_AUTO')];
  if (tls.minProtocolVersion !== undefined && !(String(tls.minProtocolVersion) in TLS_VERSIONS)) {
    sink.error(gateway, `${at}.minProtocolVersion`, `unknown version ${JSON.stringify(tls.minProtocolVersion)}`);
  }
  if (min === 'weak') sink.warning(gateway, `${at}.minProtocolVersion`, 'TLS below 1.2 is not served; using TLSV1_2');
  else if (min) base.minProtocolVersion = min;
  if (max === 'weak') {
    sink.error(gateway, `${at}.maxProtocolVersion`, 'TLS below 1.2 is not served');
    return undefined;
  }
  if (max) base.maxProtocolVersion = max;
  if (base.maxProtocolVersion === 'TLSv1.2' && base.minProtocolVersion === 'TLSv1.3') {
    sink.error(gateway, `${at}.maxProtocolVersion`, 'is lower than minProtocolVersion');
    return undefined;
  }
  const ciphers = stringList(tls.cipherSuites);
  if (ciphers.length > 0) {
    const mapped = mapCipherSuites(ciphers);
    if (mapped instanceof Error) {
      sink.error(gateway, `${at}.cipherSuites`, mapped.message);
      return undefined;
    }
    base.ciphers = mapped;
  }
  return base;
}

function stringList(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

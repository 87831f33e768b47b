// Fields the Istio networking API does not have, reported as `kubectl apply --validate=strict`
// would (the CRDs preserve unknown fields, so the apiserver keeps `htp:` without a word and the
// rule it was meant to be is a silent no-op). Warnings: the object still serves what it can.
// The field lists are Istio's networking/v1 API (istio.io reference pages), for the parts where
// a typo loses routing or policy; deeper levels are left to the translator's own checks.

import type { StoredObject } from '../config/resources.js';
import type { ConfigSet } from '../store/object-store.js';
import type { DiagnosticSink } from './diagnostics.js';

/** Known keys, and the known keys of the object (or each object of the list) under some of them. */
interface Shape {
  keys: readonly string[];
  nested?: Record<string, Shape>;
}

const STRING_MATCH: Shape = { keys: ['exact', 'prefix', 'regex'] };
const DESTINATION: Shape = { keys: ['host', 'subset', 'port'] };
const HEADERS: Shape = { keys: ['request', 'response'] };
const PORT_SELECTOR: Shape = { keys: ['number'] };

const TRAFFIC_POLICY: Shape = {
  keys: ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls', 'portLevelSettings', 'tunnel', 'proxyProtocol', 'retryBudget'],
};

const SHAPES: Record<string, Shape> = {
  Gateway: {
    keys: ['selector', 'servers'],
    nested: {
      servers: {
        keys: ['port', 'bind', 'hosts', 'tls', 'name', 'defaultEndpoint'],
        nested: {
          port: { keys: ['number', 'protocol', 'name', 'targetPort'] },
          tls: {
            keys: [
              'httpsRedirect', 'mode', 'serverCertificate', 'privateKey', 'caCertificates', 'caCrl', 'credentialName', 'credentialNames',
              'tlsCertificates', 'subjectAltNames', 'verifyCertificateSpki', 'verifyCertificateHash', 'minProtocolVersion', 'maxProtocolVersion',
              'cipherSuites', 'caCertCredentialName',
            ],
          },
        },
      },
    },
  },
  VirtualService: {
    keys: ['hosts', 'gateways', 'http', 'tls', 'tcp', 'exportTo'],
    nested: {
      http: {
        keys: [
          'name', 'match', 'route', 'redirect', 'directResponse', 'delegate', 'rewrite', 'timeout', 'retries', 'fault', 'mirror',
          'mirrorPercentage', 'mirror_percent', 'mirrorPercent', 'mirrors', 'corsPolicy', 'headers',
        ],
        nested: {
          match: {
            keys: ['name', 'uri', 'scheme', 'method', 'authority', 'headers', 'port', 'sourceLabels', 'gateways', 'queryParams', 'ignoreUriCase', 'withoutHeaders', 'sourceNamespace', 'statPrefix'],
            nested: { uri: STRING_MATCH, scheme: STRING_MATCH, method: STRING_MATCH, authority: STRING_MATCH },
          },
          route: { keys: ['destination', 'weight', 'headers'], nested: { destination: { ...DESTINATION, nested: { port: PORT_SELECTOR } }, headers: HEADERS } },
          redirect: { keys: ['uri', 'authority', 'port', 'derivePort', 'scheme', 'redirectCode'] },
          directResponse: { keys: ['status', 'body'] },
          delegate: { keys: ['name', 'namespace'] },
          rewrite: { keys: ['uri', 'authority', 'uriRegexRewrite'] },
          retries: { keys: ['attempts', 'perTryTimeout', 'retryOn', 'retryRemoteLocalities', 'retryIgnorePreviousHosts', 'backoff'] },
          fault: { keys: ['delay', 'abort'] },
          headers: HEADERS,
        },
      },
      tcp: { keys: ['match', 'route'], nested: { route: { keys: ['destination', 'weight'], nested: { destination: DESTINATION } } } },
      tls: { keys: ['match', 'route'], nested: { route: { keys: ['destination', 'weight'], nested: { destination: DESTINATION } } } },
    },
  },
  DestinationRule: {
    keys: ['host', 'trafficPolicy', 'subsets', 'exportTo', 'workloadSelector'],
    nested: { trafficPolicy: TRAFFIC_POLICY, subsets: { keys: ['name', 'labels', 'trafficPolicy'], nested: { trafficPolicy: TRAFFIC_POLICY } } },
  },
  ServiceEntry: {
    keys: ['hosts', 'addresses', 'ports', 'location', 'resolution', 'endpoints', 'workloadSelector', 'exportTo', 'subjectAltNames'],
    nested: {
      ports: { keys: ['number', 'protocol', 'name', 'targetPort'] },
      endpoints: { keys: ['address', 'ports', 'labels', 'network', 'locality', 'weight', 'serviceAccount'] },
    },
  },
};

export function reportUnknownFields(config: ConfigSet, sink: DiagnosticSink): void {
  for (const kind of Object.keys(SHAPES)) {
    for (const obj of (config as unknown as Record<string, readonly StoredObject[] | undefined>)[kind] ?? []) {
      const spec = (obj as { spec?: unknown }).spec;
      if (spec !== null && typeof spec === 'object' && !Array.isArray(spec)) check(obj, spec as Record<string, unknown>, SHAPES[kind]!, 'spec', sink);
    }
  }
}

function check(obj: StoredObject, value: Record<string, unknown>, shape: Shape, at: string, sink: DiagnosticSink): void {
  for (const [key, child] of Object.entries(value)) {
    const path = /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${at}.${key}` : `${at}[${JSON.stringify(key)}]`;
    if (!shape.keys.includes(key)) {
      sink.warning(obj, path, `unknown field ${JSON.stringify(key)}: ignored (known here: ${shape.keys.join(', ')})`);
      continue;
    }
    const nested = shape.nested?.[key];
    if (nested === undefined) continue;
    if (Array.isArray(child)) child.forEach((item, i) => isMap(item) && check(obj, item, nested, `${path}[${i}]`, sink));
    else if (isMap(child)) check(obj, child, nested, path, sink);
  }
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

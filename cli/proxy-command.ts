// `portway proxy`: parses the command line contract (documented in the README) into options.

import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { numTrustedProxiesFromAnnotations, parseDownwardApiFile } from './pod-annotations.js';
import { PATH_NORMALIZATIONS, type PathNormalization } from '../dataplane/serve/http/path-normalization.js';
import type { HeadersWithUnderscores, ServeLimits } from '../dataplane/serve/limits.js';
import { parseDuration } from '../dataplane/translate/durations.js';

export const PROXY_USAGE = `Usage: portway proxy [options]

  --config PATH[,PATH...]     YAML files or folders (standalone mode); each must exist (else exit 1);
                              watched for changes.
                              Without it the proxy reads the Kubernetes API (in-cluster or KUBECONFIG).
  --source files|kubernetes   force the config source
  --namespace NS              this proxy pod's namespace (default: $POD_NAMESPACE or "default")
  --labels k=v,k=v            this proxy pod's labels, matched by Gateway selectors
  --labels-file PATH          the same, from a downward-API labels file (k="v" per line)
  --annotations-file PATH     this proxy pod's annotations (downward-API file): Istio's
                              proxy.istio.io/config gatewayTopology.numTrustedProxies is honoured
  --port-map 80=18080,...     Service port -> port to listen on (overrides targetPort translation)
  --bind-address ADDR         address the gateway listeners bind (default 0.0.0.0)
  --status-port 15021         readiness (/healthz/ready)
  --metrics-port 15090        Prometheus (/stats/prometheus)
  --admin-port 15000          config dump (/config_dump), bound to 127.0.0.1
  --drain-duration 5s         how long to keep accepting and serving after SIGTERM (readiness fails at
                              once; responses close their connections, HTTP/2 gets GOAWAY); then exit
  --exit-on-zero-active-connections
                              end the drain early once no connection is left (Istio's
                              EXIT_ON_ZERO_ACTIVE_CONNECTIONS=true does the same; off by default)
  --concurrency N             worker processes (default 1)
  --access-log text|json|off  access log format on stdout (default text): one line per HTTP request
                              and per TCP/TLS connection
  --num-trusted-proxies N     proxies in front of the gateway (Istio gatewayTopology.numTrustedProxies;
                              default $PORTWAY_NUM_TRUSTED_PROXIES, else the pod annotation, else 0 =
                              the gateway is the edge): the client address is the Nth
                              X-Forwarded-For entry from the right
                              (x-envoy-external-address, access log, source-IP hashing) and their
                              X-Forwarded-Proto is kept (httpsRedirect behind a TLS load balancer);
                              with 0, X-Forwarded-Proto is the listener's scheme
  --path-normalization MODE   NONE|BASE|MERGE_SLASHES|DECODE_AND_MERGE_SLASHES (Istio
                              meshConfig.pathNormalization; default BASE: RFC 3986 dot segments and
                              encoded unreserved characters, %2F kept), before routing
  --headers-with-underscores allow|drop|reject
                              request headers whose names contain "_" (default allow, as Istio)`;

export interface ProxyOptions {
  configPaths: string[];
  source: 'files' | 'kubernetes';
  namespace: string;
  labels: Record<string, string>;
  labelsFile?: string;
  portMap: Map<number, number>;
  bindAddress: string;
  statusPort: number;
  metricsPort: number;
  adminPort: number;
  drainDurationMs: number;
  /** End the drain as soon as no connection is left (--exit-on-zero-active-connections). */
  exitOnZeroActiveConnections: boolean;
  concurrency: number;
  accessLog: 'text' | 'json' | 'off';
  numTrustedProxies: number;
  pathNormalization: PathNormalization;
  headersWithUnderscores: HeadersWithUnderscores;
}

/** The HTTP connection settings of the data plane that come from the command line. */
export function serveSettings(options: ProxyOptions): Partial<ServeLimits> {
  return { numTrustedProxies: options.numTrustedProxies, pathNormalization: options.pathNormalization, headersWithUnderscores: options.headersWithUnderscores };
}

export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of text.split(/[,\n]/)) {
    const trimmed = part.trim();
    if (!trimmed) continue;
    const eq = trimmed.indexOf('=');
    if (eq <= 0) throw new Error(`invalid label ${JSON.stringify(trimmed)}: expected key=value`);
    // The downward API quotes values: app="istio-ingressgateway".
    labels[trimmed.slice(0, eq)] = trimmed.slice(eq + 1).replace(/^"(.*)"$/, '$1');
  }
  return labels;
}

function port(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${flag}: ${JSON.stringify(value)} is not a port number`);
  return n;
}

export function parseProxyOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): ProxyOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      config: { type: 'string' },
      source: { type: 'string' },
      namespace: { type: 'string' },
      labels: { type: 'string' },
      'labels-file': { type: 'string' },
      'annotations-file': { type: 'string' },
      'port-map': { type: 'string' },
      'bind-address': { type: 'string' },
      'status-port': { type: 'string' },
      'metrics-port': { type: 'string' },
      'admin-port': { type: 'string' },
      'drain-duration': { type: 'string' },
      'exit-on-zero-active-connections': { type: 'boolean' },
      concurrency: { type: 'string' },
      'access-log': { type: 'string' },
      'num-trusted-proxies': { type: 'string' },
      'path-normalization': { type: 'string' },
      'headers-with-underscores': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) throw new HelpRequested();
  const configPaths = values.config ? values.config.split(',').map((s) => s.trim()).filter(Boolean) : [];
  const source = (values.source ?? (configPaths.length > 0 ? 'files' : 'kubernetes')) as ProxyOptions['source'];
  if (source !== 'files' && source !== 'kubernetes') throw new Error(`--source: expected files or kubernetes, got ${JSON.stringify(values.source)}`);
  if (source === 'files' && configPaths.length === 0) throw new Error('--source files needs --config PATH');
  let labels: Record<string, string> = {};
  if (values['labels-file']) labels = parseLabels(readFileSync(values['labels-file'], 'utf8'));
  if (values.labels) labels = { ...labels, ...parseLabels(values.labels) };
  const portMap = new Map<number, number>();
  for (const pair of (values['port-map'] ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const [from, to] = pair.split('=');
    if (from === undefined || to === undefined) throw new Error(`--port-map: invalid entry ${JSON.stringify(pair)}: expected servicePort=listenPort`);
    portMap.set(port(from, '--port-map'), port(to, '--port-map'));
  }
  const drain = parseDuration(values['drain-duration'] ?? '5s');
  if (typeof drain !== 'number') throw new Error(`--drain-duration: ${drain.error}`);
  const concurrency = Number(values.concurrency ?? 1);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new Error('--concurrency: expected a whole number from 1 to 64');
  const accessLog = (values['access-log'] ?? 'text') as ProxyOptions['accessLog'];
  if (!['text', 'json', 'off'].includes(accessLog)) throw new Error('--access-log: expected text, json or off');
  // Istio's way is the pod annotation proxy.istio.io/config; a flag or the variable overrides it.
  let trustedText = values['num-trusted-proxies'] ?? env.PORTWAY_NUM_TRUSTED_PROXIES;
  if (trustedText === undefined && values['annotations-file']) {
    const annotations = parseDownwardApiFile(readFileSync(values['annotations-file'], 'utf8'));
    trustedText = String(numTrustedProxiesFromAnnotations(annotations) ?? 0);
  }
  trustedText ??= '0';
  const numTrustedProxies = Number(trustedText);
  if (trustedText.trim() === '' || !Number.isInteger(numTrustedProxies) || numTrustedProxies < 0 || numTrustedProxies > 64) {
    throw new Error(`--num-trusted-proxies: expected a whole number from 0 to 64, got ${JSON.stringify(trustedText)}`);
  }
  const pathNormalization = (values['path-normalization'] ?? 'BASE').toUpperCase() as PathNormalization;
  if (!PATH_NORMALIZATIONS.includes(pathNormalization)) throw new Error(`--path-normalization: expected one of ${PATH_NORMALIZATIONS.join(', ')}`);
  const underscores = values['headers-with-underscores'] ?? 'allow';
  const headersWithUnderscores = Object.hasOwn(UNDERSCORE_ACTIONS, underscores) ? UNDERSCORE_ACTIONS[underscores] : undefined;
  if (headersWithUnderscores === undefined) throw new Error('--headers-with-underscores: expected allow, drop or reject');
  return {
    configPaths,
    source,
    namespace: values.namespace ?? env.POD_NAMESPACE ?? 'default',
    labels,
    labelsFile: values['labels-file'],
    portMap,
    bindAddress: values['bind-address'] ?? '0.0.0.0',
    statusPort: port(values['status-port'] ?? '15021', '--status-port'),
    metricsPort: port(values['metrics-port'] ?? '15090', '--metrics-port'),
    adminPort: port(values['admin-port'] ?? '15000', '--admin-port'),
    drainDurationMs: drain,
    exitOnZeroActiveConnections: values['exit-on-zero-active-connections'] ?? envFlag(env.EXIT_ON_ZERO_ACTIVE_CONNECTIONS, 'EXIT_ON_ZERO_ACTIVE_CONNECTIONS'),
    concurrency,
    accessLog,
    numTrustedProxies,
    pathNormalization,
    headersWithUnderscores,
  };
}

const UNDERSCORE_ACTIONS: Record<string, HeadersWithUnderscores | undefined> = { allow: 'ALLOW', drop: 'DROP_HEADER', reject: 'REJECT_REQUEST' };

/** A boolean environment variable as Istio reads them (strconv.ParseBool); unset = false. */
function envFlag(value: string | undefined, name: string): boolean {
  if (value === undefined || value === '') return false;
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(value)) return false;
  throw new Error(`${name}: expected true or false, got ${JSON.stringify(value)}`);
}

export class HelpRequested extends Error {}

export async function runProxyCommand(argv: string[]): Promise<number> {
  let options: ProxyOptions;
  try {
    options = parseProxyOptions(argv);
  } catch (err) {
    if (err instanceof HelpRequested) {
      console.log(PROXY_USAGE);
      return 0;
    }
    console.error(`portway proxy: ${(err as Error).message}\n\n${PROXY_USAGE}`);
    return 2;
  }
  // A path that does not exist would leave the proxy ready and serving nothing, forever.
  const missing = options.source === 'files' ? options.configPaths.filter((p) => !existsSync(p)) : [];
  if (missing.length > 0) {
    console.error(`portway proxy: --config: ${missing.map((p) => JSON.stringify(p)).join(', ')} does not exist (give existing YAML files or folders; a folder may be empty)`);
    return 1;
  }
  if (options.source === 'kubernetes') {
    // Checked before anything listens or forks: a proxy without credentials would otherwise
    // keep its admin ports open and hang, serving nothing (the operator exits 1 the same way).
    const { connectionFromEnvironment } = await import('../kube/connection.js');
    try {
      connectionFromEnvironment();
    } catch (err) {
      console.error(`portway proxy: ${(err as Error).message}; give --config PATH to run standalone on YAML files`);
      return 1;
    }
  }
  const { runProxy } = await import('../dataplane/proxy.js');
  return runProxy(options);
}

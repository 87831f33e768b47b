// The compiled configuration snapshot: what the serving code runs.
// Built by the pure translators from the object store, never mutated after it is built,
// and swapped whole by the listeners. Everything that can be decided at translate time
// (regexes, weights, header operations, policy defaults) is decided here.

export type Duration = number; // milliseconds

export interface Diagnostic {
  /** "error" rejects the object or field named; "warning" keeps it. */
  severity: 'error' | 'warning';
  kind: string;
  namespace: string;
  name: string;
  /** JSON path inside the object, e.g. "spec.http[2].match[0].uri.regex". */
  field: string;
  message: string;
  /** Where the object came from (file path or "kubernetes"). */
  source?: string;
}

export type ListenerProtocol = 'HTTP' | 'HTTPS' | 'HTTP2' | 'GRPC' | 'GRPC-WEB' | 'TCP' | 'TLS' | 'MONGO';

export interface Snapshot {
  /** Increases by one for each snapshot the proxy builds. */
  version: number;
  builtAt: string;
  listeners: Listener[];
  clusters: ReadonlyMap<string, Cluster>;
  /** Certificates by credential reference ("namespace/name" or "file:<paths>"). */
  credentials: ReadonlyMap<string, CredentialRef>;
  diagnostics: Diagnostic[];
}

// ---------------------------------------------------------------------------------------
// Listeners: one per bound port. A port carries one protocol family (Istio rejects mixes).

export interface Listener {
  name: string; // "0.0.0.0_8080"
  bindAddress: string;
  bindPort: number;
  /** The Gateway's port number (the Service port); used by `port` matches and redirects. */
  gatewayPort: number;
  protocol: ListenerProtocol;
  /** Ordered; for TLS listeners the first chain whose serverNames match the SNI wins. */
  filterChains: FilterChain[];
}

export interface FilterChain {
  name: string;
  /** The Gateway servers merged into this chain, as "ns/name#index". */
  servers: string[];
  /** SNI names this chain answers (wildcards allowed); empty = any. */
  serverNames: string[];
  tls?: DownstreamTls;
  /** HTTP/HTTPS (terminated) traffic: the route table. */
  http?: RouteTable;
  /** TCP or terminated TLS: routes by port. */
  tcp?: TcpRoute[];
  /** PASSTHROUGH: routes by SNI. */
  tlsPassthrough?: TlsRoute[];
  /** tls.httpsRedirect on an HTTP server: every request gets a 301 to https. */
  httpsRedirect: boolean;
}

export type DownstreamTlsMode = 'SIMPLE' | 'MUTUAL' | 'OPTIONAL_MUTUAL' | 'PASSTHROUGH';

export interface DownstreamTls {
  mode: DownstreamTlsMode;
  /** Credential keys into Snapshot.credentials (one or two: RSA + ECDSA). */
  credentials: string[];
  /** Overrides the CA of the credentials (caCertCredentialName / caCertificates file). */
  caCredential?: string;
  subjectAltNames: string[];
  verifyCertificateSpki: string[];
  verifyCertificateHash: string[];
  minProtocolVersion: 'TLSv1.2' | 'TLSv1.3';
  maxProtocolVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL cipher list, mapped from Istio/Envoy names at translate time; undefined = Node's defaults. */
  ciphers?: string;
}

/** A reference to certificate material; the bytes live in the credential store (rotates). */
export interface CredentialRef {
  key: string;
  kind: 'secret' | 'files';
  namespace?: string;
  name?: string;
  files?: { cert?: string; key?: string; ca?: string; crl?: string };
}

// ---------------------------------------------------------------------------------------
// HTTP routing.

export interface RouteTable {
  name: string; // "http.8080"
  virtualHosts: VirtualHost[];
  /** Exact host (lower-case, no port) → virtual host. */
  exactHosts: ReadonlyMap<string, VirtualHost>;
  /** Wildcard hosts ("*.example.com" stored as ".example.com"), longest suffix first. */
  wildcardHosts: ReadonlyArray<{ suffix: string; virtualHost: VirtualHost }>;
  /** A "*" host, if any server/VirtualService pair produced one. */
  catchAll?: VirtualHost;
}

export interface VirtualHost {
  name: string; // "httpbin.example.com:80"
  domains: string[];
  routes: Route[];
  /** A server with tls.httpsRedirect covers this host: every request gets a 301 to https. */
  httpsRedirect?: boolean;
}

export type StringMatcher =
  | { kind: 'exact'; value: string; ignoreCase: boolean }
  | { kind: 'prefix'; value: string; ignoreCase: boolean }
  | { kind: 'regex'; source: string; test: (value: string) => boolean };

export interface HeaderCondition {
  name: string; // lower-case
  /** undefined = the header must be present (Istio's `{}`). */
  matcher?: StringMatcher;
}

export interface RouteMatch {
  uri?: StringMatcher;
  scheme?: StringMatcher;
  method?: StringMatcher;
  authority?: StringMatcher;
  headers: HeaderCondition[];
  withoutHeaders: HeaderCondition[];
  queryParams: Array<{ name: string; matcher?: StringMatcher }>;
  port?: number;
  /** Names of the source/match's gateways, "ns/name"; empty = all bound gateways. */
  gateways: string[];
  /** The match's name (Istio `match[].name`), for stats. */
  name?: string;
}

export interface HeaderOperations {
  set: Array<[string, string]>;
  add: Array<[string, string]>;
  remove: string[];
}

export interface WeightedDestination {
  cluster: string; // key into Snapshot.clusters
  host: string;
  subset?: string;
  port?: number;
  weight: number;
  requestHeaders: HeaderOperations;
  responseHeaders: HeaderOperations;
}

export interface RetryPolicy {
  attempts: number;
  perTryTimeout?: Duration;
  /** Envoy retry-on conditions and/or status codes ("5xx", "gateway-error", "503"…). */
  retryOn: string[];
  retryRemoteLocalities: boolean;
}

export interface FaultPolicy {
  delay?: { fixedDelay: Duration; percentage: number };
  abort?: { httpStatus?: number; grpcStatus?: string; percentage: number };
}

export interface MirrorPolicy {
  cluster: string;
  host: string;
  percentage: number;
}

export interface CorsPolicy {
  allowOrigins: StringMatcher[];
  allowMethods: string[];
  allowHeaders: string[];
  exposeHeaders: string[];
  maxAge?: Duration;
  allowCredentials?: boolean;
  unmatchedPreflights: 'FORWARD' | 'IGNORE';
}

export interface RewritePolicy {
  uri?: string;
  uriRegex?: { match: string; rewrite: string; replace: (path: string) => string };
  authority?: string;
}

export type RouteAction =
  | { kind: 'route'; destinations: WeightedDestination[]; totalWeight: number }
  | {
      kind: 'redirect';
      uri?: string;
      authority?: string;
      port?: number;
      derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT';
      scheme?: string;
      code: number;
    }
  | { kind: 'directResponse'; status: number; body?: Buffer; contentType?: string };

export interface Route {
  /** "ns/vs-name" plus rule name or index; used in logs and metrics. */
  name: string;
  virtualService: string; // "ns/name"
  matches: RouteMatch[]; // ORed; an empty list matches everything
  action: RouteAction;
  rewrite?: RewritePolicy;
  timeout?: Duration;
  retries: RetryPolicy;
  fault?: FaultPolicy;
  mirrors: MirrorPolicy[];
  cors?: CorsPolicy;
  requestHeaders: HeaderOperations;
  responseHeaders: HeaderOperations;
}

// ---------------------------------------------------------------------------------------
// Layer-4 routing.

export interface L4Destination {
  cluster: string;
  host: string;
  port?: number;
  subset?: string;
  weight: number;
}

export interface TcpRoute {
  name: string;
  virtualService: string;
  port?: number;
  destinationSubnets: string[];
  destinations: L4Destination[];
  totalWeight: number;
}

export interface TlsRoute extends TcpRoute {
  /** SNI patterns (exact or "*.suffix"). */
  sniHosts: string[];
}

// ---------------------------------------------------------------------------------------
// Upstream clusters: destination host + port (+ subset), with endpoints and policies.

export type UpstreamProtocol = 'http1' | 'h2c' | 'tcp' | 'tls';

export interface Endpoint {
  address: string; // IP or DNS name (DNS resolution clusters)
  port: number;
  labels: Record<string, string>;
  weight: number;
  zone?: string;
  /** Name of the pod / ServiceEntry endpoint, for logs. */
  ref?: string;
}

export type LoadBalancerPolicy =
  | { kind: 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'PASSTHROUGH' }
  | {
      kind: 'CONSISTENT_HASH';
      hashOn:
        | { kind: 'header'; name: string }
        | { kind: 'cookie'; name: string; path?: string; ttl?: Duration }
        | { kind: 'sourceIp' }
        | { kind: 'queryParameter'; name: string };
      algorithm: 'ringHash' | 'maglev';
      minimumRingSize: number;
    };

export interface ConnectionPoolPolicy {
  maxConnections: number; // per cluster; Envoy default 2^32-1
  connectTimeout: Duration; // 10s
  tcpKeepalive?: { time?: Duration; interval?: Duration; probes?: number };
  tcpIdleTimeout?: Duration;
  http1MaxPendingRequests: number;
  http2MaxRequests: number;
  maxRequestsPerConnection: number; // 0 = unlimited, 1 = no keep-alive
  maxRetries: number;
  httpIdleTimeout: Duration; // 1h
  h2UpgradePolicy: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
}

export interface OutlierDetectionPolicy {
  consecutive5xxErrors: number; // 5; 0 = off
  consecutiveGatewayErrors: number; // 0 = off
  interval: Duration; // 10s
  baseEjectionTime: Duration; // 30s
  maxEjectionPercent: number; // 10
  minHealthPercent: number; // 0
}

export interface UpstreamTlsPolicy {
  mode: 'DISABLE' | 'SIMPLE' | 'MUTUAL';
  /** Credential key for client cert/key and/or CA (credentialName or files). */
  credential?: string;
  caCredential?: string;
  sni?: string;
  subjectAltNames: string[];
  insecureSkipVerify: boolean;
}

export interface TrafficPolicy {
  loadBalancer: LoadBalancerPolicy;
  connectionPool: ConnectionPoolPolicy;
  outlierDetection?: OutlierDetectionPolicy;
  tls?: UpstreamTlsPolicy;
}

export interface Cluster {
  /** "outbound|<port>|<subset>|<host>", as Istio names them. */
  name: string;
  host: string;
  port: number;
  subset?: string;
  protocol: UpstreamProtocol;
  /** 'static': endpoint addresses are IPs; 'dns': addresses are names resolved and refreshed. */
  resolution: 'static' | 'dns';
  endpoints: Endpoint[];
  policy: TrafficPolicy;
  /** Where the cluster came from: "Service ns/name", "ServiceEntry ns/name", or undefined if unknown host. */
  origin?: string;
}

export const ISTIO_DEFAULT_RETRY_ON = ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'];

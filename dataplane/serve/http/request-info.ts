// What one downstream request did, filled in as it is served and read once at the end by
// the access log and the metrics. A class with every field set in the constructor, so all
// instances share one shape.

/** Where a request's metrics go: the children of one (gateway port, virtual host, route). */
export interface RequestSeries {
  record(code: number, seconds: number): void;
}

/** Builds the series of a (gateway port, virtual host, route); called once per route and snapshot. */
export type SeriesFactory = (gatewayPort: string, virtualHost: string, route: string) => RequestSeries;

export const NO_SERIES: RequestSeries = { record() {} };

/** Envoy response flags used by the HTTP path. */
export type ResponseFlag =
  | 'NR' // no route
  | 'NC' // no cluster
  | 'UH' // no healthy upstream
  | 'UF' // upstream connection failure
  | 'UO' // upstream overflow (circuit breaker)
  | 'URX' // upstream retry limit exceeded
  | 'UT' // upstream request timeout
  | 'UC' // upstream connection termination
  | 'UR' // upstream remote reset
  | 'DC' // downstream connection termination
  | 'DI' // delay injected
  | 'FI' // fault (abort) injected
  | 'DPE'; // downstream protocol error

export class RequestInfo {
  /** Epoch milliseconds, for %START_TIME%. */
  readonly startTime: number;
  /** performance.now() at the start, for %DURATION%. */
  readonly startMark: number;
  status = 0;
  flags = '';
  details = '-';
  terminationDetails = '-';
  transportFailure = '-';
  bytesReceived = 0;
  bytesSent = 0;
  /** Milliseconds from the upstream request to its response head; -1 = none. */
  upstreamServiceTime = -1;
  forwardedFor = '';
  requestId = '';
  upstreamHost = '-';
  upstreamCluster = '-';
  routeName = '-';
  virtualHost = '-';
  /** Where the metrics go; set to the route's series once a route is chosen. */
  series: RequestSeries;
  /** Milliseconds, set when the request is over. */
  duration = 0;

  constructor(
    readonly method: string,
    /** The path as received (before any rewrite): %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%. */
    readonly path: string,
    readonly protocol: string,
    readonly authority: string,
    readonly userAgent: string,
    readonly downstreamLocal: string,
    readonly downstreamRemote: string,
    readonly serverName: string,
    series: RequestSeries,
    /** When it started, if before now (a TCP connection: when it was accepted). */
    started?: { readonly time: number; readonly mark: number },
  ) {
    this.startTime = started?.time ?? Date.now();
    this.startMark = started?.mark ?? performance.now();
    this.series = series;
  }

  addFlag(flag: ResponseFlag): void {
    if (this.flags === '') this.flags = flag;
    else if (!this.flags.split(',').includes(flag)) this.flags += `,${flag}`;
  }

  hasFlag(flag: ResponseFlag): boolean {
    return this.flags !== '' && this.flags.split(',').includes(flag);
  }
}

/** %UPSTREAM_TRANSPORT_FAILURE_REASON%: a socket error as one token ("CODE:message", blanks and quotes as "_"). */
export function transportFailureReason(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  const message = (err as Error | null)?.message ?? String(err);
  return (typeof code === 'string' ? `${code}:${message}` : message).replace(/[\s"]+/g, '_');
}

// A data plane in the test process: real ClusterManager, real listeners on 127.0.0.1,
// access log lines captured, plus a small HTTP client that returns status, headers and body.

import { request as httpRequest, Agent, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { PassThrough } from 'node:stream';
import { Registry } from 'prom-client';
import { ClusterManager } from '../../../dataplane/upstream/index.js';
import { createDataPlane, type DataPlane, type SecureServerFactory, type ServeLimits } from '../../../dataplane/serve/data-plane.js';
import type { Cluster, Listener, Snapshot } from '../../../dataplane/snapshot/types.js';
import type { AccessLogFormat } from '../../../dataplane/serve/http/access-log.js';
import { freePort } from '../../support/echo-backend.js';
import { httpListener, snapshot, type HttpListenerSpec } from '../../support/snapshot-builder.js';

export interface Harness {
  dataPlane: DataPlane;
  clusterManager: ClusterManager;
  registry: Registry;
  /** Errors the request path caught (a bug each). */
  errors: string[];
  /** Access log lines written so far. */
  logLines(): Promise<string[]>;
  apply(snapshot: Snapshot): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(options: { limits?: Partial<ServeLimits>; random?: () => number; format?: AccessLogFormat; secureServer?: SecureServerFactory } = {}): Promise<Harness> {
  const registry = new Registry();
  const clusterManager = new ClusterManager({ registry });
  const stream = new PassThrough();
  let text = '';
  const errors: string[] = [];
  stream.on('data', (c: Buffer) => (text += c.toString('utf8')));
  const dataPlane = createDataPlane({
    registry,
    clusterManager,
    accessLog: { format: options.format ?? 'text', stream },
    limits: options.limits,
    random: options.random,
    secureServer: options.secureServer,
    defaultMetrics: false,
    onError: (err, req) => {
      errors.push(`${req}: ${(err as Error)?.message ?? err}`);
    },
  });
  return {
    dataPlane,
    clusterManager,
    registry,
    errors,
    async logLines() {
      await dataPlane.accessLog.flush();
      return text.split('\n').filter(Boolean);
    },
    async apply(snapshot) {
      const result = await dataPlane.apply(snapshot);
      if (!result.ok) throw new Error(`apply failed: ${JSON.stringify(result.errors)}`);
    },
    async close() {
      await dataPlane.close();
      await clusterManager.close();
    },
  };
}

/**
 * Applies a snapshot whose first listener is an HTTP listener on a new free port (the
 * listener spec but its port), next to `otherListeners`; resolves with that port.
 */
export async function serveHttp(h: Harness, spec: Omit<HttpListenerSpec, 'port'> & { clusters: Cluster[]; otherListeners?: Listener[] }): Promise<number> {
  const { clusters, otherListeners = [], ...listener } = spec;
  const port = await freePort();
  await h.apply(snapshot({ listeners: [httpListener({ port, ...listener }), ...otherListeners], clusters }));
  return port;
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
  json<T = any>(): T;
}

export interface RequestOptions {
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  agent?: Agent | false;
}

/** One request to 127.0.0.1:port (a fresh connection unless an agent is given). */
export function send(port: number, options: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { ...(options.headers ?? {}) };
    if (options.host !== undefined) headers.host = options.host;
    const req = httpRequest(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path ?? '/', headers, agent: options.agent ?? false, setHost: options.host === undefined },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body,
            json: () => JSON.parse(body),
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Metric text from the registry. */
export async function metricsText(h: Harness): Promise<string> {
  return h.registry.metrics();
}

/** Sends raw bytes to 127.0.0.1:port; resolves with everything read until the proxy closes the connection. */
export function raw(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (c) => (got += c.toString('latin1')));
    socket.on('close', () => resolve(got));
    socket.on('error', (err) => (got ? resolve(got) : reject(err)));
    socket.write(data);
  });
}

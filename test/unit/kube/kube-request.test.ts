// The operator's raw requests (kube/kube-request.ts) against a local HTTP server playing the
// apiserver: a 429 from API Priority and Fairness is retried as the apiserver asks, other
// errors are not, and a rotated token file is used from the next request on.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectionFromKubeconfig, type KubeConnection } from '../../../kube/connection.js';
import { KubeApiError, kubeRequest, retryAfterMs, serverSideApply } from '../../../kube/kube-request.js';

describe('kube raw requests', () => {
  let server: Server;
  let conn: KubeConnection;
  let dir: string;
  let handle: (req: IncomingMessage, body: string, res: ServerResponse) => void = () => {};
  const seen: Array<{ method: string; url: string; auth?: string; contentType?: string }> = [];

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, contentType: req.headers['content-type'] });
        handle(req, body, res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    dir = mkdtempSync(join(tmpdir(), 'kube-request-'));
    writeFileSync(join(dir, 'token'), 'first\n');
    writeFileSync(
      join(dir, 'config'),
      `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: 'http://127.0.0.1:${(server.address() as AddressInfo).port}'}}]
users: [{name: u, user: {tokenFile: token}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
`,
    );
    conn = connectionFromKubeconfig(join(dir, 'config'));
  });
  after(() => server.close());
  beforeEach(() => (seen.length = 0));

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

  it('retries a 429 after the Retry-After the apiserver sends, then returns the answer', async () => {
    let calls = 0;
    handle = (_req, body, res) => {
      calls++;
      if (calls < 3) json(res, 429, { kind: 'Status', reason: 'TooManyRequests', message: 'too many requests, please try again later' }, { 'retry-after': '1' });
      else json(res, 200, { echoed: JSON.parse(body) });
    };
    const answer = await serverSideApply<{ echoed: unknown }>(conn, '/apis/apps/v1/namespaces/ns/deployments/d', { kind: 'Deployment' }, 'portway-operator');
    assert.deepEqual(answer.echoed, { kind: 'Deployment' });
    assert.equal(seen.length, 3);
    for (const s of seen) {
      assert.equal(s.method, 'PATCH');
      assert.equal(s.url, '/apis/apps/v1/namespaces/ns/deployments/d?fieldManager=portway-operator&force=true');
      assert.equal(s.contentType, 'application/apply-patch+yaml');
    }
  });

  it('does not retry a conflict or a 5xx without Retry-After, and names the status', async () => {
    handle = (_req, _body, res) => json(res, 409, { kind: 'Status', reason: 'Conflict', message: 'the object has been modified' });
    await assert.rejects(kubeRequest(conn, { method: 'PUT', path: '/x', body: {} }), (e: unknown) => e instanceof KubeApiError && e.statusCode === 409 && e.reason === 'Conflict' && /modified/.test(e.message));
    assert.equal(seen.length, 1);
    handle = (_req, _body, res) => res.writeHead(500).end('boom');
    await assert.rejects(kubeRequest(conn, { method: 'GET', path: '/y' }), (e: unknown) => e instanceof KubeApiError && e.statusCode === 500 && /boom/.test(e.message));
    assert.equal(seen.length, 2);
  });

  it('reads a token file again for every request (bound ServiceAccount tokens rotate)', async () => {
    handle = (_req, _body, res) => json(res, 200, {});
    await kubeRequest(conn, { method: 'GET', path: '/a' });
    writeFileSync(join(dir, 'token'), 'second\n');
    await kubeRequest(conn, { method: 'GET', path: '/b' });
    assert.deepEqual(seen.map((s) => s.auth), ['Bearer first', 'Bearer second']);
  });

  it('waits as long as Retry-After says, within bounds, and only when asked to', () => {
    assert.equal(retryAfterMs(429, '3'), 3000);
    assert.equal(retryAfterMs(429, undefined), 1000);
    assert.equal(retryAfterMs(429, '3600'), 10_000);
    assert.equal(retryAfterMs(503, '2'), 2000);
    assert.equal(retryAfterMs(503, undefined), undefined);
    assert.equal(retryAfterMs(409, '1'), undefined);
  });
});

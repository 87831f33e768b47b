// The proxy's list/watch client (kube/list-watch.ts) against a local HTTP server playing the
// apiserver: kubeconfig reading, paged lists, watch events, ERROR events (410) and the idle
// watchdog.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectionFromKubeconfig, HttpsListWatchClient, KubeStatusError, METADATA_ONLY_LIST_ACCEPT, METADATA_ONLY_WATCH_ACCEPT, type WatchPhase } from '../../../kube/list-watch.js';

describe('kube list-watch client', () => {
  let server: Server;
  let base: string;
  const seen: Array<{ url: string; auth?: string; accept?: string }> = [];
  let onWatch: (res: import('node:http').ServerResponse) => void = () => {};

  before(async () => {
    server = createServer((req, res) => {
      seen.push({ url: req.url!, auth: req.headers.authorization, accept: req.headers.accept });
      const url = new URL(req.url!, 'http://x');
      if (url.searchParams.get('watch') === 'true') return onWatch(res);
      if (url.pathname === '/api/v1/namespaces/ns/forbidden') {
        res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 403, message: 'secrets is forbidden' }));
        return;
      }
      const page = url.searchParams.get('continue') === 'p2' ? 2 : 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({ metadata: { resourceVersion: '42', continue: page === 1 ? 'p2' : '' }, items: [{ metadata: { name: `item-${page}`, resourceVersion: '40' } }] }),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  const client = () => {
    const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-'));
    writeFileSync(join(dir, 'token'), 'file-token\n');
    const file = join(dir, 'config');
    writeFileSync(file, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: '${base}'}}]
users: [{name: u, user: {tokenFile: token}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
`);
    return new HttpsListWatchClient(connectionFromKubeconfig(file));
  };

  it('reads the current context of a kubeconfig (token file relative to it) and pages through a list', async () => {
    const c = client();
    const first = await c.list('/api/v1/pods', { limit: 500, labelSelector: 'app=x' });
    assert.deepEqual(first.items.map((i) => i.metadata?.name), ['item-1']);
    assert.equal(first.continueToken, 'p2');
    const second = await c.list('/api/v1/pods', { limit: 500, continueToken: first.continueToken });
    assert.equal(second.continueToken, undefined);
    assert.equal(second.resourceVersion, '42');
    const req = seen.find((s) => s.url.includes('labelSelector'))!;
    assert.equal(req.auth, 'Bearer file-token');
    assert.match(req.url, /limit=500/);
  });

  it('names the HTTP status of a refused list', async () => {
    await assert.rejects(client().list('/api/v1/namespaces/ns/forbidden', { limit: 1 }), (e: unknown) => e instanceof KubeStatusError && e.code === 403 && /forbidden/.test(e.message));
  });

  it('delivers watch events split across chunks and rejects on an ERROR event with its code (410)', async () => {
    onWatch = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"43"}}}\n{"type":"BOOK');
      setTimeout(() => {
        res.write('MARK","object":{"metadata":{"resourceVersion":"44"}}}\n');
        res.end('{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old resource version"}}\n');
      }, 20);
    };
    const events: Array<[WatchPhase, string | undefined]> = [];
    let started = false;
    await assert.rejects(
      client().watch('/api/v1/pods', { resourceVersion: '42', timeoutSeconds: 300, idleMs: 5_000 }, (phase, obj) => events.push([phase, obj.metadata?.resourceVersion]), () => (started = true)),
      (e: unknown) => e instanceof KubeStatusError && e.code === 410,
    );
    assert.ok(started);
    assert.deepEqual(events, [['ADDED', '43'], ['BOOKMARK', '44']]);
    assert.match(seen.at(-1)!.url, /resourceVersion=42/);
    assert.match(seen.at(-1)!.url, /allowWatchBookmarks=true/);
  });

  it('asks for metadata only (PartialObjectMetadataList to list, PartialObjectMetadata to watch) when told, plain JSON otherwise', async () => {
    onWatch = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end();
    };
    const c = client();
    await c.list('/api/v1/pods', { limit: 500, labelSelector: 'meta=1', metadataOnly: true });
    assert.equal(seen.at(-1)!.accept, METADATA_ONLY_LIST_ACCEPT);
    await c.watch('/api/v1/pods', { resourceVersion: '1', labelSelector: 'meta=2', timeoutSeconds: 300, idleMs: 5_000, metadataOnly: true }, () => {}, () => {});
    assert.equal(seen.at(-1)!.accept, METADATA_ONLY_WATCH_ACCEPT);
    await c.list('/api/v1/pods', { limit: 500 });
    assert.equal(seen.at(-1)!.accept, 'application/json');
    await c.watch('/api/v1/pods', { resourceVersion: '1', timeoutSeconds: 300, idleMs: 5_000 }, () => {}, () => {});
    assert.equal(seen.at(-1)!.accept, 'application/json');
  });

  it('ends a silent watch after the idle limit, and an aborted one at once', async () => {
    onWatch = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('\n');
    };
    await client().watch('/api/v1/pods', { resourceVersion: '1', timeoutSeconds: 300, idleMs: 100 }, () => {}, () => {});
    await client().watch('/api/v1/pods', { resourceVersion: '1', timeoutSeconds: 300, idleMs: 60_000 }, () => {}, (abort) => setTimeout(abort, 10));
  });
});

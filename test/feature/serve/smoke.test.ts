import assert from 'node:assert/strict';
import { startEchoBackend, freePort, type EchoBackend } from '../../support/echo-backend.js';
import { cluster, clusterName, httpListener, prefix, match, route, snapshot, virtualHost } from '../../support/snapshot-builder.js';
import { send, startHarness, type Harness } from './harness.js';

describe('serve smoke', () => {
  let h: Harness;
  let a: EchoBackend;
  let port: number;
  before(async () => {
    h = await startHarness();
    a = await startEchoBackend('a');
    port = await freePort();
    const c = clusterName('a.default.svc.cluster.local');
    await h.apply(
      snapshot({
        listeners: [httpListener({ port, virtualHosts: [virtualHost(['example.com'], [route('default/vs.0', { matches: [match({ uri: prefix('/') })], to: c })])] })],
        clusters: [cluster(c, [a])],
      }),
    );
  });
  after(async () => {
    await h.close();
    await a.close();
  });
  it('forwards', async () => {
    const r = await send(port, { host: 'example.com', path: '/hello?x=1' });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json().name, 'a');
    assert.equal(r.json().url, '/hello?x=1');
    const r2 = await send(port, { host: 'nope.com' });
    assert.equal(r2.status, 404);
    console.log((await h.logLines()).join('\n'));
  });
});

// Snapshots applied while traffic flows, listeners coming and going, ports that cannot be
// bound, and the shutdown drain.

import assert from 'node:assert/strict';
import { Agent, createServer, request, type Server } from 'node:http';
import { connect } from 'node:net';
import { freePort, startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import { cluster, clusterName, httpListener, route, snapshot, virtualHost } from '../../support/snapshot-builder.js';
import type { Snapshot } from '../../../dataplane/snapshot/types.js';
import { send, startHarness, type Harness, type Reply } from './harness.js';

/** GET with a keep-alive agent; retries once when a reused connection was closed under it (what well-behaved clients do). */
function getRetrying(port: number, host: string, path: string, agent: Agent): Promise<Reply & { retried: boolean }> {
  const once = (retried: boolean): Promise<Reply & { retried: boolean }> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, agent, headers: { host } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body, json: () => JSON.parse(body), retried });
        });
        res.on('error', reject);
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (!retried && req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) resolve(once(true));
        else reject(err);
      });
      req.end();
    });
  return once(false);
}

describe('serve: snapshot swaps, listeners, drain', () => {
  let a: EchoBackend;
  let b: EchoBackend;
  const cA = clusterName('a');
  const cB = clusterName('b');

  before(async () => {
    a = await startEchoBackend('a');
    b = await startEchoBackend('b');
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  const oneRoute = (version: number, port: number, target: 'a' | 'b'): Snapshot =>
    snapshot({
      version,
      listeners: [httpListener({ port, virtualHosts: [virtualHost(['*'], [route(`default/vs.${target}`, { to: target === 'a' ? cA : cB })])] })],
      // Each snapshot only has the cluster it routes to: swaps also add and remove clusters.
      clusters: target === 'a' ? [cluster(cA, [a])] : [cluster(cB, [b])],
    });

  it('swaps snapshots under keep-alive load with zero failed requests', async () => {
    const h = await startHarness();
    const port = await freePort();
    await h.apply(oneRoute(1, port, 'a'));
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    let stop = false;
    const seen = { a: 0, b: 0 };
    const failures: string[] = [];
    const worker = async () => {
      while (!stop) {
        try {
          const r = await send(port, { host: 'any.example.com', path: '/load', agent });
          if (r.status !== 200) failures.push(`${r.status} ${r.body}`);
          else seen[r.json().name as 'a' | 'b']++;
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    for (let v = 2; v <= 21; v++) {
      await h.apply(oneRoute(v, port, v % 2 === 0 ? 'b' : 'a'));
      await new Promise((r) => setTimeout(r, 15));
    }
    stop = true;
    await Promise.all(workers);
    agent.destroy();
    assert.deepEqual(failures, []);
    assert.ok(seen.a > 0 && seen.b > 0, JSON.stringify(seen));
    assert.equal(h.dataPlane.state.generation, 21);
    const last = await send(port, { host: 'x' });
    assert.equal(last.json().name, 'a', 'the last snapshot serves');
    await h.close();
  });

  it('opens new listeners, keeps persisting ones, closes removed ones', async () => {
    const h = await startHarness();
    const p1 = await freePort();
    const p2 = await freePort();
    const vh = [virtualHost(['*'], [route('default/vs.a', { to: cA })])];
    const first = await h.dataPlane.apply(snapshot({ version: 1, listeners: [httpListener({ port: p1, virtualHosts: vh })], clusters: [cluster(cA, [a])] }));
    assert.deepEqual(first.listeners.map((l) => [l.bindPort, l.status]), [[p1, 'bound']]);
    const second = await h.dataPlane.apply(snapshot({ version: 2, listeners: [httpListener({ port: p1, virtualHosts: vh }), httpListener({ port: p2, virtualHosts: vh })], clusters: [cluster(cA, [a])] }));
    assert.deepEqual(second.listeners.map((l) => [l.bindPort, l.status]), [[p1, 'kept'], [p2, 'bound']].sort((x, y) => (x[0] as number) - (y[0] as number)));
    assert.equal((await send(p2, { host: 'x' })).json().name, 'a');
    const third = await h.dataPlane.apply(snapshot({ version: 3, listeners: [httpListener({ port: p2, virtualHosts: vh })], clusters: [cluster(cA, [a])] }));
    assert.deepEqual(third.removed, [`127.0.0.1_${p1}`]);
    await assert.rejects(send(p1, { host: 'x' }), /ECONNREFUSED/);
    assert.equal((await send(p2, { host: 'x' })).status, 200);
    assert.deepEqual(h.dataPlane.listeners.boundPorts, [p2]);
    await h.close();
  });

  it('reports a port that cannot be bound, and serves the others', async () => {
    const h = await startHarness();
    const taken = await freePort();
    const free = await freePort();
    const squatter: Server = createServer();
    await new Promise<void>((r) => squatter.listen(taken, '127.0.0.1', () => r()));
    const vh = [virtualHost(['*'], [route('default/vs.a', { to: cA })])];
    const snap = (version: number) => snapshot({ version, listeners: [httpListener({ port: taken, virtualHosts: vh }), httpListener({ port: free, virtualHosts: vh })], clusters: [cluster(cA, [a])] });
    const result = await h.dataPlane.apply(snap(1));
    assert.equal(result.ok, false);
    assert.equal(result.errors.length, 1);
    assert.equal(result.errors[0]!.listener, `127.0.0.1_${taken}`);
    assert.match(result.errors[0]!.message, /EADDRINUSE/);
    assert.equal((await send(free, { host: 'x' })).status, 200);
    assert.equal(h.dataPlane.state.lastReloadSuccess, false);
    await new Promise<void>((r) => squatter.close(() => r()));
    const retry = await h.dataPlane.apply(snap(2));
    assert.equal(retry.ok, true, 'the next apply binds the port once it is free');
    assert.equal((await send(taken, { host: 'x' })).status, 200);
    await h.close();
  });

  it('drain (exitOnZeroConnections): not ready at once, Connection: close, in-flight requests finish, idle connections close, no failed request, ends with the last connection', async () => {
    const h = await startHarness();
    const port = await freePort();
    await h.apply(oneRoute(1, port, 'a'));
    assert.equal(h.dataPlane.state.ready, true);

    // An idle keep-alive connection, and a request in flight when the drain starts.
    const idleAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const warm = await getRetrying(port, 'x', '/warm', idleAgent);
    assert.equal(warm.headers.connection, 'keep-alive');
    const idleSocketClosed = new Promise<void>((resolve) => {
      const sockets = Object.values(idleAgent.freeSockets).flat();
      assert.equal(sockets.length, 1);
      sockets[0]!.once('close', () => resolve());
    });
    const inFlightAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const inFlight = send(port, { host: 'x', path: '/slow/delay/300', agent: inFlightAgent });
    await new Promise((r) => setTimeout(r, 50));

    const loadAgent = new Agent({ keepAlive: true, maxSockets: 4 });
    const drained = h.dataPlane.drain(60_000, { exitOnZeroConnections: true });
    assert.equal(h.dataPlane.state.ready, false, 'readiness fails as soon as the drain starts');

    // Keep-alive clients keep working through the drain (retrying a reused connection the proxy closed).
    let stop = false;
    const failures: string[] = [];
    const closeHeaders: string[] = [];
    const load = Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 15 && !stop; i++) {
        try {
          const r = await getRetrying(port, 'x', '/during-drain', loadAgent);
          if (r.status !== 200) failures.push(String(r.status));
          closeHeaders.push(String(r.headers.connection));
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    });
    const slow = await inFlight;
    assert.equal(slow.status, 200, 'the in-flight request finished');
    assert.equal(slow.headers.connection, 'close', 'a response begun before the drain still closes its keep-alive connection');
    inFlightAgent.destroy();
    await idleSocketClosed; // the proxy closed the idle keep-alive connection
    await Promise.all(load);
    stop = true;
    assert.deepEqual(failures, []);
    assert.ok(closeHeaders.length > 0 && closeHeaders.every((c) => c === 'close'), closeHeaders.join());
    loadAgent.destroy();
    idleAgent.destroy();
    await drained; // every connection is gone, long before the window ends
    assert.equal(h.dataPlane.state.activeConnections, 0);
    await h.close();
  });

  it('drain: a request already sent on an idle keep-alive connection when the drain starts is answered with Connection: close, not cut off', async () => {
    const h = await startHarness();
    const port = await freePort();
    await h.apply(oneRoute(1, port, 'a'));
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.setEncoding('latin1').on('data', (d: string) => (received += d));
    socket.on('error', () => undefined); // a reset shows as an empty reply below
    const ended = new Promise<string>((resolve) => socket.once('close', () => resolve(received)));
    socket.write('GET /first HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventuallyTrue(() => completeResponse(received), 10_000, () => received);
    // The connection is idle on the proxy's side. The next request goes on the wire, and the
    // drain starts before the proxy has read it (same turn of the event loop): the race a busy
    // keep-alive client runs at every drain.
    received = '';
    socket.write('GET /second HTTP/1.1\r\nHost: x\r\n\r\n');
    const drained = h.dataPlane.drain(60_000, { exitOnZeroConnections: true });
    const reply = await ended;
    assert.match(reply, /^HTTP\/1\.1 200 /, `the request sent as the drain began was answered (got ${JSON.stringify(reply.slice(0, 80))})`);
    assert.match(reply, /\r\nconnection: close\r\n/i);
    assert.ok(reply.includes('/second'), 'the backend answered the second request');
    await drained;
    await h.close();
  });

  it('drain keeps accepting and serving new connections for the whole window after the last one closed (no early exit by default)', async () => {
    const h = await startHarness();
    const port = await freePort();
    await h.apply(oneRoute(1, port, 'a'));
    assert.equal((await send(port, { host: 'x' })).status, 200);
    let ended = false;
    const drained = h.dataPlane.drain(600_000).then(() => {
      ended = true;
    });
    assert.equal(h.dataPlane.state.ready, false);
    // No connection is left; new ones keep coming (a load balancer still sends them) and are served.
    for (let i = 0; i < 3; i++) {
      const r = await send(port, { host: 'x', path: `/after-last/${i}` });
      assert.equal(r.status, 200);
      assert.equal(r.headers.connection, 'close');
      assert.equal(ended, false, 'the drain ended before its window');
    }
    await h.close(); // close() ends a drain in progress
    await drained;
  });
});

async function eventuallyTrue(check: () => boolean, timeoutMs = 10_000, state: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for a condition (state: ${JSON.stringify(state().slice(0, 300))})`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A whole HTTP/1.1 response with a Content-Length body is in `text`. */
function completeResponse(text: string): boolean {
  const end = text.indexOf('\r\n\r\n');
  const length = /\r\ncontent-length: (\d+)\r\n/i.exec(text);
  return end >= 0 && length !== null && text.length - (end + 4) >= Number(length[1]);
}

// The operator's Event recorder against a local HTTP server playing the apiserver: writes are
// bounded (a burst of Events never takes every connection), a backlog past its bound is
// dropped and reported, and a repeat within the window updates the first Event's count.

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeConnection } from '../../../kube/connection.js';
import { EventRecorder } from '../../../operator/controller/events.js';

describe('operator: event recorder', () => {
  let server: Server;
  let conn: KubeConnection;
  let held: Array<() => void> = [];
  let hold = false;
  let inFlight = 0;
  let maxInFlight = 0;
  const requests: Array<{ method: string; url: string; body: any }> = [];

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        requests.push({ method: req.method!, url: req.url!, body: JSON.parse(body) });
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        const answer = () => {
          inFlight--;
          res.writeHead(201, { 'content-type': 'application/json' }).end(body);
        };
        if (hold) held.push(answer);
        else answer();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    conn = { server: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`) };
  });
  after(() => server.close());
  beforeEach(() => {
    requests.length = 0;
    held = [];
    maxInFlight = 0;
  });

  const subject = (i: number) => ({ apiVersion: 'portway.dev/v1alpha1', kind: 'GatewayDeployment', metadata: { name: `gw-${i}`, namespace: 'ns', uid: `uid-${i}` } });
  const until = async (what: string, check: () => boolean) => {
    for (let i = 0; !check(); i++) {
      if (i > 500) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  it('writes a burst of Events a few at a time, and drops what exceeds the backlog', async () => {
    const dropped: string[] = [];
    const recorder = new EventRecorder({ connection: conn, component: 'portway-operator', maxInFlight: 2, maxPending: 5, onError: (err, ev) => dropped.push(`${ev.message}: ${err.message}`) });
    hold = true;
    const writes = Array.from({ length: 8 }, (_, i) => recorder.record(subject(i), 'Normal', 'Created', `created Deployment ns/gw-${i}`));
    await until('two writes to reach the server', () => requests.length === 2);
    // 2 in flight, 3 waiting, 3 dropped.
    assert.equal(dropped.length, 3);
    assert.match(dropped[0]!, /^created Deployment ns\/gw-5: 5 events waiting to be written: dropped$/);
    while (requests.length < 5 || held.length > 0) {
      await until('a held write', () => held.length > 0);
      held.shift()!();
      await new Promise((r) => setTimeout(r, 20));
    }
    hold = false;
    await Promise.all(writes);
    assert.equal(maxInFlight, 2, 'never more than maxInFlight writes at once');
    assert.deepEqual(requests.map((r) => r.body.involvedObject.name), ['gw-0', 'gw-1', 'gw-2', 'gw-3', 'gw-4']);
    for (const r of requests) assert.equal(r.method, 'POST');
  });

  it('counts a repeat within the window on the first Event instead of creating another', async () => {
    hold = false;
    const recorder = new EventRecorder({ connection: conn, component: 'portway-operator' });
    await recorder.record(subject(1), 'Warning', 'ApplyFailed', 'Service ns/gw-1: range is full');
    await recorder.record(subject(1), 'Warning', 'ApplyFailed', 'Service ns/gw-1: range is full');
    assert.deepEqual(requests.map((r) => r.method), ['POST', 'PATCH']);
    assert.equal(requests[1]!.url, `/api/v1/namespaces/ns/events/${requests[0]!.body.metadata.name}`);
    assert.equal(requests[1]!.body.count, 2);
  });
});

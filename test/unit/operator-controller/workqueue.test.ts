import assert from 'node:assert/strict';
import { WorkQueue } from '../../../operator/controller/workqueue.js';
import { setCondition } from '../../../operator/controller/conditions.js';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('operator: work queue', () => {
  it('deduplicates keys waiting in the queue', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    assert.equal(q.length, 2);
    const seen: string[] = [];
    const run = q.run(async (k) => {
      seen.push(k);
      if (seen.length === 2) q.shutDown();
    }, 1);
    await run;
    assert.deepEqual(seen, ['a', 'b']);
  });

  it('never runs one key twice at once, and reruns a key added while it was processed', async () => {
    const q = new WorkQueue();
    const gate = deferred();
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    const run = q.run(async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      runs++;
      if (runs === 1) {
        q.add('k'); // arrives while processing
        q.add('k');
        await gate.promise;
      }
      active--;
      if (runs === 2) q.shutDown();
    }, 4);
    q.add('k');
    await new Promise((r) => setTimeout(r, 20));
    gate.resolve();
    await run;
    assert.equal(maxActive, 1);
    assert.equal(runs, 2);
  });

  it('backs off per key exponentially and forgets on success', () => {
    const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 50 });
    assert.equal(q.addRateLimited('x'), 10);
    assert.equal(q.addRateLimited('x'), 20);
    assert.equal(q.addRateLimited('x'), 40);
    assert.equal(q.addRateLimited('x'), 50);
    assert.equal(q.addRateLimited('y'), 10);
    q.forget('x');
    assert.equal(q.failureCount('x'), 0);
    assert.equal(q.addRateLimited('x'), 10);
    q.shutDown();
  });

  it('bounds the rate of retries with a token bucket, and never holds a fresh key behind it', async () => {
    let clock = 0;
    const q = new WorkQueue({ baseDelayMs: 10, qps: 1, burst: 2, now: () => clock });
    // Three keys fail at once: the burst of 2 retries after the backoff, the third waits for a token.
    assert.deepEqual(['a', 'b', 'c'].map((k) => q.addRateLimited(k)), [10, 10, 1000]);
    clock += 1000;
    assert.equal(q.addRateLimited('d'), 1000, 'the bucket refilled one token, which c already holds');
    const seen: string[] = [];
    const run = q.run(async (k) => {
      seen.push(k);
    }, 1);
    q.add('fresh');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen, ['fresh', 'a', 'b'], 'the fresh key ran at once, the first two retries after their backoff');
    q.shutDown();
    await run;
  });

  it('takes changed GatewayDeployments before owned-object changes and the resync, and moves a key up', async () => {
    const q = new WorkQueue();
    for (let i = 0; i < 3; i++) q.add(`resync-${i}`, 'low');
    q.add('status-0');
    q.add('spec', 'high');
    q.add('resync-2', 'high'); // changed while waiting for the resync: moves to the front lane
    q.add('status-0', 'low'); // already waiting with a higher priority: stays
    assert.equal(q.length, 5);
    const seen: string[] = [];
    const run = q.run(async (k) => {
      seen.push(k);
      if (k === 'status-0') q.add('late', 'high'); // arrives while the backlog waits
      if (seen.length === 6) q.shutDown();
    }, 1);
    await run;
    assert.deepEqual(seen, ['spec', 'resync-2', 'status-0', 'late', 'resync-0', 'resync-1']);
  });

  it('requeues a key added while it was processed in the highest lane it was added with', async () => {
    const q = new WorkQueue();
    const seen: string[] = [];
    const run = q.run(async (k) => {
      seen.push(k);
      if (seen.length === 1) {
        q.add('b', 'low');
        q.add('a', 'low');
        q.add('a', 'high');
      }
      if (seen.length === 3) q.shutDown();
    }, 1);
    q.add('a');
    await run;
    assert.deepEqual(seen, ['a', 'a', 'b']);
  });
});

describe('operator: status conditions', () => {
  it('moves lastTransitionTime only when the status flips', () => {
    const t1 = new Date('2024-01-01T00:00:00Z');
    const t2 = new Date('2024-01-02T00:00:00Z');
    const t3 = new Date('2024-01-03T00:00:00Z');
    let c = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'Pending', message: '0/1', observedGeneration: 1 }, t1);
    c = setCondition(c, { type: 'Ready', status: 'False', reason: 'Pending', message: '0/2', observedGeneration: 2 }, t2);
    assert.equal(c[0]!.lastTransitionTime, t1.toISOString());
    assert.equal(c[0]!.message, '0/2');
    assert.equal(c[0]!.observedGeneration, 2);
    c = setCondition(c, { type: 'Ready', status: 'True', reason: 'Available', message: '2/2', observedGeneration: 2 }, t3);
    assert.equal(c[0]!.lastTransitionTime, t3.toISOString());
    assert.equal(c.length, 1);
  });
});

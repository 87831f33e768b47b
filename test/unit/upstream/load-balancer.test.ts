import assert from 'node:assert/strict';
import type { LoadBalancerPolicy } from '../../../dataplane/snapshot/types.js';
import {
  cookieValue,
  createLoadBalancer,
  hash32,
  hashCookieHeader,
  hashKeyOf,
  Maglev,
  MAGLEV_TABLE_SIZE,
  RingHash,
  seededRandom,
  type LbHost,
} from '../../../dataplane/upstream/load-balancer.js';

function hosts(n: number, weights: number[] = []): LbHost[] {
  return Array.from({ length: n }, (_, i) => ({ key: `10.0.0.${i + 1}:8080`, weight: weights[i] ?? 1, active: 0, available: true }));
}

function countPicks(policy: LoadBalancerPolicy, hs: LbHost[], picks: number, seed = 1): Map<string, number> {
  const lb = createLoadBalancer(policy, hs, seededRandom(seed));
  const counts = new Map<string, number>(hs.map((h) => [h.key, 0]));
  for (let i = 0; i < picks; i++) {
    const h = lb.pick(undefined, undefined)!;
    counts.set(h.key, counts.get(h.key)! + 1);
  }
  return counts;
}

const ring = (minimumRingSize = 1024): LoadBalancerPolicy => ({ kind: 'CONSISTENT_HASH', hashOn: { kind: 'header', name: 'x-user' }, algorithm: 'ringHash', minimumRingSize });
const maglev: LoadBalancerPolicy = { kind: 'CONSISTENT_HASH', hashOn: { kind: 'header', name: 'x-user' }, algorithm: 'maglev', minimumRingSize: 1024 };

describe('upstream load balancer', () => {
  describe('ROUND_ROBIN', () => {
    it('rotates through equal-weight hosts in order', () => {
      const hs = hosts(3);
      const lb = createLoadBalancer({ kind: 'ROUND_ROBIN' }, hs);
      const seq = Array.from({ length: 6 }, () => lb.pick(undefined, undefined)!.key);
      assert.deepEqual(seq, [hs[0]!.key, hs[1]!.key, hs[2]!.key, hs[0]!.key, hs[1]!.key, hs[2]!.key]);
    });

    it('gives weighted hosts exactly their share per cycle, interleaved (smooth)', () => {
      const hs = hosts(3, [5, 1, 1]);
      const lb = createLoadBalancer({ kind: 'ROUND_ROBIN' }, hs);
      const seq = Array.from({ length: 7 }, () => lb.pick(undefined, undefined)!.key);
      assert.equal(seq.filter((k) => k === hs[0]!.key).length, 5);
      assert.equal(seq.filter((k) => k === hs[1]!.key).length, 1);
      assert.equal(seq.filter((k) => k === hs[2]!.key).length, 1);
      // Smooth: within one cycle the heavy host never runs more than twice (a naive WRR runs 5).
      let run = 0;
      let maxRun = 0;
      for (const k of seq) {
        run = k === hs[0]!.key ? run + 1 : 0;
        maxRun = Math.max(maxRun, run);
      }
      assert.equal(maxRun, 2, seq.join(' '));
    });

    it('skips unavailable hosts and avoids excluded ones while others are available', () => {
      const hs = hosts(3);
      hs[1]!.available = false;
      const lb = createLoadBalancer({ kind: 'ROUND_ROBIN' }, hs);
      const picked = new Set(Array.from({ length: 10 }, () => lb.pick(undefined, undefined)!.key));
      assert.deepEqual([...picked].sort(), [hs[0]!.key, hs[2]!.key].sort());
      const exclude = new Set([hs[0]!.key]);
      for (let i = 0; i < 5; i++) assert.equal(lb.pick(undefined, exclude)!.key, hs[2]!.key);
      // Every available host excluded: reuse one rather than fail (Envoy's previous_hosts gives up).
      const all = new Set([hs[0]!.key, hs[2]!.key]);
      assert.ok(all.has(lb.pick(undefined, all)!.key));
      hs[0]!.available = hs[2]!.available = false;
      assert.equal(lb.pick(undefined, undefined), undefined);
    });

    it('treats PASSTHROUGH as round robin', () => {
      const counts = countPicks({ kind: 'PASSTHROUGH' }, hosts(4), 400);
      for (const n of counts.values()) assert.equal(n, 100);
    });
  });

  describe('RANDOM', () => {
    it('spreads picks by weight within tolerance', () => {
      const hs = hosts(3, [1, 2, 7]);
      const counts = countPicks({ kind: 'RANDOM' }, hs, 100_000, 42);
      const expected = [0.1, 0.2, 0.7];
      hs.forEach((h, i) => assert.ok(Math.abs(counts.get(h.key)! / 100_000 - expected[i]!) < 0.01, `${h.key}: ${counts.get(h.key)}`));
    });

    it('is deterministic with a seeded random source', () => {
      assert.deepEqual(countPicks({ kind: 'RANDOM' }, hosts(5), 1000, 7), countPicks({ kind: 'RANDOM' }, hosts(5), 1000, 7));
    });

    it('still finds the one available host among many unavailable', () => {
      const hs = hosts(50);
      for (const h of hs) h.available = false;
      hs[37]!.available = true;
      const lb = createLoadBalancer({ kind: 'RANDOM' }, hs, seededRandom(3));
      for (let i = 0; i < 20; i++) assert.equal(lb.pick(undefined, undefined), hs[37]);
    });
  });

  describe('LEAST_REQUEST', () => {
    it('spreads evenly when nothing is in flight', () => {
      const counts = countPicks({ kind: 'LEAST_REQUEST' }, hosts(4), 40_000, 11);
      for (const n of counts.values()) assert.ok(Math.abs(n - 10_000) < 600, String(n));
    });

    it('prefers hosts with fewer active requests (power of two choices)', () => {
      const hs = hosts(4);
      hs[0]!.active = 50;
      const counts = countPicks({ kind: 'LEAST_REQUEST' }, hs, 40_000, 5);
      // The busy host wins only when both choices land on it: about 1/16 of picks.
      assert.ok(counts.get(hs[0]!.key)! < 40_000 * 0.1, String(counts.get(hs[0]!.key)));
      for (const h of hs.slice(1)) assert.ok(counts.get(h.key)! > 40_000 * 0.28);
    });

    it('tracks load as it changes: new requests go to the least loaded host', () => {
      const hs = hosts(2);
      const lb = createLoadBalancer({ kind: 'LEAST_REQUEST' }, hs, seededRandom(9));
      for (let i = 0; i < 1000; i++) lb.pick(undefined, undefined)!.active++;
      assert.ok(Math.abs(hs[0]!.active - hs[1]!.active) <= 2, `${hs[0]!.active} vs ${hs[1]!.active}`);
    });

    it('honours weights', () => {
      const hs = hosts(2, [1, 3]);
      const counts = countPicks({ kind: 'LEAST_REQUEST' }, hs, 40_000, 13);
      const share = counts.get(hs[1]!.key)! / 40_000;
      assert.ok(share > 0.7 && share < 0.95, String(share));
    });
  });

  describe('CONSISTENT_HASH', () => {
    for (const [name, policy] of [['ring hash', ring()], ['maglev', maglev]] as const) {
      describe(name, () => {
        it('maps the same key to the same host, and spreads keys', () => {
          const hs = hosts(5);
          const lb = createLoadBalancer(policy, hs, seededRandom(1));
          const counts = new Map<string, number>();
          for (let k = 0; k < 10_000; k++) {
            const h = hash32(`user-${k}`);
            const a = lb.pick(h, undefined)!;
            assert.equal(lb.pick(h, undefined), a);
            counts.set(a.key, (counts.get(a.key) ?? 0) + 1);
          }
          assert.equal(counts.size, 5);
          for (const n of counts.values()) assert.ok(n > 1200 && n < 2800, String(n));
        });

        it('a new balancer over the same hosts maps keys identically', () => {
          const a = createLoadBalancer(policy, hosts(7), seededRandom(1));
          const b = createLoadBalancer(policy, hosts(7), seededRandom(2));
          for (let k = 0; k < 1000; k++) assert.equal(a.pick(hash32(`k${k}`), undefined)!.key, b.pick(hash32(`k${k}`), undefined)!.key);
        });

        it('moves only about 1/N of the keys when one of N hosts goes', () => {
          const before = createLoadBalancer(policy, hosts(10), seededRandom(1));
          const remaining = hosts(10).filter((h) => h.key !== '10.0.0.4:8080');
          const after = createLoadBalancer(policy, remaining, seededRandom(1));
          let moved = 0;
          let movedFromRemaining = 0;
          const keys = 20_000;
          for (let k = 0; k < keys; k++) {
            const h = hash32(`session-${k}`);
            const x = before.pick(h, undefined)!.key;
            const y = after.pick(h, undefined)!.key;
            if (x !== y) {
              moved++;
              if (x !== '10.0.0.4:8080') movedFromRemaining++;
            }
          }
          assert.ok(moved / keys < 0.1 + 0.05, `moved ${moved / keys}`);
          assert.ok(movedFromRemaining / keys < 0.05, `moved from remaining hosts ${movedFromRemaining / keys}`);
          // Ring points depend only on each host's own key and weight: nothing else moves.
          if (name === 'ring hash') assert.equal(movedFromRemaining, 0);
        });

        it('an unavailable host only moves its own keys', () => {
          const hs = hosts(6);
          const lb = createLoadBalancer(policy, hs, seededRandom(1));
          const keys = Array.from({ length: 5000 }, (_, k) => hash32(`k${k}`));
          const before = keys.map((h) => lb.pick(h, undefined)!);
          hs[2]!.available = false;
          keys.forEach((h, i) => {
            const now = lb.pick(h, undefined)!;
            assert.notEqual(now, hs[2]);
            if (before[i] !== hs[2]) assert.equal(now, before[i]);
          });
        });

        it('a retry that excludes the host gets another one', () => {
          const hs = hosts(4);
          const lb = createLoadBalancer(policy, hs, seededRandom(1));
          const h = hash32('retry-me');
          const first = lb.pick(h, undefined)!;
          const second = lb.pick(h, new Set([first.key]))!;
          assert.notEqual(second, first);
        });

        it('honours weights', () => {
          const hs = hosts(2, [1, 3]);
          const lb = createLoadBalancer(policy, hs, seededRandom(1));
          let heavy = 0;
          for (let k = 0; k < 20_000; k++) if (lb.pick(hash32(`w${k}`), undefined) === hs[1]) heavy++;
          assert.ok(Math.abs(heavy / 20_000 - 0.75) < 0.07, String(heavy / 20_000));
        });

        it('without a key, picks a host at random', () => {
          const counts = countPicks(policy, hosts(3), 3000, 17);
          for (const n of counts.values()) assert.ok(n > 800, String(n));
        });
      });
    }

    it('ring hash has at least minimumRingSize points', () => {
      assert.ok(new RingHash(hosts(3), Math.random, 1024).size >= 1024);
      assert.ok(new RingHash(hosts(3), Math.random, 4096).size >= 4096);
    });

    it('maglev fills its whole 65537-entry table', () => {
      const m = new Maglev(hosts(3), Math.random, MAGLEV_TABLE_SIZE) as unknown as { slots: Int32Array };
      assert.equal(m.slots.length, 65537);
      assert.ok(m.slots.every((s) => s >= 0 && s < 3));
    });
  });

  describe('hash keys', () => {
    const req = {
      headers: { 'x-user': 'alice', cookie: 'a=1; session="abc"; b=2', multi: ['x', 'y'] } as Record<string, string | string[] | undefined>,
      sourceIp: '192.0.2.7',
      query: new URLSearchParams('user=bob&x=1'),
    };

    it('reads headers, cookies, the source IP and query parameters', () => {
      assert.equal(hashKeyOf({ kind: 'header', name: 'x-user' }, req), 'alice');
      assert.equal(hashKeyOf({ kind: 'header', name: 'multi' }, req), 'x,y');
      assert.equal(hashKeyOf({ kind: 'header', name: 'absent' }, req), undefined);
      assert.equal(hashKeyOf({ kind: 'cookie', name: 'session' }, req), 'abc');
      assert.equal(hashKeyOf({ kind: 'cookie', name: 'nope' }, req), undefined);
      assert.equal(hashKeyOf({ kind: 'sourceIp' }, req), '192.0.2.7');
      assert.equal(hashKeyOf({ kind: 'queryParameter', name: 'user' }, req), 'bob');
      assert.equal(hashKeyOf({ kind: 'queryParameter', name: 'nope' }, req), undefined);
    });

    it('parses cookies across several Cookie headers without matching name prefixes', () => {
      assert.equal(cookieValue(['x=1', 'sid=2; other=3'], 'sid'), '2');
      assert.equal(cookieValue('xsid=1; sid=2', 'sid'), '2');
      assert.equal(cookieValue('sid=', 'sid'), '');
    });

    it('builds the Set-Cookie for a generated cookie', () => {
      assert.equal(hashCookieHeader('sticky', 'ab12', 60_000, '/app'), 'sticky=ab12; Path=/app; Max-Age=60; HttpOnly');
      assert.equal(hashCookieHeader('sticky', 'ab12', 0, undefined), 'sticky=ab12; HttpOnly');
    });
  });
});

import assert from 'node:assert/strict';
import { OutlierDetector, outlierCode, type OutlierHost } from '../../../dataplane/upstream/outlier-detection.js';
import { outlier } from './cluster-fixture.js';

class FakeClock {
  t = 1_000_000;
  now = () => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

function setup(policy = outlier({ consecutive5xxErrors: 3, maxEjectionPercent: 100, baseEjectionTime: 30_000, interval: 10_000 }), n = 3) {
  const clock = new FakeClock();
  const events: string[] = [];
  const d = new OutlierDetector(policy, clock.now, {
    onEject: (h) => events.push(`eject ${h.key}`),
    onUneject: (h) => events.push(`uneject ${h.key}`),
  });
  const hosts = Array.from({ length: n }, (_, i) => d.add(`h${i}`));
  return { clock, d, hosts, events };
}

function fail(d: OutlierDetector, h: OutlierHost, times: number, code = 500): void {
  for (let i = 0; i < times; i++) d.record(h, code);
}

describe('upstream outlier detection', () => {
  it('ejects after consecutive5xxErrors 5xx responses, and a success in between resets the count', () => {
    const { d, hosts, events } = setup();
    fail(d, hosts[0]!, 2);
    d.record(hosts[0]!, 200);
    fail(d, hosts[0]!, 2);
    assert.equal(hosts[0]!.ejected, false);
    fail(d, hosts[0]!, 1);
    assert.equal(hosts[0]!.ejected, true);
    assert.equal(d.ejectedCount, 1);
    assert.deepEqual(events, ['eject h0']);
  });

  it('counts 500 for consecutive5xxErrors but only 502/503/504 for consecutiveGatewayErrors', () => {
    const { d, hosts } = setup(outlier({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 2, maxEjectionPercent: 100 }));
    fail(d, hosts[0]!, 5, 500);
    assert.equal(hosts[0]!.ejected, false);
    d.record(hosts[0]!, 502);
    d.record(hosts[0]!, 500); // a non-gateway 5xx breaks the gateway run
    d.record(hosts[0]!, 503);
    assert.equal(hosts[0]!.ejected, false);
    d.record(hosts[0]!, 504);
    assert.equal(hosts[0]!.ejected, true);
  });

  it('maps local errors like Envoy: connect failure and reset are 503, timeout 504, "other" is ignored', () => {
    assert.equal(outlierCode({ error: 'connect-failure' }), 503);
    assert.equal(outlierCode({ error: 'reset' }), 503);
    assert.equal(outlierCode({ error: 'timeout' }), 504);
    assert.equal(outlierCode({ error: 'other' }), undefined);
    assert.equal(outlierCode({ status: 404 }), 404);
    assert.equal(outlierCode({}), 200);
  });

  it('returns the host on the first sweep after baseEjectionTime, not before', () => {
    const { d, hosts, clock, events } = setup();
    fail(d, hosts[1]!, 3);
    clock.advance(29_999);
    assert.equal(d.sweep(), false);
    assert.equal(hosts[1]!.ejected, true);
    clock.advance(1);
    assert.equal(d.sweep(), true);
    assert.equal(hosts[1]!.ejected, false);
    assert.equal(d.ejectedCount, 0);
    assert.deepEqual(events, ['eject h1', 'uneject h1']);
  });

  it('ejects for baseEjectionTime × times ejected in a row', () => {
    const { d, hosts, clock } = setup();
    fail(d, hosts[0]!, 3);
    clock.advance(30_000);
    d.sweep();
    assert.equal(hosts[0]!.ejected, false);
    fail(d, hosts[0]!, 3);
    assert.equal(hosts[0]!.ejected, true);
    assert.equal(d.ejectionTime(hosts[0]!), 60_000);
    clock.advance(59_999);
    d.sweep();
    assert.equal(hosts[0]!.ejected, true);
    clock.advance(1);
    d.sweep();
    assert.equal(hosts[0]!.ejected, false);
    assert.equal(hosts[0]!.timesEjected, 2);
  });

  it('lowers the multiplier again while the host stays healthy', () => {
    const { d, hosts, clock } = setup();
    fail(d, hosts[0]!, 3);
    clock.advance(30_000);
    d.sweep();
    fail(d, hosts[0]!, 3);
    clock.advance(60_000);
    d.sweep();
    assert.equal(hosts[0]!.backoff, 2);
    for (let i = 0; i < 3; i++) {
      clock.advance(10_000);
      d.sweep();
    }
    assert.equal(hosts[0]!.backoff, 0);
    fail(d, hosts[0]!, 3);
    assert.equal(d.ejectionTime(hosts[0]!), 30_000);
  });

  it('never ejects past maxEjectionPercent, Envoy-style: (ejected + 1) / total must fit', () => {
    // 10% of 3 hosts: even one ejection is 33% > 10%.
    const small = setup(outlier({ consecutive5xxErrors: 1, maxEjectionPercent: 10 }));
    fail(small.d, small.hosts[0]!, 1);
    assert.equal(small.hosts[0]!.ejected, false);

    // 50% of 4 hosts: two may go, not three.
    const four = setup(outlier({ consecutive5xxErrors: 1, maxEjectionPercent: 50 }), 4);
    for (const h of four.hosts) fail(four.d, h, 1);
    assert.equal(four.d.ejectedCount, 2);
    assert.deepEqual(four.hosts.map((h) => h.ejected), [true, true, false, false]);
  });

  it('panics below minHealthPercent so every host is used', () => {
    const { d, hosts } = setup(outlier({ consecutive5xxErrors: 1, maxEjectionPercent: 100, minHealthPercent: 50 }), 4);
    fail(d, hosts[0]!, 1);
    fail(d, hosts[1]!, 1);
    assert.equal(d.inPanic(), false); // 50% healthy is not below 50%
    fail(d, hosts[2]!, 1);
    assert.equal(d.inPanic(), true);
  });

  it('with minHealthPercent 0, every host may be ejected without panic', () => {
    const { d, hosts } = setup(outlier({ consecutive5xxErrors: 1, maxEjectionPercent: 100 }), 2);
    fail(d, hosts[0]!, 1);
    fail(d, hosts[1]!, 1);
    assert.equal(d.ejectedCount, 2);
    assert.equal(d.inPanic(), false);
  });

  it('does nothing without a policy, and dropping the policy returns ejected hosts', () => {
    const { d, hosts } = setup();
    fail(d, hosts[0]!, 3);
    assert.equal(hosts[0]!.ejected, true);
    d.setPolicy(undefined);
    assert.equal(hosts[0]!.ejected, false);
    fail(d, hosts[0]!, 10);
    assert.equal(hosts[0]!.ejected, false);
  });

  it('removing an ejected host frees its share of maxEjectionPercent', () => {
    const { d, hosts } = setup(outlier({ consecutive5xxErrors: 1, maxEjectionPercent: 34 }), 3);
    fail(d, hosts[0]!, 1);
    fail(d, hosts[1]!, 1);
    assert.equal(hosts[1]!.ejected, false);
    d.remove(hosts[0]!);
    // 1 of the remaining 2 is 50% > 34%: still not; raise the limit through a new policy.
    d.setPolicy(outlier({ consecutive5xxErrors: 1, maxEjectionPercent: 50 }));
    fail(d, hosts[1]!, 1);
    assert.equal(hosts[1]!.ejected, true);
    assert.equal(d.ejectedCount, 1);
  });
});

// Table tests for the translator's small pure pieces: host matching, durations, string matchers.

import assert from 'node:assert/strict';
import { hostCovers, hostWithoutPort, intersectHosts, parseServerHost, resolveShortName } from '../../../dataplane/translate/hosts.js';
import { parseDuration } from '../../../dataplane/translate/durations.js';
import { compileStringMatch, stringMatches } from '../../../dataplane/translate/string-matchers.js';
import { isVisibleTo } from '../../../dataplane/translate/export-to.js';
import { parseLabels, parseProxyOptions } from '../../../cli/proxy-command.js';

describe('translate: hosts', () => {
  const covers: Array<[string, string, boolean]> = [
    ['*', 'a.example.com', true],
    ['*.example.com', 'a.example.com', true],
    ['*.example.com', 'a.b.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', '*.a.example.com', true],
    ['*.a.example.com', '*.example.com', false],
    ['a.example.com', 'a.example.com', true],
    ['a.example.com', 'b.example.com', false],
  ];
  for (const [pattern, host, expected] of covers) {
    it(`${pattern} ${expected ? 'covers' : 'does not cover'} ${host}`, () => assert.equal(hostCovers(pattern, host), expected));
  }
  it('intersects to the more specific host', () => {
    assert.equal(intersectHosts('*.example.com', 'a.example.com'), 'a.example.com');
    assert.equal(intersectHosts('a.example.com', '*.example.com'), 'a.example.com');
    assert.equal(intersectHosts('*', '*.x.com'), '*.x.com');
    assert.equal(intersectHosts('a.com', 'b.com'), undefined);
  });
  it('parses server hosts with namespaces', () => {
    assert.deepEqual(parseServerHost('ns1/*', 'gwns'), { namespace: 'ns1', host: '*' });
    assert.deepEqual(parseServerHost('./foo.com', 'gwns'), { namespace: 'gwns', host: 'foo.com' });
    assert.deepEqual(parseServerHost('Foo.COM', 'gwns'), { namespace: '*', host: 'foo.com' });
    assert.ok('error' in parseServerHost('a/b/c', 'x'));
    assert.ok('error' in parseServerHost('foo.*.com', 'x'));
  });
  it('resolves short names in the namespace', () => {
    assert.equal(resolveShortName('reviews', 'bookinfo'), 'reviews.bookinfo.svc.cluster.local');
    assert.equal(resolveShortName('reviews.other', 'bookinfo'), 'reviews.other');
  });
  it('strips ports from authorities', () => {
    assert.equal(hostWithoutPort('a.com:8080'), 'a.com');
    assert.equal(hostWithoutPort('[::1]:80'), '[::1]');
    assert.equal(hostWithoutPort('a.com'), 'a.com');
  });
  it('applies exportTo', () => {
    assert.equal(isVisibleTo(undefined, 'a', 'b'), true);
    assert.equal(isVisibleTo(['.'], 'a', 'b'), false);
    assert.equal(isVisibleTo(['.'], 'a', 'a'), true);
    assert.equal(isVisibleTo(['b', 'c'], 'a', 'b'), true);
  });
});

describe('translate: durations', () => {
  const cases: Array<[unknown, number | 'error']> = [
    ['1s', 1000], ['0.5s', 500], ['100ms', 100], ['1m30s', 90_000], ['1h', 3_600_000], ['2', 'error'], ['soon', 'error'], ['', 'error'],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} → ${expected}`, () => {
      const d = parseDuration(input);
      if (expected === 'error') assert.ok(typeof d === 'object' && 'error' in d);
      else assert.equal(d, expected);
    });
  }
});

describe('translate: string matchers', () => {
  const m = (spec: unknown, ignoreCase = false) => {
    const c = compileStringMatch(spec, ignoreCase);
    assert.ok(c.ok, c.ok ? '' : c.error);
    return c.value;
  };
  it('exact, prefix and ignoreUriCase', () => {
    assert.equal(stringMatches(m({ exact: '/a' }), '/a'), true);
    assert.equal(stringMatches(m({ exact: '/a' }), '/a/'), false);
    assert.equal(stringMatches(m({ prefix: '/api' }), '/api/v1'), true);
    assert.equal(stringMatches(m({ prefix: '/API' }, true), '/api/v1'), true);
    assert.equal(stringMatches(m({ prefix: '/API' }), '/api/v1'), false);
  });
  it('regex matches the whole value (RE2, as Envoy)', () => {
    assert.equal(stringMatches(m({ regex: '/status/[0-9]+' }), '/status/200'), true);
    assert.equal(stringMatches(m({ regex: '/status/[0-9]+' }), '/x/status/200'), false);
    assert.equal(stringMatches(m({ regex: 'a|b' }), 'b'), true);
    assert.equal(stringMatches(m({ regex: 'a|b' }), 'ab'), false);
  });
  it('a pathological regex runs in linear time instead of hanging', () => {
    const evil = m({ regex: '(a+)+$' });
    assert.equal(stringMatches(evil, 'a'.repeat(100_000) + 'b'), false);
  });
  it('rejects what RE2 rejects, and malformed specs', () => {
    for (const bad of [{ regex: '(?=x)' }, { regex: '\\1' }, { regex: '(' }, {}, { exact: 'a', prefix: 'b' }, { exact: 1 }]) {
      assert.equal(compileStringMatch(bad).ok, false, JSON.stringify(bad));
    }
  });
});

describe('cli: proxy options', () => {
  it('parses the command-line contract', () => {
    const o = parseProxyOptions(['--config', 'a.yaml,b', '--labels', 'istio=ingressgateway,app=x', '--port-map', '80=18080,443=18443', '--drain-duration', '2s', '--status-port', '0'], {});
    assert.deepEqual(o.configPaths, ['a.yaml', 'b']);
    assert.equal(o.source, 'files');
    assert.deepEqual(o.labels, { istio: 'ingressgateway', app: 'x' });
    assert.deepEqual([...o.portMap], [[80, 18080], [443, 18443]]);
    assert.equal(o.drainDurationMs, 2000);
    assert.equal(o.namespace, 'default');
    assert.equal(o.statusPort, 0);
  });
  it('takes the namespace from POD_NAMESPACE and defaults to the Kubernetes source', () => {
    const o = parseProxyOptions([], { POD_NAMESPACE: 'istio-system' });
    assert.equal(o.namespace, 'istio-system');
    assert.equal(o.source, 'kubernetes');
  });
  it('reads downward-API label files', () => {
    assert.deepEqual(parseLabels('app="istio-ingressgateway"\nistio="ingressgateway"\n'), { app: 'istio-ingressgateway', istio: 'ingressgateway' });
  });
  it('rejects bad values with the flag named', () => {
    assert.throws(() => parseProxyOptions(['--config', 'x', '--port-map', '80'], {}), /--port-map/);
    assert.throws(() => parseProxyOptions(['--config', 'x', '--drain-duration', 'soon'], {}), /--drain-duration/);
    assert.throws(() => parseProxyOptions(['--bogus'], {}), /bogus/);
  });
});

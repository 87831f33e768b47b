// `portway proxy` flags for the HTTP connection settings Istio takes from mesh and proxy
// config: --num-trusted-proxies (and $PORTWAY_NUM_TRUSTED_PROXIES), --path-normalization,
// --headers-with-underscores.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDownwardApiFile } from '../../../cli/pod-annotations.js';
import { parseProxyOptions, PROXY_USAGE, serveSettings } from '../../../cli/proxy-command.js';

const base = ['--config', '/tmp/none'];

describe('cli: proxy options for forwarded headers, path normalization and underscores', () => {
  it('defaults are Istio’s: the gateway is the edge, BASE normalization, underscores allowed', () => {
    const o = parseProxyOptions(base, {});
    assert.deepEqual(serveSettings(o), { numTrustedProxies: 0, pathNormalization: 'BASE', headersWithUnderscores: 'ALLOW' });
  });
  it('--num-trusted-proxies, else $PORTWAY_NUM_TRUSTED_PROXIES', () => {
    assert.equal(parseProxyOptions(base, { PORTWAY_NUM_TRUSTED_PROXIES: '2' }).numTrustedProxies, 2);
    assert.equal(parseProxyOptions([...base, '--num-trusted-proxies', '1'], { PORTWAY_NUM_TRUSTED_PROXIES: '2' }).numTrustedProxies, 1);
    for (const bad of ['-1', '1.5', 'two', '', '65']) {
      assert.throws(() => parseProxyOptions([...base, '--num-trusted-proxies', bad], {}), /--num-trusted-proxies/, bad);
    }
    assert.throws(() => parseProxyOptions(base, { PORTWAY_NUM_TRUSTED_PROXIES: 'x' }), /--num-trusted-proxies/);
  });
  it('--path-normalization takes Istio’s names (any case)', () => {
    assert.equal(parseProxyOptions([...base, '--path-normalization', 'merge_slashes'], {}).pathNormalization, 'MERGE_SLASHES');
    assert.equal(parseProxyOptions([...base, '--path-normalization', 'NONE'], {}).pathNormalization, 'NONE');
    assert.throws(() => parseProxyOptions([...base, '--path-normalization', 'strict'], {}), /--path-normalization/);
  });
  it('--headers-with-underscores allow|drop|reject', () => {
    assert.equal(parseProxyOptions([...base, '--headers-with-underscores', 'drop'], {}).headersWithUnderscores, 'DROP_HEADER');
    assert.equal(parseProxyOptions([...base, '--headers-with-underscores', 'reject'], {}).headersWithUnderscores, 'REJECT_REQUEST');
    assert.throws(() => parseProxyOptions([...base, '--headers-with-underscores', 'constructor'], {}), /--headers-with-underscores/);
  });
  it('the usage text documents each flag', () => {
    for (const flag of ['--num-trusted-proxies', 'PORTWAY_NUM_TRUSTED_PROXIES', '--path-normalization', '--headers-with-underscores']) assert.ok(PROXY_USAGE.includes(flag), flag);
  });
});

describe('cli: proxy.istio.io/config from the downward-API annotations file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portway-annotations-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('reads gatewayTopology.numTrustedProxies as Istio writes it (JSON or YAML, Go-quoted)', () => {
    const json = file('json', 'kubectl.kubernetes.io/restartedAt="2026-01-01T00:00:00Z"\nproxy.istio.io/config="{\\"gatewayTopology\\" : { \\"numTrustedProxies\\": 2 } }"\n');
    assert.equal(parseProxyOptions([...base, '--annotations-file', json], {}).numTrustedProxies, 2);
    const yaml = file('yaml', 'proxy.istio.io/config="gatewayTopology:\\n  numTrustedProxies: 1\\n"\n');
    assert.equal(parseProxyOptions([...base, '--annotations-file', yaml], {}).numTrustedProxies, 1);
  });
  it('the flag and the variable override the annotation; no annotation: 0', () => {
    const json = file('override', 'proxy.istio.io/config="{\\"gatewayTopology\\": {\\"numTrustedProxies\\": 2}}"\n');
    assert.equal(parseProxyOptions([...base, '--annotations-file', json, '--num-trusted-proxies', '0'], {}).numTrustedProxies, 0);
    assert.equal(parseProxyOptions([...base, '--annotations-file', json], { PORTWAY_NUM_TRUSTED_PROXIES: '3' }).numTrustedProxies, 3);
    assert.equal(parseProxyOptions([...base, '--annotations-file', file('none', 'a="b"\n')], {}).numTrustedProxies, 0);
  });
  it('a bad value is an error naming the annotation', () => {
    const bad = file('bad', 'proxy.istio.io/config="{\\"gatewayTopology\\": {\\"numTrustedProxies\\": -1}}"\n');
    assert.throws(() => parseProxyOptions([...base, '--annotations-file', bad], {}), /proxy\.istio\.io\/config/);
  });
  it('Go escapes in values: \\n, \\t, \\", \\\\, \\x bytes, \\u', () => {
    assert.deepEqual(parseDownwardApiFile('a="x\\ny\\t\\"q\\" \\\\ \\xc3\\xa9 \\u00e9"\nb=plain\n'), { a: 'x\ny\t"q" \\ é é', b: 'plain' });
  });
  it('--exit-on-zero-active-connections, else $EXIT_ON_ZERO_ACTIVE_CONNECTIONS (Istio’s name); off by default', () => {
    assert.equal(parseProxyOptions(base, {}).exitOnZeroActiveConnections, false);
    assert.equal(parseProxyOptions([...base, '--exit-on-zero-active-connections'], {}).exitOnZeroActiveConnections, true);
    assert.equal(parseProxyOptions(base, { EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true' }).exitOnZeroActiveConnections, true);
    assert.equal(parseProxyOptions(base, { EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'false' }).exitOnZeroActiveConnections, false);
    assert.throws(() => parseProxyOptions(base, { EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'yes' }), /EXIT_ON_ZERO_ACTIVE_CONNECTIONS/);
    assert.ok(PROXY_USAGE.includes('--exit-on-zero-active-connections') && PROXY_USAGE.includes('EXIT_ON_ZERO_ACTIVE_CONNECTIONS'));
  });
});

// `portway proxy` flags for the HTTP connection settings Istio takes from mesh and proxy
// config: --num-trusted-proxies (and $PORTWAY_NUM_TRUSTED_PROXIES), --path-normalization,
// --headers-with-underscores.

import assert from 'node:assert/strict';
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

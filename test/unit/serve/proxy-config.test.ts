// `portway proxy-config` tables from a config dump.

import assert from 'node:assert/strict';
import { formatProxyConfig } from '../../../dataplane/admin/proxy-config.js';
import { snapshotToJson } from '../../../dataplane/snapshot/to-json.js';
import { cluster, clusterName, exact, header, httpListener, match, prefix, regex, route, snapshot, virtualHost } from '../../support/snapshot-builder.js';

describe('admin: proxy-config tables', () => {
  const c1 = clusterName('reviews.default.svc.cluster.local', 9080, 'v1');
  const c2 = clusterName('reviews.default.svc.cluster.local', 9080, 'v2');
  const snap = snapshot({
    listeners: [
      httpListener({
        port: 8080,
        virtualHosts: [
          virtualHost(['bookinfo.example.com'], [
            route('default/reviews.0', { matches: [match({ uri: prefix('/api'), headers: [header('x-user', exact('jason'))] }), match({ uri: regex('/r/[0-9]+') })], to: [{ cluster: c1, weight: 75 }, { cluster: c2, weight: 25 }] }),
            route('default/reviews.1', { redirect: { uri: '/new', code: 302 } }),
          ]),
        ],
      }),
    ],
    clusters: [cluster(c1, [{ address: '10.0.0.1', port: 9080, labels: { version: 'v1' } }]), cluster(c2, [])],
    diagnostics: [{ severity: 'error', kind: 'VirtualService', namespace: 'default', name: 'bad', field: 'spec.http[0].match[0].uri.regex', message: 'invalid RE2 regex' }],
  });
  const dump = JSON.parse(JSON.stringify(snapshotToJson(snap)));

  it('listeners', () => {
    const out = formatProxyConfig('listeners', dump);
    assert.match(out, /^NAME\s+ADDRESS\s+PORT\s+GATEWAY PORT\s+PROTOCOL/);
    assert.match(out, /127\.0\.0\.1_8080\s+127\.0\.0\.1\s+8080\s+80\s+HTTP\s+http\.8080\s+\*\s+-\s+istio-system\/gw#0\s+http\.8080 \(1 hosts\)/);
  });
  it('routes show matches, regexes by source and weighted actions', () => {
    const out = formatProxyConfig('routes', dump);
    assert.match(out, /\/api\* header x-user=jason \| ~\/r\/\[0-9\]\+/);
    assert.match(out, /outbound\|9080\|v1\|reviews\.default\.svc\.cluster\.local 75%, outbound\|9080\|v2\|reviews\.default\.svc\.cluster\.local 25%/);
    assert.match(out, /redirect 302 \/new/);
  });
  it('clusters and endpoints', () => {
    const clusters = formatProxyConfig('clusters', dump);
    assert.match(clusters, /outbound\|9080\|v1\|reviews\.default\.svc\.cluster\.local\s+reviews\.default\.svc\.cluster\.local\s+9080\s+v1\s+http1\s+static\s+ROUND_ROBIN\s+-\s+1/);
    const endpoints = formatProxyConfig('endpoints', dump);
    assert.match(endpoints, /10\.0\.0\.1:9080\s+outbound\|9080\|v1\|reviews\.default\.svc\.cluster\.local\s+1\s+-\s+-\s+version=v1/);
  });
  it('diagnostics', () => {
    assert.match(formatProxyConfig('diagnostics', dump), /ERROR\s+VirtualService default\/bad\s+spec\.http\[0\]\.match\[0\]\.uri\.regex\s+invalid RE2 regex/);
  });
});

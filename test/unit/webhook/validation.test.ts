// Admission validation of Istio networking objects (the translator's own code, through
// dataplane/translate/validate.ts) and GatewayDeployments (operator/api/validate.ts):
// invalid objects are rejected with the field named, valid ones — including ones whose
// references (Services, DestinationRules, Gateways, delegates) do not exist yet — pass.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { StoredObject } from '../../../dataplane/config/resources.js';
import { validateObject } from '../../../dataplane/translate/validate.js';
import { reviewValidation, type AdmissionReview } from '../../../operator/webhook/admission.js';
import { validateAdmittedObject } from '../../../operator/webhook/validation.js';
import { repoRoot } from '../../support/repo-root.js';
import { translateYaml } from '../../support/translate-yaml.js';
import { parseAllDocuments } from 'yaml';

const obj = (kind: string, spec: unknown, name = 'x', namespace = 'apps'): StoredObject => ({
  apiVersion: kind === 'GatewayDeployment' ? 'portway.dev/v1alpha1' : 'networking.istio.io/v1',
  kind,
  metadata: { name, namespace },
  spec,
});
const y = (text: string) => parse(text) as unknown;
const errorsOf = (o: StoredObject) => validateAdmittedObject(o).errors.map((e) => `${e.field}: ${e.message}`);

function assertRejected(o: StoredObject, field: string, message: RegExp): void {
  const errors = validateAdmittedObject(o).errors;
  const hit = errors.find((e) => e.field === field);
  assert.ok(hit, `expected an error at ${field}; got ${JSON.stringify(errors)}`);
  assert.match(hit.message, message);
}

describe('admission validation: VirtualService', () => {
  it('rejects a regex that is not RE2, naming spec.http[i].match[j].uri.regex', () => {
    const vs = obj('VirtualService', y(`
      hosts: [app.example.com]
      gateways: [istio-system/gw]
      http:
      - route: [{destination: {host: a}}]
      - route: [{destination: {host: a}}]
      - match: [{uri: {prefix: /ok}}, {uri: {regex: "/(?=lookahead)"}}]
        route: [{destination: {host: a}}]
    `));
    assertRejected(vs, 'spec.http[2].match[1].uri.regex', /invalid RE2 regex/);
  });

  it('rejects bad regexes in headers, query parameters and CORS origins at their own paths', () => {
    const vs = obj('VirtualService', y(`
      hosts: [app.example.com]
      http:
      - match: [{headers: {x-a: {regex: "(a"}}}]
        route: [{destination: {host: a}}]
      - match: [{queryParams: {q: {regex: "[z-a]"}}}]
        route: [{destination: {host: a}}]
      - corsPolicy: {allowOrigins: [{regex: "(("}]}
        route: [{destination: {host: a}}]
    `));
    assertRejected(vs, 'spec.http[0].match[0].headers.x-a.regex', /invalid RE2/);
    assertRejected(vs, 'spec.http[1].match[0].queryParams.q.regex', /invalid RE2/);
    assertRejected(vs, 'spec.http[2].corsPolicy.allowOrigins[0].regex', /invalid RE2/);
  });

  it('rejects a destination without host, a redirect combined with a route, a delegate with its own action', () => {
    const vs = obj('VirtualService', y(`
      hosts: [app.example.com]
      http:
      - route: [{destination: {port: {number: 80}}}]
      - redirect: {uri: /elsewhere}
        route: [{destination: {host: a}}]
      - delegate: {name: child}
        directResponse: {status: 200}
    `));
    assertRejected(vs, 'spec.http[0].route[0].destination.host', /is required/);
    assertRejected(vs, 'spec.http[1].redirect', /cannot be combined with route/);
    assertRejected(vs, 'spec.http[2].directResponse', /cannot be combined with delegate/);
  });

  it('compiles every field although no Gateway binds it: match-level gateways, mesh-only rules, exportTo elsewhere', () => {
    const vs = obj('VirtualService', y(`
      hosts: [app.example.com]
      exportTo: [other-namespace]
      http:
      - match: [{gateways: [mesh], uri: {regex: "(mesh"}}]
        route: [{destination: {host: a}}]
      - match: [{gateways: [elsewhere/gw], uri: {prefix: /}}]
        route: [{destination: {host: a}}]
        timeout: later
    `));
    assertRejected(vs, 'spec.http[0].match[0].uri.regex', /invalid RE2/);
    assertRejected(vs, 'spec.http[1].timeout', /invalid duration/);
  });

  it('compiles tcp rules on the ports they match and tls rules on PASSTHROUGH servers', () => {
    const vs = obj('VirtualService', y(`
      hosts: [db.example.com]
      tcp:
      - match: [{port: 5432}]
        route: [{destination: {host: db}, weight: 0}]
      tls:
      - match: [{port: 8443, sniHosts: [other.example.com]}]
        route: [{destination: {host: db}}]
      - route: [{destination: {host: db}}]
    `));
    assertRejected(vs, 'spec.tcp[0].route', /at least one destination with a positive weight/);
    assertRejected(vs, 'spec.tls[0].match[0].sniHosts', /not one of the VirtualService's hosts/);
    assertRejected(vs, 'spec.tls[1].match', /need a match with sniHosts/);
  });

  it('checks a delegate (no hosts) through a root, reporting at its own rule indices', () => {
    const delegate = obj('VirtualService', y(`
      http:
      - route: [{destination: {host: a}}]
      - delegate: {name: deeper}
      - match: [{uri: {regex: "(bad"}}]
        route: [{destination: {host: a}}]
    `));
    assertRejected(delegate, 'spec.http', /cannot delegate again/);
    assertRejected(delegate, 'spec.http[2].match[0].uri.regex', /invalid RE2/);
  });

  it("checks what a delegating rule passes down (timeout, rewrite) as the root's own fields", () => {
    const root = obj('VirtualService', y(`
      hosts: [app.example.com]
      http:
      - match: [{uri: {prefix: /api}}]
        delegate: {name: api, namespace: team-a}
        timeout: never
    `));
    assertRejected(root, 'spec.http[0].timeout', /invalid duration/);
  });

  it('accepts valid objects whose references do not exist yet, with no warning about them', () => {
    const valid = [
      obj('VirtualService', y(`
        hosts: [app.example.com, reviews]
        gateways: [istio-system/ingressgateway, mesh]
        http:
        - match: [{uri: {regex: "/api/v[0-9]+/.*"}, headers: {x-user: {exact: jason}}}]
          route: [{destination: {host: reviews, subset: v2, port: {number: 9080}}, weight: 80}, {destination: {host: reviews, subset: v1}, weight: 20}]
          mirror: {host: shadow, subset: canary}
          retries: {attempts: 3, perTryTimeout: 2s}
          timeout: 10s
        - delegate: {name: legacy}
        tcp:
        - match: [{port: 31400}]
          route: [{destination: {host: tcp-echo, subset: v1, port: {number: 9000}}}]
      `)),
      obj('VirtualService', y(`
        http:
        - match: [{uri: {prefix: /legacy}}]
          route: [{destination: {host: legacy.apps.svc.cluster.local}}]
      `), 'legacy'),
    ];
    for (const v of valid) {
      const { errors, warnings } = validateAdmittedObject(v);
      assert.deepEqual(errors, [], v.metadata.name);
      assert.deepEqual(warnings, [], v.metadata.name);
    }
  });

  it('rejects what the proxy itself rejects: every error the translator reports for a bound VirtualService', () => {
    // The golden translator input with invalid rules, translated as a proxy would.
    const text = readFileSync(join(repoRoot(), 'test', 'golden', 'translate', 'invalid-config.in.yaml'), 'utf8');
    const runtime = translateYaml(text).diagnostics.filter((d) => d.severity === 'error' && d.kind === 'VirtualService');
    assert.ok(runtime.length >= 4, 'the golden input has VirtualService errors');
    const vs = parseAllDocuments(text).map((d) => (Array.isArray(d) ? undefined : d.toJS())).find((o) => o?.kind === 'VirtualService') as StoredObject;
    const admission = validateObject(vs).filter((d) => d.severity === 'error');
    for (const d of runtime) {
      // "multiport" needs the Service the proxy sees; admission cannot know it and must not guess.
      if (d.field.endsWith('.destination.port') && /has \d+ ports/.test(d.message)) continue;
      assert.ok(admission.some((a) => a.field === d.field && a.message === d.message), `admission misses ${d.field}: ${d.message}`);
    }
  });
});

describe('admission validation: Gateway, DestinationRule, ServiceEntry', () => {
  it('rejects unsupported TLS modes, conflicting TLS versions and file pairs, port protocol conflicts', () => {
    const gw = obj('Gateway', y(`
      selector: {istio: ingressgateway}
      servers:
      - port: {number: 443, name: https, protocol: HTTPS}
        hosts: [a.example.com]
        tls: {mode: ISTIO_MUTUAL}
      - port: {number: 8443, name: https-2, protocol: HTTPS}
        hosts: [a.example.com]
        tls: {mode: SIMPLE, credentialName: a, minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_2}
      - port: {number: 9443, name: https-3, protocol: HTTPS}
        hosts: [a.example.com]
        tls: {mode: AUTO_PASSTHROUGH}
      - port: {number: 10443, name: https-4, protocol: HTTPS}
        hosts: [a.example.com]
        tls: {mode: SIMPLE, serverCertificate: /etc/cert.pem}
      - port: {number: 80, name: http, protocol: HTTP}
        hosts: [a.example.com]
      - port: {number: 80, name: tcp, protocol: TCP}
        hosts: [a.example.com]
      - port: {number: 81, name: bad, protocol: QUIC}
        hosts: [a.example.com]
      - port: {number: 82, name: nohosts, protocol: HTTP}
    `));
    assertRejected(gw, 'spec.servers[0].tls.mode', /ISTIO_MUTUAL is not supported/);
    assertRejected(gw, 'spec.servers[1].tls.maxProtocolVersion', /lower than minProtocolVersion/);
    assertRejected(gw, 'spec.servers[2].tls.mode', /AUTO_PASSTHROUGH is not supported/);
    assertRejected(gw, 'spec.servers[3].tls', /serverCertificate and privateKey go together/);
    assertRejected(gw, 'spec.servers[5].port', /a port carries one protocol/);
    assertRejected(gw, 'spec.servers[6].port.protocol', /unsupported protocol/);
    assertRejected(gw, 'spec.servers[7].hosts', /at least one host/);
  });

  it('rejects a selector value that is not a string (it would select no pod)', () => {
    assertRejected(obj('Gateway', { selector: { version: 1 }, servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] }), 'spec.selector.version', /must be a string/);
  });

  it('accepts a valid Gateway whose credential Secret does not exist yet', () => {
    assert.deepEqual(
      errorsOf(obj('Gateway', y(`
        selector: {istio: ingressgateway}
        servers:
        - port: {number: 443, name: https, protocol: HTTPS}
          hosts: [app/a.example.com, "*.example.org"]
          tls: {mode: MUTUAL, credentialName: a-cert}
        - port: {number: 80, name: http, protocol: HTTP}
          hosts: ["*"]
          tls: {httpsRedirect: true}
      `))),
      [],
    );
  });

  it('rejects DestinationRule problems at the layer that has them (top level, port level, subset)', () => {
    const dr = obj('DestinationRule', y(`
      host: reviews
      trafficPolicy:
        loadBalancer: {simple: FASTEST}
        portLevelSettings:
        - port: {number: 9080}
          tls: {mode: ISTIO_MUTUAL}
        - connectionPool: {tcp: {connectTimeout: soon}}
      subsets:
      - name: v1
        trafficPolicy: {tls: {mode: MUTUAL}}
      - name: v1
      - labels: {version: v3}
    `));
    assertRejected(dr, 'spec.trafficPolicy.loadBalancer.simple', /unknown load balancer/);
    assertRejected(dr, 'spec.trafficPolicy.portLevelSettings[0].tls.mode', /ISTIO_MUTUAL/);
    assertRejected(dr, 'spec.trafficPolicy.portLevelSettings[1].port.number', /port number/);
    assertRejected(dr, 'spec.trafficPolicy.portLevelSettings[1].connectionPool.tcp.connectTimeout', /invalid duration/);
    assertRejected(dr, 'spec.subsets[0].trafficPolicy.tls', /MUTUAL needs credentialName/);
    assertRejected(dr, 'spec.subsets[1].name', /duplicate subset name/);
    assertRejected(dr, 'spec.subsets[2].name', /is required/);
    assertRejected(obj('DestinationRule', { subsets: [] }), 'spec.host', /is required/);
  });

  it('accepts a valid DestinationRule', () => {
    assert.deepEqual(
      errorsOf(obj('DestinationRule', y(`
        host: reviews.apps.svc.cluster.local
        trafficPolicy:
          loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 0s}}}
          connectionPool: {tcp: {maxConnections: 100, connectTimeout: 30ms}, http: {http1MaxPendingRequests: 10}}
          outlierDetection: {consecutive5xxErrors: 7, interval: 5m, baseEjectionTime: 15m}
          tls: {mode: SIMPLE, sni: reviews.example.com}
        subsets:
        - name: v1
          labels: {version: v1}
          trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
      `))),
      [],
    );
  });

  it('rejects ServiceEntry problems, accepts a valid one', () => {
    const se = obj('ServiceEntry', y(`
      hosts: ["*.bad*.example.com"]
      ports: [{number: 0, name: http, protocol: HTTP}]
      resolution: SOMETIMES
    `));
    assertRejected(se, 'spec.resolution', /unknown resolution/);
    assertRejected(obj('ServiceEntry', { hosts: ['ok.example.com', 'a*b.example.com'], ports: [{ number: 70000 }], resolution: 'DNS' }), 'spec.ports[0].number', /port number/);
    assertRejected(obj('ServiceEntry', { hosts: ['ok.example.com', 'a*b.example.com'], resolution: 'DNS' }), 'spec.hosts[1]', /invalid host/);
    assertRejected(obj('ServiceEntry', { ports: [] }), 'spec.hosts', /at least one host/);
    assert.deepEqual(errorsOf(obj('ServiceEntry', { hosts: ['api.example.com'], ports: [{ number: 443, name: 'tls', protocol: 'TLS' }], resolution: 'DNS', location: 'MESH_EXTERNAL' })), []);
  });
});

describe('admission validation: GatewayDeployment and the AdmissionReview', () => {
  it('rejects a GatewayDeployment with what CEL cannot express, and accepts a valid one', () => {
    const bad = obj('GatewayDeployment', { image: 'x', service: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] }, labels: { 'bad key!': 'v' }, drainDuration: 'soon' }, 'gw');
    assert.ok(errorsOf(bad).some((e) => e.startsWith('spec.labels["bad key!"]')), JSON.stringify(errorsOf(bad)));
    assert.ok(errorsOf(bad).some((e) => e.startsWith('spec.drainDuration')));
    assert.deepEqual(errorsOf(obj('GatewayDeployment', { image: 'x', mode: 'egress' }, 'egress')), []);
  });

  it('answers an AdmissionReview: denied with every field message (422), or allowed', () => {
    const request = (object: unknown, operation: 'CREATE' | 'UPDATE' = 'CREATE'): AdmissionReview => ({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: 'u-1', operation, namespace: 'apps', name: 'r', object: object as Record<string, unknown> },
    });
    // The namespace comes from the request when the object leaves it out (kubectl apply -n).
    const bad = { apiVersion: 'networking.istio.io/v1beta1', kind: 'VirtualService', metadata: { name: 'r' }, spec: { hosts: ['a.example.com'], http: [{ match: [{ uri: { regex: '(' } }], route: [{ destination: { host: 'a' } }] }, { route: [{ destination: {} }] }] } };
    const denied = reviewValidation(request(bad, 'UPDATE')).response!;
    assert.equal(denied.uid, 'u-1');
    assert.equal(denied.allowed, false);
    assert.equal(denied.status?.code, 422);
    assert.match(denied.status!.message, /^spec\.http\[0\]\.match\[0\]\.uri\.regex: invalid RE2 regex "\(": .*; spec\.http\[1\]\.route\[0\]\.destination\.host: is required$/);
    const good = { ...bad, spec: { hosts: ['a.example.com'], http: [{ route: [{ destination: { host: 'a' } }] }] } };
    assert.deepEqual(reviewValidation(request(good)).response, { uid: 'u-1', allowed: true });
    // Other kinds (a ConfigMap sent by a too-wide rule) pass untouched.
    assert.deepEqual(reviewValidation(request({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } })).response, { uid: 'u-1', allowed: true });
  });

  it('lets an invalid object that got in earlier be relabelled, have its finalizer removed and be deleted', () => {
    const bad = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'old', namespace: 'apps' }, spec: { hosts: ['a.example.com'], http: [{ match: [{ uri: { regex: '(' } }], route: [{ destination: { host: 'a' } }] }] } };
    const update = (object: Record<string, unknown>) =>
      reviewValidation({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', operation: 'UPDATE', object, oldObject: bad } }).response!;
    assert.equal(update({ ...bad, metadata: { ...bad.metadata, labels: { team: 'a' } } }).allowed, true, 'metadata only');
    assert.equal(update({ ...bad, metadata: { ...bad.metadata, deletionTimestamp: '2030-01-01T00:00:00Z' }, spec: {} }).allowed, true, 'being deleted');
    assert.equal(update({ ...bad, spec: { ...bad.spec, gateways: ['gw'] } }).allowed, false, 'a spec change is checked');
  });

  it('passes warnings through without rejecting', () => {
    const vs = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'w', namespace: 'apps' }, spec: { hosts: ['a.example.com'], http: [{ match: [{ sourceLabels: { app: 'x' } }], route: [{ destination: { host: 'a' } }] }] } };
    const response = reviewValidation({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', operation: 'CREATE', object: vs } }).response!;
    assert.equal(response.allowed, true);
    assert.deepEqual(response.warnings, ['spec.http[0].match[0]: sourceLabels/sourceNamespace apply to sidecars only and are ignored on gateways']);
  });
});

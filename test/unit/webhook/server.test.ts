// The webhook's HTTPS server with real TLS and a real HTTP client: AdmissionReviews in and
// out on /inject and /validate, what it refuses, and a certificate swapped in while it
// serves (new connections get it, an open keep-alive connection keeps working).

import assert from 'node:assert/strict';
import { Agent, request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { caBundle, createCa, issueServing, serviceDnsNames, type KeyPair } from '../../../operator/webhook/certificates.js';
import { injectGatewayPod } from '../../../operator/webhook/injection.js';
import { WebhookServer } from '../../../operator/webhook/server.js';
import type { AdmissionReview } from '../../../operator/webhook/admission.js';

const SERVICE_NAME = 'portway-webhook.portway-system.svc';

interface Reply {
  status: number;
  body: string;
  fingerprint: string;
  reused: boolean;
}

function post(port: number, ca: string, path: string, body: string | Buffer, agent?: Agent, method = 'POST'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method, ca, servername: SERVICE_NAME, agent: agent ?? false, headers: { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        // Read now: a keep-alive agent takes the socket back when the response ends.
        // (getPeerX509Certificate() is undefined on a reused socket in Node 20; this is not.)
        const fingerprint = (res.socket as TLSSocket).getPeerCertificate()?.fingerprint256 ?? '';
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8'), fingerprint, reused: req.reusedSocket }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const review = (object: unknown, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'uid-1', operation: 'CREATE', namespace: 'gateways', object, ...extra } });

/** Applies the webhook's JSON Patch ("add" on object members, which is all it emits). */
function applyPatch(doc: Record<string, any>, ops: Array<{ op: string; path: string; value: unknown }>): Record<string, any> {
  const out = structuredClone(doc);
  for (const op of ops) {
    assert.equal(op.op, 'add');
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    let target = out;
    for (const p of parts.slice(0, -1)) target = target[p];
    target[parts.at(-1)!] = op.value;
  }
  return out;
}

const fingerprint = (pair: KeyPair) => new X509Certificate(pair.cert).fingerprint256;

describe('webhook HTTPS server', function () {
  this.timeout(30_000);
  const dnsNames = serviceDnsNames('portway-webhook', 'portway-system');
  let ca: KeyPair;
  let first: KeyPair;
  let server: WebhookServer;
  let port: number;

  before(async () => {
    ca = await createCa(new Date(), 3600_000);
    first = await issueServing(ca, dnsNames, new Date(), 600_000);
    server = new WebhookServer({ port: 0, host: '127.0.0.1', render: { defaultImage: 'ghcr.io/portway/portway:0.1.0' }, log: () => undefined });
    port = (await server.start(first)).port;
  });

  after(() => server.stop());

  it('is verified by the apiserver the way it verifies it: the CA bundle and the Service name', async () => {
    const reply = await post(port, caBundle({ ca, serving: first }), '/healthz', '', undefined, 'GET');
    assert.equal(reply.status, 200);
    assert.equal(reply.fingerprint, fingerprint(first));
    await assert.rejects(post(port, (await createCa(new Date(), 3600_000)).cert, '/healthz', '', undefined, 'GET'), /self-signed|unable to verify|certificate/i);
  });

  it('/validate denies an invalid VirtualService with the field path, allows a valid one', async () => {
    const vs = (regex: string) => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'v' }, spec: { hosts: ['a.example.com'], http: [{ match: [{ uri: { regex } }], route: [{ destination: { host: 'a' } }] }] } });
    const denied = await post(port, ca.cert, '/validate', review(vs('/api/(v1')));
    assert.equal(denied.status, 200);
    const out = JSON.parse(denied.body) as AdmissionReview;
    assert.equal(out.apiVersion, 'admission.k8s.io/v1');
    assert.equal(out.kind, 'AdmissionReview');
    assert.equal(out.response?.uid, 'uid-1');
    assert.equal(out.response?.allowed, false);
    assert.match(out.response!.status!.message, /^spec\.http\[0\]\.match\[0\]\.uri\.regex: invalid RE2 regex/);
    const allowed = JSON.parse((await post(port, ca.cert, '/validate', review(vs('/api/v[0-9]+')))).body) as AdmissionReview;
    assert.deepEqual(allowed.response, { uid: 'uid-1', allowed: true });
  });

  it('/inject answers a JSON Patch that turns the pod into the injected one; other pods get no patch', async () => {
    const pod: V1Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { generateName: 'gw-', annotations: { 'inject.portway.dev/templates': 'gateway' }, labels: { 'portway.dev/inject': 'true', 'team/role': 'edge' } },
      spec: { containers: [{ name: 'portway-proxy', image: 'auto', imagePullPolicy: 'Always' }] },
    };
    const out = JSON.parse((await post(port, ca.cert, '/inject', review(pod, { kind: { group: '', version: 'v1', kind: 'Pod' } }))).body) as AdmissionReview;
    assert.equal(out.response?.allowed, true);
    assert.equal(out.response?.patchType, 'JSONPatch');
    const ops = JSON.parse(Buffer.from(out.response!.patch!, 'base64').toString('utf8'));
    const expected = injectGatewayPod(pod, 'gateways', { defaultImage: 'ghcr.io/portway/portway:0.1.0' });
    assert.ok(expected.injected);
    assert.deepEqual(applyPatch(pod as Record<string, any>, ops), expected.pod);
    assert.equal(expected.pod.spec!.containers[0]!.image, 'ghcr.io/portway/portway:0.1.0');

    const plain = { ...pod, metadata: { name: 'plain', labels: { 'portway.dev/inject': 'true' } } };
    const untouched = JSON.parse((await post(port, ca.cert, '/inject', review(plain))).body) as AdmissionReview;
    assert.deepEqual(untouched.response, { uid: 'uid-1', allowed: true });

    const unknownTemplate = { ...pod, metadata: { ...pod.metadata, annotations: { 'inject.portway.dev/templates': 'sidecar' } } };
    const denied = JSON.parse((await post(port, ca.cert, '/inject', review(unknownTemplate))).body) as AdmissionReview;
    assert.equal(denied.response?.allowed, false);
    assert.match(denied.response!.status!.message, /unknown injection template "sidecar"/);
  });

  it('refuses what is not an AdmissionReview: 404, 405, 400, 413', async () => {
    assert.equal((await post(port, ca.cert, '/mutate', review({}))).status, 404);
    assert.equal((await post(port, ca.cert, '/validate', '', undefined, 'GET')).status, 405);
    assert.equal((await post(port, ca.cert, '/validate', '{not json')).status, 400);
    assert.equal((await post(port, ca.cert, '/validate', JSON.stringify({ kind: 'AdmissionReview' }))).status, 400);
    assert.equal((await post(port, ca.cert, '/validate', Buffer.alloc(9 * 1024 * 1024, 0x20))).status, 413);
  });

  it('serves a new certificate on new connections at once, while an open connection keeps working', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = await post(port, ca.cert, '/healthz', '', agent, 'GET');
      assert.equal(before.fingerprint, fingerprint(first));
      const second = await issueServing(ca, dnsNames, new Date(), 600_000);
      server.setCertificate(second);
      const fresh = await post(port, ca.cert, '/healthz', '', undefined, 'GET');
      assert.equal(fresh.fingerprint, fingerprint(second), 'a new connection gets the new certificate');
      const reused = await post(port, ca.cert, '/healthz', '', agent, 'GET');
      assert.equal(reused.status, 200);
      assert.equal(reused.reused, true, 'the keep-alive connection was reused');
      assert.equal(reused.fingerprint, fingerprint(first), 'the open connection keeps the certificate it started with');
    } finally {
      agent.destroy();
    }
  });
});

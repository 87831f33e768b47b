// Admission webhooks reach local processes: a MutatingWebhookConfiguration points at a
// Service whose only endpoint is a pod IP (127.x) where the test serves HTTPS. The apiserver
// (--enable-aggregator-routing=true) calls that endpoint when a pod is created.

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { AdmissionregistrationV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { useNamespace } from '../support/cluster.js';
import { pauseServiceYaml } from '../support/pause-workload.js';
import { serverCert } from '../../support/certs.js';
import { eventually } from '../support/wait.js';

interface AdmissionReview {
  apiVersion: string;
  kind: string;
  request: { uid: string; name?: string; namespace?: string; operation: string; dryRun?: boolean; object: V1Pod };
}

const backing = pauseServiceYaml('webhook', 1, { name: 'https', containerPort: 8443, servicePort: 443 });

const pod = (name: string, labels: Record<string, string>) => ({
  metadata: { name, labels },
  spec: { containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
});

describe('e2e cluster: mutating admission webhook served by a local process', function () {
  const env = useNamespace('webhook');
  let server: Server | undefined;
  let configName: string | undefined;
  const reviews: AdmissionReview['request'][] = [];

  after(async function () {
    this.timeout(30_000);
    if (configName) await env.cluster.kc.makeApiClient(AdmissionregistrationV1Api).deleteMutatingWebhookConfiguration({ name: configName });
    server?.close();
  });

  it('the apiserver calls the webhook at the Service endpoint; the created pod carries its label', async function () {
    this.timeout(180_000);
    const namespace = env.namespace;
    const k = (args: string[], input?: string) => env.cluster.kubectl([...args, '-n', namespace], { input });
    await k(['apply', '-f', '-'], backing);
    await k(['rollout', 'status', 'deployment/webhook', '--timeout=120s']);
    const endpoint = await eventually(
      async () => {
        const list = JSON.parse(await k(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=webhook', '-o', 'json'])) as {
          items: { endpoints: { addresses: string[]; conditions: { ready?: boolean } }[] | null; ports: { port: number }[] | null }[];
        };
        const e = list.items[0]?.endpoints?.find((x) => x.conditions.ready);
        return e && list.items[0].ports?.[0] && { ip: e.addresses[0], port: list.items[0].ports[0].port };
      },
      { what: 'a ready endpoint for service webhook' },
    );
    assert.match(endpoint.ip, /^127\./);
    assert.equal(endpoint.port, 8443);

    // The apiserver verifies the serving certificate for <service>.<namespace>.svc.
    const tls = serverCert({ dnsNames: [`webhook.${namespace}.svc`] });
    server = createServer({ key: tls.key, cert: tls.chain }, (req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d));
      req.on('end', () => {
        const review = JSON.parse(body) as AdmissionReview;
        reviews.push(review.request);
        const patch = [{ op: 'add', path: '/metadata/labels/mutated-by', value: 'portway-e2e-webhook' }];
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            apiVersion: 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            response: { uid: review.request.uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') },
          }),
        );
      });
    });
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(endpoint.port, endpoint.ip, resolve);
    });

    configName = `portway-e2e-${namespace}`;
    await env.cluster.kc.makeApiClient(AdmissionregistrationV1Api).createMutatingWebhookConfiguration({
      body: {
        metadata: { name: configName },
        webhooks: [
          {
            name: `label-pods.${namespace}.e2e.portway.dev`,
            clientConfig: {
              service: { namespace, name: 'webhook', path: '/mutate', port: 443 },
              caBundle: Buffer.from(tls.issuer.root).toString('base64'),
            },
            rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
            objectSelector: { matchLabels: { mutate: 'yes' } },
            sideEffects: 'None',
            admissionReviewVersions: ['v1'],
            failurePolicy: 'Fail',
            timeoutSeconds: 10,
          },
        ],
      },
    });

    // The apiserver loads webhook configurations asynchronously: probe with server-side
    // dry runs (webhooks with sideEffects None are called for them) until it is active.
    const core = env.cluster.kc.makeApiClient(CoreV1Api);
    await eventually(
      async () => {
        const p = await core.createNamespacedPod({ namespace, body: pod('probe', { mutate: 'yes' }), dryRun: 'All' });
        return p.metadata?.labels?.['mutated-by'] === 'portway-e2e-webhook';
      },
      { timeoutMs: 60_000, what: 'the webhook configuration to become active' },
    );
    assert.ok(reviews.some((r) => r.name === 'probe' && r.dryRun === true), 'the dry-run probe reached the webhook');

    const created = await core.createNamespacedPod({ namespace, body: pod('target', { mutate: 'yes', app: 'target' }) });
    assert.equal(created.metadata?.labels?.['mutated-by'], 'portway-e2e-webhook');
    assert.equal(created.metadata?.labels?.app, 'target', 'the original labels are kept');
    const stored = await core.readNamespacedPod({ name: 'target', namespace });
    assert.equal(stored.metadata?.labels?.['mutated-by'], 'portway-e2e-webhook', 'the mutation was persisted');
    const call = reviews.find((r) => r.name === 'target' && !r.dryRun);
    assert.ok(call, 'the webhook received the AdmissionReview for pod target');
    assert.equal(call.operation, 'CREATE');
    assert.equal(call.namespace, namespace);
    assert.equal(call.object.metadata?.labels?.mutate, 'yes');

    // The objectSelector limits the webhook to labelled pods.
    const plain = await core.createNamespacedPod({ namespace, body: pod('untouched', { app: 'plain' }) });
    assert.equal(plain.metadata?.labels?.['mutated-by'], undefined);
    assert.ok(!reviews.some((r) => r.name === 'untouched'));
  });
});

// A proxy whose Role grants Secrets but not ConfigMaps (RBAC written for Istio's gateway, or
// rendered by an older operator) still becomes ready and serves: ConfigMaps are optional to
// it. The 403 is logged once, naming what is lost, and once the Role grants ConfigMaps a
// caCertCredentialName ConfigMap is used without a restart.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { clientCert, newCa, serverCert, testCa } from '../../support/certs.js';
import { printLogsIfFailed, type ProxyProcess } from '../../support/proxy-process.js';
import { useNamespace } from '../support/cluster.js';
import { applyObjects, applyRenderedGateway, ingressGateway, installIstioCrds, startGatewayProxies } from '../support/istio-gateway.js';
import { eventually } from '../support/wait.js';

/** The rendered Service maps Gateway port 443 to the pod's 8443. */
const HTTPS_PORT = 8443;

describe('e2e: a proxy without RBAC for ConfigMaps', function () {
  this.timeout(240_000);
  const env = useNamespace('proxy-rbac-cm');
  let proxy: ProxyProcess | undefined;

  afterEach(function () {
    printLogsIfFailed(this, [proxy]);
  });

  after(async () => {
    await proxy?.stop('SIGKILL');
  });

  it('becomes ready and serves, logs the 403 once, and reads ConfigMaps once they are granted', async () => {
    const work = mkdtempSync(join(env.cluster.workDir, 'rbac-cm-'));
    const kubectl = (args: string[]) => env.cluster.kubectl([...args, '-n', env.namespace]);
    const clientCa = newCa('Client CA');
    const client = clientCert({ commonName: 'client', ca: clientCa });
    const site = serverCert({ dnsNames: ['site.example.com', 'mtls.example.com'], commonName: 'site' });
    const file = (name: string, text: string) => {
      const path = join(work, name);
      writeFileSync(path, text);
      return path;
    };

    await installIstioCrds(env.cluster);
    await applyRenderedGateway(env, 1);
    // Istio's gateway Role: Secrets only.
    const secretsOnly = { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] };
    await kubectl(['patch', 'role', 'istio-ingressgateway', '--type=json', `-p=${JSON.stringify([{ op: 'replace', path: '/rules', value: [secretsOnly] }])}`]);
    await kubectl(['create', 'secret', 'tls', 'site-cert', `--cert=${file('site.crt', site.chain)}`, `--key=${file('site.key', site.key)}`]);
    await kubectl(['create', 'configmap', 'client-ca', `--from-file=ca.crt=${file('ca.crt', clientCa.cert)}`]);
    await applyObjects(env.cluster, env.namespace, [
      ingressGateway([
        { port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: ['site.example.com'], tls: { mode: 'SIMPLE', credentialName: 'site-cert' } },
        { port: { number: 443, name: 'https-mtls', protocol: 'HTTPS' }, hosts: ['mtls.example.com'], tls: { mode: 'MUTUAL', credentialName: 'site-cert', caCertCredentialName: 'client-ca' } },
      ]),
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'hello' },
        spec: { hosts: ['site.example.com', 'mtls.example.com'], gateways: ['ingress'], http: [{ directResponse: { status: 200, body: { string: 'hello' } } }] },
      },
    ]);

    // startGatewayProxies waits for readiness: it would time out if the proxy waited for ConfigMaps.
    const started = await startGatewayProxies(env, 1, work);
    proxy = started.proxies[0]!;
    const ip = started.ips[0]!;
    await proxy.waitForLog(/list \/api\/v1\/namespaces\/[^/]+\/configmaps: 403 Forbidden; going on without configmaps/, 30_000);

    const get = (host: string, cert?: typeof client) =>
      new Promise<string>((resolve) => {
        const req = https.request({ host: ip, port: HTTPS_PORT, servername: host, headers: { host }, ca: [testCa().cert], cert: cert?.chain, key: cert?.key, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(String(res.statusCode)));
        });
        req.on('error', () => resolve('refused'));
        req.end();
      });
    assert.equal(await get('site.example.com'), '200', 'the SIMPLE server works without ConfigMaps');
    assert.equal(await get('mtls.example.com', client), 'refused', 'no CA can be read for the MUTUAL server yet');
    assert.equal(proxy.stderr.filter((l) => /configmaps: 403 Forbidden/.test(l)).length, 1, 'the 403 is logged once, not on every retry');

    await kubectl(['patch', 'role', 'istio-ingressgateway', '--type=json', `-p=${JSON.stringify([{ op: 'add', path: '/rules/-', value: { ...secretsOnly, resources: ['configmaps'] } }])}`]);
    // The reflector retries with backoff (at most 45 s apart): a wait bound, not a measurement.
    await eventually(async () => (await get('mtls.example.com', client)) === '200' || undefined, { timeoutMs: 120_000, what: 'the ConfigMap CA to be used after the grant' }).catch((err: Error) => {
      throw new Error(`${err.message}; proxy log:\n${proxy!.stderr.join('\n')}`);
    });
    await proxy.waitForLog(/configmaps: allowed now/, 5_000);
    assert.equal(proxy.child.exitCode, null, 'no restart');
  });
});

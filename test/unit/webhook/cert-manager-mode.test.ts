// cert-manager mode (--webhook-cert-dir): the webhook serves the mounted tls.crt/tls.key,
// waits for them when the mount is still empty, follows a renewal written into the files
// without a restart, and keeps its certificate when the files are half-written.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { createCa, issueServing, serviceDnsNames, type KeyPair } from '../../../operator/webhook/certificates.js';
import { startWebhook, type RunningWebhook } from '../../../operator/webhook/index.js';

const SERVER_NAME = 'portway-webhook.portway-system.svc';

function served(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: SERVER_NAME, ca }, () => {
      const fp = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
      socket.end();
      resolve(fp);
    });
    socket.once('error', reject);
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('webhook in cert-manager mode (certificate files)', function () {
  this.timeout(60_000);
  let dir: string;
  let webhook: RunningWebhook | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'portway-webhook-certs-'));
  });

  afterEach(async () => {
    await webhook?.stop();
    webhook = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const write = (pair: KeyPair) => {
    writeFileSync(join(dir, 'tls.key'), pair.key);
    writeFileSync(join(dir, 'tls.crt'), pair.cert);
  };

  it('waits for the files, serves them, and follows a renewal; a half-written pair is not served', async () => {
    const ca = await createCa(new Date(), 3600_000);
    const dnsNames = serviceDnsNames('portway-webhook', 'portway-system');
    const first = await issueServing(ca, dnsNames, new Date(), 600_000);
    const second = await issueServing(ca, dnsNames, new Date(), 600_000);
    const fp = (p: KeyPair) => new X509Certificate(p.cert).fingerprint256;

    // The mount is empty until cert-manager has issued the certificate.
    const starting = startWebhook({
      connection: { server: new URL('https://127.0.0.1:1') }, // not called in cert-manager mode
      port: 0,
      host: '127.0.0.1',
      namespace: 'portway-system',
      certDir: dir,
      secretName: 'unused',
      serviceName: 'portway-webhook',
      configurationName: 'unused',
      certFilesIntervalMs: 100,
      log: () => undefined,
    });
    await new Promise((r) => setTimeout(r, 300));
    write(first);
    webhook = await starting;
    const port = webhook.server.address!.port;
    assert.equal(await served(port, ca.cert), fp(first));

    // Half-written: the new certificate with the old key. Kept serving the first.
    writeFileSync(join(dir, 'tls.crt'), second.cert);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(await served(port, ca.cert), fp(first));

    writeFileSync(join(dir, 'tls.key'), second.key);
    await until('the renewed certificate to be served', async () => (await served(port, ca.cert)) === fp(second));
  });
});

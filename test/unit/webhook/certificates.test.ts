// The webhook's CA and serving certificate: what is issued, when it is renewed, and the
// property that makes rotation safe for every replica: at each step, the bundle the
// apiserver trusts before the step already holds the CA of the certificate served after it,
// and the bundle after it still holds the CA of the certificate served before it.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import {
  caBundle,
  createCa,
  fromSecretData,
  issueServing,
  problemWith,
  rotate,
  serviceDnsNames,
  toSecretData,
  type CertificatePolicy,
  type WebhookCertificates,
} from '../../../operator/webhook/certificates.js';

const dnsNames = serviceDnsNames('portway-webhook', 'portway-system');

/** The CAs of a PEM bundle. */
function bundleCas(bundle: string): X509Certificate[] {
  return (bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? []).map((p) => new X509Certificate(p));
}

function trusted(bundle: string, servingPem: string): boolean {
  const leaf = new X509Certificate(servingPem);
  return bundleCas(bundle).some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
}

const notAfter = (pem: string) => Date.parse(new X509Certificate(pem).validTo);

describe('webhook certificates', function () {
  this.timeout(60_000);

  it('issues a CA and a serving certificate for every name of the webhook Service', async () => {
    const now = new Date();
    const { certificates, change } = await rotate(undefined, { dnsNames, servingValidityMs: 3600_000, caValidityMs: 10 * 3600_000, promotionDelayMs: 60_000 }, now);
    assert.match(change!, /new CA and serving certificate/);
    assert.equal(problemWith(certificates, dnsNames, now), undefined);
    const leaf = new X509Certificate(certificates.serving.cert);
    assert.equal(leaf.ca, false);
    assert.equal(new X509Certificate(certificates.ca.cert).ca, true);
    for (const name of dnsNames) assert.ok(leaf.checkHost(name, { subject: 'never' }), name);
    assert.ok(leaf.checkHost('portway-webhook.portway-system.svc'), 'the name the apiserver checks');
    assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'serverAuth');
    assert.ok(trusted(caBundle(certificates), certificates.serving.cert));
    // forge writes names as PrintableString: Go's x509 (the apiserver) refuses other characters.
    for (const pem of [certificates.ca.cert, certificates.serving.cert]) {
      const x = new X509Certificate(pem);
      for (const dn of [x.subject, x.issuer]) for (const line of dn.split('\n')) assert.match(line.slice(line.indexOf('=') + 1), /^[A-Za-z0-9 '()+,\-./:=?]*$/, line);
    }
    assert.ok(Math.abs(notAfter(certificates.serving.cert) - (now.getTime() + 3600_000)) <= 1000);
  });

  it('finds what makes stored material unusable', async () => {
    const now = new Date();
    const ca = await createCa(now, 3600_000);
    const other = await createCa(now, 3600_000);
    const serving = await issueServing(ca, dnsNames, now, 600_000);
    const good: WebhookCertificates = { ca, serving };
    assert.equal(problemWith(good, dnsNames, now), undefined);
    assert.match(problemWith({ ca: other, serving }, dnsNames, now)!, /not signed by ca\.crt/);
    assert.match(problemWith({ ca, serving: { cert: serving.cert, key: other.key } }, dnsNames, now)!, /tls\.key does not match/);
    assert.match(problemWith({ ca: { cert: ca.cert, key: other.key }, serving }, dnsNames, now)!, /ca\.key does not match/);
    assert.match(problemWith(good, serviceDnsNames('renamed', 'portway-system'), now)!, /not valid for renamed/);
    assert.match(problemWith(good, dnsNames, new Date(now.getTime() + 601_000))!, /tls\.crt has expired/);
    assert.match(problemWith({ ca, serving: { cert: 'garbage', key: serving.key } }, dnsNames, now)!, /unreadable/);
    // Unusable material is replaced as a whole.
    assert.match((await rotate({ ca: other, serving }, { dnsNames, servingValidityMs: 600_000, caValidityMs: 3600_000, promotionDelayMs: 1000 }, now)).change!, /new CA and serving certificate \(tls\.crt is not signed/);
  });

  it('round-trips through the Secret data', async () => {
    const now = new Date();
    const ca = await createCa(now, 3600_000);
    const m: WebhookCertificates = { ca, serving: await issueServing(ca, dnsNames, now, 600_000), nextCa: await createCa(now, 3600_000), previousCa: (await createCa(now, 3600_000)).cert };
    const data = toSecretData(m);
    assert.deepEqual(Object.keys(data).sort(), ['ca-next.crt', 'ca-next.key', 'ca-previous.crt', 'ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    assert.deepEqual(fromSecretData(data), m);
    assert.equal(fromSecretData({ 'tls.crt': data['tls.crt']! }), undefined, 'a Secret without the CA is not ours to use');
  });

  it('renews well before expiry and never leaves a replica serving an untrusted certificate (CA rotations included)', async () => {
    const policy: CertificatePolicy = { dnsNames, servingValidityMs: 30_000, caValidityMs: 120_000, promotionDelayMs: 5_000 };
    const stepMs = 2_500;
    let t = Date.parse('2030-01-01T00:00:00Z');
    let state = (await rotate(undefined, policy, new Date(t))).certificates;
    const seen = { serving: 0, caPromotions: 0, nextCa: 0, dropped: 0 };
    for (let i = 0; i < 110; i++) {
      t += stepMs;
      const before = state;
      const step = await rotate(before, policy, new Date(t));
      state = step.certificates;
      if (step.change?.includes('serving certificate renewed')) seen.serving++;
      if (step.change?.includes('the next CA now signs')) seen.caPromotions++;
      if (step.change?.includes('next CA added')) seen.nextCa++;
      if (step.change?.includes('previous CA dropped')) seen.dropped++;
      assert.equal(problemWith(state, dnsNames, new Date(t)), undefined, `step ${i}`);
      // A replica may switch to the new certificate before the apiserver sees the new bundle...
      assert.ok(trusted(caBundle(before), state.serving.cert), `step ${i}: the bundle before the step trusts the new certificate (${step.change})`);
      // ...and another may still serve the old one after the bundle changed.
      if (notAfter(before.serving.cert) > t) assert.ok(trusted(caBundle(state), before.serving.cert), `step ${i}: the bundle after the step trusts the old certificate`);
      // A third of the life is left at renewal, far more than a check interval.
      assert.ok(notAfter(state.serving.cert) - t >= 30_000 / 3 - stepMs, `step ${i}: renewed in time`);
    }
    assert.ok(seen.serving >= 8, JSON.stringify(seen));
    assert.ok(seen.caPromotions >= 2 && seen.nextCa >= 2 && seen.dropped >= 1, JSON.stringify(seen));
  });

  it('renews a certificate that outlives a shortened lifetime, and leaves a current one alone', async () => {
    const now = new Date();
    const long = (await rotate(undefined, { dnsNames, servingValidityMs: 24 * 3600_000, caValidityMs: 240 * 3600_000, promotionDelayMs: 60_000 }, now)).certificates;
    const same = await rotate(long, { dnsNames, servingValidityMs: 24 * 3600_000, caValidityMs: 240 * 3600_000, promotionDelayMs: 60_000 }, new Date(now.getTime() + 60_000));
    assert.equal(same.change, undefined);
    assert.equal(same.certificates, long);
    const shorter = await rotate(long, { dnsNames, servingValidityMs: 3600_000, caValidityMs: 240 * 3600_000, promotionDelayMs: 60_000 }, now);
    assert.equal(shorter.change, 'serving certificate renewed');
    assert.ok(notAfter(shorter.certificates.serving.cert) <= now.getTime() + 3600_000 + 1000);
    assert.equal(shorter.certificates.ca, long.ca, 'the same CA signs: the bundle does not change');
  });
});

// TLS session resumption through the real proxy process: a session ticket is accepted by every
// --concurrency worker, survives a configuration change that rebuilds the chain, is accepted by
// another replica given the same PORTWAY_TLS_TICKET_SECRET, and is never resumed on a chain
// that has become MUTUAL (nor on another chain).

import assert from 'node:assert/strict';
import { clientCert, serverCert, testCa } from '../../support/certs.js';
import { startEchoBackend, type EchoBackend } from '../../support/echo-backend.js';
import {
  eventually,
  gatewayYaml,
  handshake,
  httpRouteYaml,
  httpsGet,
  httpsOutcome,
  newSession,
  secretYaml,
  serviceEntryYaml,
  TlsProxy,
  yamlDocuments,
  type TlsClientOptions,
} from './harness.js';

function config(backend: EchoBackend, site: { hosts: string[]; mode: 'SIMPLE' | 'MUTUAL' }): string {
  return yamlDocuments(
    gatewayYaml([
      { port: 443, name: 'https', protocol: 'HTTPS', hosts: site.hosts, tls: `{mode: ${site.mode}, credentialName: site-cert}` },
      { port: 443, name: 'https-other', protocol: 'HTTPS', hosts: ['other.example.net'], tls: '{mode: SIMPLE, credentialName: site-cert}' },
    ]),
    httpRouteYaml('app', ['*.example.com', '*.example.org', 'other.example.net'], 'app.internal'),
    serviceEntryYaml('app.internal', 80, 'HTTP', backend.port),
  );
}

/** Whether a handshake offering `session` was a resumption (an Error text when it failed). */
async function resumed(port: number, o: TlsClientOptions & { session: Buffer }): Promise<boolean | string> {
  const h = await handshake(port, o);
  if (!h.ok) return h.error;
  const reused = h.socket.isSessionReused();
  h.socket.destroy();
  return reused;
}

describe('proxy TLS: session resumption (real proxy process)', function () {
  this.timeout(60_000);
  const ca = testCa();
  const site = serverCert({ dnsNames: ['*.example.com', '*.example.org', 'other.example.net'], commonName: 'site' });
  const client = clientCert({ commonName: 'client', dnsNames: ['client.example.com'] });
  const hostsV1 = ['*.example.com'];
  let backend: EchoBackend;
  const envs: TlsProxy[] = [];

  before(async () => {
    backend = await startEchoBackend('app');
  });
  afterEach(async () => {
    await Promise.all(envs.splice(0).map((e) => e.close()));
  });
  after(async () => {
    await backend?.close();
  });

  async function start(extra: string[] = [], processEnv: NodeJS.ProcessEnv = {}): Promise<TlsProxy> {
    const setup = (e: TlsProxy) => {
      e.write('config.yaml', config(backend, { hosts: hostsV1, mode: 'SIMPLE' }));
      e.write('secret.yaml', secretYaml('site-cert', { cert: site.chain, key: site.key, ca: ca.cert }));
    };
    const e = await TlsProxy.launch([443], setup, extra, processEnv);
    envs.push(e);
    return e;
  }

  it('--concurrency 2: a ticket from one worker resumes on every worker', async () => {
    const e = await start(['--concurrency', '2']);
    const port = e.port(443);
    const session = await newSession(port, { servername: 'www.example.com', ca: ca.cert });
    // node:cluster hands connections to the workers in turn: eight in a row reach both.
    for (let i = 0; i < 8; i++) assert.equal(await resumed(port, { servername: 'www.example.com', ca: ca.cert, session }), true, `connection ${i}`);
  });

  it('a configuration change that rebuilds the chain keeps its sessions resumable', async () => {
    const e = await start();
    const port = e.port(443);
    const session = await newSession(port, { servername: 'www.example.com', ca: ca.cert });
    assert.equal(await resumed(port, { servername: 'www.example.com', ca: ca.cert, session }), true);
    e.write('config.yaml', config(backend, { hosts: [...hostsV1, '*.example.org'], mode: 'SIMPLE' }));
    await eventually('the new host is served', async () => {
      try {
        return (await httpsGet(port, { servername: 'www.example.org', ca: ca.cert })).status === 200;
      } catch {
        return false;
      }
    });
    assert.equal(await resumed(port, { servername: 'www.example.com', ca: ca.cert, session }), true);
  });

  it('a chain that becomes MUTUAL does not resume sessions made under SIMPLE; another chain never resumes them', async () => {
    const e = await start();
    const port = e.port(443);
    const session = await newSession(port, { servername: 'www.example.com', ca: ca.cert });
    // Same certificate, same proxy, another chain (server): a full handshake.
    assert.equal(await resumed(port, { servername: 'other.example.net', ca: ca.cert, session }), false);

    e.write('config.yaml', config(backend, { hosts: hostsV1, mode: 'MUTUAL' }));
    await eventually('MUTUAL is enforced', async () => 'error' in (await httpsOutcome(port, { servername: 'www.example.com', ca: ca.cert })));
    // Offering the SIMPLE session: no resumption, the server makes a full handshake and asks for
    // the certificate, so a client without one does not get in.
    const withCert = { servername: 'www.example.com', ca: ca.cert, cert: client.chain, key: client.key };
    assert.equal(await resumed(port, { ...withCert, session }), false);
    assert.notEqual(await resumed(port, { servername: 'www.example.com', ca: ca.cert, session }), true);
    // Sessions made under MUTUAL resume there.
    const mutualSession = await newSession(port, withCert);
    assert.equal(await resumed(port, { ...withCert, session: mutualSession }), true);
  });

  it('replicas given the same PORTWAY_TLS_TICKET_SECRET resume each other’s sessions', async () => {
    const secret = { PORTWAY_TLS_TICKET_SECRET: 'session-resumption-test-secret' };
    const a = await start([], secret);
    const b = await start([], secret);
    const session = await newSession(a.port(443), { servername: 'www.example.com', ca: ca.cert });
    assert.equal(await resumed(b.port(443), { servername: 'www.example.com', ca: ca.cert, session }), true);
    const c = await start([], { PORTWAY_TLS_TICKET_SECRET: 'another-secret' });
    assert.equal(await resumed(c.port(443), { servername: 'www.example.com', ca: ca.cert, session }), false);
  });
});


// Session resumption settings: one set of ticket keys per proxy, and a session ID context that
// separates chains and admission policies.

import assert from 'node:assert/strict';
import type { DownstreamTls } from '../../../dataplane/snapshot/types.js';
import { deriveTicketKeys, sessionIdContextFor, sessionTicketKeys, TICKET_SECRET_ENV, workerTicketEnv } from '../../../dataplane/tls/session-tickets.js';

function policy(overrides: Partial<DownstreamTls> = {}): DownstreamTls {
  return { mode: 'SIMPLE', credentials: ['secret:gw/site'], subjectAltNames: [], verifyCertificateSpki: [], verifyCertificateHash: [], minProtocolVersion: 'TLSv1.2', ...overrides };
}

describe('tls: session tickets', () => {
  it('ticket keys: 48 bytes, derived from the secret handed to workers, the same on every call; the secret stays out of this process environment', () => {
    assert.equal(sessionTicketKeys().length, 48);
    assert.equal(sessionTicketKeys(), sessionTicketKeys());
    const env = workerTicketEnv();
    assert.deepEqual(Object.keys(env), [TICKET_SECRET_ENV]);
    assert.deepEqual(deriveTicketKeys(env[TICKET_SECRET_ENV]!), sessionTicketKeys(), 'a worker derives the same keys');
    assert.equal(process.env[TICKET_SECRET_ENV], undefined, 'not inherited by every child process');
    assert.deepEqual(deriveTicketKeys('a'), deriveTicketKeys('a'));
    assert.notDeepEqual(deriveTicketKeys('a'), deriveTicketKeys('b'));
  });

  it('session ID context: 32 characters; equal for the same chain and admission policy', () => {
    const a = sessionIdContextFor('https.443.https.gw.ns', policy());
    assert.equal(a.length, 32);
    assert.equal(sessionIdContextFor('https.443.https.gw.ns', policy({ minProtocolVersion: 'TLSv1.3', credentials: ['secret:gw/rotated'] })), a);
  });

  it('session ID context: differs by chain, mode, CA, SAN and pin checks', () => {
    const base = sessionIdContextFor('https.443.https.gw.ns', policy());
    const others = [
      sessionIdContextFor('https.443.other.gw.ns', policy()),
      sessionIdContextFor('https.443.https.gw.ns', policy({ mode: 'MUTUAL' })),
      sessionIdContextFor('https.443.https.gw.ns', policy({ mode: 'OPTIONAL_MUTUAL' })),
      sessionIdContextFor('https.443.https.gw.ns', policy({ mode: 'MUTUAL', caCredential: 'ca:gw/other' })),
      sessionIdContextFor('https.443.https.gw.ns', policy({ subjectAltNames: ['spiffe://a'] })),
      sessionIdContextFor('https.443.https.gw.ns', policy({ verifyCertificateSpki: ['abc'] })),
      sessionIdContextFor('https.443.https.gw.ns', policy({ verifyCertificateHash: ['ab:cd'] })),
    ];
    assert.equal(new Set([base, ...others]).size, others.length + 1);
  });
});

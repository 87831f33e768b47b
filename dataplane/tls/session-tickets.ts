// Session resumption settings of the terminating TLS chains.
//
// Ticket keys: every chain encrypts its session tickets with keys derived from one secret per
// proxy, so that a ticket issued by one --concurrency worker is accepted by the others
// (node:cluster hands connections to the workers in turn: with a key per worker, most
// resumptions would fail), and by a chain rebuilt after a configuration change. The secret is
// PORTWAY_TLS_TICKET_SECRET when set (the same value on every replica lets replicas resume
// each other's sessions), else random. The primary hands it to the workers it forks
// explicitly (workerTicketEnv); it is never written into this process's environment, so
// other children do not inherit it.
//
// Which sessions may be resumed where is decided by the session ID context, which OpenSSL
// checks on every resumption (tickets included): it is derived from the chain's name and
// everything that decides whether a client is admitted (mode, CA, SAN and pin checks), so a
// session made under SIMPLE can never be resumed on a chain that has become MUTUAL, nor one
// chain's session on another.

import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { DownstreamTls } from '../snapshot/types.js';

export const TICKET_SECRET_ENV = 'PORTWAY_TLS_TICKET_SECRET';

let secret: string | undefined;
let ticketKeys: Buffer | undefined;

function ticketSecret(): string {
  secret ??= process.env[TICKET_SECRET_ENV] || randomBytes(32).toString('hex');
  return secret;
}

/** The environment a forked worker needs to derive this process's ticket keys. */
export function workerTicketEnv(): Record<string, string> {
  return { [TICKET_SECRET_ENV]: ticketSecret() };
}

/** The 48 bytes tls.SecureContextOptions.ticketKeys wants (name, HMAC and AES keys), from a secret. */
export function deriveTicketKeys(from: Buffer | string): Buffer {
  return Buffer.from(hkdfSync('sha256', from, 'portway', 'tls session ticket keys', 48));
}

/** This proxy's ticket keys: the same in every chain and every worker process. */
export function sessionTicketKeys(): Buffer {
  ticketKeys ??= deriveTicketKeys(ticketSecret());
  return ticketKeys;
}

/**
 * The session ID context of a chain (32 hex characters, OpenSSL's maximum length): equal for
 * two chains exactly when they have the same name and admit the same clients.
 */
export function sessionIdContextFor(chainName: string, policy: DownstreamTls): string {
  const admission = [
    chainName,
    policy.mode,
    policy.mode === 'SIMPLE' ? null : policy.caCredential ?? policy.credentials,
    policy.subjectAltNames,
    policy.verifyCertificateSpki,
    policy.verifyCertificateHash,
  ];
  return createHash('sha256').update(JSON.stringify(['portway', ...admission])).digest('hex').slice(0, 32);
}

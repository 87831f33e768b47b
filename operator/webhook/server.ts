// The admission webhook's HTTPS server, run by every operator replica:
//   POST /inject    the mutating webhook (gateway injection into pods)
//   POST /validate  the validating webhook (Istio networking objects, GatewayDeployments)
//   GET  /healthz   200 once serving
// A new certificate is swapped in with setSecureContext: connections opened from then on get
// it, open ones keep the one they started with, nothing restarts.

import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { reviewInjection, reviewValidation, type AdmissionOptions, type AdmissionReview } from './admission.js';
import type { KeyPair } from './certificates.js';

/** The apiserver sends at most its own request size limit (3 MiB) plus the old object. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;

export const INJECT_PATH = '/inject';
export const VALIDATE_PATH = '/validate';

export interface WebhookServerOptions extends AdmissionOptions {
  port: number;
  /** Default: every address (the pod's). */
  host?: string;
  log?: (line: string) => void;
}

export class WebhookServer {
  private server?: Server;

  constructor(private readonly o: WebhookServerOptions) {}

  /** Listens with `certificate`; resolves with the bound address. */
  async start(certificate: KeyPair): Promise<AddressInfo> {
    const server = createServer({ cert: certificate.cert, key: certificate.key, minVersion: 'TLSv1.2' }, (req, res) => this.handle(req, res));
    // The apiserver's own timeout per call is at most 30 s.
    server.requestTimeout = 30_000;
    server.headersTimeout = 10_000;
    server.keepAliveTimeout = 60_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port, this.o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server.address() as AddressInfo;
  }

  /** New connections use `certificate` from now on. */
  setCertificate(certificate: KeyPair): void {
    this.server?.setSecureContext({ cert: certificate.cert, key: certificate.key, minVersion: 'TLSv1.2' });
  }

  /** Where it listens (undefined before start). */
  get address(): AddressInfo | undefined {
    return (this.server?.address() as AddressInfo | null) ?? undefined;
  }

  get listening(): boolean {
    return this.server?.listening === true;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') return this.reply(res, 200, 'ok\n', 'text/plain');
    const review = path === INJECT_PATH ? reviewInjection : path === VALIDATE_PATH ? reviewValidation : undefined;
    if (!review) return this.reply(res, 404, 'not found\n', 'text/plain');
    if (req.method !== 'POST') return this.reply(res, 405, 'POST an AdmissionReview\n', 'text/plain');
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        if (!tooLarge) {
          tooLarge = true;
          res.once('finish', () => req.destroy());
          res.setHeader('connection', 'close');
          this.reply(res, 413, 'request body too large\n', 'text/plain');
        }
        return;
      }
      chunks.push(c);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      if (tooLarge) return;
      let input: AdmissionReview;
      try {
        input = JSON.parse(Buffer.concat(chunks).toString('utf8')) as AdmissionReview;
      } catch {
        return this.reply(res, 400, 'the body is not JSON\n', 'text/plain');
      }
      if (input?.kind !== 'AdmissionReview' || !input.request?.uid) return this.reply(res, 400, 'expected an AdmissionReview with a request\n', 'text/plain');
      try {
        const output = review(input, this.o);
        this.reply(res, 200, JSON.stringify(output), 'application/json');
      } catch (err) {
        // A 500 makes the apiserver apply the webhook's failurePolicy.
        this.log(`webhook ${path}: ${(err as Error).stack ?? err}`);
        this.reply(res, 500, 'internal error\n', 'text/plain');
      }
    });
  }

  private reply(res: ServerResponse, status: number, body: string, contentType: string): void {
    res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private log(line: string): void {
    (this.o.log ?? ((l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`)))(line);
  }
}

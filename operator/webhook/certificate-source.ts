// Where the webhook's serving certificate comes from, and how every replica follows it.
//
// SecretCertificates (the default): the operator keeps a CA and a serving certificate in a
// Secret of its namespace. Every replica checks it on a timer: the first to see it missing or
// due writes the next state (optimistic concurrency on resourceVersion, so concurrent
// replicas agree on one winner), every replica makes the webhook configurations' caBundle
// match it, and every replica serves the certificate it holds, swapped in without a restart.
//
// CertificateFiles (cert-manager): cert-manager writes the Secret, the kubelet mounts it,
// cert-manager's CA injector fills the caBundle; the operator only reads the files again
// when they change.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KubeConnection } from '../../kube/connection.js';
import { KubeApiError, kubeRequest, objectPath } from '../../kube/kube-request.js';
import {
  DEFAULT_CA_VALIDITY_MS,
  DEFAULT_SERVING_VALIDITY_MS,
  caBundle,
  fromSecretData,
  rotate,
  serviceDnsNames,
  toSecretData,
  type KeyPair,
} from './certificates.js';

export interface CertificateSource {
  /** Resolves with the first certificate; calls `onChange` with every later one. */
  start(onChange: (pair: KeyPair) => void): Promise<KeyPair>;
  stop(): void;
}

export interface SecretCertificatesOptions {
  connection: KubeConnection;
  /** The operator's namespace: the Secret and the webhook Service live there. */
  namespace: string;
  secretName: string;
  serviceName: string;
  /** Names of the MutatingWebhookConfiguration and ValidatingWebhookConfiguration whose caBundle to keep. */
  mutatingConfiguration?: string;
  validatingConfiguration?: string;
  servingValidityMs?: number;
  caValidityMs?: number;
  /** Time between checks (default: a twelfth of the shorter lifetime, between 1 s and 5 min). */
  intervalMs?: number;
  log?: (line: string) => void;
  now?: () => Date;
}

interface SecretObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  type?: string;
  data?: Record<string, string>;
}

interface WebhookConfiguration {
  metadata: { name: string };
  webhooks?: Array<{ name: string; clientConfig?: { caBundle?: string } }>;
}

const ADMISSION_API = 'admissionregistration.k8s.io/v1';

export class SecretCertificates implements CertificateSource {
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private serving?: KeyPair;
  private onChange?: (pair: KeyPair) => void;
  private readonly intervalMs: number;
  private readonly servingValidityMs: number;
  private readonly caValidityMs: number;
  private readonly missingConfigurations = new Set<string>();

  constructor(private readonly o: SecretCertificatesOptions) {
    this.servingValidityMs = o.servingValidityMs ?? DEFAULT_SERVING_VALIDITY_MS;
    this.caValidityMs = o.caValidityMs ?? DEFAULT_CA_VALIDITY_MS;
    this.intervalMs = o.intervalMs ?? Math.min(300_000, Math.max(1000, Math.min(this.servingValidityMs, this.caValidityMs) / 12));
  }

  async start(onChange: (pair: KeyPair) => void): Promise<KeyPair> {
    // The first certificate is awaited (retrying): a replica without one cannot serve.
    for (let attempt = 0; !this.serving; attempt++) {
      if (this.stopped) throw new Error('stopped');
      try {
        await this.sync();
      } catch (err) {
        this.log(`webhook certificate: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, Math.min(10_000, 250 * 2 ** Math.min(attempt, 6))).unref());
      }
    }
    this.onChange = onChange;
    this.schedule();
    return this.serving;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.sync()
        .catch((err) => this.log(`webhook certificate: ${(err as Error).message}`))
        .finally(() => this.schedule());
    }, this.intervalMs);
    this.timer.unref();
  }

  /** One check: read, rotate when due, write (winner takes it), sync caBundle, serve what is stored. */
  async sync(): Promise<void> {
    const path = objectPath('v1', 'secrets', this.o.namespace, this.o.secretName);
    let secret = await this.readSecret(path);
    const current = fromSecretData(secret?.data);
    const step = await rotate(current, this.policy(), this.now());
    let stored = current;
    if (step.change) {
      // The bundle first: a replica may serve the written certificate as soon as it reads it.
      await this.syncCaBundle(caBundle(step.certificates));
      try {
        secret = await this.writeSecret(path, secret, toSecretData(step.certificates));
        stored = step.certificates;
        this.log(`webhook certificate: ${step.change}; serving certificate valid until ${new X509Certificate(step.certificates.serving.cert).validTo}`);
      } catch (err) {
        if (!(err instanceof KubeApiError) || err.statusCode !== 409) throw err;
        // Another replica wrote first: take what it stored.
        secret = await this.readSecret(path);
        stored = fromSecretData(secret?.data);
      }
    }
    if (!stored) throw new Error(`Secret ${this.o.namespace}/${this.o.secretName} holds no certificate yet`);
    await this.syncCaBundle(caBundle(stored));
    if (this.serving?.cert !== stored.serving.cert || this.serving?.key !== stored.serving.key) {
      const first = !this.serving;
      this.serving = stored.serving;
      if (!first) this.onChange?.(stored.serving);
    }
  }

  private policy() {
    return {
      dnsNames: serviceDnsNames(this.o.serviceName, this.o.namespace),
      servingValidityMs: this.servingValidityMs,
      caValidityMs: this.caValidityMs,
      // Two checks: every replica has made the bundle include the next CA at least once.
      promotionDelayMs: 2 * this.intervalMs,
    };
  }

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  private async readSecret(path: string): Promise<SecretObject | undefined> {
    try {
      return await kubeRequest<SecretObject>(this.o.connection, { method: 'GET', path });
    } catch (err) {
      if (err instanceof KubeApiError && err.statusCode === 404) return undefined;
      throw err;
    }
  }

  /** Create, or replace at the resourceVersion read (409 when another replica got there first). */
  private writeSecret(path: string, existing: SecretObject | undefined, data: Record<string, string>): Promise<SecretObject> {
    const body = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: this.o.secretName,
        namespace: this.o.namespace,
        labels: { 'app.kubernetes.io/managed-by': 'portway-operator', 'app.kubernetes.io/component': 'webhook-certificate' },
        ...(existing?.metadata.resourceVersion ? { resourceVersion: existing.metadata.resourceVersion } : {}),
      },
      // The type cannot change: keep the one a Secret already has.
      type: existing?.type ?? 'kubernetes.io/tls',
      data,
    };
    if (!existing) return kubeRequest<SecretObject>(this.o.connection, { method: 'POST', path: objectPath('v1', 'secrets', this.o.namespace), body });
    return kubeRequest<SecretObject>(this.o.connection, { method: 'PUT', path, body });
  }

  /** Makes every webhook of both configurations trust `bundle` (a JSON patch per stale entry, guarded by its name). */
  private async syncCaBundle(bundle: string): Promise<void> {
    const encoded = Buffer.from(bundle, 'utf8').toString('base64');
    const targets = [
      ['mutatingwebhookconfigurations', this.o.mutatingConfiguration],
      ['validatingwebhookconfigurations', this.o.validatingConfiguration],
    ] as const;
    for (const [plural, name] of targets) {
      if (!name) continue;
      const path = objectPath(ADMISSION_API, plural, undefined, name);
      let config: WebhookConfiguration;
      try {
        config = await kubeRequest<WebhookConfiguration>(this.o.connection, { method: 'GET', path });
      } catch (err) {
        if (err instanceof KubeApiError && err.statusCode === 404) {
          if (!this.missingConfigurations.has(path)) this.log(`webhook certificate: ${plural}/${name} not found; its caBundle is set once it exists`);
          this.missingConfigurations.add(path);
          continue;
        }
        throw err;
      }
      this.missingConfigurations.delete(path);
      const ops = (config.webhooks ?? []).flatMap((w, i) =>
        w.clientConfig?.caBundle === encoded
          ? []
          : [
              { op: 'test', path: `/webhooks/${i}/name`, value: w.name },
              { op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: encoded },
            ],
      );
      if (ops.length === 0) continue;
      await kubeRequest(this.o.connection, { method: 'PATCH', path, body: ops, contentType: 'application/json-patch+json' });
    }
  }

  private log(line: string): void {
    (this.o.log ?? ((l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`)))(line);
  }
}

export interface CertificateFilesOptions {
  /** Directory holding tls.crt and tls.key (a mounted kubernetes.io/tls Secret). */
  dir: string;
  /** Time between reads (default 10 s); the kubelet refreshes mounted Secrets within about a minute. */
  intervalMs?: number;
  log?: (line: string) => void;
}

export class CertificateFiles implements CertificateSource {
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private current?: KeyPair;

  constructor(private readonly o: CertificateFilesOptions) {}

  async start(onChange: (pair: KeyPair) => void): Promise<KeyPair> {
    for (let attempt = 0; !this.current; attempt++) {
      if (this.stopped) throw new Error('stopped');
      try {
        this.current = await this.read();
      } catch (err) {
        // cert-manager may not have issued it yet: the mount is empty until it has.
        if (attempt === 0) this.log(`webhook certificate: ${(err as Error).message}; waiting for it`);
        await new Promise((r) => setTimeout(r, 1000).unref());
      }
    }
    const tick = async () => {
      try {
        const next = await this.read();
        if (next.cert !== this.current?.cert || next.key !== this.current?.key) {
          this.current = next;
          onChange(next);
        }
      } catch (err) {
        // A half-written update: keep serving the last good pair.
        this.log(`webhook certificate: ${(err as Error).message}; keeping the current one`);
      }
      if (!this.stopped) this.timer = setTimeout(tick, this.o.intervalMs ?? 10_000).unref();
    };
    this.timer = setTimeout(tick, this.o.intervalMs ?? 10_000).unref();
    return this.current;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async read(): Promise<KeyPair> {
    const [cert, key] = await Promise.all([readFile(join(this.o.dir, 'tls.crt'), 'utf8'), readFile(join(this.o.dir, 'tls.key'), 'utf8')]);
    if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) throw new Error(`${this.o.dir}: tls.key does not match tls.crt`);
    return { cert, key };
  }

  private log(line: string): void {
    (this.o.log ?? ((l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`)))(line);
  }
}

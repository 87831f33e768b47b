// The admission webhook of one operator replica: its certificate (self-managed in a Secret,
// or cert-manager's files) and its HTTPS server. Not leader-gated: every replica serves.

import type { KubeConnection } from '../../kube/connection.js';
import type { RenderOptions } from '../api/defaults.js';
import { CertificateFiles, SecretCertificates, type CertificateSource } from './certificate-source.js';
import { WebhookServer } from './server.js';

export { INJECT_PATH, VALIDATE_PATH, WebhookServer } from './server.js';
export { reviewInjection, reviewValidation } from './admission.js';
export { injectGatewayPod, INJECT_LABEL, TEMPLATES_ANNOTATION, INJECTED_CONTAINER_NAME, AUTO_IMAGE } from './injection.js';

export interface WebhookOptions {
  connection: KubeConnection;
  port: number;
  host?: string;
  /** The operator's namespace (webhook Service and certificate Secret). */
  namespace: string;
  render?: RenderOptions;
  /** cert-manager mode: read tls.crt/tls.key from here and leave certificates and caBundle alone. */
  certDir?: string;
  /** cert-manager mode: how often the files are read again (default 10 s). */
  certFilesIntervalMs?: number;
  /** Self-managed mode: the Secret, the Service it is for, the configurations whose caBundle to keep. */
  secretName: string;
  serviceName: string;
  configurationName: string;
  servingValidityMs?: number;
  caValidityMs?: number;
  log?: (line: string) => void;
}

export interface RunningWebhook {
  server: WebhookServer;
  stop(): Promise<void>;
}

/** Gets the first certificate (waiting for it), then serves; later certificates are swapped in. */
export async function startWebhook(o: WebhookOptions): Promise<RunningWebhook> {
  const source: CertificateSource = o.certDir
    ? new CertificateFiles({ dir: o.certDir, intervalMs: o.certFilesIntervalMs, log: o.log })
    : new SecretCertificates({
        connection: o.connection,
        namespace: o.namespace,
        secretName: o.secretName,
        serviceName: o.serviceName,
        mutatingConfiguration: o.configurationName,
        validatingConfiguration: o.configurationName,
        servingValidityMs: o.servingValidityMs,
        caValidityMs: o.caValidityMs,
        log: o.log,
      });
  const server = new WebhookServer({ port: o.port, host: o.host, render: o.render, log: o.log });
  let started = false;
  let latest: Parameters<WebhookServer['setCertificate']>[0] | undefined;
  const first = await source.start((pair) => {
    latest = pair;
    if (started) server.setCertificate(pair);
  });
  try {
    await server.start(latest ?? first);
  } catch (err) {
    source.stop();
    throw err;
  }
  started = true;
  if (latest) server.setCertificate(latest);
  return {
    server,
    async stop() {
      source.stop();
      await server.stop();
    },
  };
}

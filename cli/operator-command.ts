// `portway operator`: the GatewayDeployment reconciler, leader-elected, the admission
// webhook (every replica), plus health endpoints.

import { createServer } from 'node:http';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { connectionFromEnvironment, type KubeConnection } from '../kube/connection.js';
import { GatewayController } from '../operator/controller/gateway-controller.js';
import { LeaderElector } from '../operator/controller/leader-election.js';
import { serveControllerEndpoint } from '../operator/controller/http-endpoints.js';
import { Logger } from '../operator/controller/log.js';
import { parseDuration } from '../dataplane/translate/durations.js';
import { releaseImage } from './release.js';
import { startWebhook, type RunningWebhook } from '../operator/webhook/index.js';

const USAGE = `Usage: portway operator [options]

  --namespace NS            namespace of the leader-election Lease (default: $POD_NAMESPACE or "portway-system")
  --leader-elect true|false elect one active reconciler among replicas (default true)
  --proxy-image IMAGE       image for gateway pods when a GatewayDeployment sets none (default:
                            $PORTWAY_PROXY_IMAGE, else this release's own image, as the chart sets it)
  --health-port 8081        /healthz and /readyz (ready once the webhook, when on, serves)

Admission webhook (gateway injection, validation), served by every replica; each flag falls
back to the environment variable the chart sets:
  --webhook-port PORT            HTTPS port; unset or 0: no webhook ($PORTWAY_WEBHOOK_PORT)
  --webhook-bind-address ADDR    address to listen on (default: all) ($PORTWAY_WEBHOOK_BIND_ADDRESS)
  --webhook-cert-dir DIR         cert-manager mode: serve DIR/tls.crt and DIR/tls.key, and leave
                                 certificates and caBundle to cert-manager ($PORTWAY_WEBHOOK_CERT_DIR)
  --webhook-secret NAME          self-managed mode: the Secret holding the webhook's CA and
                                 serving certificate (default portway-webhook-tls) ($PORTWAY_WEBHOOK_SECRET)
  --webhook-service NAME         the webhook Service the certificate is for (default portway-webhook)
                                 ($PORTWAY_WEBHOOK_SERVICE)
  --webhook-configuration NAME   the Mutating- and ValidatingWebhookConfiguration whose caBundle the
                                 operator keeps (default portway) ($PORTWAY_WEBHOOK_CONFIGURATION)
  --webhook-cert-validity 8760h  serving certificate lifetime; renewed with a third of it left
  --webhook-ca-validity 87600h   CA lifetime; renewed with a third of it left, overlapping in caBundle
`;

/**
 * The image of gateway pods whose GatewayDeployment sets none: --proxy-image, else
 * $PORTWAY_PROXY_IMAGE, else this release's image (the chart's default, so an operator run by
 * hand does not reject every GatewayDeployment).
 */
export function proxyImage(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag || env.PORTWAY_PROXY_IMAGE || releaseImage();
}

export async function runOperatorCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        namespace: { type: 'string' },
        'leader-elect': { type: 'string' },
        'proxy-image': { type: 'string' },
        'health-port': { type: 'string' },
        'webhook-port': { type: 'string' },
        'webhook-bind-address': { type: 'string' },
        'webhook-cert-dir': { type: 'string' },
        'webhook-secret': { type: 'string' },
        'webhook-service': { type: 'string' },
        'webhook-configuration': { type: 'string' },
        'webhook-cert-validity': { type: 'string' },
        'webhook-ca-validity': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    console.error(`portway operator: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const namespace = values.namespace ?? process.env.POD_NAMESPACE ?? 'portway-system';
  const env = process.env;
  const webhookPort = Number(values['webhook-port'] ?? env.PORTWAY_WEBHOOK_PORT ?? 0);
  const durationFlag = (name: 'webhook-cert-validity' | 'webhook-ca-validity'): number | undefined | Error => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const ms = parseDuration(raw);
    return typeof ms === 'number' && ms > 0 ? ms : new Error(`--${name}: expected a duration such as 720h or 90s, got ${JSON.stringify(raw)}`);
  };
  const servingValidityMs = durationFlag('webhook-cert-validity');
  const caValidityMs = durationFlag('webhook-ca-validity');
  for (const problem of [servingValidityMs, caValidityMs].filter((v): v is Error => v instanceof Error)) {
    console.error(`portway operator: ${problem.message}`);
    return 2;
  }
  if (!Number.isInteger(webhookPort) || webhookPort < 0 || webhookPort > 65535) {
    console.error(`portway operator: --webhook-port: expected a port number, got ${JSON.stringify(values['webhook-port'] ?? env.PORTWAY_WEBHOOK_PORT)}`);
    return 2;
  }
  // $KUBECONFIG, ~/.kube/config or the pod's ServiceAccount (its token read again on every request).
  let connection: KubeConnection;
  try {
    connection = connectionFromEnvironment();
  } catch (err) {
    console.error(`portway operator: ${(err as Error).message}`);
    return 1;
  }
  const image = proxyImage(values['proxy-image'], process.env);
  const identity = process.env.POD_NAME ?? `${hostname()}-${process.pid}`;
  const logger = new Logger({}, { instance: identity });
  const controller = new GatewayController({ connection, render: { defaultImage: image }, logger, identity });
  // Every replica watches (readiness waits for the caches); only the leader reconciles.
  controller.startWatching();
  let leading = false;
  const elect = values['leader-elect'] !== 'false';
  const elector = new LeaderElector({
    connection,
    namespace,
    name: 'portway-operator',
    identity,
    log: logger.lines('info', { component: 'leader-election' }),
    onStartedLeading: () => {
      leading = true;
      controller.metrics.setLeader(true);
      controller.start();
    },
    onStoppedLeading: () => {
      // A replica that lost the lease exits so it restarts clean, as controller-runtime does.
      if (leading) process.exit(1);
    },
  });
  let webhook: RunningWebhook | undefined;
  const health = createServer((req, res) => {
    if (serveControllerEndpoint(req, res, controller)) return;
    // A standby replica is ready too: it serves webhooks and takes over when the leader goes.
    // With the webhook on, ready means serving it: the webhook Service sends calls only to
    // replicas that have their certificate.
    const found = req.url === '/healthz' || req.url === '/readyz';
    const ok = req.url === '/healthz' || (req.url === '/readyz' && (webhookPort === 0 || webhook?.server.listening === true));
    res.writeHead(!found ? 404 : ok ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(!found ? 'not found\n' : ok ? 'ok\n' : 'webhook not serving yet\n');
  });
  health.listen(Number(values['health-port'] ?? 8081), () => logger.info('serving /healthz, /readyz and /metrics', { port: (health.address() as { port: number }).port }));
  if (elect) elector.start();
  else {
    leading = true;
    controller.start();
  }
  let exitCode = 0;
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    if (webhookPort === 0) return;
    startWebhook({
      connection,
      port: webhookPort,
      host: values['webhook-bind-address'] ?? env.PORTWAY_WEBHOOK_BIND_ADDRESS,
      namespace,
      render: { defaultImage: image },
      certDir: values['webhook-cert-dir'] ?? env.PORTWAY_WEBHOOK_CERT_DIR,
      secretName: values['webhook-secret'] ?? env.PORTWAY_WEBHOOK_SECRET ?? 'portway-webhook-tls',
      serviceName: values['webhook-service'] ?? env.PORTWAY_WEBHOOK_SERVICE ?? 'portway-webhook',
      configurationName: values['webhook-configuration'] ?? env.PORTWAY_WEBHOOK_CONFIGURATION ?? 'portway',
      servingValidityMs: servingValidityMs as number | undefined,
      caValidityMs: caValidityMs as number | undefined,
      log: logger.lines('info', { component: 'webhook' }),
    }).then(
      (w) => {
        webhook = w;
        logger.info('serving the admission webhook', { component: 'webhook', port: webhookPort });
      },
      (err: Error) => {
        // Cannot listen (port taken): exit so the kubelet restarts the replica.
        logger.error('admission webhook failed', { component: 'webhook', error: err });
        exitCode = 1;
        resolve();
      },
    );
  });
  await webhook?.stop();
  await elector.stop();
  await controller.stop();
  health.close();
  return exitCode;
}

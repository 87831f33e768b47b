// `portway operator`: the GatewayDeployment reconciler, leader-elected, plus health endpoints.

import { createServer } from 'node:http';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { GatewayController } from '../operator/controller/gateway-controller.js';
import { LeaderElector } from '../operator/controller/leader-election.js';
import { serveControllerEndpoint } from '../operator/controller/http-endpoints.js';
import { Logger } from '../operator/controller/log.js';

const USAGE = `Usage: portway operator [options]

  --namespace NS            namespace of the leader-election Lease (default: $POD_NAMESPACE or "portway-system")
  --leader-elect true|false elect one active reconciler among replicas (default true)
  --proxy-image IMAGE       image for gateway pods when a GatewayDeployment sets none (default: $PORTWAY_PROXY_IMAGE)
  --health-port 8081        /healthz and /readyz
`;

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
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  const image = values['proxy-image'] ?? process.env.PORTWAY_PROXY_IMAGE;
  const identity = process.env.POD_NAME ?? `${hostname()}-${process.pid}`;
  const logger = new Logger({}, { instance: identity });
  const controller = new GatewayController({ kubeConfig, render: image ? { defaultImage: image } : {}, logger, identity });
  // Every replica watches (readiness waits for the caches); only the leader reconciles.
  controller.startWatching();
  let leading = false;
  const elect = values['leader-elect'] !== 'false';
  const elector = new LeaderElector({
    kubeConfig,
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
  const health = createServer((req, res) => {
    if (serveControllerEndpoint(req, res, controller)) return;
    // A standby replica is ready too: it serves webhooks and takes over when the leader goes.
    const ok = req.url === '/healthz' || req.url === '/readyz';
    res.writeHead(ok ? 200 : 404, { 'content-type': 'text/plain' });
    res.end(ok ? 'ok\n' : 'not found\n');
  });
  health.listen(Number(values['health-port'] ?? 8081), () => logger.info('serving /healthz, /readyz and /metrics', { port: (health.address() as { port: number }).port }));
  if (elect) elector.start();
  else {
    leading = true;
    controller.start();
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await elector.stop();
  await controller.stop();
  health.close();
  return 0;
}

// The operator's own HTTP endpoints next to /healthz: /metrics (Prometheus text from the
// controller's registry) and the cache-sync part of /readyz (not ready until every watched
// kind is listed, on standby replicas too, which keep their caches warm to take over).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatewayController } from './gateway-controller.js';

/** Serves /metrics, and /readyz while the caches are not synced; false: not handled here. */
export function serveControllerEndpoint(req: IncomingMessage, res: ServerResponse, controller: GatewayController): boolean {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/metrics') {
    const registry = controller.metrics.registry;
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(text);
      },
      (err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`${err.message}\n`);
      },
    );
    return true;
  }
  if (path === '/readyz' && !controller.isSynced) {
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end('caches not synced yet\n');
    return true;
  }
  return false;
}

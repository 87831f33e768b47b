// The metrics port (Istio's 15090): GET /stats/prometheus renders the proxy's registry.

import type { Server } from 'node:http';
import type { Registry } from 'prom-client';
import { createAdminHttpServer } from './http-server.js';

export function createMetricsServer(registry: Registry): Server {
  return createAdminHttpServer('metrics', {
    '/stats/prometheus': async () => ({ status: 200, body: await registry.metrics(), contentType: registry.contentType }),
  });
}

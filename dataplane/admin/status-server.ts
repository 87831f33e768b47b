// The status port (Istio's 15021): GET /healthz/ready is 200 once the first snapshot is
// applied and 503 before that or while draining — the kubelet's readiness probe and the
// load balancer's health check.

import type { Server } from 'node:http';
import type { ProxyState } from '../serve/proxy-state.js';
import { createAdminHttpServer, text } from './http-server.js';

export function createStatusServer(state: ProxyState): Server {
  return createAdminHttpServer('status', {
    '/healthz/ready': () => {
      if (state.draining) return text(503, 'draining\n');
      if (state.snapshot === undefined) return text(503, 'no configuration applied yet\n');
      return text(200, 'ready\n');
    },
  });
}

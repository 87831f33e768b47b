// The status port (Istio's 15021): GET /healthz/ready is 200 once the first snapshot is
// applied and every listener it configures is bound, 503 before that, while a listener cannot
// bind (port taken), or while draining — the kubelet's readiness probe and the load
// balancer's health check. The body says why.

import type { Server } from 'node:http';
import type { ProxyState } from '../serve/proxy-state.js';
import { createAdminHttpServer, text } from './http-server.js';

export function createStatusServer(state: ProxyState): Server {
  return createAdminHttpServer('status', {
    '/healthz/ready': () => {
      const reason = state.notReadyReason;
      return reason === undefined ? text(200, 'ready\n') : text(503, `${reason}\n`);
    },
  });
}

// The admin side of a proxy: status (readiness), metrics and admin (config dump) servers.

import type { Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { ProxyState } from '../serve/proxy-state.js';
import type { Snapshot } from '../snapshot/types.js';
import { createAdminServer } from './admin-server.js';
import { closeServer, listen } from './http-server.js';
import { createMetricsServer } from './metrics-server.js';
import { createStatusServer } from './status-server.js';

export { ProxyMetrics, RouteSeries } from './metrics.js';
export { runProxyConfig } from './proxy-config.js';

export interface AdminServersOptions {
  /** Readiness (Istio 15021); 0 picks a free port. */
  statusPort: number;
  /** Prometheus (Istio 15090). */
  metricsPort: number;
  /** Config dump (Istio 15000), always on 127.0.0.1. */
  adminPort: number;
  registry: Registry;
  getSnapshot: () => Snapshot | undefined;
  state: ProxyState;
  /** Address of the status and metrics servers (default 0.0.0.0: the kubelet and Prometheus reach them). */
  bindAddress?: string;
}

export interface AdminServers {
  readonly statusPort: number;
  readonly metricsPort: number;
  readonly adminPort: number;
  readonly servers: { readonly status: Server; readonly metrics: Server; readonly admin: Server };
  close(): Promise<void>;
}

export async function startAdminServers(options: AdminServersOptions): Promise<AdminServers> {
  const host = options.bindAddress ?? '0.0.0.0';
  const servers: Server[] = [];
  const start = async (server: Server, port: number, address: string, name: string) => {
    servers.push(server);
    return listen(server, port, address, name);
  };
  try {
    const status = createStatusServer(options.state);
    const metrics = createMetricsServer(options.registry);
    const admin = createAdminServer(options.getSnapshot, options.state);
    const statusPort = await start(status, options.statusPort, host, 'status');
    const metricsPort = await start(metrics, options.metricsPort, host, 'metrics');
    const adminPort = await start(admin, options.adminPort, '127.0.0.1', 'admin');
    return {
      statusPort,
      metricsPort,
      adminPort,
      servers: { status, metrics, admin },
      close: async () => {
        await Promise.all(servers.map(closeServer));
      },
    };
  } catch (err) {
    await Promise.all(servers.map(closeServer));
    throw err;
  }
}

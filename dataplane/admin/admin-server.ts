// The admin port (Istio's 15000), bound to 127.0.0.1 only: GET /config_dump is the serving
// snapshot as JSON — listeners, route tables (routes with their matches, regexes by source),
// clusters with endpoints, credential references (never key material) and diagnostics;
// `?resource=listeners|routes|clusters|secrets|diagnostics` (comma-separated) selects sections.

import type { Server } from 'node:http';
import type { ProxyState } from '../serve/proxy-state.js';
import { snapshotToJson, type SnapshotSection } from '../snapshot/to-json.js';
import type { Snapshot } from '../snapshot/types.js';
import { createAdminHttpServer, json, text } from './http-server.js';

export const CONFIG_DUMP_SECTIONS: readonly SnapshotSection[] = ['listeners', 'routes', 'clusters', 'secrets', 'diagnostics'];

export function createAdminServer(getSnapshot: () => Snapshot | undefined, state: ProxyState): Server {
  return createAdminHttpServer('admin', {
    '/config_dump': (_req, url) => {
      const snapshot = getSnapshot();
      if (snapshot === undefined) return text(503, 'no configuration applied yet\n');
      const resource = url.searchParams.get('resource');
      let sections: SnapshotSection[] | undefined;
      if (resource !== null && resource !== '') {
        sections = [];
        for (const r of resource.split(',').map((s) => s.trim())) {
          if (!(CONFIG_DUMP_SECTIONS as readonly string[]).includes(r)) return text(400, `unknown resource ${JSON.stringify(r)}; expected one of ${CONFIG_DUMP_SECTIONS.join(', ')}\n`);
          sections.push(r as SnapshotSection);
        }
      }
      return json(200, snapshotToJson(snapshot, sections));
    },
    '/server_info': () =>
      json(200, {
        state: state.draining ? 'DRAINING' : state.ready ? 'LIVE' : 'INITIALIZING',
        generation: state.generation,
        lastReloadSuccess: state.lastReloadSuccess,
        rejectedObjects: state.rejectedObjects,
        activeConnections: state.activeConnections,
        uptimeSeconds: Math.round(process.uptime()),
        node: process.version,
      }),
    '/ready': () => (state.ready ? text(200, 'LIVE\n') : text(503, state.draining ? 'DRAINING\n' : 'INITIALIZING\n')),
  });
}

// `portway proxy-config listeners|routes|clusters|endpoints|secrets|diagnostics [--admin URL] [-o table|json]`:
// reads a running proxy's /config_dump and prints it as tables, the way `istioctl
// proxy-config` does for Envoy. Formatting is pure (formatProxyConfig) and tested on its own.

import { parseArgs } from 'node:util';

export const PROXY_CONFIG_USAGE = `Usage: portway proxy-config <listeners|routes|clusters|endpoints|secrets|diagnostics> [options]

  --admin URL     the proxy's admin address (default http://127.0.0.1:15000)
  -o, --output    table (default) or json`;

export type ProxyConfigKind = 'listeners' | 'routes' | 'clusters' | 'endpoints' | 'secrets' | 'diagnostics';

const RESOURCE: Record<ProxyConfigKind, string> = {
  listeners: 'listeners',
  routes: 'routes',
  clusters: 'clusters',
  endpoints: 'clusters',
  secrets: 'secrets',
  diagnostics: 'diagnostics',
};

export async function runProxyConfig(args: string[]): Promise<number> {
  let kind: ProxyConfigKind;
  let admin: string;
  let output: string;
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: { admin: { type: 'string' }, output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help) {
      console.log(PROXY_CONFIG_USAGE);
      return 0;
    }
    const k = positionals[0];
    if (positionals.length !== 1 || k === undefined || !(k in RESOURCE)) throw new Error(positionals.length === 0 ? 'which resource?' : `unknown resource ${JSON.stringify(positionals.join(' '))}`);
    kind = k as ProxyConfigKind;
    admin = (values.admin ?? 'http://127.0.0.1:15000').replace(/\/+$/, '');
    if (!/^https?:\/\//.test(admin)) admin = `http://${admin}`;
    output = values.output ?? 'table';
    if (output !== 'table' && output !== 'json') throw new Error(`--output: expected table or json, got ${JSON.stringify(output)}`);
  } catch (err) {
    console.error(`portway proxy-config: ${(err as Error).message}\n\n${PROXY_CONFIG_USAGE}`);
    return 2;
  }
  let dump: ConfigDump;
  try {
    const res = await fetch(`${admin}/config_dump?resource=${RESOURCE[kind]}`, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`${res.status} ${(await res.text()).trim()}`);
    dump = (await res.json()) as ConfigDump;
  } catch (err) {
    console.error(`portway proxy-config: cannot read ${admin}/config_dump: ${(err as Error).message}`);
    return 1;
  }
  process.stdout.write(output === 'json' ? `${JSON.stringify(kind === 'endpoints' ? dump.clusters : dump[RESOURCE[kind] as keyof ConfigDump], null, 2)}\n` : formatProxyConfig(kind, dump));
  return 0;
}

// The config dump's JSON shape (snapshot/to-json.ts), as far as the tables read it.
interface ConfigDump {
  version?: number;
  listeners?: Array<{
    name: string;
    bindAddress: string;
    bindPort: number;
    gatewayPort: number;
    protocol: string;
    filterChains: Array<{ name: string; servers: string[]; serverNames: string[]; tls?: { mode: string }; http?: { name: string; virtualHosts: string[] }; tcp?: unknown[]; tlsPassthrough?: unknown[]; httpsRedirect: boolean }>;
  }>;
  routes?: Array<{ name: string; virtualHosts: Array<{ name: string; domains: string[]; httpsRedirect?: boolean; routes: DumpRoute[] }> }>;
  clusters?: Array<{
    name: string;
    host: string;
    port: number;
    subset?: string;
    protocol: string;
    resolution: string;
    endpoints: Array<{ address: string; port: number; weight: number; zone?: string; ref?: string; labels?: Record<string, string> }>;
    policy: { loadBalancer: { kind: string; hashOn?: { kind: string; name?: string } }; tls?: { mode: string } };
    origin?: string;
  }>;
  secrets?: Array<{ key: string; kind: string; namespace?: string; name?: string; files?: Record<string, string | undefined> }>;
  diagnostics?: Array<{ severity: string; kind: string; namespace: string; name: string; field: string; message: string }>;
}

type DumpMatcher = { kind: string; value?: string; source?: string; ignoreCase?: boolean };

interface DumpRoute {
  name: string;
  virtualService: string;
  matches: Array<{
    uri?: DumpMatcher;
    scheme?: DumpMatcher;
    method?: DumpMatcher;
    authority?: DumpMatcher;
    headers?: Array<{ name: string; matcher?: DumpMatcher }>;
    withoutHeaders?: Array<{ name: string; matcher?: DumpMatcher }>;
    queryParams?: Array<{ name: string; matcher?: DumpMatcher }>;
    port?: number;
  }>;
  action: { kind: string; destinations?: Array<{ cluster: string; weight: number }>; totalWeight?: number; code?: number; uri?: string; authority?: string; scheme?: string; status?: number };
}

export function formatProxyConfig(kind: ProxyConfigKind, dump: ConfigDump): string {
  switch (kind) {
    case 'listeners':
      return table(
        ['NAME', 'ADDRESS', 'PORT', 'GATEWAY PORT', 'PROTOCOL', 'CHAIN', 'SNI', 'TLS', 'SERVERS', 'ROUTES'],
        (dump.listeners ?? []).flatMap((l) =>
          l.filterChains.map((c) => [
            l.name,
            l.bindAddress,
            String(l.bindPort),
            String(l.gatewayPort),
            l.protocol,
            c.name,
            c.serverNames.length > 0 ? c.serverNames.join(',') : '*',
            c.tls?.mode ?? '-',
            c.servers.join(','),
            c.httpsRedirect ? 'https redirect' : c.http ? `${c.http.name} (${c.http.virtualHosts.length} hosts)` : c.tlsPassthrough ? `${c.tlsPassthrough.length} tls routes` : c.tcp ? `${c.tcp.length} tcp routes` : '-',
          ]),
        ),
      );
    case 'routes':
      return table(
        ['ROUTE TABLE', 'VIRTUAL HOST', 'DOMAINS', 'MATCH', 'VIRTUAL SERVICE', 'ROUTE', 'ACTION'],
        (dump.routes ?? []).flatMap((t) =>
          t.virtualHosts.flatMap((vh) => {
            if (vh.routes.length === 0) return [[t.name, vh.name, vh.domains.join(','), '-', '-', '-', vh.httpsRedirect ? 'https redirect' : '404']];
            return vh.routes.map((r) => [t.name, vh.name, vh.domains.join(','), describeMatches(r), r.virtualService, r.name, vh.httpsRedirect ? 'https redirect' : describeAction(r.action)]);
          }),
        ),
      );
    case 'clusters':
      return table(
        ['NAME', 'HOST', 'PORT', 'SUBSET', 'PROTOCOL', 'RESOLUTION', 'LB', 'TLS', 'ENDPOINTS', 'ORIGIN'],
        (dump.clusters ?? []).map((c) => [
          c.name,
          c.host,
          String(c.port),
          c.subset ?? '-',
          c.protocol,
          c.resolution,
          c.policy.loadBalancer.hashOn ? `${c.policy.loadBalancer.kind}(${c.policy.loadBalancer.hashOn.kind}${c.policy.loadBalancer.hashOn.name ? `:${c.policy.loadBalancer.hashOn.name}` : ''})` : c.policy.loadBalancer.kind,
          c.policy.tls?.mode ?? '-',
          String(c.endpoints.length),
          c.origin ?? '-',
        ]),
      );
    case 'endpoints':
      return table(
        ['ENDPOINT', 'CLUSTER', 'WEIGHT', 'ZONE', 'REF', 'LABELS'],
        (dump.clusters ?? []).flatMap((c) =>
          c.endpoints.map((e) => [
            `${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`,
            c.name,
            String(e.weight),
            e.zone ?? '-',
            e.ref ?? '-',
            Object.entries(e.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(',') || '-',
          ]),
        ),
      );
    case 'secrets':
      return table(
        ['CREDENTIAL', 'KIND', 'SOURCE'],
        (dump.secrets ?? []).map((s) => [
          s.key,
          s.kind,
          s.kind === 'secret' ? `${s.namespace ?? '-'}/${s.name ?? '-'}` : Object.entries(s.files ?? {}).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(' ') || '-',
        ]),
      );
    case 'diagnostics':
      return table(
        ['SEVERITY', 'OBJECT', 'FIELD', 'MESSAGE'],
        (dump.diagnostics ?? []).map((d) => [d.severity.toUpperCase(), `${d.kind} ${d.namespace}/${d.name}`, d.field || '-', d.message]),
      );
  }
}

function describeMatcher(m: DumpMatcher): string {
  switch (m.kind) {
    case 'prefix':
      return `${m.value}*${m.ignoreCase ? ' (i)' : ''}`;
    case 'exact':
      return `${m.value}${m.ignoreCase ? ' (i)' : ''}`;
    case 'regex':
      return `~${m.source}`;
    default:
      return JSON.stringify(m);
  }
}

function describeMatches(r: DumpRoute): string {
  if (r.matches.length === 0) return '/*';
  return r.matches
    .map((m) => {
      const parts: string[] = [];
      parts.push(m.uri ? describeMatcher(m.uri) : '/*');
      if (m.method) parts.push(`method=${describeMatcher(m.method)}`);
      if (m.scheme) parts.push(`scheme=${describeMatcher(m.scheme)}`);
      if (m.authority) parts.push(`authority=${describeMatcher(m.authority)}`);
      for (const h of m.headers ?? []) parts.push(`header ${h.name}${h.matcher ? `=${describeMatcher(h.matcher)}` : ' present'}`);
      for (const h of m.withoutHeaders ?? []) parts.push(`without ${h.name}${h.matcher ? `=${describeMatcher(h.matcher)}` : ''}`);
      for (const q of m.queryParams ?? []) parts.push(`query ${q.name}${q.matcher ? `=${describeMatcher(q.matcher)}` : ' present'}`);
      if (m.port !== undefined) parts.push(`port=${m.port}`);
      return parts.join(' ');
    })
    .join(' | ');
}

function describeAction(a: DumpRoute['action']): string {
  switch (a.kind) {
    case 'route': {
      const total = a.totalWeight || 1;
      const ds = a.destinations ?? [];
      return ds.map((d) => (ds.length > 1 ? `${d.cluster} ${Math.round((d.weight / total) * 100)}%` : d.cluster)).join(', ');
    }
    case 'redirect':
      return `redirect ${a.code ?? 301} ${a.scheme ? `${a.scheme}://` : ''}${a.authority ?? ''}${a.uri ?? ''}`.trim();
    case 'directResponse':
      return `direct response ${a.status}`;
    default:
      return a.kind;
  }
}

/** Left-aligned columns, two spaces apart, like kubectl and istioctl. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

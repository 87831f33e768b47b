// The snapshot as plain JSON: for /config_dump, `portway proxy-config` and golden tests.
// Compiled functions become their sources; credentials carry references, never key material.

import type { Snapshot, StringMatcher } from './types.js';

export type SnapshotSection = 'listeners' | 'routes' | 'clusters' | 'secrets' | 'diagnostics';

export function snapshotToJson(snapshot: Snapshot, sections?: readonly SnapshotSection[]): Record<string, unknown> {
  const want = (s: SnapshotSection) => !sections || sections.includes(s);
  const out: Record<string, unknown> = { version: snapshot.version, builtAt: snapshot.builtAt };
  if (want('listeners')) {
    out.listeners = snapshot.listeners.map((l) => ({
      ...l,
      filterChains: l.filterChains.map((c) => ({ ...c, http: c.http ? { name: c.http.name, virtualHosts: c.http.virtualHosts.map((v) => v.name) } : undefined })),
    }));
  }
  if (want('routes')) {
    out.routes = snapshot.listeners.flatMap((l) => l.filterChains.flatMap((c) => (c.http ? [c.http] : []))).map((table) => ({
      name: table.name,
      virtualHosts: table.virtualHosts,
    }));
  }
  if (want('clusters')) out.clusters = [...snapshot.clusters.values()];
  if (want('secrets')) out.secrets = [...snapshot.credentials.values()];
  if (want('diagnostics')) out.diagnostics = snapshot.diagnostics;
  return JSON.parse(JSON.stringify(out, replacer)) as Record<string, unknown>;
}

function replacer(key: string, value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries(value);
  if (typeof value === 'function') return undefined;
  if (Buffer.isBuffer(value) || (value && typeof value === 'object' && (value as { type?: string }).type === 'Buffer')) {
    const b = Buffer.isBuffer(value) ? value : Buffer.from((value as { data: number[] }).data);
    return b.toString('utf8');
  }
  if (key === 'uriRegex' && value && typeof value === 'object') {
    const { match, rewrite } = value as { match: string; rewrite: string };
    return { match, rewrite };
  }
  return value;
}

export function describeMatcher(m: StringMatcher): string {
  return m.kind === 'regex' ? `regex:${m.source}` : `${m.kind}:${m.value}${m.ignoreCase ? ' (ignore case)' : ''}`;
}

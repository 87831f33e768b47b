// The snapshot across a process boundary: the primary translates once and sends the result
// to its workers (--concurrency), which only re-create the compiled functions (regexes).

import { compileRegex, compileRegexRewrite } from '../translate/string-matchers.js';
import type { Snapshot } from './types.js';

export interface WireSnapshot {
  json: string;
}

export function snapshotToWire(snapshot: Snapshot): WireSnapshot {
  return {
    json: JSON.stringify(snapshot, (key, value: unknown) => {
      if (value instanceof Map) return { $map: [...value.entries()] };
      if (typeof value === 'function') return undefined;
      if (value && typeof value === 'object' && (value as { type?: string }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)) {
        return { $buffer: Buffer.from((value as { data: number[] }).data).toString('base64') };
      }
      return value;
    }),
  };
}

export function snapshotFromWire(wire: WireSnapshot): Snapshot {
  return JSON.parse(wire.json, (key, value: unknown) => {
    if (value && typeof value === 'object') {
      const v = value as Record<string, unknown>;
      if (Array.isArray(v.$map)) return new Map(v.$map as Array<[unknown, unknown]>);
      if (typeof v.$buffer === 'string') return Buffer.from(v.$buffer, 'base64');
      if (v.kind === 'regex' && typeof v.source === 'string') {
        const re = compileRegex(v.source);
        return { ...v, test: re.ok ? re.value : () => false };
      }
      if (key === 'uriRegex' && typeof v.match === 'string' && typeof v.rewrite === 'string') {
        const rw = compileRegexRewrite(v.match, v.rewrite);
        return { ...v, replace: rw.ok ? rw.value : (path: string) => path };
      }
    }
    return value;
  }) as Snapshot;
}

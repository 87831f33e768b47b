// Istio durations ("1s", "0.5s", "100ms", "1m", "1h30m") in milliseconds.

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, 'µs': 0.001, ns: 0.000001 };
const DURATION = /^(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/;

/** Parses a protobuf/Go duration; returns an error message for anything else. */
export function parseDuration(value: unknown): number | { error: string } {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value * 1000;
  if (typeof value !== 'string' || value.length === 0) return { error: `invalid duration ${JSON.stringify(value)}` };
  let rest = value.trim();
  let total = 0;
  while (rest.length > 0) {
    const m = DURATION.exec(rest);
    if (!m) return { error: `invalid duration ${JSON.stringify(value)}: expected e.g. "1s", "500ms", "1m30s"` };
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return total;
}

// Polling for end-to-end tests: the control plane converges asynchronously (controllers,
// kwok stages, informer caches), so tests wait for a state instead of sleeping.

export interface EventuallyOptions {
  /** Give up after this long (default 60 s). */
  timeoutMs?: number;
  /** Time between attempts (default 250 ms). */
  intervalMs?: number;
  /** Names the awaited state in the timeout error. */
  what?: string;
}

/**
 * Calls `attempt` until it returns a value other than undefined/false without throwing, and
 * returns that value. On timeout, throws an error naming `what` and carrying the last failure.
 */
export async function eventually<T>(
  attempt: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 60_000, intervalMs = 250, what = 'condition' }: EventuallyOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await attempt();
      if (v !== undefined && v !== false) return v;
      last = undefined;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: ${last.message}` : last !== undefined ? `: ${String(last)}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`, { cause: last });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

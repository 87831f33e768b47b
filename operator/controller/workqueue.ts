// A controller work queue in the client-go mould: keys are deduplicated, one worker handles a
// key at a time (a key added while it is processed runs again afterwards), failures back off
// per key exponentially, and a token bucket bounds the overall rate of retries.
//
// Two departures from client-go, both so that a user's change is reconciled promptly while
// the queue holds a backlog (1,000 gateways whose pods become ready, a periodic resync):
// - keys wait in three lanes, taken in order: `high` (the GatewayDeployment itself changed),
//   `normal` (an owned object changed, a retry), `low` (the periodic resync). A key added again
//   with a higher priority moves up.
// - the token bucket delays retries only (as client-go's default controller rate limiter
//   does); a fresh key is never held behind it.

export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Token bucket of retries (addRateLimited): sustained retries per second and burst. */
  qps?: number;
  burst?: number;
  now?: () => number;
}

/** Which lane a key waits in: high is taken first. */
export type Priority = 'high' | 'normal' | 'low';
const PRIORITIES: readonly Priority[] = ['high', 'normal', 'low'];

export class WorkQueue {
  /** One insertion-ordered set per priority: FIFO within a lane, O(1) take and move. */
  private readonly lanes: Array<Set<string>> = [new Set(), new Set(), new Set()];
  /** Queued key → its lane. */
  private readonly queued = new Map<string, number>();
  private readonly processing = new Set<string>();
  /** Keys added while being processed → the lane to queue them in afterwards. */
  private readonly dirty = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private waiters: Array<() => void> = [];
  private tokens: number;
  private lastRefill: number;
  private shuttingDown = false;

  constructor(private readonly options: WorkQueueOptions = {}) {
    this.tokens = options.burst ?? 100;
    this.lastRefill = this.now();
  }

  get length(): number {
    return this.queued.size;
  }

  add(key: string, priority: Priority = 'normal'): void {
    if (this.shuttingDown) return;
    const lane = PRIORITIES.indexOf(priority);
    if (this.processing.has(key)) {
      this.dirty.set(key, Math.min(lane, this.dirty.get(key) ?? lane));
      return;
    }
    const current = this.queued.get(key);
    if (current !== undefined) {
      if (current <= lane) return;
      this.lanes[current]!.delete(key);
    }
    this.queued.set(key, lane);
    this.lanes[lane]!.add(key);
    this.wake();
  }

  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    const existing = this.timers.get(key);
    if (existing) clearTimeout(existing);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, timer);
  }

  /**
   * Requeues after this key's next backoff delay (base × 2^failures, capped), or later when
   * the token bucket of retries is empty (many keys failing at once: the apiserver is away).
   */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const backoff = Math.min(this.options.maxDelayMs ?? 60_000, (this.options.baseDelayMs ?? 100) * 2 ** n);
    const delay = Math.max(backoff, this.reserveToken());
    this.addAfter(key, delay);
    return delay;
  }

  /** A key that succeeded starts its backoff from the beginning next time. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failureCount(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Runs `worker` on keys with up to `concurrency` keys in flight, until shutDown(). */
  async run(worker: (key: string) => Promise<void>, concurrency = 2): Promise<void> {
    const loops = Array.from({ length: concurrency }, async () => {
      for (;;) {
        const key = await this.next();
        if (key === undefined) return;
        try {
          await worker(key);
        } finally {
          this.done(key);
        }
      }
    });
    await Promise.all(loops);
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.wake();
  }

  private async next(): Promise<string | undefined> {
    for (;;) {
      if (this.shuttingDown) return undefined;
      const lane = this.lanes.find((l) => l.size > 0);
      if (lane) {
        const key = lane.values().next().value as string;
        lane.delete(key);
        this.queued.delete(key);
        this.processing.add(key);
        return key;
      }
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  private done(key: string): void {
    this.processing.delete(key);
    const lane = this.dirty.get(key);
    if (lane === undefined) return;
    this.dirty.delete(key);
    this.add(key, PRIORITIES[lane]);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Takes a token, borrowing from the future when none is left; returns how long until it is due. */
  private reserveToken(): number {
    const qps = this.options.qps ?? 10;
    const burst = this.options.burst ?? 100;
    const now = this.now();
    this.tokens = Math.min(burst, this.tokens + ((now - this.lastRefill) / 1000) * qps);
    this.lastRefill = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / qps) * 1000);
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}

// A controller work queue in the client-go mould: keys are deduplicated, one worker handles a
// key at a time (a key added while it is processed runs again afterwards), failures back off
// per key exponentially, and a token bucket bounds the overall rate.

export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Token bucket: sustained keys per second and burst. */
  qps?: number;
  burst?: number;
  now?: () => number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
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
    return this.queue.length;
  }

  add(key: string): void {
    if (this.shuttingDown) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
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

  /** Requeues after this key's next backoff delay (base × 2^failures, capped). */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = Math.min(this.options.maxDelayMs ?? 60_000, (this.options.baseDelayMs ?? 100) * 2 ** n);
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
      if (this.queue.length > 0) {
        const wait = this.takeToken();
        if (wait > 0) {
          await new Promise((r) => setTimeout(r, wait).unref());
          continue;
        }
        const key = this.queue.shift()!;
        this.queued.delete(key);
        this.processing.add(key);
        return key;
      }
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  private done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Returns 0 when a token was taken, else how long to wait for one. */
  private takeToken(): number {
    const qps = this.options.qps ?? 10;
    const burst = this.options.burst ?? 100;
    const now = this.now();
    this.tokens = Math.min(burst, this.tokens + ((now - this.lastRefill) / 1000) * qps);
    this.lastRefill = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) / qps) * 1000);
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}

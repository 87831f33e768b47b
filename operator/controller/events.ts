// An event recorder in the client-go mould: core/v1 Events on the object they are about,
// with reason and message. A repeat of the same (object, type, reason, message) within the
// correlation window patches the existing Event's count and lastTimestamp instead of
// creating another one. Recording never fails a reconcile: a failed write is logged and
// counted, and the Event is lost, as in client-go.
//
// Writes are fire-and-forget for the reconciler, so they are bounded here: a few at a time,
// and a bounded backlog beyond which new Events are dropped (client-go's broadcaster drops
// too). 1,000 new gateways make 7,000 "Created" Events; without a bound they would take every
// connection to the apiserver and every seat its flow control gives the operator, and the
// reconciles' own requests would wait behind them.

import type { KubeConnection } from '../../kube/connection.js';
import { KubeApiError, kubeRequest, objectPath } from '../../kube/kube-request.js';

export type EventType = 'Normal' | 'Warning';

export interface EventSubject {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export interface EventRecorderOptions {
  connection: KubeConnection;
  /** source.component and reportingComponent. */
  component: string;
  /** reportingInstance (the pod name). */
  instance?: string;
  /** Repeats within this window update one Event (client-go: 10 minutes). */
  windowMs?: number;
  /** Distinct events remembered for deduplication (an LRU). */
  maxCached?: number;
  /** Event writes in flight at once (default 2). */
  maxInFlight?: number;
  /** Events not yet written (in flight or waiting) beyond which new ones are dropped (default 1,000). */
  maxPending?: number;
  onError?: (err: Error, event: { reason: string; message: string }) => void;
  now?: () => Date;
}

interface Seen {
  name: string;
  namespace: string;
  count: number;
  firstTimestamp: string;
  lastSeen: number;
}

/** Event messages are capped at 1 KiB by the apiserver's validation. */
const MAX_MESSAGE = 1024;

export class EventRecorder {
  private readonly seen = new Map<string, Seen>();
  /** One write at a time per deduplication key, so a repeat never races its own create. */
  private readonly chains = new Map<string, Promise<void>>();
  private sequence = 0;
  private inFlight = 0;
  /** Recorded and not yet written. */
  private pending = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly o: EventRecorderOptions) {}

  /** Records an event; resolves when it is written (or given up on). Never rejects. */
  record(subject: EventSubject, type: EventType, reason: string, message: string): Promise<void> {
    const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message;
    const key = [subject.metadata.uid ?? `${subject.metadata.namespace}/${subject.metadata.name}`, type, reason, text].join('\u0000');
    if (this.pending >= (this.o.maxPending ?? 1000)) {
      this.o.onError?.(new Error(`${this.pending} events waiting to be written: dropped`), { reason, message: text });
      return Promise.resolve();
    }
    this.pending++;
    const previous = this.chains.get(key) ?? Promise.resolve();
    const next = previous
      .then(() => this.bounded(() => this.write(key, subject, type, reason, text)))
      .catch((err: Error) => this.o.onError?.(err, { reason, message: text }))
      .finally(() => this.pending--);
    this.chains.set(key, next);
    void next.then(() => {
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
    return next;
  }

  /** Resolves when every event recorded so far is written. */
  async flush(): Promise<void> {
    await Promise.all([...this.chains.values()]);
  }

  /** Runs `fn` when fewer than maxInFlight writes are running. */
  private async bounded(fn: () => Promise<void>): Promise<void> {
    // A finished write hands its slot to the next waiting one.
    if (this.inFlight >= (this.o.maxInFlight ?? 2)) await new Promise<void>((r) => this.waiting.push(r));
    else this.inFlight++;
    try {
      await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.inFlight--;
    }
  }

  private async write(key: string, subject: EventSubject, type: EventType, reason: string, message: string): Promise<void> {
    const now = (this.o.now ?? (() => new Date()))();
    const ts = now.toISOString().replace(/\.\d+Z$/, 'Z');
    const seen = this.seen.get(key);
    if (seen && now.getTime() - seen.lastSeen < (this.o.windowMs ?? 600_000)) {
      try {
        await kubeRequest(this.o.connection, {
          method: 'PATCH',
          path: objectPath('v1', 'events', seen.namespace, seen.name),
          contentType: 'application/merge-patch+json',
          body: { count: seen.count + 1, lastTimestamp: ts },
        });
        seen.count++;
        seen.lastSeen = now.getTime();
        this.touch(key, seen);
        return;
      } catch (err) {
        // Gone (expired by the apiserver's event TTL): start a new one below.
        if (!(err instanceof KubeApiError && err.statusCode === 404)) throw err;
      }
    }
    const namespace = subject.metadata.namespace ?? 'default';
    // client-go names events <object>.<unix nanos in hex>; a sequence keeps them unique within a millisecond.
    const nanos = BigInt(now.getTime()) * 1_000_000n + BigInt(this.sequence++ % 1_000_000);
    const name = `${subject.metadata.name}.${nanos.toString(16)}`;
    await kubeRequest(this.o.connection, {
      method: 'POST',
      path: objectPath('v1', 'events', namespace),
      body: {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: subject.apiVersion,
          kind: subject.kind,
          name: subject.metadata.name,
          namespace: subject.metadata.namespace,
          uid: subject.metadata.uid,
          resourceVersion: subject.metadata.resourceVersion,
        },
        type,
        reason,
        message,
        count: 1,
        firstTimestamp: ts,
        lastTimestamp: ts,
        source: { component: this.o.component },
        reportingComponent: this.o.component,
        reportingInstance: this.o.instance ?? '',
      },
    });
    this.touch(key, { name, namespace, count: 1, firstTimestamp: ts, lastSeen: now.getTime() });
  }

  private touch(key: string, seen: Seen): void {
    this.seen.delete(key);
    this.seen.set(key, seen);
    const max = this.o.maxCached ?? 4096;
    while (this.seen.size > max) this.seen.delete(this.seen.keys().next().value!);
  }
}

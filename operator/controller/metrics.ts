// The operator's Prometheus metrics, on a Registry of its own (nothing global, so tests and
// a proxy in the same process never share counters): reconciles by result, reconcile
// duration, work queue depth, errors by operation, leadership, and the process metrics.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type ReconcileResult = 'success' | 'error' | 'invalid' | 'conflict' | 'deleted';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<'result'>;
  readonly reconcileDuration: Histogram<'result'>;
  readonly errors: Counter<'operation'>;
  readonly events: Counter<'type' | 'reason'>;
  private readonly queueDepth: Gauge;
  private readonly leader: Gauge;
  private readonly synced: Gauge;

  constructor(opts: { queueDepth?: () => number; processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.reconciles = new Counter({ name: 'portway_operator_reconcile_total', help: 'GatewayDeployment reconciles by result.', labelNames: ['result'], registers });
    for (const result of ['success', 'error', 'invalid', 'conflict', 'deleted']) this.reconciles.inc({ result }, 0);
    this.reconcileDuration = new Histogram({
      name: 'portway_operator_reconcile_duration_seconds',
      help: 'Time to reconcile one GatewayDeployment (read, render, apply, prune, status).',
      labelNames: ['result'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.errors = new Counter({ name: 'portway_operator_errors_total', help: 'Failed API operations by operation (apply, delete, status, event, finalizer, read).', labelNames: ['operation'], registers });
    this.events = new Counter({ name: 'portway_operator_events_total', help: 'Events recorded on GatewayDeployments by type and reason.', labelNames: ['type', 'reason'], registers });
    const depth = opts.queueDepth ?? (() => 0);
    this.queueDepth = new Gauge({
      name: 'portway_operator_workqueue_depth',
      help: 'Keys waiting in the reconcile work queue.',
      registers,
      collect() {
        this.set(depth());
      },
    });
    this.leader = new Gauge({ name: 'portway_operator_leader', help: '1 while this replica holds the leader-election Lease.', registers });
    this.synced = new Gauge({ name: 'portway_operator_cache_synced', help: '1 once every watched kind has been listed.', registers });
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  setLeader(leading: boolean): void {
    this.leader.set(leading ? 1 : 0);
  }

  setSynced(synced: boolean): void {
    this.synced.set(synced ? 1 : 0);
  }

  /** Times a reconcile; the result is decided when it ends. */
  startReconcile(): (result: ReconcileResult) => void {
    const end = this.reconcileDuration.startTimer();
    return (result) => {
      end({ result });
      this.reconciles.inc({ result });
    };
  }
}

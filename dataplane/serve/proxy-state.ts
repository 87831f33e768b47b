// The running proxy's shared state: what readiness, the metrics and the listeners read.
// One object, written by the data plane (snapshot applied, drain started) and by whoever
// reports config reloads; read by the admin servers.

import type { Snapshot } from '../snapshot/types.js';

export class ProxyState {
  /** The snapshot the listeners serve (undefined before the first apply). */
  snapshot: Snapshot | undefined;
  /** Set by drain(): readiness fails at once, responses carry `Connection: close`. */
  draining = false;
  /** Open downstream connections across every listener. */
  activeConnections = 0;
  /** Whether the latest configuration change was applied (translate + listeners). */
  lastReloadSuccess = true;
  /** Objects rejected by the translator in the serving snapshot (errors only). */
  rejectedObjects = 0;
  /** Listeners of the serving snapshot that could not bind ("name on addr:port: why"): not ready while any. */
  unboundListeners: string[] = [];
  private readonly drainListeners = new Set<() => void>();

  /** The first snapshot was applied, every listener of it is bound, and the proxy is not draining. */
  get ready(): boolean {
    return this.notReadyReason === undefined;
  }

  /** Why readiness fails, or undefined when ready. */
  get notReadyReason(): string | undefined {
    if (this.draining) return 'draining';
    if (this.snapshot === undefined) return 'no configuration applied yet';
    if (this.unboundListeners.length > 0) return `listeners not bound: ${this.unboundListeners.join('; ')}`;
    return undefined;
  }

  /** The serving snapshot's version (0 before the first). */
  get generation(): number {
    return this.snapshot?.version ?? 0;
  }

  recordApplied(snapshot: Snapshot, ok: boolean): void {
    this.snapshot = snapshot;
    // A config file that does not parse (a diagnostic of kind File) fails the reload, although
    // everything else, and that file's last good objects, keep serving.
    this.lastReloadSuccess = ok && !snapshot.diagnostics.some((d) => d.kind === 'File' && d.severity === 'error');
    this.rejectedObjects = countRejectedObjects(snapshot);
  }

  /** For the caller whose translation or source failed: the last good snapshot keeps serving. */
  recordReloadFailure(): void {
    this.lastReloadSuccess = false;
  }

  startDraining(): void {
    if (this.draining) return;
    this.draining = true;
    for (const listener of this.drainListeners) listener();
  }

  onDrain(listener: () => void): () => void {
    this.drainListeners.add(listener);
    return () => this.drainListeners.delete(listener);
  }
}

/** Distinct objects with at least one error diagnostic. */
export function countRejectedObjects(snapshot: Snapshot): number {
  const objects = new Set<string>();
  for (const d of snapshot.diagnostics) if (d.severity === 'error') objects.add(`${d.kind}/${d.namespace}/${d.name}`);
  return objects.size;
}

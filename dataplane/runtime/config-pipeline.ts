// Store → translate → snapshot, debounced: a burst of changes becomes one new snapshot.
// A translator failure (a bug, never bad input) keeps the last good snapshot serving.

import { EventEmitter } from 'node:events';
import type { ObjectStore } from '../store/object-store.js';
import type { Diagnostic, Snapshot } from '../snapshot/types.js';
import { formatDiagnostic } from '../translate/diagnostics.js';
import { translate, type ProxyIdentity } from '../translate/index.js';

export interface ConfigPipelineOptions {
  debounceMs?: number;
  log?: (line: string) => void;
}

export declare interface ConfigPipeline {
  on(event: 'snapshot', listener: (snapshot: Snapshot) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}

export class ConfigPipeline extends EventEmitter {
  private version = 0;
  private timer?: NodeJS.Timeout;
  private current?: Snapshot;
  private reported = new Set<string>();
  lastBuildOk = true;

  constructor(
    private readonly store: ObjectStore,
    private readonly identity: ProxyIdentity,
    private readonly options: ConfigPipelineOptions = {},
  ) {
    super();
    store.on('change', () => this.schedule());
  }

  get snapshot(): Snapshot | undefined {
    return this.current;
  }

  /** Builds a snapshot now (used at start-up, before the first debounce). */
  rebuild(): Snapshot | undefined {
    clearTimeout(this.timer);
    this.timer = undefined;
    let next: Snapshot;
    try {
      next = translate(this.store.contents(), this.identity, { version: this.version + 1, builtAt: new Date().toISOString() });
    } catch (err) {
      this.lastBuildOk = false;
      this.log(`error: translating the configuration failed, the last good snapshot keeps serving: ${(err as Error).stack ?? err}`);
      this.emit('error', err as Error);
      return this.current;
    }
    this.version = next.version;
    this.lastBuildOk = true;
    this.reportNew(next.diagnostics);
    this.current = next;
    this.emit('snapshot', next);
    return next;
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => this.rebuild(), this.options.debounceMs ?? 100);
  }

  /** Each diagnostic is logged once while it persists, and again if it comes back later. */
  private reportNew(diagnostics: Diagnostic[]): void {
    const now = new Set<string>();
    for (const d of diagnostics) {
      const line = formatDiagnostic(d);
      now.add(line);
      if (!this.reported.has(line)) this.log(line);
    }
    this.reported = now;
  }

  private log(line: string): void {
    (this.options.log ?? ((l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`)))(line);
  }
}

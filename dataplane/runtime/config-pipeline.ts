// Store → translate → snapshot, debounced: a burst of changes becomes one new snapshot.
// A translator failure (a bug, never bad input) keeps the last good snapshot serving.

import { EventEmitter } from 'node:events';
import type { ObjectStore } from '../store/object-store.js';
import type { Diagnostic, Snapshot } from '../snapshot/types.js';
import { formatDiagnostic } from '../translate/diagnostics.js';
import { translate, type ProxyIdentity } from '../translate/index.js';
import type { LoadProblem } from '../source/yaml-files.js';

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
  /** What the source reports about its input (files that do not parse, unknown kinds): shown with the translator's. */
  private sourceDiagnostics: Diagnostic[] = [];
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
    if (this.sourceDiagnostics.length > 0) next = { ...next, diagnostics: [...next.diagnostics, ...this.sourceDiagnostics] };
    const reload = this.current !== undefined;
    this.version = next.version;
    this.lastBuildOk = true;
    this.reportNew(next.diagnostics);
    if (reload) {
      const errors = next.diagnostics.filter((d) => d.severity === 'error').length;
      this.log(`configuration reloaded: snapshot ${next.version}, ${next.listeners.length} listeners, ${errors} errors, ${next.diagnostics.length - errors} warnings`);
    }
    this.current = next;
    this.emit('snapshot', next);
    return next;
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /**
   * The source's problems after each read (empty when all is well): a file that does not parse
   * is an error diagnostic of kind File (named by its path) until it parses again.
   */
  setSourceProblems(problems: readonly LoadProblem[]): void {
    const next = problems.map(sourceDiagnostic);
    if (JSON.stringify(next) === JSON.stringify(this.sourceDiagnostics)) return;
    this.sourceDiagnostics = next;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => this.rebuild(), this.options.debounceMs ?? 100);
  }

  /** Each diagnostic is logged once while it persists, again if it comes back later, and when it goes ("resolved"). */
  private reportNew(diagnostics: Diagnostic[]): void {
    const now = new Set<string>();
    for (const d of diagnostics) {
      const line = formatDiagnostic(d);
      now.add(line);
      if (!this.reported.has(line)) this.log(line);
    }
    for (const line of this.reported) if (!now.has(line)) this.log(`resolved: ${line}`);
    this.reported = now;
  }

  private log(line: string): void {
    (this.options.log ?? ((l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`)))(line);
  }
}

/** A source problem as a diagnostic: about an object when it names one, else about the file. */
export function sourceDiagnostic(p: LoadProblem): Diagnostic {
  if (p.object !== undefined) return { severity: p.severity ?? 'error', ...p.object, message: p.message, source: p.file };
  return { severity: p.severity ?? 'error', kind: 'File', namespace: '-', name: p.file, field: '-', message: `${p.message} (its last good objects keep serving)`, source: p.file };
}

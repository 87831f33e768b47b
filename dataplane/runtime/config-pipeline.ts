// Store → translate → snapshot, debounced: a burst of changes becomes one new snapshot.
// A translator failure (a bug, never bad input) keeps the last good snapshot serving.

import { EventEmitter } from 'node:events';
import type { ObjectStore } from '../store/object-store.js';
import type { Diagnostic, Snapshot } from '../snapshot/types.js';
import { formatDiagnostic } from '../translate/diagnostics.js';
import { translate, type ProxyIdentity } from '../translate/index.js';
import type { LoadProblem } from '../source/yaml-files.js';
import { objectKey, type StoredObject } from '../config/resources.js';
import type { ConfigSet } from '../store/object-store.js';

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
  /** The last version of each Istio object that translated without an error (translateKeepingLastGood). */
  private lastGood = new Map<string, StoredObject>();
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
      const built = translateKeepingLastGood(this.store.contents(), this.identity, { version: this.version + 1, builtAt: new Date().toISOString() }, this.lastGood);
      next = built.snapshot;
      this.lastGood = built.lastGood;
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

/** The kinds whose last good version keeps serving when a new one is invalid (Secrets have their own rule: tls/credential-store.ts). */
const KEPT_KINDS = ['Gateway', 'VirtualService', 'DestinationRule', 'ServiceEntry'] as const;

/**
 * translate(), except that an Istio object that had a valid version and now has an error keeps
 * its last good version serving, whole (HARDENING.md: the last good config keeps serving, per
 * object): its invalid rule does not vanish and let requests fall through to later rules. Its
 * new version's errors are still reported, saying so. An object that never translated without
 * an error is rejected as translate() does; a deleted object is forgotten.
 */
export function translateKeepingLastGood(
  contents: ConfigSet,
  identity: ProxyIdentity,
  options: { version: number; builtAt?: string },
  lastGood: ReadonlyMap<string, StoredObject>,
): { snapshot: Snapshot; lastGood: Map<string, StoredObject> } {
  const first = translate(contents, identity, options);
  const failing = new Set<string>();
  for (const d of first.diagnostics) if (d.severity === 'error' && (KEPT_KINDS as readonly string[]).includes(d.kind)) failing.add(objectKey(d.kind, d.namespace, d.name));
  const kept = new Map<string, StoredObject>();
  const substituted: Record<string, StoredObject[]> = { ...(contents as unknown as Record<string, StoredObject[]>) };
  for (const kind of KEPT_KINDS) {
    if (!contents[kind].some((o) => failing.has(keyOf(o)))) continue;
    substituted[kind] = contents[kind].map((o) => {
      const key = keyOf(o);
      const good = failing.has(key) ? lastGood.get(key) : undefined;
      if (good === undefined || good === o) return o;
      kept.set(key, good);
      return good;
    });
  }
  const nextGood = new Map<string, StoredObject>();
  for (const kind of KEPT_KINDS) {
    for (const o of contents[kind]) {
      const key = keyOf(o);
      if (!failing.has(key)) nextGood.set(key, o);
      else if (lastGood.has(key)) nextGood.set(key, lastGood.get(key)!);
    }
  }
  if (kept.size === 0) return { snapshot: first, lastGood: nextGood };
  const second = translate(substituted as unknown as ConfigSet, identity, options);
  // The diagnostics of what serves, but for the kept objects those of their new, invalid version.
  const about = (d: Diagnostic) => objectKey(d.kind, d.namespace, d.name);
  const diagnostics = [
    ...second.diagnostics.filter((d) => !kept.has(about(d))),
    ...first.diagnostics.filter((d) => kept.has(about(d))).map((d) => (d.severity === 'error' ? { ...d, message: `${d.message} (this version is not applied: the last good version keeps serving)` } : d)),
  ];
  return { snapshot: { ...second, diagnostics }, lastGood: nextGood };
}

function keyOf(o: StoredObject): string {
  return objectKey(o.kind, o.metadata.namespace, o.metadata.name);
}

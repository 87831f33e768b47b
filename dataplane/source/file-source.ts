// Standalone mode's source: YAML files and folders, watched, feeding the object store.
// A file that fails to parse keeps its last good objects in the store and is reported.
// Files are read on a worker thread (config-reader.ts), one read at a time: a change seen
// during a read starts another read when it ends.

import { statSync, watch, type FSWatcher } from 'node:fs';
import type { StoredObject } from '../config/resources.js';
import type { ObjectStore } from '../store/object-store.js';
import { readConfigFiles, type ConfigRead } from './config-reader.js';
import { listConfigFiles, type LoadProblem, type LoadResult } from './yaml-files.js';

export interface FileSourceOptions {
  paths: string[];
  defaultNamespace: string;
  /** How often file stamps are compared (fs.watch events trigger a check at once too). */
  pollIntervalMs?: number;
  debounceMs?: number;
  onProblems?: (problems: LoadProblem[]) => void;
  /** After every read, with its problems (empty when every file is fine): what is wrong now. */
  onRead?: (problems: LoadProblem[]) => void;
}

export class FileSource {
  private readonly lastGood = new Map<string, StoredObject[]>();
  private stamps = '';
  private timer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private watchers: FSWatcher[] = [];
  private reading?: ConfigRead;
  private changedWhileReading = false;
  private stopped = false;

  constructor(private readonly store: ObjectStore, private readonly options: FileSourceOptions) {}

  /** Loads everything once and starts watching. */
  async start(): Promise<LoadProblem[]> {
    const problems = await this.reload();
    this.timer = setInterval(() => this.checkStamps(), this.options.pollIntervalMs ?? 500);
    this.timer.unref();
    for (const p of this.options.paths) {
      try {
        const w = watch(p, { persistent: false }, () => this.schedule());
        w.on('error', () => undefined);
        this.watchers.push(w);
      } catch {
        // polling still covers it
      }
    }
    return problems;
  }

  stop(): void {
    this.stopped = true;
    this.reading?.cancel();
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }

  private schedule(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.checkStamps(), this.options.debounceMs ?? 50);
    this.debounce.unref();
  }

  private currentStamps(): string {
    try {
      return listConfigFiles(this.options.paths)
        .map((f) => {
          const st = statSync(f);
          return `${f}:${st.mtimeMs}:${st.size}`;
        })
        .join('\n');
    } catch (err) {
      return `error:${(err as Error).message}`;
    }
  }

  private checkStamps(): void {
    if (this.reading !== undefined) {
      this.changedWhileReading = true;
      return;
    }
    if (this.currentStamps() !== this.stamps) void this.reload();
  }

  /** Never rejects: whatever goes wrong is a problem to report, and the last good objects stay. */
  private async reload(): Promise<LoadProblem[]> {
    this.stamps = this.currentStamps();
    let result: LoadResult;
    try {
      this.reading = readConfigFiles(this.options.paths, this.options.defaultNamespace);
      result = await this.reading.result;
    } catch (err) {
      if (this.stopped) return [];
      // The reader died (out of memory on a huge file, say): every file keeps its last good objects.
      const files = [...this.lastGood.keys()];
      const message = `reading the config files failed: ${(err as Error).message}`;
      result = { objects: [], files, problems: files.length > 0 ? files.map((file) => ({ file, message })) : [{ file: this.options.paths.join(','), message }] };
    } finally {
      this.reading = undefined;
    }
    if (this.stopped) return [];
    const problems = this.apply(result);
    if (this.changedWhileReading) {
      this.changedWhileReading = false;
      this.checkStamps();
    }
    return problems;
  }

  private apply(result: LoadResult): LoadProblem[] {
    const byFile = new Map<string, StoredObject[]>();
    for (const f of result.files) byFile.set(f, []);
    for (const obj of result.objects) byFile.get(obj.origin!.source)?.push(obj);
    // Warnings (an object of an unknown kind, skipped) leave the rest of the file in use.
    const broken = new Set(result.problems.filter((p) => p.severity !== 'warning').map((p) => p.file));
    const next: StoredObject[] = [];
    for (const [file, objects] of byFile) {
      // A file with a problem keeps its last good objects: the last good config keeps serving.
      const keep = broken.has(file) ? this.lastGood.get(file) ?? objects : objects;
      if (!broken.has(file)) this.lastGood.set(file, objects);
      for (const o of keep) next.push(o);
    }
    for (const file of [...this.lastGood.keys()]) if (!byFile.has(file)) this.lastGood.delete(file);
    this.store.replaceWhere((o) => o.origin?.source !== undefined && o.origin.source !== 'kubernetes', next);
    if (result.problems.length > 0) this.options.onProblems?.(result.problems);
    this.options.onRead?.(result.problems);
    return result.problems;
  }
}

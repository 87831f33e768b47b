// Reads the standalone config files on a worker thread, so that parsing a large file never
// stalls serving: a file of 130,000 documents takes the YAML parser seconds (21 s on a busy
// 2-core machine), during which a parse on the serving thread answered no request. The worker
// sends the objects back in batches, each a short structured-clone on the serving thread, and
// runs with a heap limit: a file that needs more memory than that kills the worker (reported
// as a problem), never the proxy.

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { StoredObject } from '../config/resources.js';
import { loadConfigFiles, type LoadProblem, type LoadResult } from './yaml-files.js';

/** Objects per message from the worker: one message is a few milliseconds to receive. */
const BATCH = 1_000;
/** The reader's heap: reading a 13.8 MB file of 130,000 documents took the process ~80 MB more. */
const READER_HEAP_MB = 512;

interface ReaderData {
  portwayConfigReader: true;
  paths: string[];
  defaultNamespace: string;
}

type FromReader =
  | { type: 'objects'; objects: StoredObject[] }
  | { type: 'done'; problems: LoadProblem[]; files: string[] };

export interface ConfigRead {
  readonly result: Promise<LoadResult>;
  /** Stops the worker; `result` rejects. */
  cancel(): void;
}

/** Loads the files under `paths` as loadConfigFiles does, on a worker thread. */
export function readConfigFiles(paths: readonly string[], defaultNamespace: string): ConfigRead {
  const data: ReaderData = { portwayConfigReader: true, paths: [...paths], defaultNamespace };
  const worker = new Worker(new URL(import.meta.url), {
    workerData: data,
    resourceLimits: { maxOldGenerationSizeMb: READER_HEAP_MB },
    stdout: true,
    stderr: true,
  });
  const objects: StoredObject[] = [];
  let done: Extract<FromReader, { type: 'done' }> | undefined;
  let failure: Error | undefined;
  const result = new Promise<LoadResult>((resolve, reject) => {
    worker.on('message', (m: FromReader) => {
      if (m.type === 'done') {
        done = m;
        return;
      }
      for (const o of m.objects) objects.push(o);
      // The next batch once the event loop has had its turn: requests in between are served.
      setImmediate(() => worker.postMessage('next'));
    });
    worker.on('error', (err) => (failure ??= err));
    worker.once('exit', (code) => {
      if (done !== undefined) resolve({ objects, problems: done.problems, files: done.files });
      else reject(failure ?? new Error(`the config reader stopped (exit code ${code})`));
    });
  });
  return { result, cancel: () => void worker.terminate() };
}

async function runReader(data: ReaderData): Promise<void> {
  const port = parentPort!;
  const loaded = loadConfigFiles(data.paths, data.defaultNamespace);
  for (let i = 0; i < loaded.objects.length; i += BATCH) {
    const next = new Promise((resolve) => port.once('message', resolve));
    port.postMessage({ type: 'objects', objects: loaded.objects.slice(i, i + BATCH) } satisfies FromReader);
    await next;
  }
  port.postMessage({ type: 'done', problems: loaded.problems, files: loaded.files } satisfies FromReader);
}

if (!isMainThread && (workerData as Partial<ReaderData> | null)?.portwayConfigReader === true) void runReader(workerData as ReaderData);

// Reads multi-document YAML files (or folders of them) into Kubernetes-shaped objects,
// reporting each bad document with its file and position instead of failing the whole load.

import { readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { Composer, LineCounter, Parser, type Document } from 'yaml';
import { CONFIG_KINDS, type StoredObject } from '../config/resources.js';

export interface LoadProblem {
  file: string;
  message: string;
  /** A warning leaves the file's objects in use (an object of an unknown kind is skipped); an error keeps the file's last good objects. Default error. */
  severity?: 'error' | 'warning';
  /** The object the problem is about, when there is one, and the field. */
  object?: { kind: string; namespace: string; name: string; field: string };
}

export interface LoadResult {
  objects: StoredObject[];
  problems: LoadProblem[];
  files: string[];
}

const YAML_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

const ISTIO_KINDS = ['Gateway', 'VirtualService', 'DestinationRule', 'ServiceEntry'];

/**
 * Alias expansions allowed per document, as the yaml library counts them (each use of an
 * anchor, times the aliases inside what it names). Its default, 100, rejects a VirtualService
 * whose 100 routes share one anchor; 10,000 is far above what hand-written or templated files
 * use and still stops a billion-laughs file (nine levels of nine aliases: 9^9 expansions) at
 * its fifth level, before anything expands it.
 */
export const MAX_ALIAS_COUNT = 10_000;

/**
 * The largest config file read (README, "Running the proxy"). Kubernetes stores no object
 * above 1.5 MiB; a 16 MiB file holds ~300,000 small objects. A 50 MB one-string file took
 * the serving thread 3.6 s and left the process at 3.3 GB before this limit.
 */
export const MAX_CONFIG_FILE_BYTES = 16 * 1024 * 1024;

/** Every YAML file under the given paths (folders are walked, sorted for a stable order). */
export function listConfigFiles(paths: readonly string[]): string[] {
  const files: string[] = [];
  const walk = (p: string) => {
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const entry of readdirSync(p).sort()) {
        if (entry.startsWith('.')) continue;
        walk(join(p, entry));
      }
    } else if (YAML_EXTENSIONS.has(extname(p))) files.push(p);
  };
  for (const p of paths) walk(p);
  return files;
}

export function parseConfigText(text: string, file: string, defaultNamespace: string): { objects: StoredObject[]; problems: LoadProblem[] } {
  const objects: StoredObject[] = [];
  const problems: LoadProblem[] = [];
  // Document by document (what parseAllDocuments does, without holding every document's
  // syntax tree at once: a file of 130,000 documents needed ~1 GB that way).
  const lines = new LineCounter();
  const composer = new Composer({});
  let i = -1;
  try {
    for (const doc of composer.compose(new Parser(lines.addNewLine).parse(text))) {
      i++;
      const n = i + 1;
      addDocument(doc, defaultNamespace, lines, objects, (problem) => problems.push({ file, message: `document ${n}: ${problem}` }), file, problems);
    }
  } catch (err) {
    problems.push({ file, message: `document ${i + 2}: ${oneLine((err as Error).message)}` });
  }
  return { objects, problems };
}

/** Adds a document's objects, and reports what is wrong with it or with one of its objects. */
function addDocument(doc: Document.Parsed, defaultNamespace: string, lines: LineCounter, objects: StoredObject[], report: (problem: string) => void, file: string, problems: LoadProblem[]): void {
  if (doc.errors.length > 0) {
    const err = doc.errors[0]!;
    const at = lines.linePos(err.pos[0]);
    report(`${oneLine(err.message)} at line ${at.line}, column ${at.col}`);
    return;
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // Too many aliases, an alias before its anchor: this document's problem, never the process's.
    const message = (err as Error).message;
    report(/alias count/i.test(message) ? `more than ${MAX_ALIAS_COUNT} alias expansions (${message})` : oneLine(message));
    return;
  }
  if (value === null || value === undefined) return;
  for (const obj of flattenLists(value)) {
    const problem = checkObject(obj);
    if (problem) {
      report(problem);
      continue;
    }
    const o = obj as StoredObject;
    if (!(CONFIG_KINDS as readonly string[]).includes(o.kind)) {
      // Other APIs' kinds are not Portway's business, but a kind of an API the proxy reads that
      // it does not know is a typo (VirtualServce) that would otherwise be a silent no-op.
      const group = o.apiVersion.includes('/') ? o.apiVersion.slice(0, o.apiVersion.indexOf('/')) : '';
      if (group === 'networking.istio.io') {
        problems.push({
          file,
          severity: 'warning',
          message: `unknown kind ${JSON.stringify(o.kind)} in ${o.apiVersion} (known: ${ISTIO_KINDS.join(', ')}); the object is ignored`,
          object: { kind: o.kind, namespace: o.metadata.namespace ?? defaultNamespace, name: o.metadata.name, field: 'kind' },
        });
      }
      continue;
    }
    o.metadata.namespace ??= defaultNamespace;
    o.origin = { source: file };
    objects.push(o);
  }
}

function flattenLists(value: unknown): unknown[] {
  if (value && typeof value === 'object' && (value as { kind?: string }).kind === 'List' && Array.isArray((value as { items?: unknown[] }).items)) {
    return (value as { items: unknown[] }).items;
  }
  return [value];
}

function checkObject(obj: unknown): string | undefined {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return 'not a Kubernetes object';
  const o = obj as Record<string, any>;
  if (typeof o.apiVersion !== 'string') return 'apiVersion is required';
  if (typeof o.kind !== 'string') return 'kind is required';
  if (!o.metadata || typeof o.metadata.name !== 'string' || !o.metadata.name) return `${o.kind}: metadata.name is required`;
  return undefined;
}

export function loadConfigFiles(paths: readonly string[], defaultNamespace: string): LoadResult {
  const result: LoadResult = { objects: [], problems: [], files: [] };
  let files: string[];
  try {
    files = listConfigFiles(paths);
  } catch (err) {
    result.problems.push({ file: paths.join(','), message: (err as Error).message });
    return result;
  }
  result.files = files;
  for (const file of files) {
    let text: string;
    try {
      const size = statSync(file).size;
      if (size > MAX_CONFIG_FILE_BYTES) {
        result.problems.push({ file, message: `${size} bytes, over the limit of ${MAX_CONFIG_FILE_BYTES} bytes (16 MiB) for one config file: split it into several files` });
        continue;
      }
      text = readFileSync(file, 'utf8');
    } catch (err) {
      result.problems.push({ file, message: (err as Error).message });
      continue;
    }
    const parsed = parseConfigText(text, file, defaultNamespace);
    // One at a time: spreading 125,000 objects into push() overflows the stack.
    for (const o of parsed.objects) result.objects.push(o);
    for (const p of parsed.problems) result.problems.push(p);
  }
  return result;
}

/** The yaml library's messages carry a code excerpt over several lines; logs want one line. */
function oneLine(message: string): string {
  return message.split('\n')[0]!.replace(/:$/, '');
}

// Collects what the translators reject or warn about, naming the object and the field.

import type { StoredObject } from '../config/resources.js';
import type { Diagnostic } from '../snapshot/types.js';

export class DiagnosticSink {
  readonly items: Diagnostic[] = [];
  // One rule compiled for several gateways must be reported once.
  private readonly seen = new Set<string>();

  error(obj: StoredObject, field: string, message: string): void {
    this.add('error', obj, field, message);
  }

  warning(obj: StoredObject, field: string, message: string): void {
    this.add('warning', obj, field, message);
  }

  private add(severity: Diagnostic['severity'], obj: StoredObject, field: string, message: string): void {
    const key = `${severity}|${obj.kind}|${obj.metadata.namespace}|${obj.metadata.name}|${field}|${message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.items.push({
      severity,
      kind: obj.kind,
      namespace: obj.metadata.namespace ?? 'default',
      name: obj.metadata.name,
      field,
      message,
      source: obj.origin?.source,
    });
  }
}

export function formatDiagnostic(d: Diagnostic): string {
  // A config file that does not parse (dataplane/runtime/config-pipeline.ts: sourceDiagnostic).
  if (d.kind === 'File') return `${d.severity}: ${d.name}: ${d.message}`;
  const where = d.source ? ` (${d.source})` : '';
  return `${d.severity}: ${d.kind} ${d.namespace}/${d.name}${where}: ${d.field}: ${d.message}`;
}

// The one object store every source writes to. It holds plain Kubernetes-shaped objects by
// kind/namespace/name and tells subscribers that something changed; it never interprets them.

import { EventEmitter } from 'node:events';
import { CONFIG_KINDS, objectKey, type ConfigKind, type StoredObject } from '../config/resources.js';

export type ConfigSet = { readonly [K in ConfigKind]: readonly StoredObject[] };

export class ObjectStore extends EventEmitter {
  private readonly objects = new Map<string, StoredObject>();
  private revision = 0;

  /** Inserts or replaces an object; returns false when it was identical already. */
  upsert(obj: StoredObject): boolean {
    const key = objectKey(obj.kind, obj.metadata.namespace, obj.metadata.name);
    const previous = this.objects.get(key);
    if (previous && JSON.stringify(previous) === JSON.stringify(obj)) return false;
    this.objects.set(key, obj);
    this.emit('object', obj);
    this.changed();
    return true;
  }

  delete(kind: string, namespace: string | undefined, name: string): boolean {
    const key = objectKey(kind, namespace, name);
    const previous = this.objects.get(key);
    if (!previous) return false;
    this.objects.delete(key);
    this.emit('object', previous, 'deleted');
    this.changed();
    return true;
  }

  /** Every object of one kind (any namespace, or one). */
  list(kind: string, namespace?: string): StoredObject[] {
    const out: StoredObject[] = [];
    for (const obj of this.objects.values()) {
      if (obj.kind === kind && (namespace === undefined || obj.metadata.namespace === namespace)) out.push(obj);
    }
    return out;
  }

  /** Replaces every object that `belongs` selects with `objects` in one change (a relist or a file reload). */
  replaceWhere(belongs: (obj: StoredObject) => boolean, objects: readonly StoredObject[]): void {
    const removed: StoredObject[] = [];
    for (const [key, obj] of this.objects) {
      if (belongs(obj)) {
        this.objects.delete(key);
        removed.push(obj);
      }
    }
    for (const obj of objects) this.objects.set(objectKey(obj.kind, obj.metadata.namespace, obj.metadata.name), obj);
    // Listeners that track single objects (the operator's queue) hear about both sides of a relist.
    for (const obj of removed) this.emit('object', obj, 'deleted');
    for (const obj of objects) this.emit('object', obj);
    this.changed();
  }

  get(kind: string, namespace: string | undefined, name: string): StoredObject | undefined {
    return this.objects.get(objectKey(kind, namespace, name));
  }

  get currentRevision(): number {
    return this.revision;
  }

  /** A consistent copy of the store, grouped by kind, for the translators. */
  contents(): ConfigSet {
    const grouped = Object.fromEntries(CONFIG_KINDS.map((kind) => [kind, [] as StoredObject[]])) as Record<ConfigKind, StoredObject[]>;
    for (const obj of this.objects.values()) {
      const bucket = grouped[obj.kind as ConfigKind];
      if (bucket) bucket.push(obj);
    }
    return grouped;
  }

  private changed(): void {
    this.revision++;
    this.emit('change', this.revision);
  }
}

export function emptyConfigSet(): ConfigSet {
  return Object.fromEntries(CONFIG_KINDS.map((kind) => [kind, []])) as unknown as ConfigSet;
}

// A small checker for objects against a CRD's structural schema, for tests: types, enums,
// bounds, patterns, required fields, list-map key uniqueness, and — what matters most here —
// fields the apiserver would silently prune because the schema does not declare them.
// CEL rules are not evaluated (validate.ts mirrors them and has its own tests).

export interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  pattern?: string;
  default?: unknown;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-validations'?: Array<{ rule: string; message?: string; fieldPath?: string }>;
}

function typeOf(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** Every problem of `value` against `schema`, as `path: message`. */
export function checkAgainstSchema(value: unknown, schema: Schema, path = ''): string[] {
  const problems: string[] = [];
  const at = path || '<root>';
  const actual = typeOf(value);
  if (schema['x-kubernetes-int-or-string']) {
    if (actual !== 'integer' && actual !== 'string') return [`${at}: must be an integer or a string, got ${actual}`];
  } else if (schema.type && !(schema.type === actual || (schema.type === 'number' && actual === 'integer'))) {
    return [`${at}: must be ${schema.type}, got ${actual}`];
  }
  if (schema.enum && !schema.enum.includes(value)) problems.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) problems.push(`${at}: below ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) problems.push(`${at}: above ${schema.maximum}`);
  }
  if (typeof value === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength) problems.push(`${at}: shorter than ${schema.minLength}`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength) problems.push(`${at}: longer than ${schema.maxLength}`);
    if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) problems.push(`${at}: does not match ${schema.pattern}`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) problems.push(`${at}: fewer than ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) problems.push(`${at}: more than ${schema.maxItems} items`);
    const keys = schema['x-kubernetes-list-map-keys'];
    if (schema['x-kubernetes-list-type'] === 'map' && keys) {
      const seen = new Set(value.map((item) => JSON.stringify(keys.map((k) => (item as Record<string, unknown>)[k]))));
      if (seen.size !== value.length) problems.push(`${at}: duplicate list-map keys ${keys.join(',')}`);
    }
    value.forEach((item, i) => schema.items && problems.push(...checkAgainstSchema(item, schema.items, `${path}[${i}]`)));
  }
  if (actual === 'object') {
    const obj = value as Record<string, unknown>;
    if (schema.maxProperties !== undefined && Object.keys(obj).length > schema.maxProperties) problems.push(`${at}: more than ${schema.maxProperties} properties`);
    for (const r of schema.required ?? []) if (!(r in obj)) problems.push(`${path ? `${path}.` : ''}${r}: required`);
    for (const [k, v] of Object.entries(obj)) {
      const child = path ? `${path}.${k}` : k;
      const declared = schema.properties?.[k];
      if (declared) problems.push(...checkAgainstSchema(v, declared, child));
      else if (typeof schema.additionalProperties === 'object') problems.push(...checkAgainstSchema(v, schema.additionalProperties, child));
      else if (!schema['x-kubernetes-preserve-unknown-fields']) problems.push(`${child}: unknown field (the apiserver would prune it)`);
    }
  }
  return problems;
}

export interface SchemaNode {
  /** `spec.service.ports` for a property, `spec.service.ports[]` for list items, `spec.labels{}` for map values. */
  path: string;
  schema: Schema;
}

/** Every schema node under `schema`, depth first. */
export function schemaNodes(schema: Schema, path = ''): SchemaNode[] {
  const nodes: SchemaNode[] = [{ path, schema }];
  for (const [k, v] of Object.entries(schema.properties ?? {})) nodes.push(...schemaNodes(v, path ? `${path}.${k}` : k));
  if (schema.items) nodes.push(...schemaNodes(schema.items, `${path}[]`));
  if (typeof schema.additionalProperties === 'object') nodes.push(...schemaNodes(schema.additionalProperties, `${path}{}`));
  return nodes;
}

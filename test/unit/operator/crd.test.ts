// The GatewayDeployment CRD, checked offline as far as it can be: a structural schema (types
// everywhere, items for arrays, no stray defaults), a description on every field (kubectl
// explain is the manual), CEL rules that match validate.ts one for one and only name fields
// that exist, the scale subresource wired to fields of the right type, and the golden inputs
// accepted without a field pruned. The apiserver itself checks it in the e2e tests.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { DEFAULTS } from '../../../operator/api/defaults.js';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from '../../../operator/api/types.js';
import { CEL_RULES } from '../../../operator/api/validate.js';
import { goldenCases } from '../../support/golden.js';
import { repoRoot } from '../../support/repo-root.js';
import { checkAgainstSchema, schemaNodes, type Schema } from './openapi-schema.js';

const crdFile = join(repoRoot(), 'crds', 'portway.dev_gatewaydeployments.yaml');
const crdText = readFileSync(crdFile, 'utf8');
const crd = parse(crdText) as {
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: { kind: string; plural: string };
    versions: Array<{
      name: string;
      served: boolean;
      storage: boolean;
      subresources: { status?: object; scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath: string } };
      additionalPrinterColumns: Array<{ name: string; type: string; jsonPath: string }>;
      schema: { openAPIV3Schema: Schema };
    }>;
  };
};
const version = crd.spec.versions[0]!;
const root = version.schema.openAPIV3Schema;
const nodes = schemaNodes(root);

/** The schema at a dotted path such as `.spec.replicas` (printer columns, scale paths). */
function schemaAt(path: string): Schema | undefined {
  let s: Schema | undefined = root;
  for (const part of path.replace(/^\./, '').split('.')) {
    const name = part.replace(/\[.*\]$/, '');
    s = s?.properties?.[name];
    if (s && part.endsWith(']')) s = s.items;
  }
  return s;
}

describe('operator api: the GatewayDeployment CRD (crds/portway.dev_gatewaydeployments.yaml)', () => {
  it('defines portway.dev/v1alpha1 GatewayDeployment, namespaced, one served storage version', () => {
    assert.equal(crd.metadata.name, `${PLURAL}.${GROUP}`);
    assert.equal(crd.spec.group, GROUP);
    assert.equal(crd.spec.names.kind, KIND);
    assert.equal(crd.spec.scope, 'Namespaced');
    assert.deepEqual(crd.spec.versions.map((v) => [v.name, v.served, v.storage]), [[VERSION, true, true]]);
    assert.equal(API_VERSION, 'portway.dev/v1alpha1');
  });

  it('has the status and scale subresources, on fields of the right types (selector as a string)', () => {
    assert.deepEqual(version.subresources.status, {});
    const scale = version.subresources.scale!;
    assert.deepEqual(scale, { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' });
    assert.equal(schemaAt(scale.specReplicasPath)?.type, 'integer');
    assert.equal(schemaAt(scale.statusReplicasPath)?.type, 'integer');
    assert.equal(schemaAt(scale.labelSelectorPath)?.type, 'string');
  });

  it('prints Mode, Ready, Replicas, Address and Age, from fields the schema has', () => {
    assert.deepEqual(version.additionalPrinterColumns.map((c) => c.name), ['Mode', 'Ready', 'Replicas', 'Address', 'Age']);
    for (const c of version.additionalPrinterColumns.filter((x) => !x.jsonPath.startsWith('.metadata'))) {
      assert.ok(schemaAt(c.jsonPath.replace(/\[\?\(.*\)\]/, '[]')), `${c.name}: ${c.jsonPath} is not in the schema`);
    }
  });

  it('describes every field (except metadata, where the apiserver allows only name restrictions)', () => {
    // Fields and object list items are what kubectl explain shows; map values and scalar
    // list items are described by their parent.
    const needsDescription = (path: string, schema: Schema) =>
      path !== '' && path !== 'metadata' && !path.endsWith('{}') && (!path.endsWith('[]') || schema.type === 'object');
    const undocumented = nodes
      .filter((n) => needsDescription(n.path, n.schema))
      .filter((n) => !n.schema.description?.trim())
      .map((n) => n.path);
    assert.deepEqual(undocumented, []);
    assert.ok(root.description && root.description.length > 100, 'the kind itself is described');
  });

  it('is structural: every node typed (or int-or-string), arrays have items, objects declare their fields', () => {
    for (const { path, schema } of nodes) {
      if (path === 'metadata.name') continue;
      const intOrString = schema['x-kubernetes-int-or-string'] === true;
      assert.ok(intOrString ? schema.type === undefined : typeof schema.type === 'string', `${path || '<root>'}: type`);
      if (schema.type === 'array') assert.ok(schema.items, `${path}: items`);
      if (schema.type === 'object' && path !== 'metadata') {
        assert.ok(schema.properties || schema.additionalProperties || schema['x-kubernetes-preserve-unknown-fields'], `${path}: fields`);
      }
      const keys = schema['x-kubernetes-list-map-keys'];
      if (keys) for (const k of keys) assert.ok(schema.items?.required?.includes(k), `${path}: list-map key ${k} must be required`);
    }
  });

  it('stores no defaults but mode (kept so kubectl get can print it), the same as defaults.ts', () => {
    const withDefault = nodes.filter((n) => n.schema.default !== undefined);
    assert.deepEqual(withDefault.map((n) => [n.path, n.schema.default]), [['spec.mode', DEFAULTS.mode]]);
  });

  describe('CEL rules (x-kubernetes-validations)', () => {
    const rules = nodes.flatMap((n) => (n.schema['x-kubernetes-validations'] ?? []).map((r) => ({ schema: n.path, ...r })));

    it('exist', () => assert.ok(rules.length >= 10, `found ${rules.length}`));

    it('are exactly the rules validate.ts mirrors: same place, fieldPath and message', () => {
      const inCrd = rules.map((r) => JSON.stringify([r.schema, r.fieldPath ?? null, r.message])).sort();
      const mirrored = Object.values(CEL_RULES).map((r) => JSON.stringify([r.schema, r.fieldPath ?? null, r.message])).sort();
      assert.deepEqual(inCrd, mirrored);
    });

    it('name only fields that exist under the node they sit on', () => {
      for (const r of rules) {
        const node = nodes.find((n) => n.path === r.schema)!.schema;
        for (const m of r.rule.matchAll(/\bself((?:\.[A-Za-z]\w*)+)/g)) {
          let s: Schema | undefined = node;
          for (const name of m[1]!.slice(1).split('.')) {
            // Past a scalar or a list come functions and macros (size(), all()), not fields.
            if (s?.type !== 'object') break;
            s = s?.properties?.[name] ?? (typeof s?.additionalProperties === 'object' ? s.additionalProperties : undefined);
            assert.ok(s, `${r.schema}: ${r.rule}: self${m[1]} is not a field`);
          }
        }
        if (r.fieldPath) assert.ok(node.properties?.[r.fieldPath.slice(1)], `${r.schema}: fieldPath ${r.fieldPath} is not a field`);
      }
    });

    it('bound every list and string they iterate or compare, so the apiserver accepts their cost', () => {
      for (const r of rules.filter((x) => /\.(all|exists_one|exists)\(/.test(x.rule))) {
        const node = nodes.find((n) => n.path === r.schema)!.schema;
        const list = node.type === 'array' ? node : node.properties?.service?.properties?.ports;
        assert.ok(list?.maxItems, `${r.schema}: ${r.rule}: the list needs maxItems`);
      }
    });

    it('have balanced parentheses and quotes', () => {
      for (const r of rules) {
        let depth = 0;
        for (const ch of r.rule.replace(/'[^']*'/g, "''")) {
          if (ch === '(' || ch === '[') depth++;
          if (ch === ')' || ch === ']') depth--;
          assert.ok(depth >= 0, r.rule);
        }
        assert.equal(depth, 0, r.rule);
        assert.equal((r.rule.match(/'/g) ?? []).length % 2, 0, r.rule);
      }
    });
  });

  it('accepts every golden render input without pruning a field', () => {
    for (const c of goldenCases('render')) {
      const gd = parseAllDocuments(c.input)
        .map((d) => (Array.isArray(d) ? undefined : d.toJS()))
        .find((d) => d?.kind === 'GatewayDeployment');
      // ObjectMeta is the apiserver's own (never pruned); the schema restricts only its name.
      assert.deepEqual(checkAgainstSchema({ ...gd, metadata: { name: gd.metadata.name } }, root), [], c.name);
    }
  });

  it('rejects what the schema forbids (the checker works): unknown fields, bad enums, out-of-range ports', () => {
    const problems = checkAgainstSchema(
      { apiVersion: API_VERSION, kind: KIND, metadata: { name: 'gw' }, spec: { mode: 'sideways', replicaCount: 2, service: { ports: [{ name: 'http', port: 0 }] } } },
      root,
    );
    assert.deepEqual(problems, [
      'spec.mode: "sideways" is not one of ["ingress","egress"]',
      'spec.replicaCount: unknown field (the apiserver would prune it)',
      'spec.service.ports[0].port: below 1',
    ]);
  });

  it('is copied byte for byte into the Helm chart (charts/portway/crds/)', () => {
    const copy = readFileSync(join(repoRoot(), 'charts', 'portway', 'crds', 'portway.dev_gatewaydeployments.yaml'), 'utf8');
    assert.ok(copy === crdText, 'run: cp crds/portway.dev_gatewaydeployments.yaml charts/portway/crds/');
  });
});

// Golden tests for the renderers: test/golden/render/<case>.in.yaml (a GatewayDeployment as
// read from the API, plus an optional `kind: RenderOptions` document standing for the
// operator's flags) → <case>.out.yaml (every rendered object, in apply order).
// UPDATE_GOLDEN=1 rewrites the expected files; review them in the diff.

import assert from 'node:assert/strict';
import { parseAllDocuments, stringify } from 'yaml';
import type { GatewayDeployment } from '../../../operator/api/types.js';
import { renderGatewayObjects, type RenderOptions } from '../../../operator/render/index.js';
import { assertMatchesGolden, goldenCases } from '../../support/golden.js';

function parseCase(text: string): { gd: GatewayDeployment; options: RenderOptions } {
  const docs = parseAllDocuments(text).map((d) => {
    assert.ok(!Array.isArray(d) && d.errors.length === 0, 'the golden input must parse');
    return d.toJS() as { kind?: string };
  });
  const gd = docs.find((d) => d.kind === 'GatewayDeployment') as GatewayDeployment | undefined;
  assert.ok(gd, 'the golden input must hold a GatewayDeployment');
  const { kind: _, ...options } = (docs.find((d) => d.kind === 'RenderOptions') ?? {}) as RenderOptions & { kind?: string };
  return { gd, options };
}

const cases = goldenCases('render');

describe('operator render: golden files (test/golden/render)', () => {
  it('has the cases the issue asks for', () => {
    const names = cases.map((c) => c.name);
    for (const wanted of ['minimal-ingress', 'egress', 'autoscaling', 'fixed-replicas', 'privileged-ports-sysctl', 'privileged-ports-capability', 'custom-service', 'scheduling']) {
      assert.ok(names.includes(wanted), `missing golden case ${wanted}`);
    }
  });
  for (const c of cases) {
    it(c.name, () => {
      const { gd, options } = parseCase(c.input);
      const objects = renderGatewayObjects(gd, options);
      const actual = objects.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
      assertMatchesGolden(c, actual);
    });
  }
});

// Golden tests for gateway injection, in the style of Istio's pkg/kube/inject/testdata:
// test/golden/inject/<case>.yaml (a Pod, or a Deployment whose pod template is injected) →
// <case>.injected.yaml. UPDATE_GOLDEN=1 rewrites the expected files; review the diff.
// Each case is also injected a second time, which must change nothing.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { injectGatewayPod } from '../../../operator/webhook/injection.js';
import { assertMatchesGolden, goldenDir, type GoldenCase } from '../../support/golden.js';

/** The operator's --proxy-image in these cases. */
const PROXY_IMAGE = 'ghcr.io/portway/portway:0.1.0';

function injectionCases(): GoldenCase[] {
  const dir = goldenDir('inject');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') && !f.endsWith('.injected.yaml'))
    .sort()
    .map((f) => {
      const name = f.slice(0, -'.yaml'.length);
      const inputFile = join(dir, f);
      return { name, input: readFileSync(inputFile, 'utf8'), inputFile, expectedFile: join(dir, `${name}.injected.yaml`) };
    });
}

/** Injects a Pod, or a Deployment's pod template (what becomes each of its pods). */
function inject(obj: V1Pod | V1Deployment): V1Pod | V1Deployment {
  const namespace = obj.metadata?.namespace ?? 'default';
  if (obj.kind === 'Deployment') {
    const d = obj as V1Deployment;
    const template = d.spec!.template;
    const result = injectGatewayPod({ metadata: template.metadata, spec: template.spec }, namespace, { defaultImage: PROXY_IMAGE });
    if (!result.injected) return d;
    return { ...d, spec: { ...d.spec!, template: { metadata: result.pod.metadata, spec: result.pod.spec } } };
  }
  const result = injectGatewayPod(obj as V1Pod, namespace, { defaultImage: PROXY_IMAGE });
  return result.injected ? result.pod : obj;
}

const cases = injectionCases();

describe('gateway injection: golden files (test/golden/inject)', () => {
  it('has the cases that matter', () => {
    const names = cases.map((c) => c.name);
    for (const wanted of ['minimal', 'user-fields', 'apiserver-defaulted-pod', 'explicit-image', 'no-placeholder', 'not-annotated']) {
      assert.ok(names.includes(wanted), `missing golden case ${wanted}`);
    }
  });

  for (const c of cases) {
    it(c.name, () => {
      const docs = parseAllDocuments(c.input).map((d) => {
        assert.ok(!Array.isArray(d) && d.errors.length === 0, 'the golden input must parse');
        return d.toJS() as V1Pod | V1Deployment;
      });
      const injected = docs.map(inject);
      assertMatchesGolden(c, injected.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n'));
      assert.deepEqual(injected.map(inject), injected, 'injecting an injected pod changes nothing');
    });
  }
});

// Golden tests for the translator: test/golden/translate/<case>.in.yaml (the objects a user
// applies, plus an optional `ProxyIdentity` document) → <case>.out.yaml (the compiled
// snapshot, compacted). UPDATE_GOLDEN=1 rewrites the expected files; review them in the diff.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { repoRoot } from '../../support/repo-root.js';
import { snapshotToJson } from '../../../dataplane/snapshot/to-json.js';
import { translateYaml } from '../../support/translate-yaml.js';


/** Drops empty lists and empty header-operation blocks so golden files show what matters. */
function compact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(compact);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const c = compact(v);
      if (Array.isArray(c) && c.length === 0) continue;
      if (c && typeof c === 'object' && !Array.isArray(c) && Object.keys(c).length === 0) continue;
      if (c === undefined) continue;
      out[k] = c;
    }
    return out;
  }
  return value;
}

const dir = join(repoRoot(), 'test', 'golden', 'translate');
const cases = readdirSync(dir).filter((f) => f.endsWith('.in.yaml')).map((f) => f.slice(0, -'.in.yaml'.length)).sort();

describe('translate: golden files (test/golden/translate)', () => {
  it('has cases', () => assert.ok(cases.length >= 5, `found ${cases.length} cases in ${dir}`));
  for (const name of cases) {
    it(name, () => {
      const input = readFileSync(join(dir, `${name}.in.yaml`), 'utf8');
      const snapshot = translateYaml(input, `${name}.in.yaml`);
      const actual = stringify(compact(snapshotToJson(snapshot)), { lineWidth: 0 });
      const expectedFile = join(dir, `${name}.out.yaml`);
      if (process.env.UPDATE_GOLDEN === '1' || !existsSync(expectedFile)) {
        writeFileSync(expectedFile, actual);
        if (process.env.UPDATE_GOLDEN !== '1') assert.fail(`wrote missing golden file ${expectedFile}; review it and run again`);
        return;
      }
      assert.equal(actual, readFileSync(expectedFile, 'utf8'), `snapshot differs from ${expectedFile} (UPDATE_GOLDEN=1 to accept)`);
    });
  }
});

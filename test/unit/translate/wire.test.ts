// The snapshot survives the trip to a worker process: same JSON, and working regexes.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { snapshotFromWire, snapshotToWire } from '../../../dataplane/snapshot/wire.js';
import { snapshotToJson } from '../../../dataplane/snapshot/to-json.js';
import type { StringMatcher } from '../../../dataplane/snapshot/types.js';
import { stringMatches } from '../../../dataplane/translate/string-matchers.js';
import { repoRoot } from '../../support/repo-root.js';
import { translateYaml } from '../../support/translate-yaml.js';

describe('snapshot wire format (for --concurrency workers)', () => {
  const dir = join(repoRoot(), 'test', 'golden', 'translate');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.in.yaml'))) {
    it(`round-trips ${file}`, () => {
      const snapshot = translateYaml(readFileSync(join(dir, file), 'utf8'), file);
      const copy = snapshotFromWire(snapshotToWire(snapshot));
      assert.deepEqual(snapshotToJson(copy), snapshotToJson(snapshot));
    });
  }
  it('re-creates regex matchers and regex rewrites', () => {
    const snapshot = translateYaml(readFileSync(join(dir, 'actions.in.yaml'), 'utf8'));
    const copy = snapshotFromWire(snapshotToWire(snapshot));
    const routes = copy.listeners[0]!.filterChains[0]!.http!.virtualHosts[0]!.routes;
    const regexRoute = routes.find((r) => r.name.endsWith('.regex-rewrite'))!;
    const uri = regexRoute.matches[0]!.uri as StringMatcher;
    assert.equal(stringMatches(uri, '/users/42/profile'), true);
    assert.equal(stringMatches(uri, '/users/x/profile'), false);
    assert.equal(regexRoute.rewrite!.uriRegex!.replace('/users/42/profile'), '/profile?id=42');
    const direct = routes.find((r) => r.name.endsWith('.direct'))!;
    assert.ok(direct.action.kind === 'directResponse' && Buffer.isBuffer(direct.action.body) && direct.action.body.toString() === 'ok\n');
  });
});

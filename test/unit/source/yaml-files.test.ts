// Reading YAML config files (dataplane/source/yaml-files.ts): input from anyone who can write
// a file must give a per-file problem, never an exception (HARDENING.md, "Files are input").

import assert from 'node:assert/strict';
import { MAX_ALIAS_COUNT, parseConfigText } from '../../../dataplane/source/yaml-files.js';
import { billionLaughs, sharedAnchorVirtualService } from '../../support/hostile-yaml.js';

describe('YAML config files: aliases', () => {
  it('accepts a VirtualService whose 100 (and 1,000) routes share one anchor', () => {
    for (const n of [100, 1000]) {
      const { objects, problems } = parseConfigText(sharedAnchorVirtualService(n), 'vs.yaml', 'default');
      assert.deepEqual(problems, []);
      assert.equal(objects.length, 1);
      const http = (objects[0] as unknown as { spec: { http: Array<{ route: Array<{ destination: { host: string } }> }> } }).spec.http;
      assert.equal(http.length, n);
      assert.equal(http[n - 1]!.route[0]!.destination.host, 'a.local');
    }
  });

  it('reports a billion-laughs document as a problem of its file, and keeps the other documents', () => {
    const text = `${billionLaughs()}---\n${sharedAnchorVirtualService(3, 'fine')}`;
    const { objects, problems } = parseConfigText(text, 'lol.yaml', 'default');
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.file, 'lol.yaml');
    assert.match(problems[0]!.message, new RegExp(`^document 1: more than ${MAX_ALIAS_COUNT} alias expansions`));
    assert.deepEqual(objects.map((o) => o.metadata.name), ['fine']);
  });

  it('reports an alias used before its anchor as a problem, not an exception', () => {
    const { objects, problems } = parseConfigText('apiVersion: v1\nkind: Service\nmetadata: {name: *nope}\n', 'bad.yaml', 'default');
    assert.equal(objects.length, 0);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!.message, /^document 1: /);
  });
});

// Golden files: test/golden/<area>/<case>.in.yaml is the input, <case>.out.yaml the expected
// output, reviewed as a diff. UPDATE_GOLDEN=1 rewrites the expected files; a missing one is
// written and the test fails once, so a new case is always looked at before it passes.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './repo-root.js';

export interface GoldenCase {
  name: string;
  /** The text of <case>.in.yaml. */
  input: string;
  inputFile: string;
  expectedFile: string;
}

export function goldenDir(area: string): string {
  return join(repoRoot(), 'test', 'golden', area);
}

/** The cases of an area, sorted by name. */
export function goldenCases(area: string): GoldenCase[] {
  const dir = goldenDir(area);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.in.yaml'))
    .map((f) => f.slice(0, -'.in.yaml'.length))
    .sort()
    .map((name) => {
      const inputFile = join(dir, `${name}.in.yaml`);
      return { name, input: readFileSync(inputFile, 'utf8'), inputFile, expectedFile: join(dir, `${name}.out.yaml`) };
    });
}

/** Compares `actual` with the case's .out.yaml, or rewrites it under UPDATE_GOLDEN=1. */
export function assertMatchesGolden(c: GoldenCase, actual: string): void {
  const update = process.env.UPDATE_GOLDEN === '1';
  if (update || !existsSync(c.expectedFile)) {
    writeFileSync(c.expectedFile, actual);
    if (!update) assert.fail(`wrote missing golden file ${c.expectedFile}; review it and run again`);
    return;
  }
  assert.equal(actual, readFileSync(c.expectedFile, 'utf8'), `output differs from ${c.expectedFile} (UPDATE_GOLDEN=1 to accept, then review the diff)`);
}

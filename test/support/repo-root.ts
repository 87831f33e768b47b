// The repository root, found from the compiled file (tests run from dist/test/...).

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  // dist/ has no package.json, so this is the checkout itself.
  return dir;
}

// What this release of Portway is: its version (package.json) and its own image, the one the
// chart runs (charts/portway: image.repository, tag = the chart's appVersion, kept equal to the
// package version).

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The chart's image.repository (charts/portway/values.yaml). */
export const IMAGE_REPOSITORY = 'ghcr.io/portway/portway';

/** The package's version, from the package.json above this file (in the source tree, dist/ and the image alike). */
export function releaseVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above the portway code');
    dir = up;
  }
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

/** This release's image, e.g. ghcr.io/portway/portway:0.1.0. */
export function releaseImage(): string {
  return `${IMAGE_REPOSITORY}:${releaseVersion()}`;
}

// The image recipe's contract, checked without building anything (hack/image/build.sh builds;
// hack/image/check-signals.sh runs the image): the Dockerfile and hack/image agree with the
// chart on the image name, the build stage is a Node.js LTS (24), the run-time stage has no
// package manager and runs as UID 1337, and @kubernetes/client-node stays out of production
// dependencies.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { repoRoot } from '../../support/repo-root.js';

const root = repoRoot();
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');

describe('the Portway image recipe', () => {
  it('build.sh --print names the chart default image (values.yaml image, else appVersion)', () => {
    const values = parse(readFileSync(join(root, 'charts', 'portway', 'values.yaml'), 'utf8'));
    const chart = parse(readFileSync(join(root, 'charts', 'portway', 'Chart.yaml'), 'utf8'));
    const expected = `${values.image.repository}:${values.image.tag || chart.appVersion}`;
    const r = spawnSync('bash', [join(root, 'hack', 'image', 'build.sh'), '--print'], { encoding: 'utf8', env: { ...process.env, PORTWAY_CACHE: '/nonexistent/portway-cache' } });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['/nonexistent/portway-cache/images/portway.tar', expected]);
  });

  it('builds on a public Node.js 24 LTS image by default, and the local base follows it', () => {
    const arg = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
    assert.match(arg ?? '', /^node:24\.\d+\.\d+-[a-z]+-slim$/);
    const r = spawnSync('bash', [join(root, 'hack', 'image', 'base.sh'), '--name'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const [, version, suite] = /^node:(\S+)-([a-z]+)-slim$/.exec(arg!)!;
    assert.match(r.stdout.trim(), new RegExp(`^localhost/portway-node-build:${version.replaceAll('.', '\\.')}-${suite}-r\\d+$`));
  });

  it('the run-time stage is the assembled rootfs (no npm, no shell) and runs as 1337 with the `portway` entrypoint', () => {
    const stages = dockerfile.split(/^FROM /m).slice(1);
    const last = stages[stages.length - 1];
    assert.match(last, /^scratch\n/);
    assert.doesNotMatch(last, /^RUN /m, 'no RUN in a stage without a shell');
    assert.match(last, /^USER 1337:1337$/m);
    assert.match(last, /^ENTRYPOINT \["portway"\]$/m, 'the chart and rendered pods run `portway operator|proxy`');
    assert.doesNotMatch(last, /node_modules\/npm|\/usr\/local\/lib\/node_modules/, 'no npm in the run-time image');
  });

  it('@kubernetes/client-node is a devDependency (its types only; nothing loads it at run time)', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    assert.equal(pkg.dependencies['@kubernetes/client-node'], undefined);
    assert.ok(pkg.devDependencies['@kubernetes/client-node']);
  });
});

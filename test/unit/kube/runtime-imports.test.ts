// Neither program loads @kubernetes/client-node when it runs: it costs a process about 80 MB of
// RSS. The operator's and the proxy's modules are imported in a child process whose module
// resolution is watched; client-node may only appear in `import type` lines (erased) and tests.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../../support/repo-root.js';

describe('run-time imports', () => {
  it('loading the operator (controller, leader election, webhook) and the proxy resolves no @kubernetes/client-node', async function () {
    this.timeout(30_000);
    const dir = mkdtempSync(join(tmpdir(), 'runtime-imports-'));
    const hooks = join(dir, 'hooks.mjs');
    writeFileSync(hooks, `export async function resolve(specifier, context, next) {
  if (specifier.includes('@kubernetes/client-node')) process.stderr.write('RESOLVED ' + specifier + ' FROM ' + context.parentURL + '\\n');
  return next(specifier, context);
}
`);
    const register = join(dir, 'register.mjs');
    writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
    const dist = join(repoRoot(), 'dist');
    const modules = ['cli/main.js', 'cli/operator-command.js', 'cli/proxy-command.js', 'operator/controller/gateway-controller.js', 'operator/webhook/index.js', 'dataplane/source/kubernetes-source.js'];
    const script = `${modules.map((m) => `await import(${JSON.stringify(pathToFileURL(join(dist, m)).href)});`).join('\n')}\nprocess.stdout.write('loaded');`;
    const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) =>
      execFile(process.execPath, ['--import', pathToFileURL(register).href, '--input-type=module', '-e', script], (err, out, errOut) => (err ? reject(Object.assign(err, { stderr: errOut })) : resolve({ stdout: out, stderr: errOut }))),
    );
    assert.equal(stdout, 'loaded');
    assert.deepEqual(stderr.split('\n').filter((l) => l.startsWith('RESOLVED')), []);
  });
});

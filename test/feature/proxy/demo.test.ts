// The README's first command: `portway demo` serves the standalone examples with its own
// backends and answers the requests it prints.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { repoRoot } from '../../support/repo-root.js';

function get(path: string, headers: Record<string, string>): Promise<{ status: number; servedBy?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: 8080, path, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, servedBy: res.headers['x-served-by'] as string | undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('portway demo (the README command)', function () {
  this.timeout(60_000);
  it('routes httpbin, answers 404, sends the qa cookie to qa and splits reviews between v1 and v2', async () => {
    const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'portway.js'), 'demo', '--access-log', 'off'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    child.stdout!.on('data', (c: Buffer) => output.push(c.toString()));
    child.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
    try {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const ready = await fetch('http://127.0.0.1:15021/healthz/ready').then((r) => r.status, () => 0);
        if (ready === 200) break;
        if (Date.now() > deadline || child.exitCode !== null) assert.fail(`demo not ready:\n${output.join('')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(output.join(''), /curl -i -H 'Host: httpbin.example.com'/);
      const ok = await get('/status/418', { host: 'httpbin.example.com' });
      assert.equal(ok.status, 418);
      assert.equal(ok.servedBy, 'httpbin');
      assert.equal((await get('/headers', { host: 'httpbin.example.com' })).status, 404);
      assert.equal((await get('/', { host: 'unknown.example.com' })).status, 404);
      assert.equal((await get('/reviews', { host: 'bookinfo.example.com', cookie: 'user=dev-123' })).servedBy, 'reviews-qa');
      const seen = new Set<string>();
      for (let i = 0; i < 40; i++) seen.add((await get('/reviews/1', { host: 'bookinfo.example.com' })).servedBy ?? '');
      assert.deepEqual([...seen].sort(), ['reviews-v1', 'reviews-v2']);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});

// `portway demo`: the README's first command. Starts the httpbin-like backends that
// examples/standalone points at, then the proxy on those examples, and prints what to try.

import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseProxyOptions } from '../proxy-command.js';
import { startHttpbin } from './httpbin.js';

export const DEMO_BACKENDS = [
  { name: 'httpbin', port: 18000 },
  { name: 'reviews-v1', port: 18001 },
  { name: 'reviews-v2', port: 18002 },
  { name: 'reviews-qa', port: 18003 },
];

function examplesDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return join(dir, 'examples', 'standalone');
}

export async function runDemo(argv: string[]): Promise<number> {
  const backends = [];
  for (const b of DEMO_BACKENDS) {
    try {
      backends.push(await startHttpbin({ name: b.name, port: b.port }));
    } catch (err) {
      console.error(`demo: cannot start backend ${b.name} on 127.0.0.1:${b.port}: ${(err as Error).message}`);
      return 1;
    }
  }
  const config = examplesDir();
  const options = parseProxyOptions(['--config', config, '--namespace', 'istio-system', '--labels', 'istio=ingressgateway,app=istio-ingressgateway', ...argv]);
  const port = options.portMap.get(80) ?? 8080;
  console.log(`Portway demo: proxy on ${config}
Backends: ${backends.map((b) => `${b.name} ${b.url}`).join(', ')}

Try:
  curl -i -H 'Host: httpbin.example.com' http://127.0.0.1:${port}/status/200      # routed to httpbin
  curl -i -H 'Host: httpbin.example.com' http://127.0.0.1:${port}/delay/1         # routed, 1 s later
  curl -i -H 'Host: httpbin.example.com' http://127.0.0.1:${port}/headers         # 404: no route
  curl -i -H 'Host: unknown.example.com' http://127.0.0.1:${port}/                # 404: no virtual host
  curl -s -H 'Host: bookinfo.example.com' -H 'Cookie: user=dev-123' http://127.0.0.1:${port}/reviews | grep served_by   # qa
  for i in $(seq 20); do curl -s -H 'Host: bookinfo.example.com' http://127.0.0.1:${port}/reviews/1 | grep served_by; done | sort | uniq -c   # ~80/20
  curl -s http://127.0.0.1:${options.statusPort}/healthz/ready; curl -s http://127.0.0.1:${options.adminPort}/config_dump | head
  npx portway proxy-config routes --admin http://127.0.0.1:${options.adminPort}

Edit a file in ${config} and the change applies within a second. Ctrl-C stops.
`);
  const { runProxy } = await import('../../dataplane/proxy.js');
  const code = await runProxy(options);
  await Promise.all(backends.map((b) => b.close()));
  return code;
}

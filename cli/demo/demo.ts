// `portway demo`: the README's first command. Starts the httpbin-like backends that
// examples/standalone points at, then the proxy on those examples, and prints what to try.

import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { HelpRequested, parseProxyOptions, type ProxyOptions } from '../proxy-command.js';
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

export const DEMO_USAGE = `Usage: portway demo [options]

Serves examples/standalone with four small httpbin-like backends, all on 127.0.0.1 only:
  gateway (HTTP)   127.0.0.1:8080     move it with --port-map 80=PORT
  readiness        127.0.0.1:15021    --status-port PORT
  metrics          127.0.0.1:15090    --metrics-port PORT
  config dump      127.0.0.1:15000    --admin-port PORT
  backends         127.0.0.1:18000-18003 (httpbin, reviews-v1, reviews-v2, reviews-qa; fixed)

Any \`portway proxy\` option may be given (see \`portway proxy --help\`); --bind-address 0.0.0.0
serves other machines too. A port already in use stops the demo with the flag that moves it.`;

/** Where each port of the demo comes from, to name the flag that moves it. */
function demoPorts(options: ProxyOptions): Array<{ port: number; what: string }> {
  return [
    { port: options.portMap.get(80) ?? 8080, what: 'the gateway port (move it with --port-map 80=PORT)' },
    { port: options.statusPort, what: 'the readiness port (--status-port PORT)' },
    { port: options.metricsPort, what: 'the metrics port (--metrics-port PORT)' },
    { port: options.adminPort, what: 'the config dump port (--admin-port PORT)' },
    ...DEMO_BACKENDS.map((b) => ({ port: b.port, what: `the ${b.name} backend's port (fixed: stop what uses it)` })),
  ];
}

function inUse(port: number, host: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

export async function runDemo(argv: string[]): Promise<number> {
  let options: ProxyOptions;
  try {
    // Loopback only unless asked: kubectl's and many dev servers' 8080 on every interface is
    // not what a first try should expose.
    options = parseProxyOptions(['--config', examplesDir(), '--namespace', 'istio-system', '--labels', 'istio=ingressgateway,app=istio-ingressgateway', '--bind-address', '127.0.0.1', ...argv]);
  } catch (err) {
    if (err instanceof HelpRequested) {
      console.log(DEMO_USAGE);
      return 0;
    }
    console.error(`portway demo: ${(err as Error).message}\n\n${DEMO_USAGE}`);
    return 2;
  }
  for (const { port, what } of demoPorts(options)) {
    const problem = await inUse(port, options.bindAddress === '0.0.0.0' ? '0.0.0.0' : options.bindAddress);
    if (problem !== undefined) {
      console.error(`portway demo: port ${port}, ${what}, cannot be used (${problem}). Stop what listens there (\`ss -ltnp 'sport = :${port}'\` shows it) or choose another port.`);
      return 1;
    }
  }
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

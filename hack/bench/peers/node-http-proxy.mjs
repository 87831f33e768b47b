// Peer: node-http-proxy (http-proxy) behind node:http, with a keep-alive upstream agent.
// Usage: node node-http-proxy.mjs LISTEN_PORT BACKEND_PORT
import http from 'node:http';
import httpProxy from 'http-proxy';

const [listenPort, backendPort] = process.argv.slice(2).map(Number);
// Without an agent http-proxy sends `Connection: close` upstream; with one it keeps connections.
const agent = new http.Agent({ keepAlive: true, maxSockets: 128, maxFreeSockets: 128, keepAliveMsecs: 60_000 });
const proxy = httpProxy.createProxyServer({
  target: `http://127.0.0.1:${backendPort}`,
  agent,
  xfwd: true, // X-Forwarded-For/-Port/-Proto, as the other proxies add
  // Host is passed through unchanged (changeOrigin false), as Portway and the nginx config do.
});
proxy.on('error', (err, _req, res) => {
  if (res && typeof res.writeHead === 'function' && !res.headersSent) res.writeHead(502);
  if (res) res.end();
});
const server = http.createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.maxRequestsPerSocket = 0;
server.listen(listenPort, '127.0.0.1', () => console.log(JSON.stringify({ listening: server.address().port })));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

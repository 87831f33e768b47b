// Peer: fastify + @fastify/http-proxy (@fastify/reply-from over an undici keep-alive pool:
// 128 connections, no pipelining, which are reply-from's defaults, spelled out here).
// Usage: node fastify-http-proxy.mjs LISTEN_PORT BACKEND_PORT
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const [listenPort, backendPort] = process.argv.slice(2).map(Number);
const app = Fastify({ logger: false, keepAliveTimeout: 120_000 });
await app.register(proxy, {
  upstream: `http://127.0.0.1:${backendPort}`,
  prefix: '/',
  undici: { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 },
  replyOptions: {
    // Keep the client's Host and add X-Forwarded-For/-Proto, as the other proxies do.
    rewriteRequestHeaders: (req, headers) => ({
      ...headers,
      host: req.headers.host,
      'x-forwarded-for': req.headers['x-forwarded-for'] ? `${req.headers['x-forwarded-for']}, ${req.ip}` : req.ip,
      'x-forwarded-proto': 'http',
    }),
  },
});
await app.listen({ port: listenPort, host: '127.0.0.1' });
console.log(JSON.stringify({ listening: app.server.address().port }));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

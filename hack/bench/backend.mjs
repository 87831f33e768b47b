// The benchmark's upstream: a keep-alive node:http server that answers every request with
// 200 "hello". Every scenario (direct and each proxy) sends its traffic here.
// Usage: node backend.mjs PORT   (listens on 127.0.0.1 only; prints {"listening":PORT})
import http from 'node:http';

const port = Number(process.argv[2] ?? 0);
const body = Buffer.from('hello');
const headers = { 'content-type': 'text/plain', 'content-length': String(body.length) };

const server = http.createServer((req, res) => {
  req.resume(); // a GET has no body; drain any so the connection stays reusable
  res.writeHead(200, headers);
  res.end(body);
});
// Pooled upstream connections from the proxies must outlive the pauses between runs.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;
server.listen(port, '127.0.0.1', () => console.log(JSON.stringify({ listening: server.address().port })));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

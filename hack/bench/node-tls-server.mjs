// The TLS benchmark's reference for "what node:tls itself costs": a bare tls.Server per
// certificate with the options Portway gives its chains (TLS 1.2–1.3, ALPN h2 + http/1.1,
// server cipher order, ticket keys, a handshake timeout), each handshake handed to a
// node:http server as Portway does, which answers 200 "hello" itself (no proxying: only the
// handshake figures are comparable). Portway's handshake figures over this one are the cost of
// Portway's own TLS path (ClientHello peek, chain selection, hand-over, metrics).
// Usage: node node-tls-server.mjs ECDSA_PORT RSA_PORT DIR   (DIR holds ecdsa.crt/.key, rsa.crt/.key)
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import tls from 'node:tls';

const [ecdsaPort, rsaPort, dir] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
const body = Buffer.from('hello');
const web = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(body.length) });
  res.end(body);
});
web.keepAliveTimeout = 120_000;
const ticketKeys = randomBytes(48);
for (const [name, port] of [['ecdsa', ecdsaPort], ['rsa', rsaPort]]) {
  const server = tls.createServer({
    cert: readFileSync(path.join(dir, `${name}.crt`)),
    key: readFileSync(path.join(dir, `${name}.key`)),
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    honorCipherOrder: true,
    ALPNProtocols: ['h2', 'http/1.1'],
    ticketKeys,
    sessionIdContext: 'node-tls-reference',
    handshakeTimeout: 10_000,
  });
  server.on('secureConnection', (socket) => web.emit('connection', socket));
  server.on('tlsClientError', (_err, socket) => socket.destroy());
  server.listen(port, '127.0.0.1');
}
web.emit('listening');
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

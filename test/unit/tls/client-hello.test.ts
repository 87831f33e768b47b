// The ClientHello parser on real ClientHellos, captured from node:tls clients connecting to
// a raw TCP server, fed whole, byte by byte, re-framed into several records, and broken.

import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { ClientHelloReader, MAX_CLIENT_HELLO_BYTES, parseClientHello, type ClientHello } from '../../../dataplane/tls/client-hello.js';

/** The bytes a node:tls client sends first: one TLS record, read by its own length field. */
async function captureClientHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const captured = new Promise<Buffer>((resolve, reject) => {
      server.once('connection', (socket) => {
        let data = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => {
          data = Buffer.concat([data, chunk]);
          if (data.length >= 5 && data.length >= 5 + data.readUInt16BE(3)) {
            socket.destroy();
            resolve(data.subarray(0, 5 + data.readUInt16BE(3)));
          }
        });
        socket.on('error', reject);
      });
    });
    const client = tls.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ...options });
    client.on('error', () => {}); // the capture server hangs up mid-handshake
    return await captured;
  } finally {
    server.close();
  }
}

/** Splits one handshake record into records carrying at most `size` bytes each. */
function reframe(record: Buffer, size: number): Buffer {
  const payload = record.subarray(5);
  const records: Buffer[] = [];
  for (let i = 0; i < payload.length; i += size) {
    const part = payload.subarray(i, i + size);
    const header = Buffer.from([22, 3, 1, 0, 0]);
    header.writeUInt16BE(part.length, 3);
    records.push(header, part);
  }
  return Buffer.concat(records);
}

function asHello(result: ReturnType<typeof parseClientHello>): ClientHello {
  if (result === 'need-more-bytes' || result instanceof Error) assert.fail(`expected a ClientHello, got ${String(result)}`);
  return result;
}

describe('tls: ClientHello parser', () => {
  let withSniAndAlpn: Buffer;
  let withoutSni: Buffer;
  let tls12Only: Buffer;

  before(async () => {
    withSniAndAlpn = await captureClientHello({ servername: 'API.Example.com', ALPNProtocols: ['h2', 'http/1.1'] });
    withoutSni = await captureClientHello({});
    tls12Only = await captureClientHello({ servername: 'legacy.example.com', maxVersion: 'TLSv1.2' });
  });

  it('reads SNI (lower-cased) and ALPN in the client order', () => {
    assert.deepEqual(asHello(parseClientHello(withSniAndAlpn)), { sni: 'api.example.com', alpn: ['h2', 'http/1.1'] });
    assert.deepEqual(asHello(parseClientHello(tls12Only)), { sni: 'legacy.example.com', alpn: [] });
  });

  it('reports no SNI when the client sent none', () => {
    const hello = asHello(parseClientHello(withoutSni));
    assert.equal(hello.sni, undefined);
    assert.deepEqual(hello.alpn, []);
  });

  it('asks for more bytes at every split point of a chunked ClientHello, then parses it', () => {
    const reader = new ClientHelloReader();
    for (let i = 0; i < withSniAndAlpn.length - 1; i++) {
      assert.equal(reader.push(withSniAndAlpn.subarray(i, i + 1)), 'need-more-bytes', `after ${i + 1} bytes`);
    }
    const hello = asHello(reader.push(withSniAndAlpn.subarray(withSniAndAlpn.length - 1)));
    assert.equal(hello.sni, 'api.example.com');
    assert.deepEqual(reader.buffered, withSniAndAlpn, 'every byte is kept for replay');
  });

  it('parses a ClientHello spread over several records, whole and byte by byte', () => {
    for (const size of [1, 3, 64, 200]) {
      const framed = reframe(withSniAndAlpn, size);
      assert.deepEqual(asHello(parseClientHello(framed)), { sni: 'api.example.com', alpn: ['h2', 'http/1.1'] }, `records of ${size} bytes`);
      assert.equal(parseClientHello(framed.subarray(0, framed.length - 1)), 'need-more-bytes');
    }
    const reader = new ClientHelloReader();
    const framed = reframe(withSniAndAlpn, 50);
    let result: ReturnType<typeof parseClientHello> = 'need-more-bytes';
    for (const byte of framed) result = reader.push(Buffer.from([byte]));
    assert.equal(asHello(result).sni, 'api.example.com');
  });

  it('keeps bytes after the ClientHello in the buffer and still parses', () => {
    const hello = asHello(parseClientHello(Buffer.concat([withSniAndAlpn, Buffer.from('trailing')])));
    assert.equal(hello.sni, 'api.example.com');
  });

  it('says what is wrong with bytes that are not TLS', () => {
    assert.match(String(parseClientHello(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))), /plain HTTP on a TLS port/);
    assert.match(String(parseClientHello(Buffer.from('PRI * HTTP/2.0\r\n'))), /plain HTTP/);
    assert.match(String(parseClientHello(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01]))), /SSLv2/);
    assert.match(String(parseClientHello(Buffer.from([0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]))), /not a TLS handshake \(first byte 0x17\)/);
    assert.equal(parseClientHello(Buffer.from([22, 3])), 'need-more-bytes');
  });

  it('refuses a handshake message that is not a ClientHello', () => {
    const serverHello = Buffer.from(withSniAndAlpn);
    serverHello[5] = 2;
    assert.match(String(parseClientHello(serverHello)), /type 2, not ClientHello/);
  });

  it('gives up on a ClientHello announced larger than 16 KiB', () => {
    const header = Buffer.from([22, 3, 1, 0x00, 0x04, 1, 0x00, 0x50, 0x00]); // 20480-byte message
    assert.match(String(parseClientHello(header)), /larger than 16384/);
  });

  it('stops buffering at 16 KiB when the ClientHello never completes', () => {
    // A 16000-byte message sent one byte per record: record headers push it past the bound.
    const records: Buffer[] = [Buffer.from([22, 3, 1, 0, 4, 1, 0x00, 0x3e, 0x80])];
    for (let i = 0; i < 3000; i++) records.push(Buffer.from([22, 3, 1, 0, 1, 0]));
    const reader = new ClientHelloReader();
    let result: ReturnType<typeof parseClientHello> = 'need-more-bytes';
    for (const r of records) {
      result = reader.push(r);
      if (result !== 'need-more-bytes') break;
    }
    assert.ok(result instanceof Error, 'an error, not more buffering');
    assert.match(result.message, /no complete ClientHello in the first 16384 bytes/);
    assert.ok(reader.bufferedLength <= MAX_CLIENT_HELLO_BYTES + 6);
  });

  it('never throws on truncated or corrupted ClientHellos', () => {
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    let errors = 0;
    for (let i = 0; i < 3000; i++) {
      const bytes = Buffer.from(withSniAndAlpn);
      const flips = 1 + Math.floor(random() * 4);
      for (let f = 0; f < flips; f++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      const cut = random() < 0.3 ? Math.floor(random() * bytes.length) : bytes.length;
      const result = parseClientHello(bytes.subarray(0, cut));
      if (result instanceof Error) errors++;
      else if (result !== 'need-more-bytes') assert.ok(Array.isArray(result.alpn));
    }
    assert.ok(errors > 0, 'corruption is detected at least sometimes');
  });
});

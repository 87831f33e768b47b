// Access log formats and the batching writer.

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createAccessLog, formatJsonLine, formatTextLine } from '../../../dataplane/serve/http/access-log.js';
import { NO_SERIES, RequestInfo } from '../../../dataplane/serve/http/request-info.js';

function sampleInfo(): RequestInfo {
  const i = new RequestInfo('GET', '/status/200?x=1', 'HTTP/1.1', 'httpbin.example.com', 'curl/8.0', '10.0.0.2:8080', '10.0.0.9:51234', '-', NO_SERIES);
  (i as { startTime: number }).startTime = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
  i.status = 503;
  i.addFlag('UF');
  i.addFlag('URX');
  i.addFlag('UF');
  i.details = 'upstream_reset_before_response_started{connection_failure}';
  i.transportFailure = 'ECONNREFUSED';
  i.bytesReceived = 12;
  i.bytesSent = 91;
  i.duration = 7;
  i.upstreamServiceTime = 3;
  i.forwardedFor = '10.0.0.9';
  i.requestId = 'abc';
  i.upstreamHost = '10.1.1.1:80';
  i.upstreamCluster = 'outbound|8000||httpbin.default.svc.cluster.local';
  i.routeName = 'default/httpbin.0';
  return i;
}

describe('serve: access log', () => {
  it("writes Istio's default text format", () => {
    assert.equal(
      formatTextLine(sampleInfo()),
      '[2024-01-02T03:04:05.678Z] "GET /status/200?x=1 HTTP/1.1" 503 UF,URX upstream_reset_before_response_started{connection_failure} - "ECONNREFUSED" 12 91 7 3 "10.0.0.9" "curl/8.0" "abc" "httpbin.example.com" "10.1.1.1:80" outbound|8000||httpbin.default.svc.cluster.local - 10.0.0.2:8080 10.0.0.9:51234 - default/httpbin.0\n',
    );
  });
  it('uses "-" for what is unknown', () => {
    const i = new RequestInfo('GET', '/', 'HTTP/1.1', '', '', '1.1.1.1:80', '2.2.2.2:1', '-', NO_SERIES);
    i.status = 404;
    assert.match(formatTextLine(i), /" 404 - - - "-" 0 0 0 - "-" "-" "-" "-" "-" - - 1\.1\.1\.1:80 2\.2\.2\.2:1 - -\n$/);
  });
  it('a TCP connection: the HTTP fields are "-", as Istio renders a tcp_proxy line', () => {
    const i = new RequestInfo('-', '-', '-', '', '', '10.0.0.2:27017', '10.0.0.9:40000', '-', NO_SERIES, { time: Date.UTC(2024, 0, 2, 3, 4, 5, 0), mark: 0 });
    i.bytesReceived = 8;
    i.bytesSent = 30;
    i.duration = 12;
    i.upstreamHost = '10.1.1.1:5555';
    i.upstreamCluster = 'outbound|5555||mongo.prod.svc.cluster.local';
    assert.equal(
      formatTextLine(i),
      '[2024-01-02T03:04:05.000Z] "- - -" 0 - - - "-" 8 30 12 - "-" "-" "-" "-" "10.1.1.1:5555" outbound|5555||mongo.prod.svc.cluster.local - 10.0.0.2:27017 10.0.0.9:40000 - -\n',
    );
    const j = JSON.parse(formatJsonLine(i));
    assert.deepEqual([j.method, j.path, j.protocol, j.response_code, j.bytes_received, j.bytes_sent], [null, null, null, 0, 8, 30]);
  });
  it("writes JSON with Istio's keys", () => {
    const j = JSON.parse(formatJsonLine(sampleInfo()));
    assert.equal(j.response_code, 503);
    assert.equal(j.response_flags, 'UF,URX');
    assert.equal(j.path, '/status/200?x=1');
    assert.equal(j.upstream_cluster, 'outbound|8000||httpbin.default.svc.cluster.local');
    assert.equal(j.upstream_service_time, '3');
    assert.equal(j.requested_server_name, null);
    assert.equal(j.route_name, 'default/httpbin.0');
  });
  it('batches the lines of one event-loop turn into one write', async () => {
    const writes: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        writes.push(chunk.toString());
        cb();
      },
    });
    const log = createAccessLog({ format: 'text', stream });
    for (let i = 0; i < 10; i++) log.log(sampleInfo());
    assert.equal(writes.length, 0, 'nothing is written synchronously');
    await log.flush();
    assert.equal(writes.length, 1);
    assert.equal(writes[0]!.split('\n').filter(Boolean).length, 10);
  });
  it('drops lines instead of queueing without bound when the reader is stuck', async () => {
    const stream = new Writable({ highWaterMark: 1, write() {} }); // never completes a write
    const log = createAccessLog({ format: 'text', stream, maxPendingBytes: 4096 });
    log.log(sampleInfo());
    await new Promise((r) => setImmediate(r)); // first batch written: the stream is now full
    for (let i = 0; i < 1000; i++) log.log(sampleInfo());
    assert.ok(log.dropped > 900, `dropped ${log.dropped}`);
  });
  it('off: no writer at all', () => {
    const log = createAccessLog({ format: 'off' });
    assert.equal(log.enabled, false);
    log.log(sampleInfo());
  });
});

// Header handling and retry decisions: pure functions.

import assert from 'node:assert/strict';
import { applyHeaderOperations, connectionTokens, forwardableRequestHeaders, responseHeadersFromRaw, stripResponseHopByHop, type HeaderMap } from '../../../dataplane/serve/http/headers.js';
import { compileRetryPolicy, isRetriableFailure, isRetriableResponse, retryBackoff } from '../../../dataplane/serve/http/retry-policy.js';
import { ISTIO_DEFAULT_RETRY_ON } from '../../../dataplane/snapshot/types.js';
import { ops } from '../../support/snapshot-builder.js';

describe('serve: hop-by-hop headers', () => {
  it('drops the standard hop-by-hop headers and every header named in Connection from requests', () => {
    const out = forwardableRequestHeaders({
      host: 'a',
      connection: 'keep-alive, X-Secret, x-other',
      'keep-alive': 'timeout=5',
      'proxy-authorization': 'Basic x',
      te: 'gzip',
      trailer: 'x',
      'transfer-encoding': 'chunked',
      upgrade: 'h2c',
      expect: '100-continue',
      'x-secret': '1',
      'x-other': '2',
      'x-kept': '3',
    });
    assert.deepEqual(Object.keys(out).sort(), ['host', 'x-kept']);
  });
  it('keeps TE only as "trailers" (gRPC)', () => {
    assert.equal(forwardableRequestHeaders({ te: 'trailers' }).te, 'trailers');
    assert.equal(forwardableRequestHeaders({ te: 'trailers, deflate' }).te, undefined);
  });
  it('drops them from responses too', () => {
    const h: HeaderMap = { connection: 'x-internal', 'x-internal': 'v', 'keep-alive': 't', 'proxy-authenticate': 'Basic', 'content-type': 'text/plain', 'transfer-encoding': 'chunked' };
    stripResponseHopByHop(h);
    assert.deepEqual(Object.keys(h), ['content-type']);
  });
  it('builds response headers from undici raw headers, stripped as stripResponseHopByHop does', () => {
    const raw = (pairs: string[]) => pairs.map((p) => Buffer.from(p, 'latin1'));
    const out = responseHeadersFromRaw(
      raw(['Content-Type', 'text/plain', 'Connection', 'keep-alive, X-Internal', 'X-Internal', 'v', 'Keep-Alive', 'timeout=5', 'Set-Cookie', 'a=1', 'set-cookie', 'b=2', 'Transfer-Encoding', 'chunked', 'constructor', 'c', 'X-Latin', '\u00e9']),
    );
    assert.deepEqual(out, { 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'], constructor: 'c', 'x-latin': '\u00e9' });
    assert.deepEqual(responseHeadersFromRaw(raw(['a', '1', 'b', '2', 'a', '3'])), { a: ['1', '3'], b: '2' });
    assert.deepEqual(responseHeadersFromRaw([]), {});
  });
  it('connection tokens ignore close/keep-alive/upgrade', () => {
    assert.equal(connectionTokens('close'), undefined);
    assert.deepEqual([...connectionTokens(['Upgrade, X-A', ' x-b '])!], ['x-a', 'x-b']);
  });
});

describe('serve: header operations', () => {
  it('removes, then sets, then adds (Envoy order)', () => {
    const h: HeaderMap = { a: '1', b: '2', c: '3' };
    applyHeaderOperations(h, ops({ remove: ['a', 'd'], set: { b: 'set', d: 'new' }, add: { c: 'more', a: 'back' } }));
    assert.deepEqual(h, { b: 'set', c: ['3', 'more'], d: 'new', a: 'back' });
  });
});

describe('serve: retry policy', () => {
  it("Istio's default retries connect failures and 503, not 500 or resets", () => {
    const r = compileRetryPolicy({ attempts: 2, retryOn: ISTIO_DEFAULT_RETRY_ON, retryRemoteLocalities: false });
    assert.equal(r.attempts, 2);
    assert.equal(isRetriableResponse(r, 503, {}), true);
    assert.equal(isRetriableResponse(r, 500, {}), false);
    assert.equal(isRetriableFailure(r, 'connect-failure'), true);
    assert.equal(isRetriableFailure(r, 'reset'), false);
    assert.equal(isRetriableResponse(r, 200, { 'grpc-status': '14' }), true, 'unavailable');
    assert.equal(isRetriableResponse(r, 200, { 'grpc-status': '1' }), true, 'cancelled');
    assert.equal(isRetriableResponse(r, 200, { 'grpc-status': '4' }), false);
  });
  it('5xx, gateway-error, retriable-4xx, numeric codes', () => {
    const five = compileRetryPolicy({ attempts: 3, retryOn: ['5xx'], retryRemoteLocalities: false });
    assert.equal(isRetriableResponse(five, 500, {}), true);
    assert.equal(isRetriableFailure(five, 'reset'), true);
    assert.equal(isRetriableFailure(five, 'timeout'), true);
    const gw = compileRetryPolicy({ attempts: 3, retryOn: ['gateway-error'], retryRemoteLocalities: false });
    assert.equal(isRetriableResponse(gw, 502, {}), true);
    assert.equal(isRetriableResponse(gw, 500, {}), false);
    const four = compileRetryPolicy({ attempts: 1, retryOn: ['retriable-4xx', '418', 'retriable-status-codes'], retryRemoteLocalities: false });
    assert.equal(isRetriableResponse(four, 409, {}), true);
    assert.equal(isRetriableResponse(four, 418, {}), true);
    assert.equal(isRetriableResponse(four, 503, {}), false, 'explicit codes replace the implied 503');
    const grpc = compileRetryPolicy({ attempts: 1, retryOn: ['deadline-exceeded', 'resource-exhausted'], retryRemoteLocalities: false });
    assert.equal(isRetriableResponse(grpc, 200, { 'grpc-status': '4' }), true);
    assert.equal(isRetriableResponse(grpc, 200, { 'grpc-status': '8' }), true);
    assert.equal(isRetriableResponse(grpc, 200, { 'grpc-status': '14' }), false);
  });
  it('back-off is jittered below base·2^(n-1), capped at 10× base', () => {
    assert.equal(retryBackoff(25, 1, () => 0.999), 24);
    assert.equal(retryBackoff(25, 3, () => 0.999), 99);
    assert.equal(retryBackoff(25, 10, () => 0.999), 249);
    assert.equal(retryBackoff(25, 2, () => 0), 0);
  });
});

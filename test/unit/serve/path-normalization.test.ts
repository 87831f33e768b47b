// Path normalization tables (Istio meshConfig.pathNormalization → Envoy normalize_path,
// merge_slashes, path_with_escaped_slashes_action) and the trusted-hop header readers.

import assert from 'node:assert/strict';
import { normalizePath, type PathNormalization } from '../../../dataplane/serve/http/path-normalization.js';
import { trustedClientAddress, trustedForwardedProto } from '../../../dataplane/serve/http/forwarded-headers.js';

const BASE: Array<[string, string | null]> = [
  ['/a/../b', '/b'],
  ['/a/./b', '/a/b'],
  ['/a/b/..', '/a/'],
  ['/a/.', '/a/'],
  ['/..', '/'],
  ['/../../etc/passwd', '/etc/passwd'],
  ['/public/../admin', '/admin'],
  ['/public/%2E%2E/admin', '/admin'],
  ['/public/%2e%2e/admin', '/admin'],
  ['/public/.%2E/admin', '/admin'],
  ['/a/%2E/b', '/a/b'],
  ['/%41%62%2D%5F%7E%30', '/Ab-_~0'],
  ['/a%2Fb', '/a%2Fb'],
  ['/a%2fb/../c', '/c'],
  ['/a%5Cb', '/a%5Cb'],
  ['/a%20b', '/a%20b'],
  ['/a%zzb', '/a%zzb'],
  ['/a%2', '/a%2'],
  ['/a//b', '/a//b'],
  ['/a\\..\\b', '/b'],
  ['/foo/../bar?x=/../y&z=%2E', '/bar?x=/../y&z=%2E'],
  ['/a%00b', null],
  ['/plain/path.html', '/plain/path.html'],
  ['/.well-known/x', '/.well-known/x'],
  ['/a/..b/c', '/a/..b/c'],
  ['*', '*'],
];

describe('serve: path normalization', () => {
  for (const [input, want] of BASE) {
    it(`BASE: ${JSON.stringify(input)} → ${JSON.stringify(want)}`, () => assert.equal(normalizePath(input, 'BASE'), want));
  }

  const others: Array<[PathNormalization, string, string | null]> = [
    ['NONE', '/a/../b', '/a/../b'],
    ['NONE', '/a%00b', '/a%00b'],
    ['MERGE_SLASHES', '/a//b///c', '/a/b/c'],
    ['MERGE_SLASHES', '//a/./b', '/a/b'],
    ['MERGE_SLASHES', '/a%2Fb', '/a%2Fb'],
    ['DECODE_AND_MERGE_SLASHES', '/a%2Fb', '/a/b'],
    ['DECODE_AND_MERGE_SLASHES', '/a%2f%2fb', '/a/b'],
    ['DECODE_AND_MERGE_SLASHES', '/public%2F..%2Fadmin', '/admin'],
    ['DECODE_AND_MERGE_SLASHES', '/a%5Cb', '/a/b'],
  ];
  for (const [mode, input, want] of others) {
    it(`${mode}: ${JSON.stringify(input)} → ${JSON.stringify(want)}`, () => assert.equal(normalizePath(input, mode), want));
  }

  it('a path that needs nothing comes back as the very same string (no copy on the hot path)', () => {
    const p = '/api/v1/items/42?sort=name.asc';
    assert.equal(normalizePath(p, 'BASE'), p);
    assert.equal(normalizePath(p, 'MERGE_SLASHES'), p);
  });
});

describe('serve: trusted hops (xff_num_trusted_hops)', () => {
  const xff = '203.0.113.128, 203.0.113.10,192.0.2.1';
  const table: Array<[string | string[], number, string | undefined]> = [
    [xff, 1, '192.0.2.1'],
    [xff, 2, '203.0.113.10'],
    [xff, 3, '203.0.113.128'],
    [xff, 4, undefined],
    ['198.51.100.7', 1, '198.51.100.7'],
    ['198.51.100.7', 2, undefined],
    [['10.0.0.1, 10.0.0.2', '10.0.0.3'], 2, '10.0.0.2'],
    ['2001:db8::1, unknown', 1, undefined],
    ['2001:db8::1, 10.0.0.9', 2, '2001:db8::1'],
  ];
  for (const [value, hops, want] of table) {
    it(`${JSON.stringify(value)} with ${hops} trusted: ${want ?? 'the peer'}`, () => assert.equal(trustedClientAddress(value, hops), want));
  }
  it('X-Forwarded-Proto: the first value names the scheme; anything but http/https is not believed', () => {
    assert.deepEqual(trustedForwardedProto('https'), { value: 'https', scheme: 'https' });
    assert.deepEqual(trustedForwardedProto('HTTPS, http'), { value: 'HTTPS, http', scheme: 'https' });
    assert.equal(trustedForwardedProto('ftp'), undefined);
    assert.equal(trustedForwardedProto(undefined), undefined);
  });
});

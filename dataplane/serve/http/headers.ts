// Header handling shared by the request and response paths: hop-by-hop stripping (both
// ways, including every header the Connection header names), Istio header operations
// (remove, then set, then add, as Envoy applies them), and client addresses.

import type { IncomingHttpHeaders } from 'node:http';
import { util as undiciUtil } from 'undici';
import type { HeaderOperations } from '../../snapshot/types.js';

export type HeaderMap = Record<string, string | string[] | undefined>;

/** RFC 9110 §7.6.1 plus the non-standard ones proxies strip. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/**
 * Request headers never forwarded besides the hop-by-hop ones: `expect` (the proxy answered
 * 100-continue itself), and the x-envoy-* headers Envoy sanitizes from external requests (every
 * request is external to Istio's gateway: it sets no internal address ranges). Envoy's router
 * takes retry and timeout orders from some of them; an upstream must not believe a client's.
 * (x-envoy-external-address, also sanitized, is set by the proxy.)
 */
const REQUEST_ONLY_DROP = new Set([
  'expect',
  'x-envoy-decorator-operation',
  'x-envoy-downstream-service-cluster',
  'x-envoy-downstream-service-node',
  'x-envoy-expected-rq-timeout-ms',
  'x-envoy-force-trace',
  'x-envoy-internal',
  'x-envoy-ip-tags',
  'x-envoy-max-retries',
  'x-envoy-retry-grpc-on',
  'x-envoy-retry-on',
  'x-envoy-retriable-status-codes',
  'x-envoy-retriable-header-names',
  'x-envoy-hedge-on-per-try-timeout',
  'x-envoy-upstream-alt-stat-name',
  'x-envoy-upstream-rq-per-try-timeout-ms',
  'x-envoy-upstream-rq-timeout-alt-response',
  'x-envoy-upstream-rq-timeout-ms',
  'x-envoy-upstream-stream-duration-ms',
]);

/**
 * End-to-end headers a client cannot make hop-by-hop by naming them in Connection: without
 * Host the upstream sees its own address as the authority, without Content-Length a body's
 * framing changes. (A header named in Connection is otherwise dropped, RFC 9110 §7.6.1.)
 */
const NEVER_NOMINATED = new Set(['host', 'content-length', 'content-type']);

/** Lower-cased header names listed in a Connection header value. */
export function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  // The values nearly every message carries name no header.
  if (value === undefined || value === 'keep-alive' || value === 'close') return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  let tokens: Set<string> | undefined;
  for (const part of text.split(',')) {
    const t = part.trim().toLowerCase();
    if (t === '' || t === 'close' || t === 'keep-alive' || t === 'upgrade') continue;
    (tokens ??= new Set()).add(t);
  }
  return tokens;
}

/**
 * A copy of the downstream request headers without hop-by-hop headers (except `TE: trailers`),
 * headers named in Connection (but Host, Content-Length and Content-Type), HTTP/2 pseudo-headers, `expect` and Envoy's internal x-envoy-*
 * headers. An Upgrade token is passed to undici separately.
 */
export function forwardableRequestHeaders(src: IncomingHttpHeaders): HeaderMap {
  const named = connectionTokens(src.connection);
  const out: HeaderMap = {};
  for (const name in src) {
    if (HOP_BY_HOP.has(name) || REQUEST_ONLY_DROP.has(name) || name.charCodeAt(0) === 58 /* ':' */) continue;
    if (named !== undefined && named.has(name) && !NEVER_NOMINATED.has(name)) continue;
    out[name] = src[name];
  }
  // `TE: trailers` is the one TE value that crosses a proxy (gRPC needs it; RFC 9113 §8.2.2).
  const te = src.te;
  if (typeof te === 'string' && te.trim().toLowerCase() === 'trailers' && !(named !== undefined && named.has('te'))) out.te = 'trailers';
  return out;
}

/** Strips hop-by-hop headers (and those named in Connection) from upstream response headers, in place. */
export function stripResponseHopByHop(headers: HeaderMap): void {
  const named = connectionTokens(headers.connection);
  for (const name of HOP_BY_HOP) if (headers[name] !== undefined) delete headers[name];
  if (named !== undefined) for (const name of named) delete headers[name];
}

/**
 * Upstream response headers from undici's raw list (name, value, name, value…: Buffers, or
 * arrays of Buffers): what undici's own parseHeaders makes of them (lower-case names, repeated
 * headers as arrays, latin1 values) followed by stripResponseHopByHop, in one pass that never
 * deletes from the object (a delete turns it into a slow dictionary object for writeHead).
 */
export function responseHeadersFromRaw(raw: ReadonlyArray<Buffer | string | Array<Buffer | string>>): HeaderMap {
  const n = raw.length;
  let names: string[] | undefined;
  let named: Set<string> | undefined;
  let hop = false;
  for (let i = 0; i < n; i += 2) {
    const name = undiciUtil.headerNameToString(raw[i] as Buffer);
    (names ??= []).push(name);
    if (HOP_BY_HOP.has(name)) {
      hop = true;
      if (name === 'connection') {
        const tokens = connectionTokens(rawValue(raw[i + 1]!));
        if (tokens !== undefined) {
          named ??= new Set();
          for (const t of tokens) named.add(t);
        }
      }
    }
  }
  const out: HeaderMap = {};
  if (names === undefined) return out;
  for (let i = 0; i < n; i += 2) {
    const name = names[i >> 1]!;
    if (hop && (HOP_BY_HOP.has(name) || (named !== undefined && named.has(name)))) continue;
    const value = rawValue(raw[i + 1]!);
    const existing = out[name];
    if (existing === undefined || !Object.hasOwn(out, name)) {
      // A name such as "constructor" reads Object.prototype's: it is still the first value.
      if (name === '__proto__') Object.defineProperty(out, name, { value, enumerable: true, configurable: true, writable: true });
      else out[name] = value;
    } else if (typeof existing === 'string') {
      out[name] = typeof value === 'string' ? [existing, value] : [existing, ...value];
    } else {
      if (typeof value === 'string') existing.push(value);
      else existing.push(...value);
    }
  }
  return out;
}

function rawValue(v: Buffer | string | Array<Buffer | string>): string | string[] {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'string' ? x : x.toString('latin1')));
  return v.toString('latin1');
}

export function hasOperations(ops: HeaderOperations): boolean {
  return ops.set.length > 0 || ops.add.length > 0 || ops.remove.length > 0;
}

/** Envoy's order: removals first, then set (overwrite), then add (append). */
export function applyHeaderOperations(headers: HeaderMap, ops: HeaderOperations): void {
  for (let i = 0; i < ops.remove.length; i++) delete headers[ops.remove[i]!];
  for (let i = 0; i < ops.set.length; i++) {
    const [name, value] = ops.set[i]!;
    headers[name] = value;
  }
  for (let i = 0; i < ops.add.length; i++) {
    const [name, value] = ops.add[i]!;
    appendHeader(headers, name, value);
  }
}

export function appendHeader(headers: HeaderMap, name: string, value: string): void {
  const existing = headers[name];
  if (existing === undefined) headers[name] = value;
  else if (Array.isArray(existing)) headers[name] = [...existing, value];
  else headers[name] = [existing, value];
}

/** "::ffff:10.0.0.1" → "10.0.0.1"; undefined → "". */
export function clientAddress(remote: string | undefined): string {
  if (remote === undefined) return '';
  return remote.startsWith('::ffff:') && remote.includes('.') ? remote.slice(7) : remote;
}

/** "10.0.0.1:80", "[::1]:80". */
export function socketAddress(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return '-';
  const a = clientAddress(address);
  return a.includes(':') ? `[${a}]:${port ?? 0}` : `${a}:${port ?? 0}`;
}

/** The host part of a Host/:authority value, lower-case, without the port ("[::1]:80" → "[::1]"). */
export function hostWithoutPort(authority: string): string {
  let end = authority.length;
  if (authority.charCodeAt(0) === 91 /* '[' */) {
    const close = authority.indexOf(']');
    if (close > 0) end = close + 1;
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon >= 0) end = colon;
  }
  const host = end === authority.length ? authority : authority.slice(0, end);
  return hasUpperCase(host) ? host.toLowerCase() : host;
}

function hasUpperCase(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return true;
  }
  return false;
}

/** The ":port" suffix of an authority, or "". */
export function authorityPort(authority: string): string {
  if (authority.charCodeAt(0) === 91) {
    const close = authority.indexOf(']');
    return close > 0 && authority.charCodeAt(close + 1) === 58 ? authority.slice(close + 1) : '';
  }
  const colon = authority.lastIndexOf(':');
  return colon >= 0 ? authority.slice(colon) : '';
}

// Request path normalization before routing, as Istio configures Envoy's HTTP connection
// manager from meshConfig.pathNormalization (pilot/pkg/networking/core/listener_builder.go):
//   NONE                      normalize_path false: the path is routed and forwarded as received;
//   BASE (the default)        normalize_path true: RFC 3986 dot segments removed, percent-encoded
//                             unreserved characters decoded (%2E → ".", %41 → "A"), "\" → "/";
//                             encoded slashes (%2F, %5C) kept as they are (KEEP_UNCHANGED);
//   MERGE_SLASHES             BASE, then "//" → "/";
//   DECODE_AND_MERGE_SLASHES  %2F and %5C decoded first (UNESCAPE_AND_FORWARD), then MERGE_SLASHES.
// The normalized path is the one routes match and the upstream receives. A path with %00 is
// refused (400), as Istio documents for every mode but NONE. Only the path is touched, never
// the query string. Most paths need none of this: four substring searches decide (no "%",
// "\", "/." or, when merging, "//" before the query), and such a path is returned as is.

export type PathNormalization = 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES';

export const PATH_NORMALIZATIONS: readonly PathNormalization[] = ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'];

const SLASH = 47;
const BACKSLASH = 92;
const DOT = 46;

/** The normalized request target (path and query), or null when it must be refused. */
export function normalizePath(target: string, mode: PathNormalization): string | null {
  if (mode === 'NONE' || target.charCodeAt(0) !== SLASH) return target;
  const q = target.indexOf('?');
  const end = q < 0 ? target.length : q;
  // Native substring searches: several times faster than a character loop in JavaScript.
  if (!(before(target.indexOf('%'), end) || before(target.indexOf('/.'), end) || before(target.indexOf('\\'), end) || (mode !== 'BASE' && before(target.indexOf('//'), end)))) {
    return target;
  }
  const path = normalizePathOnly(target.slice(0, end), mode);
  if (path === null) return null;
  return end === target.length ? path : path + target.slice(end);
}

/** Whether a found index lies in the path part. */
function before(index: number, end: number): boolean {
  return index >= 0 && index < end;
}

function normalizePathOnly(path: string, mode: PathNormalization): string | null {
  const decoded = decodeUnreserved(path, mode === 'DECODE_AND_MERGE_SLASHES');
  if (decoded === null) return null;
  // Envoy's normalize_path also treats "\" as a separator.
  const slashes = decoded.includes('\\') ? decoded.replaceAll('\\', '/') : decoded;
  const resolved = removeDotSegments(slashes);
  return mode === 'BASE' ? resolved : resolved.replace(/\/{2,}/g, '/');
}

/**
 * Decodes %XX escapes of unreserved characters (ALPHA, DIGIT, "-", ".", "_", "~"), and of "/"
 * and "\" when `slashes`; every other escape is kept as sent. null for %00.
 */
function decodeUnreserved(path: string, slashes: boolean): string | null {
  if (!path.includes('%')) return path;
  let out = '';
  let from = 0;
  for (let i = path.indexOf('%'); i >= 0 && i + 2 < path.length; i = path.indexOf('%', i + 1)) {
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) continue;
    const code = hi * 16 + lo;
    if (code === 0) return null;
    if (isUnreserved(code) || (slashes && (code === SLASH || code === BACKSLASH))) {
      out += path.slice(from, i) + String.fromCharCode(code);
      from = i + 3;
      i += 2;
    }
  }
  return from === 0 ? path : out + path.slice(from);
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

function isUnreserved(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === DOT || c === 95 || c === 126;
}

/** RFC 3986 §5.2.4 on an absolute path: "." segments go, ".." removes the one before (never above "/"). */
export function removeDotSegments(path: string): string {
  const segments = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (s === '.' || s === '..') {
      if (s === '..' && out.length > 0) out.pop();
      // "/a/." and "/a/b/.." name a directory: the trailing slash stays.
      if (last) out.push('');
      continue;
    }
    out.push(s);
  }
  return '/' + out.join('/');
}

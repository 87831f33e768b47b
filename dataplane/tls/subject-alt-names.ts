// Subject alternative names: reading them from a certificate and matching them against the
// names a policy expects (Gateway tls.subjectAltNames, DestinationRule tls.subjectAltNames).
// Matching follows Envoy's SAN matcher with exact values: any SAN of any type may match; DNS
// names compare case-insensitively and a wildcard DNS SAN ("*.example.com") covers exactly
// one label; IP addresses compare in canonical form.

import { isIP } from 'node:net';
import type { X509Certificate } from 'node:crypto';

export interface SubjectAltName {
  type: 'DNS' | 'URI' | 'IP' | 'email' | 'other';
  value: string;
}

/** The SANs of a certificate (from Node's `subjectAltName` text). */
export function subjectAltNamesOf(cert: X509Certificate): SubjectAltName[] {
  return parseSubjectAltNames(cert.subjectAltName);
}

/**
 * Parses Node's SAN text: "DNS:a.example.com, URI:spiffe://…, IP Address:10.0.0.1". Since
 * CVE-2021-44532 Node quotes values holding separators as JSON strings (DNS:"a,b"), so a
 * plain split on ", " would let a crafted certificate smuggle in extra names.
 */
export function parseSubjectAltNames(text: string | undefined): SubjectAltName[] {
  const names: SubjectAltName[] = [];
  if (!text) return names;
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let value: string;
    if (text[colon + 1] === '"') {
      const end = closingQuote(text, colon + 2);
      if (end < 0) break;
      try {
        value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      } catch {
        break;
      }
      i = end + 1;
    } else {
      const comma = text.indexOf(', ', colon + 1);
      const end = comma < 0 ? text.length : comma;
      value = text.slice(colon + 1, end);
      i = end;
    }
    if (text.startsWith(', ', i)) i += 2;
    names.push({ type: sanType(type), value });
  }
  return names;
}

/** A matcher for a fixed list of expected names, compiled once. */
export function compileSanMatcher(expected: readonly string[]): (sans: readonly SubjectAltName[]) => boolean {
  const exact = new Set(expected);
  const dns = new Set(expected.map((e) => e.toLowerCase()));
  const ips = new Set(expected.filter((e) => isIP(e)).map(canonicalIp));
  return (sans) =>
    sans.some((san) => {
      switch (san.type) {
        case 'DNS': {
          const name = san.value.toLowerCase();
          if (dns.has(name)) return true;
          if (!name.startsWith('*.')) return false;
          const suffix = name.slice(1); // ".example.com"
          for (const e of dns) {
            if (e.endsWith(suffix) && e.length > suffix.length && !e.slice(0, -suffix.length).includes('.')) return true;
          }
          return false;
        }
        case 'IP':
          return ips.has(canonicalIp(san.value));
        default:
          return exact.has(san.value);
      }
    });
}

function sanType(nodeType: string): SubjectAltName['type'] {
  switch (nodeType) {
    case 'DNS':
      return 'DNS';
    case 'URI':
      return 'URI';
    case 'IP Address':
      return 'IP';
    case 'email':
      return 'email';
    default:
      return 'other';
  }
}

function closingQuote(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  return -1;
}

function canonicalIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname;
  } catch {
    return ip.toLowerCase();
  }
}

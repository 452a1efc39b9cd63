// Address helpers shared by the socket collectors: canonical text and scope of a bind address.
import { isIP } from 'node:net';
import type { Scope } from '../model.js';

/** Canonical text of an IP address (lower-case, IPv6 compressed); unchanged when it is not an address. */
export function canonicalAddress(address: string): string {
  if (isIP(address) !== 6) return address;
  // The WHATWG URL parser compresses IPv6 as RFC 5952 says.
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

/** Scope of a canonical address (as the collectors produce them). */
export function scopeOf(a: string): Scope {
  if (a === '0.0.0.0' || a === '::') return 'wildcard';
  if (a.startsWith('127.') || a === '::1' || a.startsWith('::ffff:127.')) return 'loopback';
  return 'address';
}

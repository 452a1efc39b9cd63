// Sets of IP addresses as sorted, disjoint [lo, hi] intervals, per family: IPv4 addresses as
// numbers (they fit in a double: no bigint to allocate for the large IPv4 sets rulesets hold),
// IPv6 as bigints. Exposure is computed over whole address ranges, never samples: one stray /32
// shows up. Pure.
import { isIP } from 'node:net';

export type Fam = 4 | 6;
export type Range = [bigint, bigint];
/** An address inside a set: a number in an IPv4 set, a bigint in an IPv6 one (never mixed). */
export type Addr = number | bigint;

const cidrCache = new WeakMap<IntervalSet, string[]>();
/** A named set's complement is needed once per rule that names it, for every listener: keep it. */
const complementCache = new WeakMap<IntervalSet, IntervalSet>();

export const MAX: Record<Fam, bigint> = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n };
const LOW: Record<Fam, Addr> = { 4: 0, 6: 0n };
const HIGH: Record<Fam, Addr> = { 4: 2 ** 32 - 1, 6: MAX[6] };
/** 2^k for k = 0 … 32, looked up: `2 ** k` is a call into the math library on every prefix. */
const TWO_TO = Array.from({ length: 33 }, (_, k) => 2 ** k);
const next = (x: Addr): Addr => (typeof x === 'number' ? x + 1 : x + 1n);
const prev = (x: Addr): Addr => (typeof x === 'number' ? x - 1 : x - 1n);
/** A bigint address as a set of `family` holds it. */
export const addrOf = (family: Fam, v: bigint): Addr => (family === 4 ? Number(v) : v);

export class IntervalSet {
  /**
   * `bounds` holds the intervals flat, [lo0, hi0, lo1, hi1 …], sorted and disjoint: one array per
   * set, not one per interval (a large ruleset's sets hold tens of thousands of prefixes, each
   * read once per ruleset). A complement's are computed when first read: the rest of a chain
   * after `ip saddr @allowed accept` is the complement of a large set, and often nothing reads it.
   */
  private b: readonly Addr[] | null;
  private constructor(
    readonly family: Fam,
    bounds: readonly Addr[] | null,
    /** The set this one is the complement of, while its bounds are not computed. */
    private negates: IntervalSet | null = null,
  ) {
    this.b = bounds;
  }
  private get bounds(): readonly Addr[] {
    if (this.b === null) {
      this.b = this.negates!.gaps();
      this.negates = null;
    }
    return this.b;
  }

  static empty(family: Fam): IntervalSet {
    return new IntervalSet(family, []);
  }
  static full(family: Fam): IntervalSet {
    return new IntervalSet(family, [LOW[family], HIGH[family]]);
  }
  static of(family: Fam, ranges: Range[]): IntervalSet {
    const bounds: Addr[] = [];
    for (const [a, b] of ranges) bounds.push(addrOf(family, a), addrOf(family, b));
    return IntervalSet.ofBounds(family, bounds);
  }
  /**
   * Intervals given flat ([lo0, hi0, lo1, hi1 …], addrOf), sorted when they are not and merged
   * where they overlap or touch, in place: the array becomes the set's.
   */
  static ofBounds(family: Fam, b: Addr[]): IntervalSet {
    // nft lists a set's elements in order: sort only when they are not.
    let inOrder = true;
    for (let i = 2; i < b.length && inOrder; i += 2) inOrder = b[i - 2]! <= b[i]!;
    if (!inOrder) {
      const pairs: [Addr, Addr][] = [];
      for (let i = 0; i < b.length; i += 2) pairs.push([b[i]!, b[i + 1]!]);
      pairs.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
      pairs.forEach(([lo, hi], k) => ((b[2 * k] = lo), (b[2 * k + 1] = hi)));
    }
    // Written behind the read position (w <= i): no second array.
    let w = 0;
    for (let i = 0; i < b.length; i += 2) {
      const lo = b[i]!;
      const hi = b[i + 1]!;
      if (lo > hi) continue;
      if (w && (lo <= b[w - 1]! || lo === next(b[w - 1]!))) {
        if (hi > b[w - 1]!) b[w - 1] = hi;
      } else {
        b[w] = lo;
        b[w + 1] = hi;
        w += 2;
      }
    }
    b.length = w;
    return new IntervalSet(family, b);
  }

  /** The intervals as bigints, whatever the family. */
  get ranges(): readonly Range[] {
    const out: Range[] = [];
    for (let i = 0; i < this.bounds.length; i += 2) out.push([BigInt(this.bounds[i]!), BigInt(this.bounds[i + 1]!)]);
    return out;
  }
  isEmpty(): boolean {
    return this.b === null ? this.negates!.isFull() : this.b.length === 0;
  }
  isFull(): boolean {
    if (this.b === null) return this.negates!.isEmpty();
    return this.b.length === 2 && this.b[0] === LOW[this.family] && this.b[1] === HIGH[this.family];
  }
  union(o: IntervalSet): IntervalSet {
    // Identity shortcuts keep a named set's object through the interpreter, so its CIDR list is
    // computed once however many listeners it guards (see toCidrs).
    if (o.isEmpty() || o === this) return this;
    if (this.isEmpty()) return o;
    // Both are sorted: one merge walk, intervals that touch joined.
    const x = this.bounds;
    const y = o.bounds;
    const out: Addr[] = [];
    let i = 0;
    let j = 0;
    while (i < x.length || j < y.length) {
      let lo: Addr;
      let hi: Addr;
      if (j >= y.length || (i < x.length && x[i]! <= y[j]!)) {
        lo = x[i]!;
        hi = x[i + 1]!;
        i += 2;
      } else {
        lo = y[j]!;
        hi = y[j + 1]!;
        j += 2;
      }
      const n = out.length;
      if (n && (lo <= out[n - 1]! || lo === next(out[n - 1]!))) {
        if (hi > out[n - 1]!) out[n - 1] = hi;
      } else out.push(lo, hi);
    }
    return new IntervalSet(this.family, out);
  }
  /** The bounds of this set's complement: the gaps between its intervals. */
  private gaps(): Addr[] {
    const x = this.bounds;
    const out: Addr[] = [];
    let from = LOW[this.family];
    for (let i = 0; i < x.length; i += 2) {
      if (x[i]! > from) out.push(from, prev(x[i]!));
      from = next(x[i + 1]!);
    }
    if (from <= HIGH[this.family]) out.push(from, HIGH[this.family]);
    return out;
  }
  complement(): IntervalSet {
    const cached = complementCache.get(this);
    if (cached) return cached;
    const c = new IntervalSet(this.family, null, this);
    complementCache.set(this, c);
    complementCache.set(c, this);
    return c;
  }
  intersect(o: IntervalSet): IntervalSet {
    if (this.isFull()) return o;
    if (o.isFull() || o === this) return this;
    const x = this.bounds;
    const y = o.bounds;
    const out: Addr[] = [];
    let i = 0;
    let j = 0;
    while (i < x.length && j < y.length) {
      const b1 = x[i + 1]!;
      const b2 = y[j + 1]!;
      const lo = x[i]! > y[j]! ? x[i]! : y[j]!;
      const hi = b1 < b2 ? b1 : b2;
      if (lo <= hi) out.push(lo, hi);
      if (b1 < b2) i += 2;
      else j += 2;
    }
    return new IntervalSet(this.family, out);
  }
  subtract(o: IntervalSet): IntervalSet {
    if (o.isEmpty() || this.isEmpty()) return this;
    if (o.isFull() || o === this) return IntervalSet.empty(this.family);
    if (this.isFull()) return o.complement();
    // One merge walk: cut each of our intervals by the intervals of o that overlap it.
    const x = this.bounds;
    const y = o.bounds;
    const out: Addr[] = [];
    let j = 0;
    for (let i = 0; i < x.length; i += 2) {
      let a = x[i]!;
      const b = x[i + 1]!;
      while (j < y.length && y[j + 1]! < a) j += 2;
      let k = j;
      while (a <= b && k < y.length && y[k]! <= b) {
        if (y[k]! > a) out.push(a, prev(y[k]!));
        a = next(y[k + 1]!);
        k += 2;
      }
      if (a <= b) out.push(a, b);
    }
    return new IntervalSet(this.family, out);
  }
  equals(o: IntervalSet): boolean {
    if (this.bounds.length !== o.bounds.length) return false;
    for (let i = 0; i < this.bounds.length; i++) if (this.bounds[i] !== o.bounds[i]) return false;
    return true;
  }
  has(address: string): boolean {
    const v = addrOf(this.family, toBig(address));
    for (let i = 0; i < this.bounds.length; i += 2) if (this.bounds[i]! <= v && v <= this.bounds[i + 1]!) return true;
    return false;
  }

  /** The minimal list of CIDR prefixes covering exactly this set. */
  toCidrs(): string[] {
    const cached = cidrCache.get(this);
    if (cached) return cached;
    const out = this.family === 4 ? v4Cidrs(this.bounds as readonly number[]) : v6Cidrs(this.bounds as readonly bigint[]);
    cidrCache.set(this, out);
    return out;
  }
}

/** Text pieces of IPv4 CIDRs (tens of thousands of them in a large ruleset's sets): no number converted per address. */
const OCTET = Array.from({ length: 256 }, (_, i) => String(i));
const OCTET_DOT = OCTET.map((o) => `${o}.`);
const SLASH = Array.from({ length: 33 }, (_, i) => `/${i}`);

/** IPv4 fits in a double: the same walk as v6Cidrs without bigint arithmetic. */
function v4Cidrs(bounds: readonly number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < bounds.length; i += 2) {
    let a = bounds[i]!;
    const b = bounds[i + 1]!;
    while (a <= b) {
      // The largest block that starts at a (its alignment) and fits before b, from bit counts:
      // the highest bit of the length (2^32 for the whole space), the lowest set bit of a.
      const count = b - a + 1;
      let size = count > 0xffffffff ? 32 : 31 - Math.clz32(count);
      if (a !== 0) size = Math.min(size, 31 - Math.clz32(a & -a));
      out.push(OCTET_DOT[a >>> 24]! + OCTET_DOT[(a >>> 16) & 255]! + OCTET_DOT[(a >>> 8) & 255]! + OCTET[a & 255]! + SLASH[32 - size]!);
      a += TWO_TO[size]!;
    }
  }
  return out;
}

function v6Cidrs(bounds: readonly bigint[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < bounds.length; i += 2) {
    let a = bounds[i]!;
    const b = bounds[i + 1]!;
    while (a <= b) {
      const fits = bitLength(b - a + 1n) - 1;
      const aligned = a === 0n ? 128 : bitLength(a & -a) - 1;
      const size = fits < aligned ? fits : aligned;
      out.push(`${fromBig(a, 6)}/${128 - size}`);
      a += POW2[size]!;
    }
  }
  return out;
}

const POW2 = Array.from({ length: 130 }, (_, k) => 1n << BigInt(k));

/** Number of bits of a positive bigint below 2^129: a binary search of the powers of two, no allocation. */
function bitLength(x: bigint): number {
  let lo = 0;
  let hi = 129;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x < POW2[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** A dotted quad as a number; -1 when the text is not one (octets of 1 to 3 digits, leading zeros read as decimal). */
export function v4Number(s: string): number {
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (!digits || part > 255) return -1;
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      part = part * 10 + c - 48;
      digits++;
    } else return -1;
  }
  return dots === 3 && digits && part <= 255 ? n * 256 + part : -1;
}

/** IPv6 as nft prints it (hex groups, at most one "::") → bigint; null for anything else (embedded IPv4, a zone). */
export function v6Big(s: string): bigint | null {
  if (!v6Groups(s)) return null;
  const g = GROUPS;
  // Four 32-bit words: fewer bigint operations than one per group.
  return (BigInt(g[0]! * 65536 + g[1]!) << 96n) | (BigInt(g[2]! * 65536 + g[3]!) << 64n) | (BigInt(g[4]! * 65536 + g[5]!) << 32n) | BigInt(g[6]! * 65536 + g[7]!);
}

export function toBig(address: string): bigint {
  // Most of a ruleset's addresses are plain dotted quads or hex groups as nft prints them: parse
  // those here; everything else (embedded IPv4, a zone) goes through WHATWG URL's IPv6 parser,
  // which writes hex groups (built in: a scan does not load an address library for a rare case).
  const q = v4Number(address);
  if (q >= 0) return BigInt(q);
  const v = v6Big(address);
  if (v !== null) return v;
  let host = '';
  try {
    host = new URL(`http://[${address.split('%')[0]}]/`).hostname;
  } catch {
    /* not an address: below */
  }
  const u = host.startsWith('[') ? v6Big(host.slice(1, -1)) : null;
  if (u === null) throw new Error(`not an IP address: ${JSON.stringify(address)}`);
  return u;
}

export function fromBig(v: bigint, family: Fam): string {
  if (family === 4) {
    const n = Number(v);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  // One native conversion to hex digits (the leading zeros left out: `pad` of them); group g is
  // hex[4g - pad, 4g + 4 - pad), written without its leading zeros.
  const hex = v.toString(16);
  const pad = 32 - hex.length;
  const from: number[] = [];
  let zero = 0;
  for (let g = 0; g < 8; g++) {
    const end = 4 * g + 4 - pad;
    let j = Math.max(end - 4, 0);
    while (j < end - 1 && hex.charCodeAt(j) === 48) j++;
    from.push(j);
    if (end <= 0 || (j === end - 1 && hex.charCodeAt(j) === 48)) zero |= 1 << g;
  }
  // RFC 5952: the longest run of two or more zero groups (the first on a tie) becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && zero & (1 << j)) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j > i ? j : i + 1;
  }
  let out = '';
  for (let g = 0; g < 8; g++) {
    if (g === best) {
      out += g === 0 ? '::' : ':';
      g += bestLen - 1;
      continue;
    }
    const end = 4 * g + 4 - pad;
    out += end <= 0 ? '0' : hex.slice(from[g], end);
    if (g < 7) out += ':';
  }
  return out;
}

export function familyOf(address: string): Fam | null {
  const f = isIP(address.split('/')[0] ?? '');
  return f === 4 || f === 6 ? f : null;
}

/** "a" or "a/len" → its first and last address pushed onto `bounds` (IntervalSet.ofBounds). */
export function pushPrefix(bounds: Addr[], family: Fam, text: string): void {
  const slash = text.indexOf('/');
  if (slash < 0) pushPrefixOf(bounds, family, text, family === 4 ? 32 : 128);
  else pushPrefixOf(bounds, family, text.slice(0, slash), Number(text.slice(slash + 1)));
}

/** Address and prefix length → the prefix's first and last address (addrOf) pushed onto `bounds`. */
export function pushPrefixOf(bounds: Addr[], family: Fam, addr: string, len: number): void {
  const ip = family === 4 ? v4Number(addr) : -1;
  if (ip >= 0 && Number.isInteger(len) && len >= 0 && len <= 32) {
    const hostBits = 32 - len;
    const start = hostBits === 32 ? 0 : (ip >>> hostBits) * TWO_TO[hostBits]!;
    bounds.push(start, start + TWO_TO[hostBits]! - 1);
  } else if (family === 6 && Number.isInteger(len) && len >= 0 && len <= 128) {
    const start = v6Groups(addr) ? v6PrefixStart(len) : toBig(addr) & NET6[len]!;
    bounds.push(start, start | HOST6[len]!);
  } else {
    const bits = family === 4 ? 32n : 128n;
    const host = (1n << (bits - BigInt(len))) - 1n;
    const start = toBig(addr) & ~host;
    bounds.push(addrOf(family, start), addrOf(family, start | host));
  }
}

/** The eight 16-bit groups of the IPv6 address v6Groups last read (scratch: no array per address). */
const GROUPS = [0, 0, 0, 0, 0, 0, 0, 0];

/**
 * IPv6 text as nft prints it (hex groups, at most one "::") → its groups in GROUPS; false for
 * anything else (then toBig's slower path decides). A large set holds tens of thousands of IPv6
 * prefixes: no string, array or bigint is made here.
 */
function v6Groups(s: string): boolean {
  const len = s.length;
  let n = 0;
  let gap = -1;
  let acc = 0;
  let digits = 0;
  let i = 0;
  if (len >= 2 && s.charCodeAt(0) === 58 && s.charCodeAt(1) === 58) {
    gap = 0;
    i = 2;
  }
  for (; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c === 58) {
      if (digits) {
        if (n === 8) return false;
        GROUPS[n++] = acc;
        acc = 0;
        digits = 0;
      } else if (gap >= 0 || i === 0) return false; // a second "::", or a leading ":"
      else gap = n; // "::" after a group
      continue;
    }
    // Only letters are folded to lower case (a control character | 32 would pass for ":" or a digit).
    const lower = c | 32;
    const d = c >= 48 && c <= 57 ? c - 48 : lower >= 97 && lower <= 102 ? lower - 87 : -1;
    if (d < 0 || digits === 4) return false;
    acc = acc * 16 + d;
    digits++;
  }
  if (digits) {
    if (n === 8) return false;
    GROUPS[n++] = acc;
  } else if (gap !== n || len < 2 || s.charCodeAt(len - 1) !== 58 || s.charCodeAt(len - 2) !== 58) return false; // ends in one ":"
  if (gap < 0) return n === 8;
  if (n > 7) return false;
  // The groups after "::" move to the end; zeros fill the gap.
  for (let k = n - 1; k >= gap; k--) GROUPS[k + 8 - n] = GROUPS[k]!;
  for (let k = gap; k < gap + 8 - n; k++) GROUPS[k] = 0;
  return true;
}

const WORD_SHIFT = [96n, 64n, 32n, 0n];
/** The last top word made into a bigint: a set's prefixes mostly share it (2001:db8::/32 …). */
let topWord = -1;
let topBig = 0n;

/** The first address of the /len prefix holding the address in GROUPS: a bigint made of its non-zero 32-bit words only. */
function v6PrefixStart(len: number): bigint {
  let start = 0n;
  for (let w = 0; w < 4 && len > 32 * w; w++) {
    let word = GROUPS[2 * w]! * 65536 + GROUPS[2 * w + 1]!;
    const hostBits = 32 * (w + 1) - len;
    if (hostBits > 0) word = (word >>> hostBits) * TWO_TO[hostBits]!; // 1 … 31 here
    if (word === 0) continue;
    if (w === 0 && word !== topWord) {
      topWord = word;
      topBig = BigInt(word) << 96n;
    }
    const part = w === 0 ? topBig : w === 3 ? BigInt(word) : BigInt(word) << WORD_SHIFT[w]!;
    start = start === 0n ? part : start | part;
  }
  return start;
}

/** The host part of an IPv6 prefix of each length: 2^(128 - len) - 1. */
const HOST6 = Array.from({ length: 129 }, (_, len) => (1n << BigInt(128 - len)) - 1n);
const NET6 = HOST6.map((h) => MAX[6] ^ h);

/** The first address of the /len IPv6 prefix holding v (v with its host bits cleared). */
export const v6Network = (v: bigint, len: number): bigint => v & NET6[len]!;

/** The minimal CIDR prefixes covering every "a" or "a/len" given (all of one family), in address order. */
export function mergePrefixes(family: Fam, prefixes: readonly string[]): string[] {
  const bounds: Addr[] = [];
  for (const p of prefixes) pushPrefix(bounds, family, p);
  return IntervalSet.ofBounds(family, bounds).toCidrs();
}

/** "a" or "a/len" → a set (of the address's family). */
export function prefixSet(family: Fam, text: string): IntervalSet {
  const bounds: Addr[] = [];
  pushPrefix(bounds, family, text);
  return IntervalSet.ofBounds(family, bounds);
}

// Sets of IP addresses as sorted, disjoint [lo, hi] intervals (bigint), per family. Exposure is
// computed over whole address ranges, never samples: one stray /32 shows up. Pure.
import { isIP } from 'node:net';
import { parseCidr } from 'cidr-tools';

export type Fam = 4 | 6;
export type Range = [bigint, bigint];

const cidrCache = new WeakMap<IntervalSet, string[]>();

export const MAX: Record<Fam, bigint> = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n };

export class IntervalSet {
  private constructor(
    readonly family: Fam,
    readonly ranges: readonly Range[],
  ) {}

  static empty(family: Fam): IntervalSet {
    return new IntervalSet(family, []);
  }
  static full(family: Fam): IntervalSet {
    return new IntervalSet(family, [[0n, MAX[family]]]);
  }
  static of(family: Fam, ranges: Range[]): IntervalSet {
    const sorted = ranges.filter(([a, b]) => a <= b).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    const out: Range[] = [];
    for (const [a, b] of sorted) {
      const last = out[out.length - 1];
      if (last && a <= last[1] + 1n) last[1] = b > last[1] ? b : last[1];
      else out.push([a, b]);
    }
    return new IntervalSet(family, out);
  }

  isEmpty(): boolean {
    return this.ranges.length === 0;
  }
  isFull(): boolean {
    return this.ranges.length === 1 && this.ranges[0]![0] === 0n && this.ranges[0]![1] === MAX[this.family];
  }
  union(o: IntervalSet): IntervalSet {
    // Identity shortcuts keep a named set's object through the interpreter, so its CIDR list is
    // computed once however many listeners it guards (see toCidrs).
    if (o.isEmpty()) return this;
    if (this.isEmpty()) return o;
    return IntervalSet.of(this.family, [...this.ranges.map((r) => [...r] as Range), ...o.ranges.map((r) => [...r] as Range)]);
  }
  complement(): IntervalSet {
    const out: Range[] = [];
    let next = 0n;
    for (const [a, b] of this.ranges) {
      if (a > next) out.push([next, a - 1n]);
      next = b + 1n;
    }
    if (next <= MAX[this.family]) out.push([next, MAX[this.family]]);
    return new IntervalSet(this.family, out);
  }
  intersect(o: IntervalSet): IntervalSet {
    if (this.isFull()) return o;
    if (o.isFull()) return this;
    const out: Range[] = [];
    let i = 0;
    let j = 0;
    while (i < this.ranges.length && j < o.ranges.length) {
      const [a1, b1] = this.ranges[i]!;
      const [a2, b2] = o.ranges[j]!;
      const lo = a1 > a2 ? a1 : a2;
      const hi = b1 < b2 ? b1 : b2;
      if (lo <= hi) out.push([lo, hi]);
      if (b1 < b2) i++;
      else j++;
    }
    return new IntervalSet(this.family, out);
  }
  subtract(o: IntervalSet): IntervalSet {
    return this.intersect(o.complement());
  }
  equals(o: IntervalSet): boolean {
    return this.ranges.length === o.ranges.length && this.ranges.every((r, i) => r[0] === o.ranges[i]![0] && r[1] === o.ranges[i]![1]);
  }
  has(address: string): boolean {
    const v = toBig(address);
    return this.ranges.some(([a, b]) => a <= v && v <= b);
  }

  /** The minimal list of CIDR prefixes covering exactly this set. */
  toCidrs(): string[] {
    const cached = cidrCache.get(this);
    if (cached) return cached;
    const bits = this.family === 4 ? 32n : 128n;
    const out: string[] = [];
    for (const [a0, b] of this.ranges) {
      let a = a0;
      while (a <= b) {
        // The largest block that starts at a (its alignment) and fits before b (floor log2 of the span).
        const fits = BigInt((b - a + 1n).toString(2).length - 1);
        const aligned = a === 0n ? bits : BigInt((a & -a).toString(2).length - 1);
        const size = fits < aligned ? fits : aligned;
        out.push(`${fromBig(a, this.family)}/${bits - size}`);
        a += 1n << size;
      }
    }
    cidrCache.set(this, out);
    return out;
  }
}

export function toBig(address: string): bigint {
  // Dotted quads are most of any ruleset's addresses: parse them without the general parser.
  const q = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (q) return BigInt(((Number(q[1]) << 24) >>> 0) + (Number(q[2]) << 16) + (Number(q[3]) << 8) + Number(q[4]));
  return parseCidr(address).start;
}

export function fromBig(v: bigint, family: Fam): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join('.');
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((v >> s) & 0xffffn).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

export function familyOf(address: string): Fam | null {
  const f = isIP(address.split('/')[0] ?? '');
  return f === 4 || f === 6 ? f : null;
}

/** "a" or "a/len" → its [first, last] address. */
export function prefixRange(family: Fam, text: string): Range {
  const slash = text.indexOf('/');
  const bits = family === 4 ? 32n : 128n;
  const len = slash < 0 ? bits : BigInt(text.slice(slash + 1));
  const host = (1n << (bits - len)) - 1n;
  const start = toBig(slash < 0 ? text : text.slice(0, slash)) & ~host;
  return [start, start | host];
}

/** "a" or "a/len" → a set (of the address's family). */
export function prefixSet(family: Fam, text: string): IntervalSet {
  return IntervalSet.of(family, [prefixRange(family, text)]);
}

export function rangeSet(family: Fam, lo: string, hi: string): IntervalSet {
  return IntervalSet.of(family, [[toBig(lo), toBig(hi)]]);
}

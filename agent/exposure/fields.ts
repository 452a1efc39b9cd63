// The fields a normal connection's packets carry with known values — TCP flags, protocol numbers,
// the hop limit of neighbour discovery, packet type, conntrack direction, marks set earlier — and
// nft's comparisons of them: ==, !=, <, >, <=, >=, `in` (any of the bits set, or set membership),
// `!` (none of the bits set), masks (`tcp flags & (syn|ack) == syn`). Pure.
import { isObj, type Json } from './nft-json.js';

export const TCP_FLAGS: Record<string, number> = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10, urg: 0x20, ecn: 0x40, cwr: 0x80 };
export const PROTOCOLS: Record<string, number> = { icmp: 1, igmp: 2, tcp: 6, udp: 17, gre: 47, esp: 50, ah: 51, 'ipv6-icmp': 58, icmpv6: 58, sctp: 132, udplite: 136 };
export const PKTTYPES: Record<string, number> = { host: 0, unicast: 0, broadcast: 1, multicast: 2, other: 3 };
export const CT_DIRECTIONS: Record<string, number> = { original: 0, reply: 1 };

/** A number, a symbolic constant, or a list of flags (or'd together); null when it is none of these. */
export function numberOf(v: Json, names: Record<string, number>): number | null {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    if (v in names) return names[v]!;
    return /^(0x[0-9a-f]+|\d+)$/i.test(v) ? Number(v) : null;
  }
  if (Array.isArray(v)) {
    let bits = 0;
    for (const x of v) {
      const n = numberOf(x, names);
      if (n === null) return null;
      bits |= n;
    }
    return bits;
  }
  if (isObj(v) && Array.isArray(v['|'])) return numberOf(v['|'], names);
  return null;
}

/** The innermost expression of `x & m`, `x | m`, `x ^ m` (the field the match reads). */
export function leafOf(left: Json): Json {
  let e = left;
  while (isObj(e)) {
    const op = ['&', '|', '^'].find((o) => Array.isArray((e as Record<string, Json>)[o]));
    if (!op) break;
    e = ((e as Record<string, Json[]>)[op]!)[0]!;
  }
  return e;
}

/** What `left` evaluates to when its field (leafOf) has value `leaf`; null when a mask is not a constant. */
export function evaluate(left: Json, leaf: number, names: Record<string, number>): number | null {
  if (!isObj(left)) return leaf;
  for (const op of ['&', '|', '^'] as const) {
    const args = left[op];
    if (!Array.isArray(args) || args.length !== 2) continue;
    const inner = evaluate(args[0]!, leaf, names);
    const m = numberOf(args[1]!, names);
    if (inner === null || m === null) return null;
    return op === '&' ? inner & m : op === '|' ? inner | m : inner ^ m;
  }
  return leaf;
}

/** Whether value `v` satisfies `op right`; null when the right side is not something we can compare. */
export function compare(op: string, v: number, right: Json, names: Record<string, number>): boolean | null {
  if (isObj(right) && Array.isArray(right.set)) {
    let hit = false;
    for (const it of right.set) {
      const r = isObj(it) && Array.isArray(it.range) ? inRange(v, it.range, names) : numberOf(it, names) === null ? null : numberOf(it, names) === v;
      if (r === null) return null;
      hit ||= r;
    }
    return op === '!=' ? !hit : op === '==' || op === 'in' ? hit : null;
  }
  if (isObj(right) && Array.isArray(right.range)) {
    const r = inRange(v, right.range, names);
    return r === null ? null : op === '!=' ? !r : op === '==' || op === 'in' ? r : null;
  }
  const r = numberOf(right, names);
  if (r === null) return null;
  switch (op) {
    case '==': return v === r;
    case '!=': return v !== r;
    case '<': return v < r;
    case '>': return v > r;
    case '<=': return v <= r;
    case '>=': return v >= r;
    // A flag-type field: `tcp flags syn` holds when any of the named bits is set, `! syn` when none is.
    case 'in': return (v & r) !== 0;
    case '!': return (v & r) === 0;
    default: return null;
  }
}

function inRange(v: number, range: Json[], names: Record<string, number>): boolean | null {
  const a = numberOf(range[0]!, names);
  const b = numberOf(range[1]!, names);
  return a === null || b === null ? null : a <= v && v <= b;
}

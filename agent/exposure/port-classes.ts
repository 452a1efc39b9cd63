// Ports that a ruleset cannot tell apart. Every port match compares the port with constants of the
// ruleset, so two ports between the same two constants meet the same verdicts (a range class).
// Two ports that are themselves constants are alike when they are written in the same places with
// the same meaning — the same sets, the same rules, verdict-map entries whose chains hold the same
// rules (a policy's rules sharing one source list): swapping them leaves the ruleset as it was
// (a signature class). Exposure is computed once per class of ports, not once per listener: an
// empty or accept-all ruleset has one class, a 10 000-rule policy about as many as it has distinct
// rule bodies. Pure.
import { chainKey, elemValue, isObj, type Json, type Ruleset } from './nft-json.js';

/**
 * Where a port is written: a place in a rule (chain key, rule and expression index) or a named set
 * (set key, rule -1), and what the entry there means. Its text is made only for a signature.
 */
interface Occurrence {
  at: string;
  rule: number;
  expr: number;
  /** A verdict-map entry's verdict (its chain's rules stand for it); the table it is read in. */
  verdict?: Json;
  table?: string;
  /** A concatenation's other parts. */
  extra?: string;
}

interface Partition {
  /** Sorted starts of the range classes, 0 … 65536. */
  starts: number[];
  /** Ports written as themselves → where. */
  exact: Map<number, Occurrence[]>;
  /** Port ranges written in the ruleset, and where. */
  ranges: { lo: number; hi: number; occ: Occurrence }[];
  /** Memo: each range class's key (by index in starts); port → signature class key; chain → id of its rules; signature → id. */
  rangeKeys: string[];
  keys: Map<number, string>;
  bodies: Map<string, string>;
  ids: Map<string, number>;
}

/** Per ruleset: its partition, or null when ports cannot be classed safely. */
const cache = new WeakMap<Ruleset, Partition | null>();

/** Above this many port ranges a port's signature is not worth its scan: such ports get their own class. */
const MAX_RANGES_SCANNED = 4096;

const portNumber = (j: Json): number | null => {
  const n = typeof j === 'number' ? j : typeof j === 'string' && /^\d{1,5}$/.test(j) ? Number(j) : null;
  return n !== null && Number.isInteger(n) && n >= 0 && n <= 65535 ? n : null;
};

const withExtra = (o: Occurrence, extra: string): Occurrence => ({ at: o.at, rule: o.rule, expr: o.expr, table: o.table, verdict: o.verdict, extra });

/**
 * Where ports are written, as a partition collects them: where classes start (each cut pushed as
 * it comes, sorted once at the end) and each port's places.
 */
class Places {
  readonly cuts: number[] = [0, 65536];
  readonly exact = new Map<number, Occurrence[]>();
  readonly ranges: Partition['ranges'] = [];

  note(n: number, occ: Occurrence): void {
    this.cuts.push(n, n + 1);
    const list = this.exact.get(n);
    if (list) list.push(occ);
    else this.exact.set(n, [occ]);
  }

  /** One key (or key part) of an element: a port, a range of ports, a concatenation, or a value that holds none (an address, a state name). */
  key(k: Json, occ: Occurrence): void {
    const n = portNumber(k);
    if (n !== null) this.note(n, occ);
    else if (Array.isArray(k)) for (const x of k) this.key(x, occ);
    else if (isObj(k) && Array.isArray(k.range) && k.range.length === 2) {
      const [lo, hi] = [portNumber(k.range[0]!), portNumber(k.range[1]!)];
      if (lo === null || hi === null) return;
      this.cuts.push(lo, hi + 1);
      this.ranges.push({ lo, hi, occ });
    } else if (isObj(k) && Array.isArray(k.concat)) {
      const parts = k.concat;
      parts.forEach((part, i) => this.key(part, withExtra(occ, `${occ.extra ?? ''}[${i}]${JSON.stringify(parts.map((x, j) => (j === i ? '#' : x)))}`)));
    } else if (isObj(k) && !isObj(k.prefix)) {
      // Anything else but an address prefix (a mask, an expression): each number in it counts, at a place of its own.
      const extra = `${occ.extra ?? ''}${JSON.stringify(k)}`;
      const stack: Json[] = Object.values(k);
      while (stack.length) {
        const j = stack.pop()!;
        const n = portNumber(j);
        if (n !== null) this.note(n, withExtra(occ, extra));
        else if (Array.isArray(j)) stack.push(...j);
        else if (isObj(j)) stack.push(...Object.values(j));
      }
    }
  }

  /** A set's element (a key), or a verdict map's [key, verdict] pair. */
  element(e: Json, occ: Occurrence, map: boolean): void {
    const v = elemValue(e);
    if (map && Array.isArray(v) && v.length === 2 && isObj(v[1])) this.key(elemValue(v[0]!), { at: occ.at, rule: occ.rule, expr: occ.expr, table: occ.table, extra: occ.extra, verdict: v[1] });
    else this.key(v, occ);
  }

  items(right: Json, occ: Occurrence, map: boolean): void {
    if (typeof right === 'string' && right.startsWith('@')) return; // a named set: read with the sets
    if (isObj(right) && Array.isArray(right.set)) for (const e of right.set) this.element(e, occ, map);
    else this.key(right, occ);
  }
}

function partition(rs: Ruleset): Partition | null {
  const places = new Places();
  let unsafe = false;
  // Only what a match compares with (its right side, a verdict map's keys, a set's elements) and
  // where a translation sends to: the rest of a rule holds no port the answer depends on.
  // forEach and no place made for a right side that holds no port: this runs once per ruleset, over
  // every rule (tens of thousands), mostly before it is optimised.
  rs.chains.forEach((c, ck) => {
    for (let i = 0; i < c.rules.length; i++) {
      const exprs = c.rules[i]!.expr;
      for (let k = 0; k < exprs.length; k++) {
        const e = exprs[k]!;
        if (!isObj(e)) continue;
        // A statement is an object of one key (its kind), read as the interpreter reads it.
        let kind: string | undefined;
        for (kind in e) break;
        // Only these statements hold a port the answer depends on (counters, verdicts, set updates … are most).
        if (kind !== 'match' && kind !== 'vmap' && kind !== 'redirect' && kind !== 'dnat' && kind !== 'xt') continue;
        const v = e[kind];
        if (!isObj(v)) {
          // A redirect without options keeps the port asked for (below).
          if (kind === 'redirect') unsafe = true;
          continue;
        }
        if (kind === 'match') {
          const right = v.right ?? null;
          if (typeof right === 'object' ? right !== null : typeof right === 'number' || (typeof right === 'string' && portNumber(right) !== null)) places.items(right, { at: ck, rule: i, expr: k }, false);
        } else if (kind === 'vmap') places.items(v.data ?? null, { at: ck, rule: i, expr: k, table: `${c.family} ${c.table}` }, true);
        // A translation that keeps the port asked for (redirect or DNAT without a port, an
        // opaque iptables target) carries the port into the result: no classes then.
        else if ((kind === 'redirect' && typeof v.port !== 'number') || (kind === 'dnat' && v.port === undefined) || (kind === 'xt' && v.type === 'target')) unsafe = true;
        // The port a translation sends connections to is one the answer depends on (a listener
        // there is also reached through it).
        else if (kind === 'redirect' || kind === 'dnat') places.key(v.port ?? null, { at: ck, rule: i, expr: k });
      }
    }
  });
  if (unsafe) return null;
  // Sets of addresses only (the large ones: blocklists, allowed sources) hold no ports.
  const addressOnly = (t: string | string[]) => [t].flat().every((x) => x === 'ipv4_addr' || x === 'ipv6_addr' || x === 'ether_addr');
  for (const [sk, s] of rs.sets) {
    if (addressOnly(s.type)) continue;
    const occ: Occurrence = { at: sk, rule: -1, expr: 0, table: `${s.family} ${s.table}` };
    for (let i = 0; i < s.elem.length; i++) places.element(s.elem[i]!, occ, true); // a map's elements are [key, value] pairs, a set's never arrays
  }
  // Sorted as numbers (a typed array's sort), each start once.
  const sorted = Float64Array.from(places.cuts).sort();
  const starts = [...sorted.filter((p, i) => i === 0 || p !== sorted[i - 1])];
  return { starts, exact: places.exact, ranges: places.ranges, rangeKeys: [], keys: new Map(), bodies: new Map(), ids: new Map() };
}

const intern = (part: Partition, s: string): number => {
  let id = part.ids.get(s);
  if (id === undefined) part.ids.set(s, (id = part.ids.size));
  return id;
};

/** A verdict as its meaning: a jump or goto stands for the rules of its chain, not the chain's name. */
function verdictMeaning(rs: Ruleset, part: Partition, v: Json, table: string): string {
  const kind = isObj(v) ? (isObj(v.jump) ? 'jump' : isObj(v.goto) ? 'goto' : null) : null;
  if (!kind) return JSON.stringify(v);
  const target = String(((v as Record<string, Json>)[kind] as Record<string, Json>).target);
  const ck = `${table} ${target}`;
  let body = part.bodies.get(ck);
  if (body === undefined) {
    const [family, name] = table.split(' ');
    const chain = rs.chains.get(chainKey(family!, name!, target));
    // Counters differ from chain to chain and decide nothing.
    const text = chain ? JSON.stringify(chain.rules.map((r) => r.expr.filter((e) => !(isObj(e) && 'counter' in e)))) : `missing ${target}`;
    body = `${kind} ${table} #${intern(part, text)}`;
    part.bodies.set(ck, body);
  }
  return body;
}

function signature(rs: Ruleset, part: Partition, port: number): string | null {
  if (part.ranges.length > MAX_RANGES_SCANNED) return null;
  const role = (o: Occurrence, how: string) => `${o.rule < 0 ? `@${o.at}` : `${o.at}#${o.rule}.${o.expr}`}${how}${o.extra ?? ''}${o.verdict !== undefined ? ` → ${verdictMeaning(rs, part, o.verdict, o.table ?? '')}` : ''}`;
  const roles = (part.exact.get(port) ?? []).map((o) => role(o, '='));
  for (const r of part.ranges) if (r.lo <= port && port <= r.hi) roles.push(role(r.occ, '∈'));
  return roles.sort().join('\n');
}

/**
 * The class of ports `port` belongs to: "lo-hi" for a range class, "=N" for a signature class, or
 * the port itself when the ruleset cannot be classed.
 */
export function portClass(rs: Ruleset, port: number): string {
  let part = cache.get(rs);
  if (part === undefined) cache.set(rs, (part = partition(rs)));
  if (!part) return String(port);
  const starts = part.starts;
  // The last start ≤ port.
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= port) lo = mid;
    else hi = mid - 1;
  }
  const a = starts[lo]!;
  const b = starts[lo + 1]! - 1;
  if (a !== b) return (part.rangeKeys[lo] ??= `${a}-${b}`);
  let key = part.keys.get(port);
  if (key === undefined) {
    const sig = signature(rs, part, port);
    key = sig === null ? String(port) : `=${intern(part, sig)}`;
    part.keys.set(port, key);
  }
  return key;
}

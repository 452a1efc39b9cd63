// Follows a hypothetical new connection (family, proto, destination port, input interface) through
// the base chains of one hook of a ruleset, for a whole region of source addresses at once: which
// sources are accepted, which dropped, and which the interpreter cannot decide (with the
// expression that stopped it). A drop or reject in any base chain is final; an accept only ends
// its own chain. The input hook is a connection to this host; the forward hook one that a DNAT
// sent on to a container; the prerouting nat chains say which sources that DNAT catches. Pure.
import { CT_DIRECTIONS, PKTTYPES, PROTOCOLS, TCP_FLAGS, compare, evaluate, leafOf } from './fields.js';
import { addrOf, IntervalSet, prefixSet, pushPrefix, pushPrefixOf, toBig, type Addr, type Fam } from './intervals.js';
import { exprText, valueText } from './nft-text.js';
import { dnatStatementTarget } from './published.js';
import { baseChains, chainKey, elemValue, isObj, type Hook, type Obj, type Json, type NftChain, type NftRule, type NftSet, type Ruleset } from './nft-json.js';

export interface Packet {
  family: Fam;
  /** icmpv6: a neighbour-discovery message (icmpType), without which IPv6 reaches nothing on-link. */
  proto: 'tcp' | 'udp' | 'icmpv6';
  icmpType?: 'nd-neighbor-solicit' | 'nd-neighbor-advert';
  /** The destination port as the chains of this hook see it (after a DNAT on the forward path). */
  dport: number;
  iif: string;
  /** The first packet of a connection (new) or a later one from the client (established). */
  ctState?: 'new' | 'established';
  /** TCP flags of this packet (bits as in fields.ts TCP_FLAGS): SYN, ACK, SYN|ACK, ACK|PSH. */
  tcpFlags?: number;
  /**
   * input (default): to this host; output (with reply): this host's answers; forward: after a
   * DNAT, to `daddr` through `oif`; prerouting: before routing (run: the filter-type chains such as
   * raw blocklists and reverse-path filters; runNat: the nat chains).
   */
  hook?: 'ingress' | 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
  /**
   * The server's end: on the input path the host address the client asked for (undefined: not
   * known, so daddr matches are undetermined); on the forward path the address a DNAT sent the
   * connection to. In a reply it is the source.
   */
  daddr?: string;
  /** Forward path: the interface towards daddr (null: not known, so oif matches are undetermined). */
  oif?: string | null;
  /** Forward path: the port the client asked for (ct original proto-dst), before the DNAT. */
  origDport?: number;
  /** Forward path: the host address the client asked for, before the DNAT (undefined: not known). */
  origDaddr?: string;
  /** This host's own addresses (`fib saddr type local`); undefined: not known. */
  localAddrs?: string[];
  /**
   * The server's answer, from daddr:dport (or this host's port, on the output hook) back to the
   * client (iif and oif swapped). The address region is then the packet's destination.
   */
  reply?: boolean;
  /**
   * A neighbour-discovery message's `th dport` reads its checksum, which differs from client to
   * client: by rule ("family table chain handle"), whether that match is taken to hold
   * (neighbour.ts tries each way).
   */
  checksum?: ReadonlyMap<string, boolean>;
}

/** A mark's value for a region of sources: marks are set per rule, so they differ by source. */
export interface MarkPart {
  value: number;
  region: IntervalSet;
}

/**
 * What one packet carries along its path besides its headers: its mark (reset for each packet)
 * and its connection's mark (kept from packet to packet). Shared by the interpreters of one packet.
 */
export interface PacketMarks {
  meta: MarkPart[];
  ct: MarkPart[];
}

export const freshMarks = (fam: Fam, ct?: MarkPart[]): PacketMarks => ({ meta: [{ value: 0, region: IntervalSet.full(fam) }], ct: ct ?? [{ value: 0, region: IntervalSet.full(fam) }] });

const protocolOf = (fam: Fam) => (fam === 4 ? 'ip' : 'ip6');

/** Where a client's source port lies: some unprivileged port, which one is not known. */
const CLIENT_PORTS = [1024, 65535] as const;

/** What the prerouting nat chains do with a connection: which sources a DNAT sends where. */
export interface NatVerdicts {
  /**
   * "addr", "addr:port", or ":port" for a redirect to this host (null: the rule does not say, e.g.
   * an iptables-nft xt target) → sources.
   */
  dnat: Map<string | null, IntervalSet>;
  undetermined: IntervalSet;
  reasons: string[];
  trace: TraceStep[];
}

export interface TraceStep {
  /** Which packet of the connection (explain): "SYN in", "SYN-ACK out" … */
  packet?: string;
  chain: string;
  handle: number | null;
  comment: string | null;
  rule: string;
  outcome: string;
}

export interface Verdicts {
  accepted: IntervalSet;
  refused: IntervalSet;
  undetermined: IntervalSet;
  reasons: string[];
  trace: TraceStep[];
}

class Undecidable extends Error {}

/** A statement's or verdict's kind: the one key of its object (no array of entries made for it). */
function kindOf(o: Obj): string | undefined {
  for (const k in o) return k;
  return undefined;
}


const ICMPV6_TYPE: Record<string, number> = { 'nd-neighbor-solicit': 135, 'nd-neighbor-advert': 136 };

/** What a rule (or a chain) did with the sources that entered it; `rest` goes on to the next rule. */
interface Outcome {
  accept: IntervalSet;
  refuse: IntervalSet;
  undet: IntervalSet;
  ret: IntervalSet;
  rest: IntervalSet;
}

/** A match either narrows the source region or is a constant for this packet. */
type MatchResult = { kind: 'const'; value: boolean } | { kind: 'sources'; set: IntervalSet };

function short(j: Json): string {
  const s = JSON.stringify(j);
  return s.length > 160 ? s.slice(0, 157) + '...' : s;
}

/**
 * Per chain and protocol: which rules can match a destination port. Rules that name their ports
 * with constants are filed under those ports; all others are "generic". Built once per chain, it
 * keeps exposure for many listeners over large rulesets linear in the rules that matter.
 */
interface PortIndex {
  generic: number[];
  byPort: Map<number, number[]>;
}
const portIndexes = new WeakMap<NftChain, Record<'tcp' | 'udp', PortIndex>>();
/** A named set's addresses, converted once per ruleset. */
const namedSetCache = new WeakMap<NftSet, Map<Fam, IntervalSet>>();
const MAX_INDEXED_RANGE = 1024;

function dportsOf(rule: NftRule): { protos: ('tcp' | 'udp')[]; ports: number[] } | null {
  for (const e of rule.expr) {
    if (!isObj(e) || !isObj(e.match)) continue;
    const m = e.match;
    const left = m.left;
    if (!isObj(left) || !isObj(left.payload) || (left.payload as Obj).field !== 'dport' || (m.op !== '==' && m.op !== 'in')) continue;
    const proto = String((left.payload as Obj).protocol);
    const protos: ('tcp' | 'udp')[] = proto === 'th' ? ['tcp', 'udp'] : proto === 'tcp' || proto === 'udp' ? [proto] : [];
    if (!protos.length) continue;
    const items = isObj(m.right) && Array.isArray(m.right.set) ? m.right.set : [m.right as Json];
    const ports: number[] = [];
    for (const it of items) {
      if (typeof it === 'number') ports.push(it);
      else if (isObj(it) && Array.isArray(it.range) && Number(it.range[1]) - Number(it.range[0]) <= MAX_INDEXED_RANGE) {
        for (let p = Number(it.range[0]); p <= Number(it.range[1]); p++) ports.push(p);
      } else return null; // a named set or a wide range: treat the rule as generic
    }
    return { protos, ports };
  }
  return null;
}

function portIndex(chain: NftChain, proto: 'tcp' | 'udp'): PortIndex {
  let idx = portIndexes.get(chain);
  if (!idx) {
    idx = { tcp: { generic: [], byPort: new Map() }, udp: { generic: [], byPort: new Map() } };
    chain.rules.forEach((rule, i) => {
      const d = dportsOf(rule);
      for (const pr of ['tcp', 'udp'] as const) {
        if (!d) idx![pr].generic.push(i);
        else if (d.protos.includes(pr)) {
          for (const port of d.ports) {
            const list = idx![pr].byPort.get(port);
            if (list) list.push(i);
            else idx![pr].byPort.set(port, [i]);
          }
        } // else: the rule names the other protocol only and never matches
      }
    });
    portIndexes.set(chain, idx);
  }
  return idx[proto];
}

/** The rules of a chain that can match this packet, in order. */
function candidates(chain: NftChain, proto: 'tcp' | 'udp' | 'icmpv6', dport: number): NftRule[] {
  if (proto === 'icmpv6') return chain.rules;
  const idx = portIndex(chain, proto);
  const a = idx.generic;
  const b = idx.byPort.get(dport) ?? [];
  const out: NftRule[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const next = j >= b.length || (i < a.length && a[i]! < b[j]!) ? a[i++]! : b[j++]!;
    out.push(chain.rules[next]!);
  }
  return out;
}

/** Port-keyed verdict maps, indexed once: sorted [lo, hi] spans → verdict (null: not all keys are ports). */
const verdictMapIndexes = new WeakMap<Json[], ((port: number) => Obj | undefined) | null>();

function portIndexOf(pairs: Json[]): ((port: number) => Obj | undefined) | null {
  if (verdictMapIndexes.has(pairs)) return verdictMapIndexes.get(pairs)!;
  const spans: [number, number, Obj][] = [];
  let ok = true;
  for (const pair of pairs) {
    if (!Array.isArray(pair) || pair.length !== 2 || !isObj(pair[1])) {
      ok = false;
      break;
    }
    const k = elemValue(pair[0]!);
    if (typeof k === 'number') spans.push([k, k, pair[1]]);
    else if (isObj(k) && Array.isArray(k.range) && typeof k.range[0] === 'number' && typeof k.range[1] === 'number') spans.push([k.range[0], k.range[1], pair[1]]);
    else {
      ok = false;
      break;
    }
  }
  spans.sort((a, b) => a[0] - b[0]);
  // Overlapping spans would make the first matching entry depend on order: no index then.
  for (let i = 1; ok && i < spans.length; i++) if (spans[i]![0] <= spans[i - 1]![1]) ok = false;
  const find = ok
    ? (port: number) => {
        let lo = 0;
        let hi = spans.length - 1;
        while (lo <= hi) {
          const mid = (lo + hi) >> 1;
          const [a, b, verdict] = spans[mid]!;
          if (port < a) hi = mid - 1;
          else if (port > b) lo = mid + 1;
          else return verdict;
        }
        return undefined;
      }
    : null;
  verdictMapIndexes.set(pairs, find);
  return find;
}

export interface InterpreterOptions {
  /** Record each rule that decides something (explain). */
  tracing?: boolean;
  /** Marks this packet carries: shared by the interpreters of the hooks it passes, in order. */
  marks?: PacketMarks;
}

export class Interpreter {
  private tracing: boolean;
  readonly marks: PacketMarks;

  constructor(
    private readonly rs: Ruleset,
    private readonly p: Packet,
    opts: InterpreterOptions = {},
  ) {
    this.tracing = opts.tracing ?? false;
    this.marks = opts.marks ?? freshMarks(p.family);
  }

  /** The sources whose marks rules have set (a jump that sets marks is not neutral for them). */
  private marked: IntervalSet | null = null;

  /** `meta mark set V`, `ct mark set meta mark` …: the sources M now carry that value. */
  private setMark(m: Obj, M: IntervalSet): void {
    const key = isObj(m.key) ? m.key : null;
    const target = key && isObj(key.meta) && key.meta.key === 'mark' ? 'meta' : key && isObj(key.ct) && key.ct.key === 'mark' ? 'ct' : null;
    if (!target) return; // another field (a DSCP, a priority): not something a verdict here depends on
    const value = m.value ?? null;
    this.marked = this.marked ? this.marked.union(M) : M;
    const source = leafOf(value);
    const from = isObj(source) && isObj(source.meta) && source.meta.key === 'mark' ? this.marks.meta : isObj(source) && isObj(source.ct) && source.ct.key === 'mark' ? this.marks.ct : null;
    let next: MarkPart[] = this.marks[target].map((p) => ({ value: p.value, region: p.region.subtract(M) }));
    if (from) {
      // Per source: each part of M gets the value it had in the named mark, masked and or'd as the
      // expression says (`meta mark set meta mark & 0xffff00ff | 0xab`).
      for (const part of from) {
        const v = evaluate(value, part.value, {});
        if (v === null) throw new Undecidable(`statement ${exprText({ mangle: m })}`);
        next.push({ value: v >>> 0, region: part.region.intersect(M) });
      }
    } else if (typeof value === 'number') next.push({ value, region: M });
    else throw new Undecidable(`statement ${exprText({ mangle: m })}`);
    next = next.filter((p) => !p.region.isEmpty());
    // Keep one part per value.
    const merged = new Map<number, IntervalSet>();
    for (const p of next) merged.set(p.value, merged.has(p.value) ? merged.get(p.value)!.union(p.region) : p.region);
    this.marks[target] = [...merged].map(([value, region]) => ({ value, region }));
  }

  private trace: TraceStep[] = [];
  private reasons: string[] = [];

  /** Can this packet build the key (`ip saddr`, `ip6 saddr . tcp dport` …)? Not from another family's or protocol's header. */
  private keyApplies(key: Json): boolean {
    const parts = isObj(key) && Array.isArray(key.concat) ? key.concat : [key];
    return parts.every((part) => {
      const leaf = leafOf(part);
      if (!isObj(leaf) || !isObj(leaf.payload)) return true;
      const proto = String((leaf.payload as Obj).protocol);
      if (proto === 'ip' || proto === 'ip6') return (proto === 'ip') === (this.p.family === 4);
      if (proto === 'tcp' || proto === 'udp') return proto === this.p.proto;
      return true;
    });
  }

  /** Elements of a named set or an anonymous set/value, as a list of JSON values. */
  private elements(right: Json, chain: NftChain): Json[] {
    if (typeof right === 'string' && right.startsWith('@')) {
      const set = this.rs.sets.get(chainKey(chain.family, chain.table, right.slice(1)));
      if (!set) throw new Undecidable(`unknown set ${right}`);
      if (namedSetCache.has(set)) return []; // addressSet() answers from its cache
      // Only an address's match reads a set of addresses, and addressSet() reads them in place.
      if (set.type === 'ipv4_addr' || set.type === 'ipv6_addr') return [];
      return set.elem.map(elemValue);
    }
    if (isObj(right) && Array.isArray(right.set)) return right.set.map(elemValue);
    if (Array.isArray(right)) return right;
    return [right];
  }

  private addressSet(right: Json, items: Json[], fam: Fam, chain: NftChain): IntervalSet {
    const named = typeof right === 'string' && right.startsWith('@') ? this.rs.sets.get(chainKey(chain.family, chain.table, right.slice(1))) : undefined;
    const cached = named && namedSetCache.get(named)?.get(fam);
    if (cached) return cached;
    // A named set's elements read where they are (elements() copies none for it), by index: this
    // loop runs once per set, over up to tens of thousands of elements, mostly before it is optimised.
    const list = named ? named.elem : items;
    const bounds: Addr[] = [];
    for (let i = 0; i < list.length; i++) {
      const it = named ? elemValue(list[i]!) : list[i]!;
      if (typeof it === 'string') pushPrefix(bounds, fam, it);
      else if (isObj(it) && isObj(it.prefix)) pushPrefixOf(bounds, fam, String(it.prefix.addr), Number(it.prefix.len));
      else if (isObj(it) && Array.isArray(it.range)) bounds.push(addrOf(fam, toBig(String(it.range[0]))), addrOf(fam, toBig(String(it.range[1]))));
      else throw new Undecidable(`address element ${short(it)}`);
    }
    const set = IntervalSet.ofBounds(fam, bounds);
    if (named) {
      const m = namedSetCache.get(named) ?? new Map<Fam, IntervalSet>();
      m.set(fam, set);
      namedSetCache.set(named, m);
    }
    return set;
  }

  /**
   * `ip saddr . tcp dport @set`: an element matches when each of its parts matches the key's part
   * at the same place — constants for this packet, or a region of sources; the elements' regions
   * are joined.
   */
  private concatMatch(keys: Json[], items: Json[], chain: NftChain): MatchResult {
    const fam = this.p.family;
    let any = IntervalSet.empty(fam);
    for (const it of items) {
      const parts = isObj(it) && Array.isArray(it.concat) ? it.concat : null;
      if (!parts || parts.length !== keys.length) throw new Undecidable(`concatenation element ${short(it)}`);
      let region = IntervalSet.full(fam);
      for (let i = 0; i < keys.length && !region.isEmpty(); i++) {
        const r = this.match({ op: '==', left: keys[i]!, right: parts[i]! }, chain);
        region = r.kind === 'const' ? (r.value ? region : IntervalSet.empty(fam)) : region.intersect(r.set);
      }
      any = any.union(region);
      if (any.isFull()) break;
    }
    return any.isFull() ? { kind: 'const', value: true } : any.isEmpty() ? { kind: 'const', value: false } : { kind: 'sources', set: any };
  }

  /** true: every port in lo..hi matches; false: none does; null: some do. */
  private portsCover(items: Json[], lo: number, hi: number): boolean | null {
    let covered = false;
    let touched = false;
    for (const it of items) {
      const [a, b] = isObj(it) && Array.isArray(it.range) ? [Number(it.range[0]), Number(it.range[1])] : typeof it === 'number' ? [it, it] : [NaN, NaN];
      if (Number.isNaN(a)) return null;
      if (a <= lo && b >= hi) covered = true;
      if (b >= lo && a <= hi) touched = true;
    }
    return covered ? true : touched ? null : false;
  }

  private valueIn(items: Json[], v: number | string, names: Record<string, number> = {}): boolean {
    const num = (x: Json): number | string => (typeof x === 'string' && x in names ? names[x]! : (x as number | string));
    return items.some((it) => {
      if (isObj(it) && Array.isArray(it.range)) return Number(it.range[0]) <= Number(v) && Number(v) <= Number(it.range[1]);
      if (typeof it === 'string' && it.endsWith('*') && typeof v === 'string') return v.startsWith(it.slice(0, -1));
      if (isObj(it)) throw new Undecidable(`element ${short(it)}`);
      return num(it) === num(v as Json) || String(it) === String(v);
    });
  }

  /** Set when a rule asked for this host's address on the input path and the packet did not say. */
  askedDaddr = false;
  /** Rules whose `th dport` met this neighbour-discovery message's checksum, with no way given for it. */
  readonly checksumRules: string[] = [];

  /** The rule's key when this match is `th dport` of a neighbour-discovery message (its checksum). */
  private checksumKey(m: Obj, chain: NftChain, rule: NftRule): string | null {
    if (this.p.proto !== 'icmpv6' || rule.handle === null || !isObj(m.left) || !isObj(m.left.payload)) return null;
    const { protocol, field } = m.left.payload as { protocol?: string; field?: string };
    return protocol === 'th' && field === 'dport' ? `${chain.family} ${chain.table} ${chain.name} ${rule.handle}` : null;
  }

  /** The value a constant field of this packet has; undefined when `leaf` is not such a field. */
  private fieldValue(leaf: Obj): { value: number; names: Record<string, number> } | null | undefined {
    const p = this.p;
    const proto = PROTOCOLS[p.proto]!;
    if (isObj(leaf.payload)) {
      const { protocol, field } = leaf.payload as { protocol?: string; field?: string };
      if (protocol === 'tcp' && field === 'flags') return p.proto === 'tcp' ? { value: p.tcpFlags ?? TCP_FLAGS.syn!, names: TCP_FLAGS } : null;
      // No extension headers: the next header after IPv6's own is the transport protocol.
      if ((protocol === 'ip' && field === 'protocol') || (protocol === 'ip6' && field === 'nexthdr')) return (protocol === 'ip') === (p.family === 4) ? { value: proto, names: PROTOCOLS } : null;
      if ((protocol === 'ip' && field === 'ttl') || (protocol === 'ip6' && field === 'hoplimit')) {
        if ((protocol === 'ip') !== (p.family === 4)) return null;
        // Neighbour discovery is sent with hop limit 255 (RFC 4861); any other packet's is the sender's choice.
        if (p.proto === 'icmpv6') return { value: 255, names: {} };
        throw new Undecidable(`${protocol} ${field} (set by the client's system, not known)`);
      }
      return undefined;
    }
    if (isObj(leaf.meta)) {
      const key = String((leaf.meta as Obj).key);
      if (key === 'l4proto') return { value: proto, names: PROTOCOLS };
      if (key === 'pkttype') return { value: p.icmpType === 'nd-neighbor-solicit' ? PKTTYPES.multicast! : PKTTYPES.host!, names: PKTTYPES };
      return undefined;
    }
    // Load balancing (kube-proxy's `numgen random mod N vmap {…}`): with one endpoint, always it.
    if (isObj(leaf.numgen)) {
      const g = leaf.numgen as Obj;
      if (g.mod === 1) return { value: Number(g.offset ?? 0), names: {} };
      throw new Undecidable(`numgen ${String(g.mode)} mod ${String(g.mod)} (picked by chance for each connection)`);
    }
    if (isObj(leaf.ct) && String((leaf.ct as Obj).key) === 'direction') {
      if (p.proto === 'icmpv6') throw new Undecidable('ct direction of an untracked neighbour-discovery message');
      return { value: p.reply ? CT_DIRECTIONS.reply! : CT_DIRECTIONS.original!, names: CT_DIRECTIONS };
    }
    return undefined;
  }

  /** A match on a packet's mark or its connection's: the sources whose mark makes it hold. */
  private markMatch(op: string, left: Json, right: Json, parts: MarkPart[]): MatchResult {
    const fam = this.p.family;
    let set = IntervalSet.empty(fam);
    for (const part of parts) {
      const v = evaluate(left, part.value, {});
      const hit = v === null ? null : compare(op, v, right, {});
      if (hit === null) throw new Undecidable(`mark ${op} ${valueText(right)}`);
      if (hit) set = set.union(part.region);
    }
    return set.isFull() ? { kind: 'const', value: true } : set.isEmpty() ? { kind: 'const', value: false } : { kind: 'sources', set };
  }

  private match(m: Obj, chain: NftChain): MatchResult {
    const left = m.left;
    const op = String(m.op ?? '==');
    const right = m.right as Json;
    // Fields whose value this packet has for certain (flags, protocol numbers, marks), with masks.
    const leaf = leafOf(left as Json);
    if (isObj(leaf)) {
      if (isObj(leaf.meta) && (leaf.meta as Obj).key === 'mark') return this.markMatch(op, left as Json, right, this.marks.meta);
      if (isObj(leaf.ct) && (leaf.ct as Obj).key === 'mark') return this.markMatch(op, left as Json, right, this.marks.ct);
      // An IPv6 extension header (routing header, fragment …): a normal connection carries none,
      // and a match on a header that is missing never holds (`exthdr … exists` is false).
      if (isObj(leaf.exthdr)) return { kind: 'const', value: typeof right === 'boolean' ? (op === '!=') === right : false };
      const f = this.fieldValue(leaf);
      if (f === null) return { kind: 'const', value: false }; // another protocol's field: the implicit dependency fails
      if (f !== undefined) {
        const v = evaluate(left as Json, f.value, f.names);
        const hit = v === null ? null : compare(op, v, right, f.names);
        if (hit === null) throw new Undecidable(`match ${exprText({ match: m })}`);
        return { kind: 'const', value: hit };
      }
    }
    const items = this.elements(right, chain);
    const negate = op === '!=';
    if (op !== '==' && op !== '!=' && op !== 'in') throw new Undecidable(`match ${exprText({ match: m })}`);
    const k = (value: boolean): MatchResult => ({ kind: 'const', value: negate ? !value : value });
    if (!isObj(left)) throw new Undecidable(`match ${exprText({ match: m })}`);
    if (Array.isArray(left.concat)) {
      const r = this.concatMatch(left.concat, items, chain);
      return negate ? (r.kind === 'const' ? { kind: 'const', value: !r.value } : { kind: 'sources', set: r.set.complement() }) : r;
    }
    if (isObj(left.payload)) {
      const { protocol, field } = left.payload as { protocol?: string; field?: string };
      if ((protocol === 'ip' || protocol === 'ip6') && (field === 'saddr' || field === 'daddr')) {
        const fam: Fam = protocol === 'ip' ? 4 : 6;
        if (fam !== this.p.family) return { kind: 'const', value: false }; // implicit nfproto dependency
        // The region is the client's address: the source, or in a reply the destination.
        if (field === (this.p.reply ? 'daddr' : 'saddr')) {
          const set = this.addressSet(right, items, fam, chain);
          return { kind: 'sources', set: negate ? set.complement() : set };
        }
        // The server's end: the host address asked for, or the DNAT's.
        if (this.p.daddr === undefined) {
          this.askedDaddr = true;
          throw new Undecidable(`${protocol} ${field} (which of this host's addresses was asked)`);
        }
        return k(this.addressSet(right, items, fam, chain).has(this.p.daddr));
      }
      if (this.p.proto === 'icmpv6') {
        if (protocol === 'icmpv6' && field === 'type') return k(this.valueIn(items, this.p.icmpType!, ICMPV6_TYPE));
        if (protocol === 'icmpv6' && field === 'code') return k(this.valueIn(items, 0));
        // th dport reads whatever the transport header holds there: an ICMPv6 checksum, not known.
        if (protocol === 'tcp' || protocol === 'udp' || protocol === 'icmp') return { kind: 'const', value: false };
        throw new Undecidable(`${protocol} ${field} of a neighbour-discovery message`);
      }
      if (protocol === 'tcp' || protocol === 'udp' || protocol === 'th') {
        if (protocol !== 'th' && protocol !== this.p.proto) return { kind: 'const', value: false };
        if (field === (this.p.reply ? 'sport' : 'dport')) return k(this.valueIn(items, this.p.dport));
        if (field === (this.p.reply ? 'dport' : 'sport')) {
          // The client's port: some unprivileged port. Decided only when the match says the same for all of them.
          const hits = this.portsCover(items, CLIENT_PORTS[0], CLIENT_PORTS[1]);
          if (hits === null) throw new Undecidable(`${protocol} ${field} (the client's port)`);
          return k(hits);
        }
        throw new Undecidable(`${protocol} ${field}`);
      }
      if (protocol === 'icmp' || protocol === 'icmpv6') return { kind: 'const', value: false };
      throw new Undecidable(`${protocol} ${field}`);
    }
    if (isObj(left.meta)) {
      const key = String((left.meta as Obj).key);
      if (key === 'nfproto') return k(this.valueIn(items, this.p.family === 4 ? 'ipv4' : 'ipv6'));
      if (key === 'protocol') return k(this.valueIn(items, this.p.family === 4 ? 'ip' : 'ip6'));
      if (key === 'iif' || key === 'iifname') {
        // A packet this host sends has no input interface: the match never holds.
        if (this.p.hook === 'output' || (this.p.reply && !this.p.iif && this.p.origDport === undefined)) return { kind: 'const', value: false };
        if (!this.p.iif) throw new Undecidable(`meta ${key} (the input interface is not known)`);
        return k(this.valueIn(items, this.p.iif));
      }
      if (key === 'oif' || key === 'oifname') {
        // Before routing (ingress, prerouting, input) there is no output interface: the match never holds.
        const hook = this.p.hook ?? 'input';
        if (hook === 'input' || hook === 'prerouting' || hook === 'ingress') return { kind: 'const', value: false };
        if (!this.p.oif) throw new Undecidable(`meta ${key} (the interface towards ${this.p.daddr ?? '?'} is not known)`);
        return k(this.valueIn(items, this.p.oif));
      }
      throw new Undecidable(`meta ${key}`);
    }
    if (isObj(left.ct)) {
      const key = String((left.ct as Obj).key);
      const dir = (left.ct as Obj).dir;
      // Conntrack leaves neighbour discovery untracked.
      if (key === 'state') return k(this.valueIn(items, this.p.proto === 'icmpv6' ? 'untracked' : (this.p.ctState ?? 'new')));
      // Only a connection on the forward path after our DNAT was NATed on its way in.
      if (key === 'status' && items.every((i) => i === 'dnat' || i === 'snat')) return k(items.includes('dnat') && this.p.origDport !== undefined);
      if (key === 'proto-dst' && (dir === 'original' || dir === undefined)) return k(this.valueIn(items, this.p.origDport ?? this.p.dport));
      // The connection's original destination is the host address the client asked for.
      if ((key === 'daddr' || key === 'ip daddr' || key === 'ip6 daddr') && dir === 'original') {
        const fam = (left.ct as Obj).family === 'ip6' ? 6 : (left.ct as Obj).family === 'ip' ? 4 : this.p.family;
        if (fam !== this.p.family) return { kind: 'const', value: false };
        const asked = this.p.origDport !== undefined ? this.p.origDaddr : this.p.daddr;
        if (asked === undefined) {
          this.askedDaddr = true;
          throw new Undecidable(`ct original ${protocolOf(fam)} daddr (which of this host's addresses was asked)`);
        }
        return k(this.addressSet(right, items, fam, chain).has(asked));
      }
      // The connection's original source is the client, whichever way this packet goes.
      if ((key === 'saddr' || key === 'ip saddr' || key === 'ip6 saddr') && dir === 'original') {
        const fam = (left.ct as Obj).family === 'ip6' ? 6 : (left.ct as Obj).family === 'ip' ? 4 : this.p.family;
        if (fam !== this.p.family) return { kind: 'const', value: false };
        const set = this.addressSet(right, items, fam, chain);
        return { kind: 'sources', set: negate ? set.complement() : set };
      }
      throw new Undecidable(`ct ${typeof dir === 'string' ? `${dir} ` : ''}${key}`);
    }
    if (isObj(left.fib)) {
      const fib = left.fib as { result?: string; flags?: string[] };
      // Before a DNAT every packet here is addressed to this host (local); after it, to a container.
      // A reverse-path filter (fib saddr . iif oif missing drop): the source is taken to be routed
      // back out of the interface it came in on, as every source that can get an answer is.
      if (fib.result === 'oif' && fib.flags?.includes('saddr') && fib.flags.includes('iif')) {
        return k(items.some((i) => i === true || i === this.p.iif) && !items.includes(false));
      }
      // The client's address type: local when it is one of this host's own addresses.
      if (fib.result === 'type' && fib.flags?.length === 1 && fib.flags[0] === (this.p.reply ? 'daddr' : 'saddr')) {
        if (!this.p.localAddrs) throw new Undecidable(`${valueText(left)} (this host's addresses are not known)`);
        const local = this.p.localAddrs.filter((a) => (a.includes(':') ? 6 : 4) === this.p.family).reduce((u, a) => u.union(prefixSet(this.p.family, a)), IntervalSet.empty(this.p.family));
        const set = items.reduce<IntervalSet>((u, i) => (i === 'local' ? u.union(local) : i === 'unicast' ? u.union(local.complement()) : u), IntervalSet.empty(this.p.family));
        return { kind: 'sources', set: negate ? set.complement() : set };
      }
      // A neighbour solicitation goes to a solicited-node multicast address; a reply to the client.
      if (fib.result === 'type' && fib.flags?.length === 1 && fib.flags[0] === 'daddr') {
        return k(this.valueIn(items, this.p.hook === 'forward' || this.p.reply ? 'unicast' : this.p.icmpType === 'nd-neighbor-solicit' ? 'multicast' : 'local'));
      }
      throw new Undecidable(valueText(left));
    }
    throw new Undecidable(`match ${exprText({ match: m })}`);
  }

  /** Runs one chain for region R; returns what it accepted, refused, returned and could not decide. */
  private chain(chain: NftChain, region: IntervalSet, depth: number): { accept: IntervalSet; refuse: IntervalSet; ret: IntervalSet; undet: IntervalSet } {
    const fam = this.p.family;
    let R = region;
    let accept = IntervalSet.empty(fam);
    let refuse = IntervalSet.empty(fam);
    let undet = IntervalSet.empty(fam);
    let ret = IntervalSet.empty(fam);
    if (depth > 32) throw new Undecidable(`jump depth over 32 at ${chain.name}`);
    // A reply's destination port is the client's: the index by destination port does not apply.
    for (const rule of this.p.reply ? chain.rules : candidates(chain, this.p.proto, this.p.dport)) {
      if (R.isEmpty()) break;
      const out = this.rule(rule, chain, R, depth);
      accept = accept.union(out.accept);
      refuse = refuse.union(out.refuse);
      undet = undet.union(out.undet);
      ret = ret.union(out.ret);
      R = out.rest;
    }
    return { accept, refuse, undet, ret: ret.union(R) };
  }

  private rule(rule: NftRule, chain: NftChain, R: IntervalSet, depth: number): Outcome {
    const fam = this.p.family;
    const none = IntervalSet.empty(fam);
    const label = () => `${chain.family} ${chain.table} ${chain.name}`; // for a trace or a reason only
    const record = (M: IntervalSet, outcome: string) => {
      if (this.tracing && !M.isEmpty()) this.trace.push({ chain: label(), handle: rule.handle, comment: rule.comment, rule: rule.expr.filter((x) => !(isObj(x) && 'counter' in x)).map(exprText).join(' '), outcome });
    };
    let M = R;
    /** Only the part of R that the decidable matches so far let through is uncertain. */
    const uncertain = (err: unknown): Outcome => {
      if (!(err instanceof Undecidable)) throw err;
      const reason = `${label()} handle ${rule.handle ?? '?'}: cannot decide ${err.message}`;
      if (!this.reasons.includes(reason)) this.reasons.push(reason);
      record(M, 'undetermined');
      return { accept: none, refuse: none, undet: M, ret: none, rest: R.subtract(M) };
    };
    let limited = false;
    let verdict: Obj | null = null;
    let undecided: Undecidable | null = null;
    try {
      for (const e of rule.expr) {
        if (!isObj(e)) continue;
        const k = kindOf(e);
        const v = k === undefined ? undefined : e[k];
        if (k === 'match') {
          let r: MatchResult;
          const sum = this.checksumKey(v as Obj, chain, rule);
          const held = sum === null ? undefined : this.p.checksum?.get(sum);
          try {
            r = held !== undefined ? { kind: 'const', value: held } : this.match(v as Obj, chain);
          } catch (err) {
            // Keep going: a later match may rule the packet out, and then nothing is uncertain.
            if (!(err instanceof Undecidable)) throw err;
            if (sum !== null && !this.checksumRules.includes(sum)) this.checksumRules.push(sum);
            undecided ??= err;
            continue;
          }
          M = r.kind === 'const' ? (r.value ? M : none) : M.intersect(r.set);
          if (M.isEmpty()) break;
        } else if ((k === 'set' || k === 'meter') && isObj(v) && !this.keyApplies(v.key ?? v.elem ?? null)) {
          // A dynamic set keyed by a header this packet lacks (`meter … { ip saddr … }` on IPv6):
          // the key cannot be built and the rule stops there.
          M = none;
          break;
        } else if (k === 'limit' || k === 'quota' || k === 'ct count' || ((k === 'set' || k === 'meter') && isObj(v) && [v.stmt].flat().some((s) => isObj(s) && ('limit' in s || 'ct count' in s || 'quota' in s)))) {
          // Rate limits, quotas, connection counts: they hold for some connections and not others.
          limited = true;
        } else if (k === 'mangle') {
          // A mark set on sources we are not sure of would make later matches on it unsure too.
          if (undecided) throw undecided;
          this.setMark(v as Obj, M);
        } else if (k === 'counter' || k === 'log' || k === 'comment' || k === 'notrack' || k === 'set' || k === 'ct helper' || k === 'ct timeout' || k === 'ct expectation' || k === 'meter' || k === 'dup') {
          /* no effect on the verdict */
        } else if (k === 'xt' && isObj(v) && v.type === 'match') {
          // An iptables-nft match nft cannot show: its options are in iptables-nft-save (iptables-save.ts fills it in).
          if (v.name !== 'comment') undecided ??= new Undecidable(`iptables match -m ${String(v.name)}`);
        } else if (['accept', 'drop', 'reject', 'jump', 'goto', 'return', 'continue', 'vmap'].includes(k!)) {
          verdict = e;
          break;
        } else if (this.natMode && (k === 'dnat' || k === 'redirect' || (k === 'xt' && isObj(v) && v.type === 'target' && (v.name === 'DNAT' || v.name === 'REDIRECT')))) {
          verdict = e;
          break;
        } else throw new Undecidable(`statement ${exprText(e)}`);
      }
      if (undecided && !M.isEmpty()) {
        // Sources the jumped-to chain returns untouched go on whatever the match would say.
        const neutral = verdict ? this.neutralJump(verdict, chain, M, depth) : IntervalSet.empty(fam);
        if (!neutral.equals(M)) {
          M = M.subtract(neutral);
          throw undecided;
        }
      }
    } catch (err) {
      return uncertain(err);
    }
    if (M.isEmpty() || !verdict || undecided) return { accept: none, refuse: none, undet: none, ret: none, rest: R };
    if ('vmap' in verdict) {
      try {
        return this.vmap(verdict.vmap as Obj, chain, M, R, depth, limited, record);
      } catch (err) {
        return uncertain(err);
      }
    }
    return this.apply(verdict, chain, M, R, depth, limited, record);
  }

  /**
   * A verdict map (`tcp dport vmap { 22 : accept, 80 : jump web }`, `ct state vmap {…}`): each
   * element takes the part of M its key matches, in turn; what no key matches goes on to the next
   * rule, like a rule that did not match.
   */
  private vmap(v: Obj, chain: NftChain, M: IntervalSet, R: IntervalSet, depth: number, limited: boolean, record: (M: IntervalSet, outcome: string) => void): Outcome {
    const fam = this.p.family;
    let pairs: Json[];
    if (typeof v.data === 'string' && v.data.startsWith('@')) {
      const map = this.rs.sets.get(chainKey(chain.family, chain.table, v.data.slice(1)));
      if (!map) throw new Undecidable(`unknown map ${v.data}`);
      pairs = map.elem;
    } else if (isObj(v.data) && Array.isArray(v.data.set)) pairs = v.data.set;
    else throw new Undecidable(`vmap ${short(v)}`);
    const out: Outcome = { accept: IntervalSet.empty(fam), refuse: IntervalSet.empty(fam), undet: IntervalSet.empty(fam), ret: IntervalSet.empty(fam), rest: R.subtract(M) };
    // A port-keyed map (our own `tcp dport vmap @tcp_ports`, thousands of entries): look the
    // packet's port up instead of matching every entry.
    const port = this.constantPort(v.key as Json);
    const index = port === null ? null : portIndexOf(pairs);
    if (port !== null && index) {
      if (port === false) return { ...out, rest: R };
      const verdict = index(port);
      if (!verdict) return { ...out, rest: R };
      const o = this.apply(verdict, chain, M, M, depth, limited, record);
      return { accept: o.accept, refuse: o.refuse, undet: o.undet, ret: o.ret, rest: out.rest.union(o.rest) };
    }
    let left = M;
    for (const pair of pairs) {
      if (left.isEmpty()) break;
      if (!Array.isArray(pair) || pair.length !== 2 || !isObj(pair[1])) throw new Undecidable(`vmap element ${short(pair)}`);
      const key = elemValue(pair[0] as Json);
      const r = this.match({ op: '==', left: v.key as Json, right: key }, chain);
      const hit = r.kind === 'const' ? (r.value ? left : IntervalSet.empty(fam)) : left.intersect(r.set);
      if (hit.isEmpty()) continue;
      const o = this.apply(pair[1] as Obj, chain, hit, hit, depth, limited, record);
      out.accept = out.accept.union(o.accept);
      out.refuse = out.refuse.union(o.refuse);
      out.undet = out.undet.union(o.undet);
      out.ret = out.ret.union(o.ret);
      out.rest = out.rest.union(o.rest);
      left = left.subtract(hit);
    }
    out.rest = out.rest.union(left);
    return out;
  }

  /** The port a key reads, when it is this packet's destination port (false: the key's protocol is another). */
  private constantPort(key: Json): number | false | null {
    if (!isObj(key) || this.p.proto === 'icmpv6') return null;
    if (isObj(key.payload)) {
      const { protocol, field } = key.payload as { protocol?: string; field?: string };
      if (protocol !== 'tcp' && protocol !== 'udp' && protocol !== 'th') return null;
      if (protocol !== 'th' && protocol !== this.p.proto) return false;
      return field === (this.p.reply ? 'sport' : 'dport') ? this.p.dport : null;
    }
    if (isObj(key.ct) && key.ct.key === 'proto-dst' && (key.ct.dir === 'original' || key.ct.dir === undefined)) return this.p.origDport ?? this.p.dport;
    return null;
  }

  /** What a verdict does to the sources M that reached it, R being all that entered the rule. */
  private apply(verdict: Obj, chain: NftChain, M: IntervalSet, R: IntervalSet, depth: number, limited: boolean, record: (M: IntervalSet, outcome: string) => void): Outcome {
    const fam = this.p.family;
    const none = IntervalSet.empty(fam);
    const vk = kindOf(verdict)!;
    const vv = verdict[vk]!;
    // A rate limit holds sometimes: a source that it sometimes lets through counts as reaching.
    // Accept and return let it through when the limit holds; a refusing verdict when it does not
    // (the rule is taken as not matching); a jump lets through what the chain accepts, and the
    // rest as if the rule did not match.
    if (limited && vk !== 'accept' && vk !== 'return') {
      record(M, 'limit: sometimes passes');
      if (vk !== 'jump' && vk !== 'goto') return { accept: none, refuse: none, undet: none, ret: none, rest: R };
      const target = this.rs.chains.get(chainKey(chain.family, chain.table, String((vv as Obj).target)));
      if (!target) throw new Error(`rule jumps to a missing chain ${String((vv as Obj).target)}`);
      const sub = this.chain(target, M, depth + 1);
      return { accept: sub.accept, refuse: none, undet: sub.undet, ret: none, rest: R.subtract(sub.accept).subtract(sub.undet) };
    }
    // nft folds the family (or protocol) a reject type needs into the verdict when it lists a
    // rule: "reject with icmpv6 …" only ever sees IPv6 packets, "tcp reset" only TCP.
    if (vk === 'reject' && isObj(vv)) {
      const type = String(vv.type ?? '');
      if ((type === 'icmpv6' && this.p.family === 4) || (type === 'icmp' && this.p.family === 6) || (type === 'tcp reset' && this.p.proto !== 'tcp')) {
        return { accept: none, refuse: none, undet: none, ret: none, rest: R };
      }
    }
    const rest = R.subtract(M);
    switch (vk) {
      case 'dnat':
      case 'redirect':
      case 'xt': {
        record(M, vk === 'redirect' ? 'redirect' : 'dnat');
        // A redirect goes to this host itself: ":PORT" (the port asked when it names none).
        const target = vk === 'redirect' ? `:${isObj(vv) && typeof vv.port === 'number' ? vv.port : this.p.dport}` : vk === 'dnat' && isObj(vv) ? dnatStatementTarget(vv) : null;
        this.dnat.set(target, (this.dnat.get(target) ?? IntervalSet.empty(fam)).union(M));
        return { accept: M, refuse: none, undet: none, ret: none, rest };
      }
      case 'accept':
        // In a nat chain accept only means "no translation here".
        if (this.natMode) return { accept: none, refuse: M, undet: none, ret: none, rest };
        record(M, 'accept');
        return { accept: M, refuse: none, undet: none, ret: none, rest };
      case 'drop':
      case 'reject':
        record(M, vk);
        return { accept: none, refuse: M, undet: none, ret: none, rest };
      case 'continue':
        return { accept: none, refuse: none, undet: none, ret: none, rest: R };
      case 'return':
        record(M, 'return');
        return { accept: none, refuse: none, undet: none, ret: M, rest };
      default: {
        const target = this.rs.chains.get(chainKey(chain.family, chain.table, String((vv as Obj).target)));
        if (!target) throw new Error(`rule jumps to a missing chain ${String((vv as Obj).target)}`);
        record(M, `${vk} ${target.name}`);
        const sub = this.chain(target, M, depth + 1);
        // jump: what returns continues here; goto: what returns leaves this chain too.
        return vk === 'jump'
          ? { accept: sub.accept, refuse: sub.refuse, undet: sub.undet, ret: none, rest: rest.union(sub.ret) }
          : { accept: sub.accept, refuse: sub.refuse, undet: sub.undet, ret: sub.ret, rest };
      }
    }
  }

  private dnat = new Map<string | null, IntervalSet>();

  /**
   * Whether jumping to the verdict's chain returns every source of M untouched: then it does not
   * matter that the rule's match could not be decided (e.g. Docker's `-m addrtype … -j DOCKER` for
   * a port the DOCKER chain never translates).
   */
  private neutralJump(verdict: Obj, chain: NftChain, M: IntervalSet, depth: number): IntervalSet {
    const none = IntervalSet.empty(this.p.family);
    if (!isObj(verdict.jump)) return none;
    const target = this.rs.chains.get(chainKey(chain.family, chain.table, String(verdict.jump.target)));
    if (!target) return none;
    const saved = { trace: this.trace.length, reasons: this.reasons.length, dnat: new Map(this.dnat), tracing: this.tracing, marks: { ...this.marks }, marked: this.marked };
    this.tracing = false;
    this.marked = null;
    const sub = this.chain(target, M, depth + 1);
    const neutral = this.marked ? sub.ret.subtract(this.marked) : sub.ret;
    this.trace.length = saved.trace;
    this.reasons.length = saved.reasons;
    this.dnat = saved.dnat;
    this.tracing = saved.tracing;
    Object.assign(this.marks, saved.marks);
    this.marked = saved.marked;
    return neutral;
  }


  /** In the nat chains a dnat statement is the verdict that matters, and accept only means "not translated". */
  private natMode = false;

  /** Runs the prerouting nat base chains: which sources a DNAT sends where. */
  runNat(sources: IntervalSet = IntervalSet.full(this.p.family)): NatVerdicts {
    this.natMode = true;
    let alive = sources;
    let undetermined = IntervalSet.empty(this.p.family);
    for (const c of baseChains(this.rs, this.p.family, 'prerouting', 'nat', this.p.iif || undefined)) {
      // The first translation wins: sources a chain translated skip the later nat chains.
      const r = this.chain(c, alive, 0);
      undetermined = undetermined.union(r.undet);
      alive = alive.subtract(r.accept).subtract(r.undet);
    }
    return { dnat: this.dnat, undetermined, reasons: this.reasons, trace: this.trace };
  }

  /** Runs every filter base chain of the packet's hook in priority order over `sources`. */
  run(sources: IntervalSet = IntervalSet.full(this.p.family)): Verdicts {
    const fam = this.p.family;
    let alive = sources;
    let refused = IntervalSet.empty(fam);
    let undetermined = IntervalSet.empty(fam);
    for (const c of baseChains(this.rs, fam, this.p.hook ?? 'input', 'filter', this.p.iif || undefined)) {
      const r = this.chain(c, alive, 0);
      const policyRefuses = c.policy === 'drop';
      if (this.tracing && !r.ret.isEmpty()) this.trace.push({ chain: `${c.family} ${c.table} ${c.name}`, handle: null, comment: null, rule: '(end of chain)', outcome: `policy ${c.policy}` });
      refused = refused.union(r.refuse).union(policyRefuses ? r.ret : IntervalSet.empty(fam));
      undetermined = undetermined.union(r.undet);
      alive = r.accept.union(policyRefuses ? IntervalSet.empty(fam) : r.ret);
    }
    return { accepted: alive, refused, undetermined, reasons: this.reasons, trace: this.trace };
  }
}

/** Sources sure to get a packet through, and those the interpreter cannot tell about. */
export interface Passing {
  sure: IntervalSet;
  maybe: IntervalSet;
}

/** What the runs of one path collect besides verdicts. */
export interface PathLog {
  reasons: string[];
  /** Tracing (explain): each packet's steps, labelled. */
  trace: TraceStep[] | null;
  /** A rule asked which of this host's addresses the packet was sent to, and it was not known. */
  askedDaddr: boolean;
  /** Rules whose `th dport` met a neighbour-discovery message's checksum (Interpreter.checksumRules). */
  checksumRules: string[];
}

/** Appends the items `list` does not hold yet, in their order. */
function addMissing(list: string[], items: readonly string[]): void {
  for (const x of items) if (!list.includes(x)) list.push(x);
}

/** Adds reasons not yet given (the same rule is met by many packets). */
export function addReasons(log: PathLog, reasons: readonly string[]): void {
  addMissing(log.reasons, reasons);
}

/** A source passes two checks when it passes both: sure only if sure in both, refused if refused in either. */
export function bothPass(a: Passing, accepted: IntervalSet, undetermined: IntervalSet): Passing {
  return { sure: a.sure.intersect(accepted), maybe: a.maybe.intersect(accepted.union(undetermined)).union(a.sure.intersect(undetermined)) };
}

/**
 * One packet through the filter chains of the given hooks in order (each hook's base chains by
 * priority), for the sources still passing. `marks` carries what rules set on the way.
 */
export function passHooks(rs: Ruleset, p: Packet, hooks: Hook[], from: Passing, marks: PacketMarks, log: PathLog, label: string): Passing {
  let at = from;
  for (const hook of hooks) {
    const region = at.sure.union(at.maybe);
    if (region.isEmpty()) break;
    // No base chain on this hook for this family: every packet passes it.
    if (!baseChains(rs, p.family, hook, 'filter', p.iif || undefined).length) continue;
    const it = new Interpreter(rs, { ...p, hook }, { tracing: log.trace !== null, marks });
    const v = it.run(region);
    log.askedDaddr ||= it.askedDaddr;
    addMissing(log.checksumRules, it.checksumRules);
    addReasons(log, v.reasons);
    if (log.trace) for (const s of v.trace) log.trace.push({ ...s, packet: label });
    at = bothPass(at, v.accepted, v.undetermined);
  }
  return at;
}

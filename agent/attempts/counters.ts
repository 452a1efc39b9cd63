// What portwarden's own rules counted, read back from the kernel's listings: per rule (refused,
// rate-limited, accepted) and per source. Pure parsing; the I/O is in read.ts.
import { normalizeCidr } from 'cidr-tools';
import { nftObjects } from '../exposure/nft-json.js';
import type { Proto } from '../model.js';
import { ATTEMPT_SETS, DEFAULT_RULE } from '../firewall/model.js';
import { IPT_CHAIN } from '../firewall/render-iptables.js';

export type AttemptKind = 'refused' | 'limited';

export interface RuleCounters {
  rule: string;
  refused: number;
  rateLimited: number;
  accepted: number;
  /** iptables: the one port the rule's lines name, when they name exactly one (nft: ports come with the sources). */
  proto?: Proto | null;
  port?: number | null;
}

/** One source as the kernel counted it: per protocol and port (nft), or per rule only (iptables' recent lists). */
export interface SourceCounter {
  kind: AttemptKind;
  rule: string;
  address: string;
  proto: Proto | null;
  port: number | null;
  /** Packets (nft: exact per element; iptables: the hits the recent list keeps, capped by ip_pkt_list_tot). */
  count: number;
  /** nft: seconds since the element was last updated (the set's timeout minus what is left of it). */
  secondsAgo: number | null;
}

export interface CounterReading {
  backend: 'nft' | 'iptables';
  rules: RuleCounters[];
  sources: SourceCounter[];
  /** nft: the attempt sets as attemptSetsKey() keys them, so a later look at the sets alone tells whether anything was refused since. */
  setsKey?: string;
}

type Expr = Record<string, unknown>;

/** The rule each port goes to, from the dispatch maps (tcp_ports, udp_ports): sorted spans. */
interface Span {
  lo: number;
  hi: number;
  rule: string;
}

function ruleOfPort(spans: Span[], port: number): string | null {
  let lo = 0;
  let hi = spans.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const s = spans[mid]!;
    if (port < s.lo) hi = mid - 1;
    else if (port > s.hi) lo = mid + 1;
    else return s.rule;
  }
  return null;
}

const SET_KIND = new Map<string, AttemptKind>([
  [ATTEMPT_SETS.refused[4], 'refused'],
  [ATTEMPT_SETS.refused[6], 'refused'],
  [ATTEMPT_SETS.limited[4], 'limited'],
  [ATTEMPT_SETS.limited[6], 'limited'],
]);

/** Verdict of a rule's expressions: accept, refuse (drop, reject, a jump to a log chain) or none. */
function verdictOf(expr: Expr[]): 'accept' | 'refuse' | null {
  for (const e of expr) {
    if ('accept' in e) return 'accept';
    if ('drop' in e || 'reject' in e) return 'refuse';
    const jump = e.jump as { target?: string } | undefined;
    if (jump?.target?.startsWith('log_')) return 'refuse';
  }
  return null;
}

const counterOf = (expr: Expr[]): number | null => {
  for (const e of expr) if (e.counter && typeof (e.counter as { packets?: unknown }).packets === 'number') return (e.counter as { packets: number }).packets;
  return null;
};

type NftSet = { name: string; size?: number; timeout?: number; elem?: { elem?: { val: { concat: [string, string, number] }; expires?: number; counter?: { packets: number } } }[] };

/**
 * The attempt sets' elements and their counts as one comparable text (without the time left to
 * each element, which moves every second), and whether one is full: a full set no longer takes
 * new sources, so it cannot tell that nothing was refused. Every refusal and rate-limit hit
 * updates an element (render-nft.ts), so an unchanged key means none happened. Pure.
 */
export function attemptSetsKey(sets: NftSet[]): { key: string; full: boolean } {
  const parts: string[] = [];
  let full = false;
  for (const s of sets) {
    if (!SET_KIND.has(s.name)) continue;
    const elems = s.elem ?? [];
    if (s.size !== undefined && elems.length >= s.size) full = true;
    for (const e of elems) parts.push(`${s.name} ${JSON.stringify(e.elem?.val ?? null)} ${e.elem?.counter?.packets ?? 0}`);
  }
  return { key: parts.sort().join('\n'), full };
}

/** `nft -j list set inet portwarden NAME` outputs → attemptSetsKey of the sets in them. */
export function attemptSetsKeyOf(listings: string[]): { key: string; full: boolean } {
  return attemptSetsKey(listings.flatMap((json) => nftObjects(json).flatMap((o) => (o.set ? [o.set as unknown as NftSet] : []))));
}

/** `nft -j list table inet portwarden` → the counters. Rules are known by their comments (the rule names). */
export function parseNftCounters(json: string): CounterReading {
  const objects = nftObjects(json);
  const chainRule = new Map<string, string>();
  const rules = new Map<string, RuleCounters>();
  const counters = (rule: string) => {
    let r = rules.get(rule);
    if (!r) rules.set(rule, (r = { rule, refused: 0, rateLimited: 0, accepted: 0 }));
    return r;
  };
  for (const o of objects) {
    const r = o.rule as { chain: string; comment?: string; expr: Expr[] } | undefined;
    if (!r?.comment) continue;
    const packets = counterOf(r.expr);
    const verdict = verdictOf(r.expr);
    if (r.chain.startsWith('rule_')) {
      const rate = r.comment.endsWith(': rate');
      const name = rate ? r.comment.slice(0, -': rate'.length) : r.comment;
      chainRule.set(r.chain, name);
      if (packets === null) continue;
      if (rate) counters(name).rateLimited += packets;
      else if (verdict === 'accept') counters(name).accepted += packets;
      else if (verdict === 'refuse') counters(name).refused += packets;
    } else if (r.chain === 'input' && packets !== null && r.comment.startsWith(DEFAULT_RULE) && r.comment !== 'default accept') {
      // "default" (the tcp/udp rejects) and "default drop" (what the chain's policy then drops).
      counters(DEFAULT_RULE).refused += packets;
    }
  }
  const spans: Record<string, Span[]> = { tcp: [], udp: [] };
  for (const o of objects) {
    const m = o.map as { name: string; elem?: [unknown, { jump?: { target: string } }][] } | undefined;
    if (!m || (m.name !== 'tcp_ports' && m.name !== 'udp_ports')) continue;
    const list = spans[m.name === 'tcp_ports' ? 'tcp' : 'udp']!;
    for (const [key, verdict] of m.elem ?? []) {
      const rule = chainRule.get(verdict.jump?.target ?? '') ?? verdict.jump?.target ?? '';
      if (typeof key === 'number') list.push({ lo: key, hi: key, rule });
      else {
        const range = (key as { range?: [number, number] }).range;
        if (range) list.push({ lo: range[0], hi: range[1], rule });
      }
    }
    list.sort((a, b) => a.lo - b.lo);
  }
  const sources: SourceCounter[] = [];
  const sets: NftSet[] = [];
  for (const o of objects) {
    const s = o.set as NftSet | undefined;
    const kind = s && SET_KIND.get(s.name);
    if (!s || !kind) continue;
    sets.push(s);
    for (const e of s.elem ?? []) {
      const el = e.elem;
      const concat = el?.val?.concat;
      if (!el || !concat || concat.length !== 3) continue;
      const [address, proto, port] = concat;
      if (proto !== 'tcp' && proto !== 'udp') continue;
      sources.push({
        kind,
        rule: ruleOfPort(spans[proto]!, port) ?? DEFAULT_RULE,
        address,
        proto,
        port,
        count: el.counter?.packets ?? 0,
        secondsAgo: s.timeout !== undefined && el.expires !== undefined ? Math.max(0, s.timeout - el.expires) : null,
      });
    }
  }
  return { backend: 'nft', rules: [...rules.values()], sources, setsKey: attemptSetsKey(sets).key };
}

/** The value of an iptables-save option (`--comment "a b"` or `--comment ab`). */
function option(line: string, name: string): string | null {
  const m = new RegExp(`(?:^| )${name} ("(?:[^"\\\\]|\\\\.)*"|\\S+)`).exec(line);
  if (!m) return null;
  return m[1]!.startsWith('"') ? (JSON.parse(m[1]!) as string) : m[1]!;
}

/**
 * `iptables-save -c -t filter` (and ip6tables') → per-rule counters of PORTWARDEN-INPUT, by the
 * rule comments; and which recent list belongs to which rule (`--name pw-r3`).
 */
export function parseIptablesCounters(saves: string[]): { rules: RuleCounters[]; lists: Map<string, { rule: string; kind: AttemptKind }> } {
  const rules = new Map<string, RuleCounters & { ports: Set<string> }>();
  const lists = new Map<string, { rule: string; kind: AttemptKind }>();
  for (const save of saves) {
    for (const line of save.split('\n')) {
      const m = /^\[(\d+):\d+\] -A (\S+) (.*)$/.exec(line);
      if (!m || m[2] !== IPT_CHAIN) continue;
      const packets = Number(m[1]);
      const body = m[3]!;
      const comment = option(body, '--comment');
      const target = option(body, '-j');
      if (!comment || !target) continue;
      const rate = comment.endsWith(': rate');
      const isDefault = comment === DEFAULT_RULE || comment === 'default drop';
      const name = isDefault ? DEFAULT_RULE : rate ? comment.slice(0, -': rate'.length) : comment;
      const verdict = target === 'ACCEPT' ? 'accept' : target === 'DROP' || target === 'REJECT' || target.startsWith('PORTWARDEN-LOG-') ? 'refuse' : null;
      if (!verdict) continue;
      const list = option(body, '--name');
      if (list && /-m recent /.test(body)) lists.set(list, { rule: name, kind: rate ? 'limited' : 'refused' });
      if (!isDefault && !/ --dport | --dports /.test(body)) continue; // the ICMP and state lines
      let r = rules.get(name);
      if (!r) rules.set(name, (r = { rule: name, refused: 0, rateLimited: 0, accepted: 0, proto: null, port: null, ports: new Set() }));
      if (rate) r.rateLimited += packets;
      else if (verdict === 'accept') r.accepted += packets;
      else r.refused += packets;
      const proto = option(body, '-p');
      const port = option(body, '--dport') ?? option(body, '--dports');
      if (!isDefault && (proto === 'tcp' || proto === 'udp') && port) r.ports.add(`${proto}/${port}`);
    }
  }
  return {
    rules: [...rules.values()].map(({ ports, ...r }) => {
      const only = ports.size === 1 ? /^(tcp|udp)\/(\d+)$/.exec([...ports][0]!) : null;
      return only ? { ...r, proto: only[1] as Proto, port: Number(only[2]) } : r;
    }),
    lists,
  };
}

/**
 * /proc/net/xt_recent/NAME → its sources: `src=ADDR ttl: T last_seen: J oldest_pkt: N J1, J2, …`.
 * The hits are the timestamps it still holds (at most ip_pkt_list_tot, 20 by default).
 */
export function parseRecentList(text: string, rule: string, kind: AttemptKind): SourceCounter[] {
  const out: SourceCounter[] = [];
  for (const line of text.split('\n')) {
    const m = /^src=(\S+) ttl: \d+ last_seen: \d+ oldest_pkt: \d+ (.*)$/.exec(line);
    if (!m) continue;
    const hits = m[2]!.split(',').filter((s) => s.trim() !== '').length;
    // IPv6 sources are listed in full (0000:…:0001): the usual short form, as nft and the policy write them.
    out.push({ kind, rule, address: normalizeCidr(m[1]!), proto: null, port: null, count: hits, secondsAgo: null });
  }
  return out;
}

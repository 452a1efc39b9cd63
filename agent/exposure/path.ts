// The one packet path: a connection from a region of sources to one port of this host, arriving
// on one interface, followed through every hook it passes — its first packet, the ones after it,
// and the answers — in the kernel's order. reach() runs it for whole regions, explain for one
// address with a trace: one implementation, so the two cannot disagree. Pure.
//
//   client → host:  ingress (netdev, inet) → prerouting (raw, mangle …) → prerouting nat (first
//                   packet only: a DNAT picks the forward path) → input | forward → postrouting
//   host → client:  output → postrouting           (the container's answers: ingress → prerouting
//                                                   → forward → postrouting)
// IPv6 additionally needs neighbour discovery to get in (neighbour.ts).
import { TCP_FLAGS } from './fields.js';
import { IntervalSet, prefixSet, type Fam } from './intervals.js';
import { addReasons, bothPass, freshMarks, Interpreter, passHooks, type MarkPart, type Packet, type PathLog, type Passing, type TraceStep } from './interpret.js';
import { neighbourDiscovery, withNd } from './neighbour.js';
import type { Hook, Ruleset } from './nft-json.js';
import type { InterfaceAddress, Route } from './host.js';

export interface PathQuery {
  family: Fam;
  proto: 'tcp' | 'udp';
  port: number;
  /** The interface the client's packets come in on. */
  iif: string;
  /** The host address the client asked for; undefined: not known (daddr matches stay undetermined). */
  daddr?: string;
  /** Is something on this host listening for connections no DNAT takes? */
  listening: boolean;
}

/** What the path needs of the host besides the ruleset. */
export interface PathHost {
  ruleset: Ruleset;
  addresses?: InterfaceAddress[];
  /** Absent: not read (a DNAT's target is then taken to be reachable). */
  routes?: Route[];
  forwarding?: { 4: boolean; 6: boolean };
}

/** The item whose prefix holds `address` with the longest match, or null. */
function longestMatch<T>(items: readonly T[], cidrOf: (t: T) => string, address: string): T | null {
  const fam = address.includes(':') ? 6 : 4;
  let best: { item: T; len: number } | null = null;
  for (const item of items) {
    const cidr = cidrOf(item);
    if (cidr.includes(':') !== (fam === 6)) continue;
    const len = Number(cidr.split('/')[1] ?? (fam === 4 ? 32 : 128));
    if ((!best || len > best.len) && prefixSet(fam, cidr).has(address)) best = { item, len };
  }
  return best?.item ?? null;
}

/** The interface the route to `address` leaves through (longest match), or null. */
export const routeVia = (routes: readonly Route[], address: string): string | null => longestMatch(routes, (r) => r.dst, address)?.iface ?? null;

export interface PathResult extends Passing {
  /** Sources the prerouting nat chains send elsewhere, by target ("addr:port"; null: not said). */
  dnat: Map<string | null, IntervalSet>;
  reasons: string[];
  /** Only when traced (explain): every rule that matched, per packet. */
  trace: TraceStep[];
  askedDaddr: boolean;
  /** Where a DNAT sent the connection, for the trace's heading. */
  oif: Map<string, string | null>;
  /**
   * Redirects (and DNATs to this host's own addresses): the local port they send the connection
   * to → the sources that get there. Not in sure/maybe, which are about the port asked.
   */
  local: Map<number, Passing>;
}

const { syn: SYN, ack: ACK, psh: PSH } = TCP_FLAGS as Record<string, number>;

/** The packets of a connection after its first, in order: who sends them and with which flags. */
function laterPackets(proto: 'tcp' | 'udp'): { reply: boolean; flags?: number; label: string }[] {
  return proto === 'tcp'
    ? [
        { reply: true, flags: SYN! | ACK!, label: 'SYN-ACK out' },
        { reply: false, flags: ACK!, label: 'ACK in' },
        { reply: false, flags: ACK! | PSH!, label: 'data in' },
        { reply: true, flags: ACK! | PSH!, label: 'data out' },
      ]
    : [
        { reply: true, label: 'answer out' },
        { reply: false, label: 'next datagram in' },
      ];
}

/** "172.17.0.2:80", "[fd00::2]:80", "172.17.0.2" or ":9090" (a redirect: address "") → address and port (absent: unchanged). */
export function splitTarget(to: string): { addr: string; port: number | null } {
  const m = /^\[(.+)\]:(\d+)$/.exec(to) ?? /^([^:]*):(\d+)$/.exec(to);
  return m ? { addr: m[1]!, port: Number(m[2]) } : { addr: to, port: null };
}

/** The interface whose prefix holds `address` (longest match), or null. */
export const interfaceTowards = (address: string, addrs: readonly InterfaceAddress[]): string | null => longestMatch(addrs, (a) => a.cidr, address)?.iface ?? null;

/**
 * Follows a connection from `region` through the live ruleset. A source reaches the service when
 * every packet of the connection gets through (sure), or may (maybe) where a rule cannot be decided.
 */
export function walkPath(host: PathHost, q: PathQuery, region: IntervalSet, tracing = false): PathResult {
  const rs = host.ruleset;
  const log: PathLog = { reasons: [], trace: tracing ? [] : null, askedDaddr: false, checksumRules: [] };
  const localAddrs = host.addresses?.map((a) => a.cidr.split('/')[0]!);
  const base: Packet = { family: q.family, proto: q.proto, dport: q.port, iif: q.iif, ...(q.daddr !== undefined ? { daddr: q.daddr } : {}), ...(localAddrs ? { localAddrs } : {}) };
  const dnat = new Map<string | null, IntervalSet>();
  const local = new Map<number, Passing>();
  const oifs = new Map<string, string | null>();
  const inbound: Hook[] = ['ingress', 'prerouting'];

  // The first packet, up to the routing decision.
  const synMarks = freshMarks(q.family);
  const syn: Packet = { ...base, ctState: 'new', ...(q.proto === 'tcp' ? { tcpFlags: SYN } : {}) };
  const first = q.proto === 'tcp' ? 'SYN in' : 'first datagram in';
  const pre = passHooks(rs, syn, inbound, { sure: region, maybe: IntervalSet.empty(q.family) }, synMarks, log, first);
  const natIt = new Interpreter(rs, { ...syn, hook: 'prerouting' }, { tracing, marks: synMarks });
  const nat = natIt.runNat(pre.sure.union(pre.maybe));
  log.askedDaddr ||= natIt.askedDaddr;
  addReasons(log, nat.reasons);
  if (log.trace) for (const s of nat.trace) log.trace.push({ ...s, packet: first });

  let sure = IntervalSet.empty(q.family);
  let maybe = pre.maybe.union(nat.undetermined.intersect(pre.sure));
  let taken = nat.undetermined;
  // Each DNAT target: the forward path to the container, and its answers back.
  for (const [to, caught] of nat.dnat) {
    if (caught.isEmpty()) continue;
    dnat.set(to, caught);
    taken = taken.union(caught);
    if (to === null) {
      maybe = maybe.union(caught);
      addReasons(log, [`a DNAT on port ${q.port} does not say where it sends connections (an iptables-nft target): the forward path cannot be followed`]);
      continue;
    }
    const { addr, port } = splitTarget(to);
    // A redirect, or a DNAT to one of this host's own addresses: the input path, to that port.
    if (addr === '' || (host.addresses ?? []).some((a) => a.cidr.split('/')[0] === addr)) {
      const localPort = port ?? q.port;
      const toHost: Packet = { ...base, dport: localPort, origDport: q.port, ...(addr ? { daddr: addr } : {}), ...(q.daddr !== undefined ? { origDaddr: q.daddr } : {}) };
      let at = bothPass(pre, caught, IntervalSet.empty(q.family));
      at = passHooks(rs, { ...syn, ...toHost }, ['input'], at, synMarks, log, first);
      at = later(rs, { ...toHost, ctState: 'established' }, at, synMarks.ct, log, false);
      const had = local.get(localPort);
      local.set(localPort, had ? { sure: had.sure.union(at.sure), maybe: had.maybe.union(at.maybe) } : at);
      continue;
    }
    const oif = interfaceTowards(addr, host.addresses ?? []) ?? routeVia(host.routes ?? [], addr);
    oifs.set(to, oif);
    // The kernel forwards the connection only when forwarding is on and a route leads there.
    const stop = host.forwarding && !host.forwarding[q.family] ? `forwarding of IPv${q.family} is off (net.ipv${q.family}.conf.all.forwarding = 0)` : !oif && host.routes?.length ? `no route to ${addr}` : null;
    if (stop) {
      addReasons(log, [`a DNAT on port ${q.port} sends connections to ${to}, but ${stop}: they go nowhere`]);
      if (log.trace) log.trace.push({ packet: first, chain: '(routing)', handle: null, comment: null, rule: `to ${addr}`, outcome: 'drop' });
      continue;
    }
    const fwd: Packet = { ...base, dport: port ?? q.port, daddr: addr, oif, origDport: q.port, ...(q.daddr !== undefined ? { origDaddr: q.daddr } : {}) };
    let at = bothPass(pre, caught, IntervalSet.empty(q.family));
    at = passHooks(rs, { ...syn, ...fwd }, ['forward', 'postrouting'], at, synMarks, log, first);
    at = later(rs, { ...fwd, ctState: 'established' }, at, synMarks.ct, log, true);
    if (q.family === 6 && !at.sure.union(at.maybe).isEmpty()) {
      // The host must also hear the container's neighbour advertisements on its side.
      const nd = neighbourDiscovery(host, oif ?? '', prefixSet(6, addr));
      addReasons(log, nd.reasons);
      if (nd.ok.isEmpty()) {
        if (log.trace && !at.sure.isEmpty()) log.reasons.push(`a neighbour advertisement from ${addr} on ${oif ?? '?'} is ${nd.unsure.isEmpty() ? 'refused: the container never answers' : 'undetermined'}`);
        at = { sure: IntervalSet.empty(6), maybe: nd.unsure.isEmpty() ? IntervalSet.empty(6) : at.sure.union(at.maybe) };
      }
    }
    sure = sure.union(at.sure);
    maybe = maybe.union(at.maybe);
  }
  // Connections no DNAT took go to this host's own port: only a listener there answers.
  if (q.listening) {
    let at = bothPass(pre, pre.sure.union(pre.maybe).subtract(taken), IntervalSet.empty(q.family));
    at = passHooks(rs, syn, ['input'], at, synMarks, log, first);
    at = later(rs, { ...base, ctState: 'established' }, at, synMarks.ct, log, false);
    sure = sure.union(at.sure);
    maybe = maybe.union(at.maybe);
  }
  if (q.family === 6) {
    const nd = neighbourDiscovery(host, q.iif);
    for (const [port, at] of local) {
      const w = withNd(at.sure, at.maybe, nd);
      local.set(port, { sure: w.accepted, maybe: w.unsure });
    }
    addReasons(log, nd.reasons);
    const w = withNd(sure, maybe, nd);
    if (log.trace && !sure.isEmpty() && nd.ok.intersect(sure).isEmpty()) {
      const refused = nd.unsure.intersect(sure).isEmpty();
      const what = `a neighbour solicitation from ${who(region)} on ${q.iif}`;
      log.trace.push({ packet: 'neighbour solicitation in', chain: '(neighbour discovery)', handle: null, comment: null, rule: `icmpv6 type nd-neighbor-solicit on ${q.iif}`, outcome: refused ? 'drop' : 'undetermined' });
      log.reasons.push(refused ? `${what} is refused: no IPv6 packet gets through without it` : `cannot tell whether ${what} gets in`);
    }
    sure = w.accepted;
    maybe = w.unsure;
  }
  return { sure, maybe: maybe.subtract(sure), dnat, reasons: log.reasons, trace: log.trace ?? [], askedDaddr: log.askedDaddr, oif: oifs, local };
}

/** One address as people write it, or a count of prefixes (explain walks one address). */
function who(region: IntervalSet): string {
  const c = region.toCidrs();
  return c.length === 1 ? c[0]!.replace(/\/(32|128)$/, '') : `${c.length} prefixes`;
}

/** The packets after the first, each through the hooks it passes; the connection's mark goes along. */
function later(rs: Ruleset, p: Packet, from: Passing, ct: MarkPart[], log: PathLog, forward: boolean): Passing {
  let at = from;
  let connMark = ct;
  for (const pkt of laterPackets(p.proto as 'tcp' | 'udp')) {
    if (at.sure.union(at.maybe).isEmpty()) break;
    const marks = freshMarks(p.family, connMark);
    const q: Packet = { ...p, reply: pkt.reply, ...(pkt.flags !== undefined ? { tcpFlags: pkt.flags } : {}) };
    const hooks: Hook[] = pkt.reply ? (forward ? ['ingress', 'prerouting', 'forward', 'postrouting'] : ['output', 'postrouting']) : ['ingress', 'prerouting', forward ? 'forward' : 'input', ...(forward ? (['postrouting'] as Hook[]) : [])];
    // An answer comes in from the container's side and leaves towards the client.
    const turned: Packet = pkt.reply ? { ...q, iif: forward ? (p.oif ?? '') : '', oif: p.iif } : q;
    at = passHooks(rs, turned, hooks, at, marks, log, pkt.label);
    connMark = marks.ct;
  }
  return at;
}

/**
 * explain's verdict for one source's walk: accept when it gets through (here or to the port a
 * redirect sends it to), undetermined when a rule could not be decided, else how it was refused.
 */
export function verdictOf(path: PathResult): 'accept' | 'undetermined' | 'reject' | 'drop' {
  const redirected = [...path.local.values()];
  if (!path.sure.isEmpty() || redirected.some((at) => !at.sure.isEmpty())) return 'accept';
  if (!path.maybe.isEmpty() || redirected.some((at) => !at.maybe.isEmpty())) return 'undetermined';
  const refusedBy = path.trace.filter((s) => s.outcome === 'drop' || s.outcome === 'reject' || s.outcome.startsWith('policy drop')).at(-1);
  return refusedBy?.outcome === 'reject' ? 'reject' : 'drop';
}

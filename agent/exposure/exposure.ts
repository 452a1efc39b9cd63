// Who can actually reach each listener, and each published container port: the bind scope joined
// with the live rules — the input hook for connections to this host, and, for sources a prerouting
// DNAT sends to a container, the forward hook towards it. Pure.
import type { Listener } from '../model.js';
import { familyOf, IntervalSet, prefixSet, type Fam } from './intervals.js';
import { Interpreter, type Packet } from './interpret.js';
import { neighbourDiscovery, withNd } from './neighbour.js';
import type { Ruleset } from './nft-json.js';
import type { Published } from './published.js';

export interface Exposure {
  verdict: 'localhost' | 'none' | 'restricted' | 'any' | 'undetermined';
  /** Accepted source prefixes, merged. */
  sources: string[];
  reason: string;
  /** Present when interfaces disagree: interface → accepted prefixes. */
  perInterface?: Record<string, string[]>;
}

/** An address of this host's interface, with its prefix ("192.0.2.1/24"). */
export interface InterfaceAddress {
  iface: string;
  cidr: string;
}

/** What readFirewall saw. Read once and never changed afterwards: exposure caches results by it. */
export interface FirewallView {
  ruleset: Ruleset | null;
  /** Why the ruleset could not be read (not root, no nft): every exposure is then undetermined. */
  error: string | null;
  /** Interface names except lo. */
  interfaces: string[];
  /** Their addresses: which interface leads to a DNAT's destination. */
  addresses?: InterfaceAddress[];
  /** Rules (-A lines) that iptables-legacy holds; they are in `ruleset` as tables "… (iptables-legacy)". */
  legacyRules: number;
  /** Host ports that DNAT sends to containers (findPublished). */
  published: Published[];
}

/** What a connection is made to: a listener of this host, or a published port nothing here listens on. */
export interface Target {
  proto: 'tcp' | 'udp';
  port: number;
  families: Fam[];
  /** A listener bound to one interface (SO_BINDTODEVICE) only hears that one. */
  interface?: string;
  /** Is there a listener on this host for the connections no DNAT takes? */
  listening: boolean;
}

export function listenerFamilies(l: Listener): Fam[] {
  return l.family === 4 ? [4] : l.dualStack ? [6, 4] : [6];
}

export const listenerTarget = (l: Listener): Target => ({ proto: l.proto, port: l.port, families: listenerFamilies(l), ...(l.interface ? { interface: l.interface } : {}), listening: true });
export const publishedTarget = (p: Published, families: Fam[] = [4, 6]): Target => ({ proto: p.proto, port: p.port, families, listening: false });

export interface Reach {
  accepted: Map<Fam, IntervalSet>;
  undetermined: Map<Fam, IntervalSet>;
  reasons: string[];
  perInterface: Map<string, Map<Fam, IntervalSet>>;
  /** Sources a DNAT sends elsewhere, per family, and where to ("172.17.0.2:80"). */
  dnat: Map<Fam, IntervalSet>;
  dnatTo: string[];
}

/** The interface whose prefix holds `address` (longest match), or null. */
export function interfaceTowards(address: string, addrs: readonly InterfaceAddress[]): string | null {
  const fam = familyOf(address);
  let best: { iface: string; len: number } | null = null;
  for (const a of addrs) {
    if (familyOf(a.cidr.split('/')[0]!) !== fam) continue;
    const len = Number(a.cidr.split('/')[1] ?? (fam === 4 ? 32 : 128));
    if (prefixSet(fam!, a.cidr).has(address) && (!best || len > best.len)) best = { iface: a.iface, len };
  }
  return best?.iface ?? null;
}

/** "172.17.0.2:80", "[fd00::2]:80" or "172.17.0.2" → address and port (absent: unchanged). */
export function splitTarget(to: string): { addr: string; port: number | null } {
  const m = /^\[(.+)\]:(\d+)$/.exec(to) ?? /^([^:]+):(\d+)$/.exec(to);
  return m ? { addr: m[1]!, port: Number(m[2]) } : { addr: to, port: null };
}

/** Reach per firewall view and target: scan/report and check ask for the same ones. */
const reachCache = new WeakMap<FirewallView, Map<string, Reach>>();

export function reach(t: Target, fw: FirewallView): Reach | null {
  if (!fw.ruleset) return null;
  const key = `${t.proto}/${t.port}/${t.families.join()}/${t.interface ?? ''}/${t.listening}`;
  let cache = reachCache.get(fw);
  if (!cache) reachCache.set(fw, (cache = new Map()));
  const hit = cache.get(key);
  if (hit) return hit;
  const r = computeReach(t, fw, fw.ruleset);
  cache.set(key, r);
  return r;
}

function computeReach(t: Target, fw: FirewallView, rs: Ruleset): Reach {
  const accepted = new Map<Fam, IntervalSet>();
  const undetermined = new Map<Fam, IntervalSet>();
  const perInterface = new Map<string, Map<Fam, IntervalSet>>();
  const dnat = new Map<Fam, IntervalSet>();
  const dnatTo: string[] = [];
  const reasons: string[] = [];
  const note = (rs: string[]) => rs.forEach((r) => reasons.includes(r) || reasons.push(r));
  const ifaces = t.interface ? [t.interface] : fw.interfaces.length ? fw.interfaces : ['eth0'];
  const base = { proto: t.proto };
  for (const fam of t.families) {
    let acc = IntervalSet.empty(fam);
    let und = IntervalSet.empty(fam);
    let natted = IntervalSet.empty(fam);
    for (const iif of ifaces) {
      // A source reaches the service when its first packet and the ones after it both get in.
      // The answers must get out too: the container's cross the same forward chains, this
      // host's own go through the output hook.
      const both = (p: Packet, region: IntervalSet) => {
        const runs: Packet[] = [{ ...p, ctState: 'new' }, { ...p, ctState: 'established' }];
        if (p.hook === 'forward') runs.push({ ...p, ctState: 'established', reply: true, iif: p.oif ?? '', oif: p.iif });
        else runs.push({ ...p, hook: 'output', ctState: 'established', reply: true, iif: '', oif: p.iif });
        const vs = runs.map((q) => new Interpreter(rs, q).run(region));
        note(vs.flatMap((v) => v.reasons));
        return { accepted: vs.reduce((a, v) => a.intersect(v.accepted), region), undetermined: vs.reduce((u, v) => u.union(v.undetermined), IntervalSet.empty(p.family)) };
      };
      // Before routing: filter chains on the prerouting hook (raw blocklists, reverse-path
      // filters) refuse for both paths; then the nat chains decide which path.
      const pre = [new Interpreter(rs, { ...base, family: fam, dport: t.port, iif, hook: 'prerouting', ctState: 'new' }).run(), new Interpreter(rs, { ...base, family: fam, dport: t.port, iif, hook: 'prerouting', ctState: 'established' }).run()];
      note(pre.flatMap((v) => v.reasons));
      const passed = pre[0]!.accepted.intersect(pre[1]!.accepted);
      const nat = new Interpreter(rs, { ...base, family: fam, dport: t.port, iif, hook: 'prerouting' }).runNat(passed);
      note(nat.reasons);
      let here = IntervalSet.empty(fam);
      let unsure = nat.undetermined.union(pre[0]!.undetermined).union(pre[1]!.undetermined);
      let nattedHere = IntervalSet.empty(fam);
      for (const [to, region] of nat.dnat) {
        nattedHere = nattedHere.union(region);
        natted = natted.union(region);
        if (to === null) {
          unsure = unsure.union(region);
          note([`a DNAT on port ${t.port} does not say where it sends connections (an iptables-nft target): the forward path cannot be followed`]);
          continue;
        }
        if (!dnatTo.includes(to)) dnatTo.push(to);
        const { addr, port } = splitTarget(to);
        const oif = interfaceTowards(addr, fw.addresses ?? []);
        let fwd = both({ ...base, family: fam, dport: port ?? t.port, iif, hook: 'forward', daddr: addr, oif, origDport: t.port }, region);
        if (fam === 6) {
          // The host must also hear the container's neighbour advertisements on its side.
          const nd = neighbourDiscovery(fw, oif ?? '', prefixSet(6, addr));
          note(nd.reasons);
          if (nd.ok.isEmpty()) fwd = { accepted: IntervalSet.empty(6), undetermined: nd.unsure.isEmpty() ? IntervalSet.empty(6) : fwd.accepted.union(fwd.undetermined) };
        }
        here = here.union(fwd.accepted);
        unsure = unsure.union(fwd.undetermined);
      }
      // Connections no DNAT took go to this host's own port: only a listener there answers.
      if (t.listening) {
        const direct = passed.subtract(nattedHere).subtract(nat.undetermined);
        const input = both({ ...base, family: fam, dport: t.port, iif }, direct);
        here = here.union(input.accepted);
        unsure = unsure.union(input.undetermined);
      }
      if (fam === 6) {
        const nd = neighbourDiscovery(fw, iif);
        note(nd.reasons);
        ({ accepted: here, unsure } = withNd(here, unsure, nd));
      }
      acc = acc.union(here);
      und = und.union(unsure);
      const m = perInterface.get(iif) ?? new Map<Fam, IntervalSet>();
      m.set(fam, here);
      perInterface.set(iif, m);
    }
    // A published port without a listener exists only in the families a DNAT covers.
    if (!t.listening && natted.isEmpty() && und.isEmpty()) {
      for (const m of perInterface.values()) m.delete(fam);
      continue;
    }
    accepted.set(fam, acc);
    undetermined.set(fam, und);
    dnat.set(fam, natted);
  }
  return { accepted, undetermined, reasons, perInterface, dnat, dnatTo };
}

const cidrs = (m: Map<Fam, IntervalSet>): string[] => ([] as string[]).concat(...[...m.values()].map((s) => s.toCidrs()));

function describe(r: Reach): Exposure {
  const sources = cidrs(r.accepted);
  const per = [...r.perInterface.entries()];
  const differ = per.length > 1 && per.some(([, m]) => cidrs(m).join() !== cidrs(per[0]![1]).join());
  const perInterface = differ ? Object.fromEntries(per.map(([i, m]) => [i, cidrs(m)])) : undefined;
  const natted = [...r.dnat.values()].some((s) => !s.isEmpty());
  const path = natted ? `the prerouting DNAT${r.dnatTo.length ? ` (→ ${r.dnatTo.join(', ')})` : ''} and the forward rules` : 'the input rules';
  if ([...r.undetermined.values()].some((s) => !s.isEmpty())) {
    return { verdict: 'undetermined', sources, reason: r.reasons.join('; '), ...(perInterface ? { perInterface } : {}) };
  }
  const all = [...r.accepted.values()];
  const verdict = all.every((s) => s.isEmpty()) ? 'none' : all.every((s) => s.isFull()) ? 'any' : 'restricted';
  const reason = verdict === 'none' ? `${path} refuse every new connection` : verdict === 'any' ? `${path} accept new connections from everywhere` : `${path} accept some sources`;
  return { verdict, sources, reason, ...(perInterface ? { perInterface } : {}) };
}

export function exposureOf(l: Listener, fw: FirewallView): Exposure {
  if (l.scope === 'loopback') return { verdict: 'localhost', sources: [], reason: `bound to ${l.address}: reachable from this host only` };
  return targetExposure(listenerTarget(l), fw);
}

export function targetExposure(t: Target, fw: FirewallView): Exposure {
  if (!fw.ruleset) return { verdict: 'undetermined', sources: [], reason: `cannot read the firewall: ${fw.error ?? 'unknown error'}` };
  return describe(reach(t, fw)!);
}

/**
 * Published ports, each with the families no listener of this host covers (with a docker-proxy
 * listening on both, its listener row stands for the port).
 */
export function unheardPublished(fw: FirewallView, listeners: readonly Listener[]): { published: Published; families: Fam[] }[] {
  const seen = new Set<string>();
  const out: { published: Published; families: Fam[] }[] = [];
  for (const p of fw.published) {
    const key = `${p.proto}/${p.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const heard = new Set(listeners.filter((l) => l.proto === p.proto && l.port === p.port && l.scope !== 'loopback').flatMap(listenerFamilies));
    const families = ([4, 6] as Fam[]).filter((f) => !heard.has(f));
    if (families.length) out.push({ published: p, families });
  }
  return out;
}

/** Short text for the table's EXPOSURE column. */
export function exposureCell(e: Exposure): string {
  if (e.verdict === 'restricted') return e.sources.length > 2 ? `${e.sources.slice(0, 2).join(',')},+${e.sources.length - 2}` : e.sources.join(',');
  return e.verdict === 'undetermined' ? '?' : e.verdict;
}

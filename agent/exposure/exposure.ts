// Who can actually reach each listener, and each published container port: the bind scope joined
// with the live rules — the input hook for connections to this host, and, for sources a prerouting
// DNAT sends to a container, the forward hook towards it. Pure.
import type { Listener } from '../model.js';
import { familyOf, IntervalSet, prefixSet, type Fam } from './intervals.js';
import type { Ruleset } from './nft-json.js';
import type { InterfaceAddress, Route } from './host.js';
import { routeVia, splitTarget, walkPath, type PathQuery } from './path.js';
import { portClass } from './port-classes.js';
import type { Published } from './published.js';

export interface Exposure {
  verdict: 'localhost' | 'none' | 'restricted' | 'any' | 'undetermined';
  /** Accepted source prefixes, merged. */
  sources: string[];
  reason: string;
  /** Present when interfaces disagree: interface → accepted prefixes. */
  perInterface?: Record<string, string[]>;
  /** Present when the answer depends on which of this host's addresses is asked: address → prefixes. */
  perAddress?: Record<string, string[]>;
  /** Present when other ports are redirected to this listener: the port asked → prefixes. */
  perPort?: Record<string, string[]>;
}

export type { InterfaceAddress, Route } from './host.js';

/** What readFirewall saw. Read once and never changed afterwards: exposure caches results by it. */
export interface FirewallView {
  ruleset: Ruleset | null;
  /** Why the ruleset could not be read (not root, no nft): every exposure is then undetermined. */
  error: string | null;
  /** Interface names except lo. */
  interfaces: string[];
  /** Their addresses: which interface leads to a DNAT's destination. */
  addresses?: InterfaceAddress[];
  /** The routes (main table), to know which sources an interface can serve; absent: not read. */
  routes?: Route[];
  /** Whether the kernel forwards each family (net.ipv{4,6}.conf.all.forwarding); absent: not read. */
  forwarding?: { 4: boolean; 6: boolean };
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
  /** A listener bound to one address: the packets' destination is that address. */
  address?: string;
  /** Is there a listener on this host for the connections no DNAT takes? */
  listening: boolean;
}

export function listenerFamilies(l: Listener): Fam[] {
  return l.family === 4 ? [4] : l.dualStack ? [6, 4] : [6];
}

export const listenerTarget = (l: Listener): Target => ({
  proto: l.proto,
  port: l.port,
  families: listenerFamilies(l),
  ...(l.interface ? { interface: l.interface } : {}),
  ...(l.scope === 'address' ? { address: l.address } : {}),
  listening: true,
});
export const publishedTarget = (p: Published, families: Fam[] = [4, 6]): Target => ({ proto: p.proto, port: p.port, families, listening: false });

export interface Reach {
  accepted: Map<Fam, IntervalSet>;
  undetermined: Map<Fam, IntervalSet>;
  reasons: string[];
  perInterface: Map<string, Map<Fam, IntervalSet>>;
  /** Only when a rule matched the address asked: each host address → the sources that reach it. */
  perAddress: Map<string, IntervalSet>;
  /** Sources a DNAT sends elsewhere, per family, and where to ("172.17.0.2:80"). */
  dnat: Map<Fam, IntervalSet>;
  dnatTo: string[];
  /** Other host ports redirected to this one (firewalld's forward-port without an address). */
  redirectsFrom: number[];
  /** When other ports are redirected here: the port a client asks for → who gets through it. */
  perPort: Map<number, string[]>;
}

export { interfaceTowards, splitTarget } from './path.js';

/** Reach per firewall view and target class: scan/report and check ask for the same ones. */
const reachCache = new WeakMap<FirewallView, { byClass: Map<string, Reach>; byPort: Map<string, Reach> }>();

export function reach(t: Target, fw: FirewallView): Reach | null {
  return fw.ruleset ? reachOf(t, fw, fw.ruleset).reach : null;
}

/** The reach of a target, and whether it holds for every port of the target's class. */
function reachOf(t: Target, fw: FirewallView, rs: Ruleset): { reach: Reach; forClass: boolean } {
  // Ports the ruleset cannot tell apart share one computation (port-classes.ts), unless the answer
  // names the port (a DNAT's reason, a redirect to it): that one is kept for its port alone.
  let cache = reachCache.get(fw);
  if (!cache) reachCache.set(fw, (cache = { byClass: new Map(), byPort: new Map() }));
  const rest = `${t.proto}/${t.families.join()}/${t.interface ?? ''}/${t.address ?? ''}/${t.listening}`;
  const classKey = `${portClass(rs, t.port)}/${rest}`;
  const own = cache.byPort.size ? cache.byPort.get(`${t.port}/${rest}`) : undefined;
  if (own) return { reach: own, forClass: false };
  const hit = cache.byClass.get(classKey);
  if (hit) return { reach: hit, forClass: true };
  const r = computeReach(t, fw, rs);
  const forClass = holdsForClass(r, t.port, classKey);
  if (forClass) cache.byClass.set(classKey, r);
  else cache.byPort.set(`${t.port}/${rest}`, r);
  return { reach: r, forClass };
}

/**
 * Whether a reach holds for every port of its class: nothing in it names the port asked, and for
 * a signature class (ports whose look-alike chains differ in name) no reason names a chain.
 */
const holdsForClass = (r: Reach, port: number, classKey: string): boolean =>
  r.dnatTo.length === 0 && r.redirectsFrom.length === 0 && r.perPort.size === 0 && (classKey.startsWith('=') ? r.reasons.length === 0 : !r.reasons.some((s) => s.includes(String(port))));

/**
 * The sources a connection on `iface` can come from: those whose answers leave through it (the
 * longest matching route) — a container bridge or a second LAN brings its own prefixes, not the
 * world. The interface of the default route brings every source; without a default route every
 * interface brings all but the prefixes routed through the others (all of them when the routes
 * were not read): there the outside is not known.
 */
export function routedVia(fw: FirewallView, fam: Fam, iface: string): IntervalSet {
  const routes = (fw.routes ?? []).filter((r) => r.family === fam);
  const isDefault = (r: Route) => r.dst.endsWith('/0');
  if (routes.some((r) => isDefault(r) && r.iface === iface)) return IntervalSet.full(fam);
  const own = routes.filter((r) => r.iface === iface).reduce((u, r) => u.union(prefixSet(fam, r.dst).subtract(moreSpecific(routes, r, fam))), IntervalSet.empty(fam));
  if (routes.some(isDefault)) return own;
  // No default route: the outside is not known, but a prefix routed through another interface
  // answers through that one (a LAN client does not arrive on the container bridge).
  const elsewhere = routes.filter((r) => r.iface !== iface).reduce((u, r) => u.union(prefixSet(fam, r.dst)), IntervalSet.empty(fam));
  return IntervalSet.full(fam).subtract(elsewhere).union(own);
}

/** The parts of a route's prefix that longer routes through other interfaces take. */
function moreSpecific(routes: readonly Route[], r: Route, fam: Fam): IntervalSet {
  const len = Number(r.dst.split('/')[1]);
  return routes.filter((o) => o.iface !== r.iface && Number(o.dst.split('/')[1]) > len).reduce((u, o) => u.union(prefixSet(fam, o.dst)), IntervalSet.empty(fam));
}

/** The interface the route to `address` leaves through (longest match), or null without routes. */
export const routeTo = (fw: FirewallView, address: string): string | null => routeVia(fw.routes ?? [], address);


/** The host addresses a client on `iif` may ask for: the listener's own, or the interface's. */
function addressesAsked(t: Target, fw: FirewallView, fam: Fam, iif: string): string[] {
  if (t.address) return familyOf(t.address) === fam ? [t.address] : [];
  return hostAddressesOn(fw, fam, iif);
}

/** The host addresses a client on `iif` can ask for: the interface's own of that family, else all the host's. */
export function hostAddressesOn(fw: FirewallView, fam: Fam, iif: string): string[] {
  const all = (fw.addresses ?? []).filter((a) => a.iface !== 'lo' && familyOf(a.cidr.split('/')[0]!) === fam);
  // An interface without an address of this family still delivers packets to the others' (weak host).
  const own = all.filter((a) => a.iface === iif);
  return (own.length ? own : all).map((a) => a.cidr.split('/')[0]!);
}

function computeReach(t: Target, fw: FirewallView, rs: Ruleset): Reach {
  const accepted = new Map<Fam, IntervalSet>();
  const undetermined = new Map<Fam, IntervalSet>();
  const perInterface = new Map<string, Map<Fam, IntervalSet>>();
  const perAddress = new Map<string, IntervalSet>();
  const dnat = new Map<Fam, IntervalSet>();
  const dnatTo: string[] = [];
  const redirectsFrom: number[] = [];
  const byPort = new Map<number, string[]>();
  const reasons: string[] = [];
  const note = (rs: string[]) => rs.forEach((r) => reasons.includes(r) || reasons.push(r));
  const ifaces = t.interface ? [t.interface] : fw.interfaces.length ? fw.interfaces : ['eth0'];
  const host = { ruleset: rs, addresses: fw.addresses ?? [], ...(fw.routes ? { routes: fw.routes } : {}), ...(fw.forwarding ? { forwarding: fw.forwarding } : {}) };
  for (const fam of t.families) {
    let acc = IntervalSet.empty(fam);
    let und = IntervalSet.empty(fam);
    let natted = IntervalSet.empty(fam);
    const perPort = new Map<number, IntervalSet>();
    for (const iif of ifaces) {
      const q: PathQuery = { family: fam, proto: t.proto, port: t.port, iif, listening: t.listening, ...(t.address ? { daddr: t.address } : {}) };
      const region = routedVia(fw, fam, iif);
      let r = walkPath(host, q, region);
      let results = [r];
      // A rule matched the address the client asked for: follow each of this host's addresses.
      const asked = addressesAsked(t, fw, fam, iif);
      if (r.askedDaddr && q.daddr === undefined && asked.length) {
        results = asked.map((daddr) => walkPath(host, { ...q, daddr }, region));
        results.forEach((x, i) => perAddress.set(asked[i]!, (perAddress.get(asked[i]!) ?? IntervalSet.empty(fam)).union(x.sure)));
        r = results.reduce((a, x) => ({ ...a, sure: a.sure.union(x.sure), maybe: a.maybe.union(x.maybe) }));
      }
      for (const x of results) {
        note(x.reasons);
        for (const [to, caught] of x.dnat) {
          natted = natted.union(caught);
          if (to !== null && !dnatTo.includes(to)) dnatTo.push(to);
        }
      }
      let here = r.sure;
      let maybe = r.maybe;
      // A redirect elsewhere on this host: for a published row, where it leads is the service; a
      // listener is also reached through every port redirected to it.
      const via = t.listening ? redirectedTo(t, fw).map((o) => ({ o, at: walkPath(host, { ...q, port: o, listening: false }, region).local.get(t.port) })) : [...r.local.values()].map((at) => ({ o: t.port, at }));
      if (via.length && t.listening) perPort.set(t.port, (perPort.get(t.port) ?? IntervalSet.empty(fam)).union(r.sure));
      for (const { o, at } of via) {
        if (!at) continue;
        here = here.union(at.sure);
        maybe = maybe.union(at.maybe);
        if (!t.listening) continue;
        perPort.set(o, (perPort.get(o) ?? IntervalSet.empty(fam)).union(at.sure));
        if (!at.sure.union(at.maybe).isEmpty() && !redirectsFrom.includes(o)) redirectsFrom.push(o);
      }
      acc = acc.union(here);
      und = und.union(maybe.subtract(here));
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
    for (const [port, set] of perPort) byPort.set(port, [...(byPort.get(port) ?? []), ...set.toCidrs()]);
  }
  return { accepted, undetermined, reasons, perInterface, perAddress, dnat, dnatTo, redirectsFrom, perPort: byPort };
}

/** Host ports whose connections a redirect (or a DNAT to one of our addresses) sends to this target's port. */
function redirectedTo(t: Target, fw: FirewallView): number[] {
  const ours = new Set((fw.addresses ?? []).map((a) => a.cidr.split('/')[0]!));
  const ports = fw.published.filter((p) => {
    if (p.proto !== t.proto || p.port === t.port || !p.to) return false;
    const { addr, port } = splitTarget(p.to);
    return port === t.port && (addr === '' || ours.has(addr));
  });
  return [...new Set(ports.map((p) => p.port))];
}

const cidrs = (m: Map<Fam, IntervalSet>): string[] => ([] as string[]).concat(...[...m.values()].map((s) => s.toCidrs()));

/**
 * An exposure whose `sources` text is made when first read: most callers (check, watch, the
 * verdict column) never read it, and a large ruleset's source lists are tens of thousands of
 * prefixes. An enumerable getter in the field's place: JSON, spreads and deep comparisons see
 * the same plain field, in the same order.
 */
function exposure(verdict: Exposure['verdict'], accepted: Map<Fam, IntervalSet>, reason: string, extra: Partial<Exposure>): Exposure {
  let sources: string[] | undefined;
  return {
    verdict,
    get sources() {
      return (sources ??= cidrs(accepted));
    },
    reason,
    ...extra,
  };
}

function describe(r: Reach): Exposure {
  const per = [...r.perInterface.entries()];
  const differ = per.length > 1 && per.some(([, m]) => cidrs(m).join() !== cidrs(per[0]![1]).join());
  const perInterface = differ ? Object.fromEntries(per.map(([i, m]) => [i, cidrs(m)])) : undefined;
  const addrs = [...r.perAddress.entries()];
  const addrDiffer = addrs.length > 1 && addrs.some(([, s]) => s.toCidrs().join() !== addrs[0]![1].toCidrs().join());
  const perAddress = addrDiffer ? Object.fromEntries(addrs.map(([a, s]) => [a, s.toCidrs()])) : undefined;
  const perPort = r.redirectsFrom.length ? Object.fromEntries([...r.perPort].map(([p, c]) => [String(p), c])) : undefined;
  const extra = { ...(perInterface ? { perInterface } : {}), ...(perAddress ? { perAddress } : {}), ...(perPort ? { perPort } : {}) };
  const natted = [...r.dnat.values()].some((s) => !s.isEmpty());
  const local = r.dnatTo.length > 0 && r.dnatTo.every((to) => to.startsWith(':'));
  const also = r.redirectsFrom.length ? ` (also through port ${r.redirectsFrom.join(', ')}, redirected here)` : '';
  const path = (local ? `the redirect (→ ${r.dnatTo.join(', ')}) and the input rules` : natted ? `the prerouting DNAT${r.dnatTo.length ? ` (→ ${r.dnatTo.join(', ')})` : ''} and the forward rules` : 'the input rules') + also;
  if ([...r.undetermined.values()].some((s) => !s.isEmpty())) {
    return exposure('undetermined', r.accepted, r.reasons.join('; '), extra);
  }
  const all = [...r.accepted.values()];
  // A published port in families no DNAT covers and nothing here listens on: no rule refuses it,
  // nothing answers there.
  if (!all.length) return exposure('none', r.accepted, 'no DNAT translates this port in this family and nothing on this host listens on it: nothing answers there', extra);
  const verdict = all.every((s) => s.isEmpty()) ? 'none' : all.every((s) => s.isFull()) ? 'any' : 'restricted';
  const reason = verdict === 'none' ? `${path} refuse every new connection` : verdict === 'any' ? `${path} accept new connections from everywhere` : `${path} accept some sources`;
  return exposure(verdict, r.accepted, reason, extra);
}

/** Per view: a listener's shape and port class → its exposure; a scan asks for 10 000 listeners of a few classes. */
const exposureCache = new WeakMap<FirewallView, Map<string, Map<number | string, Exposure>>>();

/** A listener's shape within its port class: a small number for the usual ones (no string to build and hash per listener). */
function shapeOf(l: Listener): number | string {
  if (l.interface === undefined && l.scope !== 'address') return (l.proto === 'udp' ? 4 : 0) + (l.family === 6 ? 2 : 0) + (l.dualStack ? 1 : 0);
  return `${l.proto}/${l.family}${l.dualStack ? '+' : ''}/${l.interface ?? ''}/${l.scope === 'address' ? l.address : ''}`;
}

export function exposureOf(l: Listener, fw: FirewallView): Exposure {
  if (l.scope === 'loopback') return { verdict: 'localhost', sources: [], reason: `bound to ${l.address}: reachable from this host only` };
  if (!fw.ruleset) return targetExposure(listenerTarget(l), fw);
  let classes = exposureCache.get(fw);
  if (!classes) exposureCache.set(fw, (classes = new Map()));
  const cls = portClass(fw.ruleset, l.port);
  let cache = classes.get(cls);
  if (!cache) classes.set(cls, (cache = new Map()));
  const key = shapeOf(l);
  const hit = cache.get(key);
  if (hit) return hit;
  const { reach: r, forClass } = reachOf(listenerTarget(l), fw, fw.ruleset);
  const e = describedOf(r);
  if (forClass) cache.set(key, e);
  return e;
}

/** A description per Reach: listeners of one class share both. */
const described = new WeakMap<Reach, Exposure>();

function describedOf(r: Reach): Exposure {
  let e = described.get(r);
  if (!e) described.set(r, (e = describe(r)));
  return e;
}

export function targetExposure(t: Target, fw: FirewallView): Exposure {
  if (!fw.ruleset) return { verdict: 'undetermined', sources: [], reason: `cannot read the firewall: ${fw.error ?? 'unknown error'}` };
  return describedOf(reachOf(t, fw, fw.ruleset).reach);
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

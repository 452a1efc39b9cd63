// IPv6 neighbour discovery as a precondition of IPv6 reachability: a source whose solicitation
// the input hook drops never gets a packet to this host. Pure.
import { fromBig, IntervalSet, prefixSet, toBig } from './intervals.js';
import { freshMarks, passHooks, type PathLog } from './interpret.js';
import type { Ruleset } from './nft-json.js';
import type { InterfaceAddress } from './host.js';

/** IPv6 neighbour discovery per input interface, once per ruleset: the same for every listener. */
const ndCache = new WeakMap<Ruleset, Map<string, { ok: IntervalSet; unsure: IntervalSet; reasons: string[] }>>();
const LINK_LOCAL = prefixSet(6, 'fe80::/64');

/**
 * Which IPv6 sources get their neighbour discovery to this host on `iif`: without it no IPv6
 * packet of theirs arrives at all. A client connecting first solicits our address (and we learn
 * its own from that), so its solicitation must get in; for a container behind us it is our
 * solicitation, so its advertisement must (`from`: that container). On-link sources speak for
 * themselves; all others come through a router, which uses its link-local address.
 */
export function neighbourDiscovery(fw: { ruleset: Ruleset | null; addresses?: InterfaceAddress[] }, iif: string, from?: IntervalSet): { ok: IntervalSet; unsure: IntervalSet; reasons: string[] } {
  const rs = fw.ruleset!;
  const onlinkPrefixes = (fw.addresses ?? []).filter((a) => a.iface === iif && a.cidr.includes(':')).map((a) => a.cidr);
  const key = `${iif} ${from ? from.toCidrs().join() : `onlink ${onlinkPrefixes.join()}`}`;
  const cached = ndCache.get(rs)?.get(key);
  if (cached) return cached;
  const icmpType = from ? 'nd-neighbor-advert' : 'nd-neighbor-solicit';
  // It passes the device's ingress chains, prerouting and input, like any packet to this host.
  const log: PathLog = { reasons: [], trace: null, askedDaddr: false };
  const daddr = ndDestination(fw.addresses ?? [], iif, icmpType);
  const passed = passHooks(rs, { family: 6, proto: 'icmpv6', icmpType, dport: 0, iif, ...(daddr ? { daddr } : {}) }, ['ingress', 'prerouting', 'input'], { sure: from ?? IntervalSet.full(6), maybe: IntervalSet.empty(6) }, freshMarks(6), log, icmpType);
  const { sure: ok, maybe: unsure } = passed;
  const reasons = log.reasons;
  let result = { ok, unsure, reasons };
  if (!from) {
    const onlink = onlinkPrefixes.reduce((u, c) => u.union(prefixSet(6, c)), LINK_LOCAL);
    const offlink = onlink.complement();
    const routerOk = ok.intersect(LINK_LOCAL).equals(LINK_LOCAL);
    const routerUnsure = !routerOk && !unsure.intersect(LINK_LOCAL).isEmpty();
    result = {
      ok: ok.intersect(onlink).union(routerOk ? offlink : IntervalSet.empty(6)),
      unsure: unsure.intersect(onlink).union(routerUnsure ? offlink : IntervalSet.empty(6)),
      reasons,
    };
  }
  const m = ndCache.get(rs) ?? new Map();
  m.set(key, result);
  ndCache.set(rs, m);
  return result;
}

/** A source reaches over IPv6 when both its connection and its neighbour discovery get through. */
export function withNd(accepted: IntervalSet, unsure: IntervalSet, nd: { ok: IntervalSet; unsure: IntervalSet }) {
  const maybe = nd.ok.union(nd.unsure);
  return {
    accepted: accepted.intersect(nd.ok).subtract(nd.unsure),
    unsure: unsure.intersect(maybe).union(accepted.intersect(nd.unsure)),
  };
}

/**
 * Where the message is sent: a solicitation for our address goes to its solicited-node multicast
 * address (ff02::1:ff and its last 24 bits, RFC 4291), an advertisement to the address that asked.
 */
function ndDestination(addrs: readonly InterfaceAddress[], iif: string, icmpType: string): string | undefined {
  const ours = addrs.filter((a) => a.iface === iif && a.cidr.includes(':')).map((a) => a.cidr.split('/')[0]!);
  const mine = ours.find((a) => !a.toLowerCase().startsWith('fe80')) ?? ours[0];
  if (!mine) return undefined;
  if (icmpType === 'nd-neighbor-advert') return mine;
  const low = fromBig(toBig(mine) & 0xffffffn, 6).replace(/^::/, '');
  const [hi, lo] = low.includes(':') ? low.split(':') : ['0', low];
  return `ff02::1:ff${(hi ?? '0').padStart(2, '0').slice(-2)}:${lo}`;
}

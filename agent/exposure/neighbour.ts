// IPv6 neighbour discovery as a precondition of IPv6 reachability: a source whose solicitation
// the input hook drops never gets a packet to this host. Pure.
import { fromBig, IntervalSet, prefixSet, toBig } from './intervals.js';
import { freshMarks, passHooks, type Packet, type Passing, type PathLog } from './interpret.js';
import type { Ruleset } from './nft-json.js';
import type { InterfaceAddress } from './host.js';

/** IPv6 neighbour discovery per input interface, once per ruleset: the same for every listener. */
const ndCache = new WeakMap<Ruleset, Map<string, { ok: IntervalSet; unsure: IntervalSet; reasons: string[] }>>();
const LINK_LOCAL = prefixSet(6, 'fe80::/64');
/** At most this many `th dport` rules on the message's checksum are tried each way (2^n passes). */
const MAX_CHECKSUM_RULES = 4;

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
  const daddr = ndDestination(fw.addresses ?? [], iif, icmpType);
  // It passes the device's ingress chains, prerouting and input, like any packet to this host.
  const pass = (checksum?: Map<string, boolean>) => {
    const log: PathLog = { reasons: [], trace: null, askedDaddr: false, checksumRules: [] };
    const p: Packet = { family: 6, proto: 'icmpv6', icmpType, dport: 0, iif, ...(daddr ? { daddr } : {}), ...(checksum ? { checksum } : {}) };
    return { passed: passHooks(rs, p, ['ingress', 'prerouting', 'input'], { sure: from ?? IntervalSet.full(6), maybe: IntervalSet.empty(6) }, freshMarks(6), log, icmpType), log };
  };
  const first = pass();
  const { passed, reasons } = first.log.checksumRules.length ? eachChecksumWay(first, pass) : { passed: first.passed, reasons: first.log.reasons };
  const { sure: ok, maybe: unsure } = passed;
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

type NdPass = { passed: Passing; log: PathLog };

/**
 * `th dport` of the message compares its checksum, which depends on the client's addresses: the
 * message is passed once for each way those matches can go, and a source is sure where it is sure
 * in every way, refused where it is refused in every way. A way that meets another such rule adds
 * it; past MAX_CHECKSUM_RULES the first pass's answer (undetermined there) stands.
 */
function eachChecksumWay(first: NdPass, pass: (checksum: Map<string, boolean>) => NdPass): { passed: Passing; reasons: string[] } {
  let rules = first.log.checksumRules;
  while (rules.length <= MAX_CHECKSUM_RULES) {
    const ways = Array.from({ length: 2 ** rules.length }, (_, bits) => pass(new Map(rules.map((r, i) => [r, ((bits >> i) & 1) === 1]))));
    const more = [...new Set(ways.flatMap((w) => w.log.checksumRules))];
    if (more.length) {
      rules = [...rules, ...more];
      continue;
    }
    const sure = ways.reduce((s, w) => s.intersect(w.passed.sure), IntervalSet.full(6));
    const reach = ways.reduce((s, w) => s.union(w.passed.sure).union(w.passed.maybe), IntervalSet.empty(6));
    const maybe = reach.subtract(sure);
    const reasons = [...new Set(ways.flatMap((w) => w.log.reasons))];
    // Where the ways disagree, the checksum decides: the first pass's reasons name those rules.
    const disagree = ways.reduce((s, w) => s.union(w.passed.sure), IntervalSet.empty(6)).subtract(sure);
    return { passed: { sure, maybe }, reasons: disagree.isEmpty() ? reasons : [...new Set([...first.log.reasons, ...reasons])] };
  }
  return { passed: first.passed, reasons: first.log.reasons };
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

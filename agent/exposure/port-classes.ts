// Ports that a ruleset cannot tell apart: every port match compares the port with constants of the
// ruleset, so two ports between the same two constants meet the same verdicts. Exposure is then
// computed once per class of ports, not once per listener — an empty or accept-all ruleset costs
// one walk for every listener. Pure.
import { isObj, type Json, type Ruleset } from './nft-json.js';

/** Per ruleset: the sorted starts of the classes, or null when ports cannot be classed safely. */
const cache = new WeakMap<Ruleset, number[] | null>();

/**
 * Every number that could be a port in the ruleset (rule expressions and set elements), and each
 * range's ends, as class boundaries: more boundaries than needed only means smaller classes.
 */
function boundaries(rs: Ruleset): number[] | null {
  const cuts = new Set<number>([0, 65536]);
  let unsafe = false;
  const add = (n: unknown) => {
    if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 65535) {
      cuts.add(n);
      cuts.add(n + 1);
    }
  };
  // Only what a match compares with (its right side, a verdict map's keys, a set's elements):
  // the rest of a rule holds no port a packet is compared with.
  const stack: Json[] = [];
  for (const c of rs.chains.values()) {
    for (const r of c.rules) {
      for (const e of r.expr) {
        if (!isObj(e)) continue;
        if (isObj(e.match)) stack.push(e.match.right ?? null);
        else if (isObj(e.vmap)) stack.push(e.vmap.data ?? null);
        // A translation that keeps the port asked for (redirect or DNAT without a port, an
        // opaque iptables target) carries the port into the result: no classes then.
        else if ('redirect' in e && !(isObj(e.redirect) && typeof e.redirect.port === 'number')) unsafe = true;
        else if (isObj(e.dnat) && e.dnat.port === undefined) unsafe = true;
        else if (isObj(e.xt) && e.xt.type === 'target') unsafe = true;
      }
    }
  }
  // Sets of addresses only (the large ones: blocklists, allowed sources) hold no ports.
  const addressOnly = (t: string | string[]) => [t].flat().every((x) => x === 'ipv4_addr' || x === 'ipv6_addr' || x === 'ether_addr');
  for (const s of rs.sets.values()) if (!addressOnly(s.type)) stack.push(s.elem);
  while (stack.length) {
    const j = stack.pop()!;
    if (typeof j === 'number') add(j);
    else if (typeof j === 'string') add(/^\d{1,5}$/.test(j) ? Number(j) : null);
    else if (Array.isArray(j)) for (const x of j) stack.push(x);
    else if (isObj(j)) for (const v of Object.values(j)) stack.push(v);
  }
  return unsafe ? null : [...cuts].sort((a, b) => a - b);
}

/** "lo-hi" of the class holding `port`, or the port itself when the ruleset cannot be classed. */
export function portClass(rs: Ruleset, port: number): string {
  let starts = cache.get(rs);
  if (starts === undefined) cache.set(rs, (starts = boundaries(rs)));
  if (!starts) return String(port);
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
  return a === b ? String(port) : `${a}-${b}`;
}

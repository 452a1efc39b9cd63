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
  // Iterative walk: rulesets can be large and deeply nested.
  const stack: Json[] = [];
  for (const c of rs.chains.values()) for (const r of c.rules) stack.push(r.expr);
  for (const s of rs.sets.values()) stack.push(s.elem);
  while (stack.length) {
    const j = stack.pop()!;
    if (typeof j === 'number') add(j);
    else if (typeof j === 'string') add(/^\d{1,5}$/.test(j) ? Number(j) : null);
    else if (Array.isArray(j)) for (const x of j) stack.push(x);
    else if (isObj(j)) {
      // A translation that keeps the port asked for (redirect or DNAT without a port, an opaque
      // iptables target) carries the port into the result: no classes then.
      if ('redirect' in j && !(isObj(j.redirect) && typeof j.redirect.port === 'number')) unsafe = true;
      if (isObj(j.dnat) && j.dnat.port === undefined) unsafe = true;
      if (isObj(j.xt) && j.xt.type === 'target') unsafe = true;
      for (const v of Object.values(j)) stack.push(v);
    }
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

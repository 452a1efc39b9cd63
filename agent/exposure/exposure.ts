// Who can actually reach each listener: its bind scope joined with the live input-hook rules. Pure.
import type { Listener } from '../model.js';
import { IntervalSet, type Fam } from './intervals.js';
import { Interpreter } from './interpret.js';
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

export interface FirewallView {
  ruleset: Ruleset | null;
  /** Why the ruleset could not be read (not root, no nft): every exposure is then undetermined. */
  error: string | null;
  interfaces: string[];
  /** Rules (-A lines) that iptables-legacy holds: the interpreter reads nftables only. */
  legacyRules: number;
  /** Host ports that DNAT sends to containers (findPublished). */
  published: Published[];
}

export function listenerFamilies(l: Listener): Fam[] {
  return l.family === 4 ? [4] : l.dualStack ? [6, 4] : [6];
}

export interface Reach {
  accepted: Map<Fam, IntervalSet>;
  undetermined: Map<Fam, IntervalSet>;
  reasons: string[];
  perInterface: Map<string, Map<Fam, IntervalSet>>;
}

export function reach(l: Listener, fw: FirewallView): Reach | null {
  if (!fw.ruleset) return null;
  const accepted = new Map<Fam, IntervalSet>();
  const undetermined = new Map<Fam, IntervalSet>();
  const perInterface = new Map<string, Map<Fam, IntervalSet>>();
  const reasons: string[] = [];
  const ifaces = l.interface ? [l.interface] : fw.interfaces.length ? fw.interfaces : ['eth0'];
  for (const fam of listenerFamilies(l)) {
    let acc = IntervalSet.empty(fam);
    let und = IntervalSet.empty(fam);
    for (const iif of ifaces) {
      // A source reaches the service when its first packet and the ones after it both get in.
      const first = new Interpreter(fw.ruleset, { family: fam, proto: l.proto, dport: l.port, iif, ctState: 'new' }).run();
      const later = new Interpreter(fw.ruleset, { family: fam, proto: l.proto, dport: l.port, iif, ctState: 'established' }).run();
      const accepted = first.accepted.intersect(later.accepted);
      acc = acc.union(accepted);
      und = und.union(first.undetermined).union(later.undetermined);
      for (const r of [...first.reasons, ...later.reasons]) if (!reasons.includes(r)) reasons.push(r);
      const m = perInterface.get(iif) ?? new Map<Fam, IntervalSet>();
      m.set(fam, accepted);
      perInterface.set(iif, m);
    }
    accepted.set(fam, acc);
    undetermined.set(fam, und);
  }
  return { accepted, undetermined, reasons, perInterface };
}

const cidrs = (m: Map<Fam, IntervalSet>) => [...m.values()].flatMap((s) => s.toCidrs());

export function exposureOf(l: Listener, fw: FirewallView): Exposure {
  if (l.scope === 'loopback') return { verdict: 'localhost', sources: [], reason: `bound to ${l.address}: reachable from this host only` };
  if (!fw.ruleset) return { verdict: 'undetermined', sources: [], reason: `cannot read the firewall: ${fw.error ?? 'unknown error'}` };
  const pub = fw.published.find((p) => p.proto === l.proto && p.port === l.port);
  if (pub) return { verdict: 'undetermined', sources: [], reason: `published to a container by DNAT (${pub.where}${pub.to ? ` → ${pub.to}` : ''}): connections take the forward path, which portwarden does not interpret` };
  if (fw.legacyRules > 0) return { verdict: 'undetermined', sources: [], reason: `iptables-legacy holds ${fw.legacyRules} rule(s), which portwarden does not interpret` };
  const r = reach(l, fw)!;
  const sources = cidrs(r.accepted);
  const per = [...r.perInterface.entries()];
  const differ = per.length > 1 && per.some(([, m]) => cidrs(m).join() !== cidrs(per[0]![1]).join());
  const perInterface = differ ? Object.fromEntries(per.map(([i, m]) => [i, cidrs(m)])) : undefined;
  if ([...r.undetermined.values()].some((s) => !s.isEmpty())) {
    return { verdict: 'undetermined', sources, reason: r.reasons.join('; '), ...(perInterface ? { perInterface } : {}) };
  }
  const all = [...r.accepted.values()];
  const verdict = all.every((s) => s.isEmpty()) ? 'none' : all.every((s) => s.isFull()) ? 'any' : 'restricted';
  const reason = verdict === 'none' ? 'the input rules refuse every new connection' : verdict === 'any' ? 'the input rules accept new connections from everywhere' : 'the input rules accept some sources';
  return { verdict, sources, reason, ...(perInterface ? { perInterface } : {}) };
}

/** Short text for the table's EXPOSURE column. */
export function exposureCell(e: Exposure): string {
  if (e.verdict === 'restricted') return e.sources.length > 2 ? `${e.sources.slice(0, 2).join(',')},+${e.sources.length - 2}` : e.sources.join(',');
  return e.verdict === 'undetermined' ? '?' : e.verdict;
}

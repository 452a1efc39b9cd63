// The intermediate firewall model: one ordered list of steps both renderers (nft, iptables) turn
// into text, so the backends cannot disagree. Pure.
import type { Proto } from '../model.js';
import type { CompiledPolicy, CompiledRule, PortRange, RateUnit } from '../policy/compile.js';

export interface SourceSet {
  name: string;
  family: 4 | 6;
  elements: string[];
}

export interface Meter {
  name: string;
  family: 4 | 6;
  unit: RateUnit;
}

export interface Match {
  proto: Proto;
  ports: PortRange[];
  /** Only packets of this family (needed for sets and meters, which are per family). */
  family?: 4 | 6;
  /** Source must be in this set (of the same family). */
  set?: string;
}

export type Step =
  | { kind: 'accept'; rule: string; match: Match }
  /** Per-source rate: a new connection over the limit is refused. */
  | { kind: 'limit'; rule: string; match: Match & { family: 4 | 6 }; count: number; unit: RateUnit; meter: string; log: Log | null }
  | { kind: 'refuse'; rule: string; match: Match; log: Log | null };

/** A logged refusal goes through a small chain of its own: `id` names it in both backends. */
export interface Log {
  prefix: string;
  id: number;
}

/** One policy rule's steps: nft renders them as a chain of their own that the port dispatch jumps to. */
export interface RuleChain {
  name: string;
  rule: string;
  proto: Proto;
  steps: Step[];
}

/** Ports lo..hi of proto are decided by this rule chain (the first rule that covers them). */
export interface PortSpan {
  proto: Proto;
  lo: number;
  hi: number;
  chain: string;
}

export interface FirewallModel {
  /** What the input chain does with packets no step decides. */
  fallthrough: 'refuse' | 'accept';
  refuse: 'drop' | 'reject';
  sets: SourceSet[];
  meters: Meter[];
  /** All steps in policy order: a linear chain (iptables) runs them as they are. */
  steps: Step[];
  /** The same steps grouped by rule, in policy order. */
  ruleChains: RuleChain[];
  /** Disjoint spans sorted by proto then port: a packet's port picks its rule in one lookup (nft vmap). */
  dispatch: PortSpan[];
}

/** Our nft table (inet family): the renderer makes it, the readers, the monitor and apply find it by these names. */
export const NFT_TABLE = 'portwarden';
/** Our table as the ruleset reader and the monitor name tables: "family name". */
export const OUR_TABLE_KEY = `inet ${NFT_TABLE}`;

/**
 * Who knocked: dynamic sets the rules update on every refusal and rate-limit hit, keyed by source,
 * protocol and destination port, with a counter per element (nft). Bounded and timed out, so a
 * flood of sources costs bounded memory and the per-packet cost stays one set update.
 */
export const ATTEMPT_SETS = {
  refused: { 4: 'refused_v4', 6: 'refused_v6' },
  limited: { 4: 'limited_v4', 6: 'limited_v6' },
} as const;
export const ATTEMPT_SET_SIZE = 65535;
export const ATTEMPT_TIMEOUT = '1h';
/** What the default refusal is called wherever a rule name is expected (counters, attempts, metrics). */
export const DEFAULT_RULE = 'default';

/** Log prefix naming the rule; ≤ 29 characters, the iptables LOG limit. */
export function logPrefix(rule: string): string {
  return `pw ${rule.slice(0, 24)}: `;
}

function safeName(text: string): string {
  return text.replace(/[^A-Za-z0-9_]/g, '_');
}

export function buildFirewallModel(policy: CompiledPolicy): FirewallModel {
  const sets: SourceSet[] = [];
  const setByContent = new Map<string, string>();
  // Rules naming the same sources share one compiled array (compile.ts merges each list once):
  // keyed by identity first, so the content key (a join of every prefix) is built once per array.
  const setByArray = new Map<string[], string>();
  const meters: Meter[] = [];
  const steps: Step[] = [];
  const push = (step: Step) => {
    if (step.kind !== 'accept' && step.log && step.log.id < 0) step.log.id = steps.length;
    steps.push(step);
  };
  const usedNames = new Set<string>();
  const unique = (base: string) => {
    let name = base.slice(0, 60);
    for (let i = 2; usedNames.has(name); i++) name = `${base.slice(0, 56)}_${i}`;
    usedNames.add(name);
    return name;
  };
  /** Rules with the same sources share one set (a group used by many rules is loaded once). */
  const setFor = (family: 4 | 6, elements: string[], label: string): string => {
    let name = setByArray.get(elements);
    if (name) return name;
    const key = `${family}|${elements.join(',')}`;
    name = setByContent.get(key);
    if (!name) {
      name = unique(`src_${safeName(label)}_v${family}`);
      setByContent.set(key, name);
      sets.push({ name, family, elements });
    }
    setByArray.set(elements, name);
    return name;
  };

  const ruleChains: RuleChain[] = [];
  policy.rules.forEach((rule, idx) => {
    const first = steps.length;
    addRule(rule, idx);
    ruleChains.push({ name: unique(`rule_${safeName(rule.name)}`), rule: rule.name, proto: rule.proto, steps: steps.slice(first) });
  });
  function addRule(rule: CompiledRule, idx: number): void {
    const base = { proto: rule.proto, ports: rule.ports };
    // The id is the index of the rule's first logged step: stable, unique, set when it is pushed.
    const log = rule.log ? { prefix: logPrefix(rule.name), id: -1 } : null;
    const refuse: Step = { kind: 'refuse', rule: rule.name, match: base, log };
    if (rule.action === 'deny' || rule.from.kind === 'localhost') {
      // localhost: loopback traffic is accepted before any rule, so refusing here opens nothing else.
      push(refuse);
      return;
    }
    const families: { family: 4 | 6; set?: string }[] = [];
    if (rule.from.kind === 'any') families.push({ family: 4 }, { family: 6 });
    else {
      const label = rule.from.names.length === 1 ? rule.from.names[0]! : rule.name;
      if (rule.from.v4.length) families.push({ family: 4, set: setFor(4, rule.from.v4, label) });
      if (rule.from.v6.length) families.push({ family: 6, set: setFor(6, rule.from.v6, label) });
    }
    if (rule.rate) {
      for (const f of families) {
        const meter = unique(`rate_${idx}_${safeName(rule.name)}_v${f.family}`);
        meters.push({ name: meter, family: f.family, unit: rule.rate.unit });
        push({ kind: 'limit', rule: rule.name, match: { ...base, ...f }, count: rule.rate.count, unit: rule.rate.unit, meter, log });
      }
    }
    if (rule.from.kind === 'any') push({ kind: 'accept', rule: rule.name, match: base });
    else for (const f of families) push({ kind: 'accept', rule: rule.name, match: { ...base, ...f } });
    // First match decides: sources the rule does not name are refused here, not by a later rule.
    if (rule.from.kind !== 'any') push(refuse);
  }
  return {
    fallthrough: policy.default === 'deny' ? 'refuse' : 'accept',
    refuse: policy.refuse,
    sets,
    meters,
    steps,
    ruleChains,
    dispatch: portDispatch(policy.rules, ruleChains),
  };
}

/**
 * First match decides: each port goes to the first rule that covers it. The rules' range ends cut
 * the port space into segments; rules are taken in order and each claims the segments of its
 * ranges no earlier rule claimed (a "next unclaimed" pointer with path halving skips claimed
 * ones, so overlapping wide ranges stay near-linear). Adjacent segments of one rule are merged.
 */
export function portDispatch(rules: readonly CompiledRule[], chains: readonly RuleChain[]): PortSpan[] {
  const out: PortSpan[] = [];
  for (const proto of ['tcp', 'udp'] as const) {
    const idx = rules.map((_, i) => i).filter((i) => rules[i]!.proto === proto);
    const cuts = [...new Set(idx.flatMap((i) => rules[i]!.ports.flatMap((p) => [p.lo, p.hi + 1])))].sort((a, b) => a - b);
    const owner = new Array<number>(cuts.length).fill(-1); // segment s is cuts[s]..cuts[s+1]-1
    const next = cuts.map((_, s) => s); // next[s]: a segment ≥ s that may be unclaimed
    const find = (s: number): number => {
      while (next[s] !== s) s = next[s] = next[next[s]!]!;
      return s;
    };
    const at = (port: number) => {
      let lo = 0;
      let hi = cuts.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cuts[mid]! < port) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    for (const i of idx) {
      for (const p of rules[i]!.ports) {
        const end = at(p.hi + 1);
        for (let s = find(at(p.lo)); s < end; s = find(s)) {
          owner[s] = i;
          next[s] = s + 1;
        }
      }
    }
    for (let s = 0; s + 1 < cuts.length; s++) {
      if (owner[s] === -1) continue;
      const chain = chains[owner[s]!]!.name;
      const last = out[out.length - 1];
      if (last && last.proto === proto && last.chain === chain && last.hi + 1 === cuts[s]) last.hi = cuts[s + 1]! - 1;
      else out.push({ proto, lo: cuts[s]!, hi: cuts[s + 1]! - 1, chain });
    }
  }
  return out;
}

/** One step per logged rule (the first), for the renderers to define its log chain. */
export function loggedSteps(model: FirewallModel): (Step & { log: Log })[] {
  const seen = new Set<number>();
  return model.steps.filter((s): s is Step & { log: Log } => s.kind !== 'accept' && s.log !== null && !seen.has(s.log.id) && Boolean(seen.add(s.log.id)));
}

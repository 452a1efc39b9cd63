// Live exposure against the policy: firewall-gap (the firewall admits sources the policy does not)
// and blocked-service (the policy allows sources the firewall blocks). Pure.
import { listenerPlace, type Finding, type Listener } from '../model.js';
import type { CompiledPolicy } from '../policy/compile.js';
import { buildPortIndex, decidingRule } from '../policy/port-index.js';
import { IntervalSet, prefixSet, type Fam } from './intervals.js';
import { reach, type FirewallView } from './exposure.js';

export function policyAllows(policy: CompiledPolicy, ruleIdx: number, fam: Fam): IntervalSet {
  const rule = ruleIdx >= 0 ? policy.rules[ruleIdx]! : null;
  if (!rule) return policy.default === 'allow' ? IntervalSet.full(fam) : IntervalSet.empty(fam);
  if (rule.action === 'deny' || rule.from.kind === 'localhost') return IntervalSet.empty(fam);
  if (rule.from.kind === 'any') return IntervalSet.full(fam);
  return (fam === 4 ? rule.from.v4 : rule.from.v6).reduce((s, p) => s.union(prefixSet(fam, p)), IntervalSet.empty(fam));
}

function sample(sets: IntervalSet[]): string {
  const c = sets.flatMap((s) => s.toCidrs());
  return c.length > 3 ? `${c.slice(0, 3).join(', ')} and ${c.length - 3} more` : c.join(', ');
}

/** nftables (or iptables-nft) rules and iptables-legacy rules at once: easy to misread together. */
export function mixedFirewall(fw: FirewallView): Finding | null {
  const nftRules = fw.ruleset ? [...fw.ruleset.chains.values()].reduce((n, c) => n + c.rules.length, 0) : 0;
  if (!fw.legacyRules || !nftRules) return null;
  return {
    id: 'mixed-firewall', kind: 'mixed-firewall', severity: 'medium', proto: null, port: null, address: null, rule: null, processes: [],
    message: `both iptables-legacy (${fw.legacyRules} rules) and nftables (${nftRules} rules) filter packets here; both run, and neither listing shows the other`,
    remedy: 'move the legacy rules to nftables (iptables-legacy-save | iptables-restore-translate) or to iptables-nft, then flush the legacy tables',
  };
}

/** A host port DNAT sends to a container: the input chain (and portwarden's rules) never see it. */
export function publishedFindings(policy: CompiledPolicy, fw: FirewallView): Finding[] {
  const index = buildPortIndex(policy.rules);
  const seen = new Set<string>();
  const out: Finding[] = [];
  for (const p of fw.published) {
    const id = `published-container-port:${p.proto}/${p.port}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const idx = decidingRule(index, p.proto, p.port);
    const rule = idx >= 0 ? policy.rules[idx]! : null;
    const allowedFromAny = rule ? rule.action === 'allow' && rule.from.kind === 'any' : policy.default === 'allow';
    out.push({
      id, kind: 'published-container-port', severity: allowedFromAny ? 'low' : 'high', proto: p.proto, port: p.port, address: null, rule: rule?.name ?? null, processes: [],
      message: `${p.proto}/${p.port} is published to a container by DNAT (${p.where}${p.to ? ` → ${p.to}` : ''}); its connections bypass the input chain${allowedFromAny ? '' : `, so ${rule ? `rule "${rule.name}"` : 'the policy'} is not enforced on it`}`,
      remedy: `publish it on 127.0.0.1 only (docker run -p 127.0.0.1:${p.port}:…), or restrict it in the DOCKER-USER chain`,
    });
  }
  return out;
}

export function compareExposure(policy: CompiledPolicy, listeners: readonly Listener[], fw: FirewallView): Finding[] {
  const mixed = mixedFirewall(fw);
  const published = publishedFindings(policy, fw);
  if (!fw.ruleset || fw.legacyRules > 0) return [...(mixed ? [mixed] : []), ...published];
  const index = buildPortIndex(policy.rules);
  const out: Finding[] = [...published];
  for (const l of listeners) {
    if (l.scope === 'loopback' || fw.published.some((p) => p.proto === l.proto && p.port === l.port)) continue;
    const r = reach(l, fw)!;
    const idx = decidingRule(index, l.proto, l.port);
    const rule = idx >= 0 ? policy.rules[idx]!.name : null;
    const gap: IntervalSet[] = [];
    const blocked: IntervalSet[] = [];
    for (const [fam, acc] of r.accepted) {
      const und = r.undetermined.get(fam)!;
      const allowed = policyAllows(policy, idx, fam);
      gap.push(acc.subtract(allowed));
      blocked.push(allowed.subtract(acc).subtract(und));
    }
    const base = { proto: l.proto, port: l.port, address: l.address, rule, processes: l.processes };
    const where = listenerPlace(l);
    if (gap.some((s) => !s.isEmpty())) {
      out.push({
        ...base,
        id: `firewall-gap:${l.proto}/${l.port}:${l.scope}`,
        kind: 'firewall-gap',
        severity: 'high',
        message: `the live firewall lets ${sample(gap)} reach ${where}, which ${rule ? `rule "${rule}"` : 'the policy'} does not allow`,
        remedy: 'apply the policy (portwarden apply) or find the rule that accepts them with portwarden explain',
      });
    }
    if (blocked.some((s) => !s.isEmpty())) {
      out.push({
        ...base,
        id: `blocked-service:${l.proto}/${l.port}:${l.scope}`,
        kind: 'blocked-service',
        severity: 'medium',
        message: `${rule ? `rule "${rule}"` : 'the policy'} allows ${sample(blocked)} to reach ${where}, but the live firewall blocks them`,
        remedy: 'apply the policy (portwarden apply), or find the blocking rule with portwarden explain',
      });
    }
  }
  return out;
}

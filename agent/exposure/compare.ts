// Live exposure against the policy: firewall-gap (the firewall admits sources the policy does not)
// and blocked-service (the policy allows sources the firewall blocks). Pure.
import { hostFinding, listenerPlace, type Finding, type Listener } from '../model.js';
import type { CompiledPolicy, CompiledRule } from '../policy/compile.js';
import { buildPortIndex, decidingRule } from '../policy/port-index.js';
import { IntervalSet, pushPrefix, type Addr, type Fam } from './intervals.js';
import { LEGACY_SUFFIX } from './iptables-save.js';
import { namedTargets, publishedFor } from './published.js';
import { listenerTarget, publishedTarget, reach, unheardPublished, type FirewallView, type Target } from './exposure.js';

/** A rule's allowed sources per family: built once per compiled rule (1 000 CIDRs each, asked for every listener). */
const allowedCache = new WeakMap<CompiledRule, Partial<Record<Fam, IntervalSet>>>();

export function policyAllows(policy: CompiledPolicy, ruleIdx: number, fam: Fam): IntervalSet {
  const rule = ruleIdx >= 0 ? policy.rules[ruleIdx]! : null;
  if (!rule) return policy.default === 'allow' ? IntervalSet.full(fam) : IntervalSet.empty(fam);
  if (rule.action === 'deny' || rule.from.kind === 'localhost') return IntervalSet.empty(fam);
  if (rule.from.kind === 'any') return IntervalSet.full(fam);
  let cached = allowedCache.get(rule);
  if (!cached) allowedCache.set(rule, (cached = {}));
  const set = cached[fam];
  if (set) return set;
  const bounds: Addr[] = [];
  for (const p of fam === 4 ? rule.from.v4 : rule.from.v6) pushPrefix(bounds, fam, p);
  return (cached[fam] = IntervalSet.ofBounds(fam, bounds));
}

/** Does the deciding rule (or the default) let anyone reach the port? */
function allowsSomeone(policy: CompiledPolicy, idx: number): boolean {
  return ([4, 6] as Fam[]).some((f) => !policyAllows(policy, idx, f).isEmpty());
}

function sample(sets: IntervalSet[]): string {
  const c = sets.flatMap((s) => s.toCidrs());
  return c.length > 3 ? `${c.slice(0, 3).join(', ')} and ${c.length - 3} more` : c.join(', ');
}

/** nftables (or iptables-nft) rules and iptables-legacy rules at once: easy to misread together. */
export function mixedFirewall(fw: FirewallView): Finding | null {
  const nftRules = fw.ruleset ? [...fw.ruleset.chains.values()].filter((c) => !c.table.endsWith(LEGACY_SUFFIX)).reduce((n, c) => n + c.rules.length, 0) : 0;
  if (!fw.legacyRules || !nftRules) return null;
  return hostFinding(
    'mixed-firewall',
    'medium',
    `both iptables-legacy (${fw.legacyRules} rules) and nftables (${nftRules} rules) filter packets here; both run, and neither listing shows the other`,
    'move the legacy rules to nftables (iptables-legacy-save | iptables-restore-translate) or to iptables-nft, then flush the legacy tables',
  );
}

export function compareExposure(policy: CompiledPolicy, listeners: readonly Listener[], fw: FirewallView): Finding[] {
  const mixed = mixedFirewall(fw);
  const out: Finding[] = mixed ? [mixed] : [];
  const index = buildPortIndex(policy.rules);
  const targets: { t: Target; l: Listener | null }[] = [
    ...listeners.filter((l) => l.scope !== 'loopback').map((l) => ({ t: listenerTarget(l), l })),
    ...unheardPublished(fw, listeners).map((u) => ({ t: publishedTarget(u.published, u.families), l: null })),
  ];
  for (const { t, l } of targets) {
    const idx = decidingRule(index, t.proto, t.port);
    const rule = idx >= 0 ? policy.rules[idx]!.name : null;
    const pub = fw.published.find((p) => p.proto === t.proto && p.port === t.port);
    const r = reach(t, fw);
    const base = { proto: t.proto, port: t.port, address: l?.address ?? null, rule, processes: l?.processes ?? [] };
    const where = l ? listenerPlace(l) : `${t.proto}/${t.port}`;
    const whom = rule ? `rule "${rule}"` : 'the policy';
    const gap: IntervalSet[] = [];
    const blocked: IntervalSet[] = [];
    let unsure = false;
    let allowsSome = false;
    for (const [fam, acc] of r?.accepted ?? []) {
      const und = r!.undetermined.get(fam)!;
      const allowed = policyAllows(policy, idx, fam);
      allowsSome ||= !allowed.isEmpty();
      unsure ||= !und.isEmpty();
      gap.push(acc.subtract(allowed));
      blocked.push(allowed.subtract(acc).subtract(und));
    }
    const published = pub && (!r || [...r.dnat.values(), ...r.undetermined.values()].some((s) => !s.isEmpty()));
    if (published) {
      const dest = r?.dnatTo.length ? r.dnatTo.join(', ') : namedTargets(publishedFor(fw.published, t.proto, t.port, t.families, t.address)) || (pub.to ?? pub.where);
      const head = `${where} is published to a container by DNAT (→ ${dest}); its connections take the forward path, past the input chain`;
      if (gap.some((s) => !s.isEmpty())) {
        out.push({ ...base, id: `published-container-port:${t.proto}/${t.port}`, kind: 'published-container-port', severity: 'high',
          message: `${head}, and the forward rules let ${sample(gap)} reach it, which ${whom} does not allow`,
          remedy: 'apply the policy (portwarden apply adds a forward chain for published ports), publish it on 127.0.0.1 only, or restrict it in DOCKER-USER' });
      } else if (!r || unsure) {
        out.push({ ...base, id: `published-container-port:${t.proto}/${t.port}`, kind: 'published-container-port', severity: 'medium',
          message: `${head}; who reaches it cannot be determined: ${r ? r.reasons.join('; ') : `cannot read the firewall: ${fw.error ?? 'unknown error'}`}`,
          remedy: 'apply the policy (portwarden apply adds a forward chain for published ports), then check again' });
      }
    }
    // Exposure that could not be decided was not compared: say so, as visibly as a finding —
    // "no findings" would claim it matches.
    if (!published && allowsSomeone(policy, idx) && (!r || unsure)) {
      const restricts = idx >= 0 && policy.rules[idx]!.from.kind === 'list';
      const why = r ? (r.reasons[0] ?? 'a rule could not be decided') : `cannot read the firewall: ${fw.error ?? 'unknown error'}`;
      out.push({ ...base, id: `exposure-undetermined:${t.proto}/${t.port}:${l?.scope ?? 'published'}`, kind: 'exposure-undetermined', severity: restricts ? 'low' : 'info',
        message: `exposure of ${where} not compared with ${whom}: ${why}`,
        remedy: `see which rule stops the interpreter with portwarden explain ${t.port}/${t.proto} --from ADDR, or run as root so the firewall can be read` });
    }
    if (!r) continue;
    // A listener the policy allows no one to reach is already a finding of its own
    // (forbidden-listener, overexposed, unexpected-listener): one alert, not two.
    if (!published && allowsSome && gap.some((s) => !s.isEmpty())) {
      out.push({ ...base, id: `firewall-gap:${t.proto}/${t.port}:${l?.scope ?? 'published'}`, kind: 'firewall-gap', severity: 'high',
        message: `the live firewall lets ${sample(gap)} reach ${where}, which ${whom} does not allow`,
        remedy: 'apply the policy (portwarden apply) or find the rule that accepts them with portwarden explain' });
    }
    if (blocked.some((s) => !s.isEmpty())) {
      out.push({ ...base, id: `blocked-service:${t.proto}/${t.port}:${l?.scope ?? 'published'}`, kind: 'blocked-service', severity: 'medium',
        message: `${whom} allows ${sample(blocked)} to reach ${where}, but the live firewall blocks them`,
        remedy: 'apply the policy (portwarden apply), or find the blocking rule with portwarden explain' });
    }
  }
  return out;
}

/**
 * Published ports the policy lets no one reach: once applied, portwarden's forward chain refuses
 * them, so the containers behind them go dark. apply says so before it changes anything.
 */
export function publishedPolicyRefuses(policy: CompiledPolicy, fw: FirewallView): string[] {
  const index = buildPortIndex(policy.rules);
  const out: string[] = [];
  for (const p of fw.published) {
    const idx = decidingRule(index, p.proto, p.port);
    if (([4, 6] as Fam[]).some((f) => !policyAllows(policy, idx, f).isEmpty())) continue;
    const line = `${p.proto}/${p.port} is published to a container (${p.to ? `→ ${p.to}, ` : ''}${p.where}), but ${idx >= 0 ? `rule "${policy.rules[idx]!.name}"` : 'the policy (no rule covers it)'} lets no one reach it: after this apply, connections to it are refused`;
    if (!out.includes(line)) out.push(line);
  }
  return out;
}

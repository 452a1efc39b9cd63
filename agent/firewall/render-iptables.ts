// FirewallModel → an iptables-restore / ip6tables-restore file for `--noflush`: it declares (and so
// flushes) only our chains; the single jumps from INPUT and FORWARD are kept by apply
// (iptables-jump.ts). Pure.
import type { PortRange } from '../policy/compile.js';
import { UsageError } from '../errors.js';
import { loggedSteps, type FirewallModel, type Match, type Step } from './model.js';

export const IPT_CHAIN = 'PORTWARDEN-INPUT';
/** Published (DNAT'd) container ports, on the forward path, by their original destination port. */
export const IPT_FORWARD_CHAIN = 'PORTWARDEN-FORWARD';
const LOG_CHAIN_PREFIX = 'PORTWARDEN-LOG-';

const HASHLIMIT_UNIT = { second: 'sec', minute: 'min', hour: 'hour', day: 'day' } as const;
const EXPIRE_MS = { second: 10_000, minute: 120_000, hour: 7_200_000, day: 172_800_000 } as const;

const q = (s: string) => JSON.stringify(s);

/**
 * xt_recent lists of the sources each rule refused (r), rate-limited (l), and of the default
 * refusal: iptables keeps no per-source counters, so these are the coarse record of who knocked
 * (/proc/net/xt_recent/NAME: last seen, the last hits up to the module's ip_pkt_list_tot).
 */
// One list per family: a list shared by iptables and ip6tables rules masks IPv6 sources with the
// IPv4 rule's mask (2001:db8:1::11 is kept as 2001:db8::), whatever the IPv6 rule says.
export const recentDefault = (family: 4 | 6) => `pw-default${family === 6 ? '-v6' : ''}`;
export const recentList = (kind: 'refused' | 'limited', ruleIndex: number, family: 4 | 6) => `pw-${kind === 'refused' ? 'r' : 'l'}${ruleIndex}${family === 6 ? '-v6' : ''}`;
/** Written as iptables-save lists it (with the full mask), so a listing compares equal to the file. */
const recentSet = (name: string, family: 4 | 6) => ` -m recent --set --name ${name} --mask ${family === 4 ? '255.255.255.255' : 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'} --rsource`;

/** -p/--dport arguments; multiport takes at most 15 slots (a range uses two), so long lists are split. */
function portArgs(proto: string, ps: PortRange[]): string[] {
  if (ps.length === 1) {
    const p = ps[0]!;
    return [`-p ${proto} --dport ${p.lo === p.hi ? p.lo : `${p.lo}:${p.hi}`}`];
  }
  const chunks: string[] = [];
  let cur: string[] = [];
  let slots = 0;
  for (const p of ps) {
    const cost = p.lo === p.hi ? 1 : 2;
    if (slots + cost > 15) {
      chunks.push(cur.join(','));
      cur = [];
      slots = 0;
    }
    cur.push(p.lo === p.hi ? `${p.lo}` : `${p.lo}:${p.hi}`);
    slots += cost;
  }
  chunks.push(cur.join(','));
  return chunks.map((c) => `-p ${proto} -m multiport --dports ${c}`);
}

/** The same ports as the original destination of a DNAT'd connection: conntrack takes one range per rule. */
function origPortArgs(proto: string, ps: PortRange[]): string[] {
  return ps.map((p) => `-p ${proto} -m conntrack --ctorigdstport ${p.lo === p.hi ? p.lo : `${p.lo}:${p.hi}`}`);
}

function refuseTarget(model: FirewallModel, proto: string, family: 4 | 6): string {
  if (model.refuse === 'drop') return 'DROP';
  if (proto === 'tcp') return 'REJECT --reject-with tcp-reset';
  return `REJECT --reject-with ${family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'}`;
}

/**
 * iptables has no sets: each source prefix and port chunk is a rule of its own, so a policy of
 * large groups multiplies (a 10 000-rule policy over 100 000 prefixes would be millions of rules,
 * more than one string can hold). Beyond this, the nft backend is the one to use.
 */
export const IPTABLES_MAX_RULES = 250_000;

export function renderIptables(model: FirewallModel, family: 4 | 6, header: string[] = []): string {
  const sets = new Map(model.sets.map((s) => [s.name, s.elements]));
  const A = `-A ${IPT_CHAIN}`;
  const F = `-A ${IPT_FORWARD_CHAIN}`;
  const refuse = (step: Step & { kind: 'refuse' | 'limit' }) =>
    step.log ? `-j ${LOG_CHAIN_PREFIX}${step.log.id}` : `-j ${refuseTarget(model, step.match.proto, family)}`;
  const meterIndex = new Map(model.meters.map((m, i) => [m.name, i]));
  const ruleIndex = new Map(model.ruleChains.map((c, i) => [c.rule, i]));
  let total = 0;
  /**
   * The policy's steps as rules of one chain. On the forward path an allowed connection RETURNs,
   * so the rest of FORWARD (Docker's own chains) still decides; only a refusal is final.
   */
  const stepLines = (chain: string, ports: (proto: string, ps: PortRange[]) => string[], accept: string): string[] => {
    const lines: string[] = [];
    /** One line per port chunk and per source prefix (iptables has no sets without ipset). */
    const emit = (m: Match, tail: string, extra = '') => {
      if (m.family && m.family !== family) return;
      const sources = m.set ? (sets.get(m.set) ?? []).map((s) => `-s ${s} `) : [''];
      const chunks = ports(m.proto, m.ports);
      total += sources.length * chunks.length;
      if (total > IPTABLES_MAX_RULES) {
        throw new UsageError(`the iptables backend would need more than ${IPTABLES_MAX_RULES} rules for ${family === 4 ? 'IPv4' : 'IPv6'} (iptables has no sets: a rule per source prefix and port list); use --backend nft`);
      }
      for (const src of sources) for (const p of chunks) lines.push(`${chain} ${src}${p}${extra} ${tail}`);
    };
    for (const step of model.steps) {
      const comment = `-m comment --comment ${q(step.rule)}`;
      if (step.kind === 'accept') emit(step.match, `${comment} -j ${accept}`);
      else if (step.kind === 'refuse') emit(step.match, `${comment} ${refuse(step)}`, chain === A ? recentSet(recentList('refused', ruleIndex.get(step.rule)!, family), family) : '');
      else {
        const name = `pw-rate-${meterIndex.get(step.meter)}`;
        const hl = ` -m conntrack --ctstate NEW -m hashlimit --hashlimit-name ${name} --hashlimit-mode srcip --hashlimit-above ${step.count}/${HASHLIMIT_UNIT[step.unit]} --hashlimit-burst ${step.count} --hashlimit-htable-expire ${EXPIRE_MS[step.unit]}`;
        const note = chain === A ? recentSet(recentList('limited', ruleIndex.get(step.rule)!, family), family) : '';
        emit(step.match, `-m comment --comment ${q(step.rule + ': rate')} ${refuse(step)}`, hl + note);
      }
    }
    return lines;
  };
  const lines = stepLines(A, portArgs, 'ACCEPT');
  const logged = loggedSteps(model);
  const icmp =
    family === 4
      ? [
          ...['destination-unreachable', 'time-exceeded', 'parameter-problem'].map((t) => `${A} -p icmp --icmp-type ${t} -m comment --comment "icmp errors" -j ACCEPT`),
          `${A} -p icmp --icmp-type echo-request -m limit --limit 10/sec --limit-burst 20 -m comment --comment "ping" -j ACCEPT`,
        ]
      : [
          ...[
            'destination-unreachable', 'packet-too-big', 'time-exceeded', 'parameter-problem', 'router-solicitation',
            'router-advertisement', 'neighbour-solicitation', 'neighbour-advertisement',
          ].map((t) => `${A} -p ipv6-icmp --icmpv6-type ${t} -m comment --comment "icmpv6 essentials" -j ACCEPT`),
          `${A} -p ipv6-icmp --icmpv6-type echo-request -m limit --limit 10/sec --limit-burst 20 -m comment --comment "ping6" -j ACCEPT`,
        ];
  const fallthrough = (chain: string) => {
    const note = chain === A ? recentSet(recentDefault(family), family) : '';
    return model.fallthrough === 'accept'
      ? [`${chain} -m comment --comment "default accept" -j RETURN`]
      : [
          ...(model.refuse === 'reject'
            ? [`${chain} -p tcp${note} -m comment --comment "default" -j ${refuseTarget(model, 'tcp', family)}`, `${chain} -p udp${note} -m comment --comment "default" -j ${refuseTarget(model, 'udp', family)}`]
            : []),
          `${chain}${note} -m comment --comment "default drop" -j DROP`,
        ];
  };
  const logLines = logged.flatMap((step) => [
    `-A ${LOG_CHAIN_PREFIX}${step.log.id} -m limit --limit 10/min --limit-burst 5 -m comment --comment ${q(step.rule)} -j LOG --log-prefix ${q(step.log.prefix)} --log-level info`,
    `-A ${LOG_CHAIN_PREFIX}${step.log.id} -p ${step.match.proto} -m comment --comment ${q(step.rule)} -j ${refuseTarget(model, step.match.proto, family)}`,
  ]);
  return (
    [
      ...header.map((h) => `# ${h}`),
      `# For ${family === 4 ? 'iptables' : 'ip6tables'}-restore --noflush: declares (flushes) only portwarden's chains.`,
      `# portwarden apply keeps exactly one jump each: -I INPUT 1 -j ${IPT_CHAIN}, -I FORWARD 1 -j ${IPT_FORWARD_CHAIN}`,
      '*filter',
      `:${IPT_CHAIN} - [0:0]`,
      `:${IPT_FORWARD_CHAIN} - [0:0]`,
      ...logged.map((step) => `:${LOG_CHAIN_PREFIX}${step.log.id} - [0:0]`),
      `${A} -m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment "established" -j ACCEPT`,
      `${A} -m conntrack --ctstate INVALID -m comment --comment "invalid" -j DROP`,
      `${A} -i lo -m comment --comment "loopback" -j ACCEPT`,
      ...icmp,
      ...lines,
      ...fallthrough(A),
      // Forwarded connections: only new ones a DNAT (a published container port) sent here.
      `${F} -m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment "established" -j RETURN`,
      `${F} -m conntrack ! --ctstate DNAT -m comment --comment "not published" -j RETURN`,
      ...stepLines(F, origPortArgs, 'RETURN'),
      ...fallthrough(F),
      ...logLines,
      'COMMIT',
    ].join('\n') + '\n'
  );
}

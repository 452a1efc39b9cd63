// portwarden explain PORT[/PROTO] --from ADDR [--json] [--netns NAME]: one hypothetical new
// connection through the live ruleset, rule by rule.
import { UsageError, RuntimeError } from '../errors.js';
import { familyOf, prefixSet } from '../exposure/intervals.js';
import { interfaceTowards, splitTarget } from '../exposure/exposure.js';
import { neighbourDiscovery } from '../exposure/neighbour.js';
import { Interpreter, type Packet } from '../exposure/interpret.js';
import { readFirewall } from '../exposure/read.js';
import { parse } from './args.js';
import { checkNetns } from './scan.js';

export async function runExplain(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { from: { type: 'string' }, json: { type: 'boolean' }, netns: { type: 'string' }, iif: { type: 'string' } }, true);
  const m = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(positionals[0] ?? '');
  if (!m || positionals.length !== 1 || Number(m[1]) < 1 || Number(m[1]) > 65535) throw new UsageError('usage: portwarden explain PORT[/tcp|/udp] --from ADDR [--json] [--netns NAME]');
  const from = values.from;
  const family = from ? familyOf(from) : null;
  if (!from || !family || from.includes('/')) throw new UsageError('--from takes one IPv4 or IPv6 address');
  if (values.netns !== undefined) checkNetns(values.netns);
  const fw = await readFirewall(values.netns);
  if (!fw.ruleset) throw new RuntimeError(`cannot read the firewall: ${fw.error}`);
  const iif = values.iif ?? fw.interfaces[0] ?? 'eth0';
  const packet = { family, proto: (m[2] ?? 'tcp') as 'tcp' | 'udp', dport: Number(m[1]), iif };
  const source = prefixSet(family, from);
  // Before routing: the prerouting filter chains (a raw blocklist), then the nat chains, where a
  // DNAT sends the connection down the forward path instead.
  const pre = new Interpreter(fw.ruleset, { ...packet, hook: 'prerouting' }, true).run(source);
  const nat = new Interpreter(fw.ruleset, { ...packet, hook: 'prerouting' }, true).runNat(pre.accepted);
  const to = [...nat.dnat.entries()].find(([, s]) => !s.isEmpty())?.[0];
  let hop: Packet = packet;
  if (to) {
    const { addr, port } = splitTarget(to);
    hop = { ...packet, hook: 'forward', daddr: addr, dport: port ?? packet.dport, origDport: packet.dport, oif: interfaceTowards(addr, fw.addresses ?? []) };
  }
  const stopped = pre.accepted.isEmpty();
  const v = stopped ? pre : to === null || !nat.undetermined.isEmpty() ? null : new Interpreter(fw.ruleset, hop, true).run(source);
  const trace = stopped ? pre.trace : [...pre.trace, ...nat.trace, ...(v?.trace ?? [])];
  const reasons = [...pre.reasons, ...(stopped ? [] : nat.reasons), ...(v && v !== pre ? v.reasons : []), ...(to === null ? ['the DNAT does not say where it sends the connection'] : [])];
  let verdict = !v || !v.undetermined.isEmpty() ? 'undetermined' : !v.accepted.isEmpty() ? 'accept' : v.trace.some((s) => s.outcome === 'reject') ? 'reject' : 'drop';
  // IPv6 gets nowhere without neighbour discovery: the client's solicitation (and, behind a
  // DNAT, the container's advertisement) must get in too.
  if (family === 6 && verdict === 'accept') {
    const checks = [{ nd: neighbourDiscovery(fw, iif), what: `a neighbour solicitation from ${from} on ${iif}`, region: source }];
    if (to && hop.daddr) checks.push({ nd: neighbourDiscovery(fw, hop.oif ?? '', prefixSet(6, hop.daddr)), what: `a neighbour advertisement from ${hop.daddr} on ${hop.oif ?? '?'}`, region: prefixSet(6, hop.daddr) });
    for (const { nd, what, region } of checks) {
      if (!nd.ok.intersect(region).isEmpty()) continue;
      verdict = nd.unsure.intersect(region).isEmpty() ? 'drop' : 'undetermined';
      reasons.push(verdict === 'drop' ? `${what} is refused: no IPv6 packet gets through without it` : `cannot tell whether ${what} gets in: ${nd.reasons.join('; ')}`);
    }
  }
  if (values.json) {
    process.stdout.write(JSON.stringify({ packet: { ...packet, from }, ...(to ? { dnat: to, oif: hop.oif ?? null } : {}), steps: trace, verdict, reasons }, null, 2) + '\n');
    return 0;
  }
  process.stdout.write(`new ${packet.proto} connection from ${from} to port ${packet.dport} via ${iif}${to ? `, DNAT to ${to} (forward path${hop.oif ? ` out ${hop.oif}` : ''})` : ''}:\n`);
  if (!trace.length) process.stdout.write(`  no ${to ? 'forward' : 'input'}-hook rule matches it\n`);
  for (const s of trace) {
    process.stdout.write(`  ${s.chain}${s.handle !== null ? ` handle ${s.handle}` : ''}${s.comment ? ` "${s.comment}"` : ''}: ${s.outcome}\n    ${s.rule}\n`);
  }
  for (const r of reasons) process.stdout.write(`  ${r}\n`);
  process.stdout.write(`verdict: ${verdict}\n`);
  return 0;
}

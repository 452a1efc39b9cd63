// portwarden explain PORT[/PROTO] --from ADDR [--iif IFACE] [--to ADDR] [--json] [--netns NAME]:
// one connection through the live ruleset, packet by packet and rule by rule — the same path
// (exposure/path.ts) that scan's exposure follows for whole regions of sources.
import { UsageError, RuntimeError } from '../errors.js';
import { hostAddressesOn, interfaceTowards, routeTo, type FirewallView } from '../exposure/exposure.js';
import { familyOf, prefixSet } from '../exposure/intervals.js';
import { verdictOf, walkPath } from '../exposure/path.js';
import { readFirewall } from '../exposure/read.js';
import { parse } from './args.js';
import { SPECS, synopsis } from './specs.js';
import { checkNetns } from '../collect/snapshot.js';

const USAGE = `usage: portwarden explain ${synopsis(SPECS.explain)}  (PROTO: tcp or udp)`;

/** The interface a client's packets come in on: the one the route back to it leaves through. */
function interfaceFrom(fw: FirewallView, from: string): string {
  const routed = routeTo(fw, from);
  if (routed && (fw.interfaces.includes(routed) || !fw.interfaces.length)) return routed;
  // No route read or none matches: the interface whose own prefix holds it, else the first.
  return interfaceTowards(from, fw.addresses ?? []) ?? fw.interfaces[0] ?? 'eth0';
}

export async function runExplain(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, SPECS.explain.options, true);
  const m = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(positionals[0] ?? '');
  if (!m || positionals.length !== 1 || Number(m[1]) < 1 || Number(m[1]) > 65535) throw new UsageError(USAGE);
  const from = values.from;
  const family = from ? familyOf(from) : null;
  if (!from || !family || from.includes('/')) throw new UsageError('--from takes one IPv4 or IPv6 address');
  if (values.to !== undefined && (familyOf(values.to) !== family || values.to.includes('/'))) throw new UsageError(`--to takes one ${family === 4 ? 'IPv4' : 'IPv6'} address of this host, the family of --from`);
  if (values.netns !== undefined) checkNetns(values.netns);
  const fw = await readFirewall(values.netns);
  if (!fw.ruleset) throw new RuntimeError(`cannot read the firewall: ${fw.error}`);
  const iif = values.iif ?? interfaceFrom(fw, from);
  const proto = (m[2] ?? 'tcp') as 'tcp' | 'udp';
  const port = Number(m[1]);
  const host = { ruleset: fw.ruleset, ...(fw.addresses ? { addresses: fw.addresses } : {}), ...(fw.routes ? { routes: fw.routes } : {}), ...(fw.forwarding ? { forwarding: fw.forwarding } : {}) };
  let path = walkPath(host, { family, proto, port, iif, listening: true, ...(values.to ? { daddr: values.to } : {}) }, prefixSet(family, from), true);
  // A rule asked which of our addresses the client connects to: when all of the interface's
  // addresses give the same answer, that is the answer; otherwise --to must pick one.
  let asked = values.to;
  if (path.askedDaddr && !asked) {
    const candidates = hostAddressesOn(fw, family, iif);
    const walks = candidates.map((daddr) => walkPath(host, { family, proto, port, iif, listening: true, daddr }, prefixSet(family, from), true));
    if (walks.length && walks.every((w) => verdictOf(w) === verdictOf(walks[0]!))) {
      path = walks[0]!;
      asked = candidates.length === 1 ? candidates[0] : undefined;
    }
  }
  const reasons = [...path.reasons];
  if (path.askedDaddr && !asked && !path.maybe.isEmpty()) reasons.push('a rule matches the address the client asked for, and this host\'s addresses differ: give --to ADDR to pick one');
  const to = [...path.dnat.keys()][0];
  const verdict = verdictOf(path);
  if (values.json) {
    const packet = { family, proto, dport: port, iif, from, ...(asked ? { to: asked } : {}) };
    process.stdout.write(JSON.stringify({ packet, ...(to !== undefined ? { dnat: to, oif: (to !== null && path.oif.get(to)) ?? null } : {}), steps: path.trace, verdict, reasons }, null, 2) + '\n');
    return 0;
  }
  const via = to === undefined ? '' : to?.startsWith(':') || (to !== null && !path.oif.has(to)) ? `, redirected to ${to} on this host` : `, DNAT to ${to ?? '?'} (forward path${to !== null && path.oif.get(to) ? ` out ${path.oif.get(to)}` : ''})`;
  process.stdout.write(`new ${proto} connection from ${from} to port ${port}${asked ? ` at ${asked}` : ''} via ${iif}${via}:\n`);
  if (!path.trace.length) process.stdout.write('  no rule matches any of its packets\n');
  let packet: string | undefined;
  for (const s of path.trace) {
    if (s.packet !== packet) process.stdout.write(` ${(packet = s.packet) ?? ''}:\n`);
    process.stdout.write(`  ${s.chain}${s.handle !== null ? ` handle ${s.handle}` : ''}${s.comment ? ` "${s.comment}"` : ''}: ${s.outcome}\n    ${s.rule}\n`);
  }
  for (const r of reasons) process.stdout.write(`  ${r}\n`);
  process.stdout.write(`verdict: ${verdict}\n`);
  return 0;
}

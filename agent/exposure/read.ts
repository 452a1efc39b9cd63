// Reads the live firewall — nftables, iptables-legacy, and iptables-nft's own listing for the rules
// nft can only show as `xt` — and the interfaces with their addresses (inside --netns when given),
// all at once. I/O edge.
import { readFile } from 'node:fs/promises';
import { exec as defaultExec, inNetns, type Exec, type ExecResult } from '../exec.js';
import type { FirewallView } from './exposure.js';
import type { Route } from './host.js';
import { addLegacy, fillXt } from './iptables-save.js';
import { fillDevices, parseNftJson } from './nft-json.js';
import { findPublished } from './published.js';

/** A per-namespace /proc file (ip_tables_names, a sysctl) as the namespace sees it; null: unreadable. */
async function readProcFile(netns: string | undefined, exec: Exec, file: string): Promise<string | null> {
  if (netns === undefined) return readFile(file, 'utf8').catch(() => null);
  const r = await exec(...inNetns(netns, 'cat', [file])).catch(() => null);
  return r && r.code === 0 ? r.stdout : null;
}

/** Whether iptables-legacy holds tables of this family (/proc/net/ip_tables_names lists them). */
export const legacyTables = async (netns: string | undefined, exec: Exec, file: string) => ((await readProcFile(netns, exec, file))?.trim() ?? '') !== '';

export async function readFirewall(netns?: string, exec: Exec = defaultExec): Promise<FirewallView> {
  const run = (cmd: string, args: string[]): Promise<ExecResult | Error> => exec(...inNetns(netns, cmd, args)).catch((err: Error) => err);
  const ok = (r: ExecResult | Error | null): string | null => (r && !(r instanceof Error) && r.code === 0 ? r.stdout : null);
  // iptables-legacy-save only where legacy tables exist (it would load the kernel module), and
  // iptables-nft-save only when nft shows rules it cannot print (xt expressions).
  const [links, routes4, routes6, forward4, forward6, nft, has4, has6] = await Promise.all([
    run('ip', ['-j', 'addr', 'show']),
    run('ip', ['-j', '-4', 'route', 'show']),
    run('ip', ['-j', '-6', 'route', 'show']),
    readProcFile(netns, exec, '/proc/sys/net/ipv4/conf/all/forwarding'),
    readProcFile(netns, exec, '/proc/sys/net/ipv6/conf/all/forwarding'),
    run('nft', ['-j', 'list', 'ruleset']),
    legacyTables(netns, exec, '/proc/net/ip_tables_names'),
    legacyTables(netns, exec, '/proc/net/ip6_tables_names'),
  ]);
  const hasXt = /"xt":\s*\{/.test(ok(nft) ?? '');
  const [legacy4, legacy6, xt4, xt6] = await Promise.all([
    has4 ? run('iptables-legacy-save', []) : null,
    has6 ? run('ip6tables-legacy-save', []) : null,
    hasXt ? run('iptables-nft-save', []) : null,
    hasXt ? run('ip6tables-nft-save', []) : null,
  ]);
  const view: FirewallView = { ruleset: null, error: null, interfaces: [], addresses: [], legacyRules: 0, published: [] };
  // No ip: evaluate for a generic interface. No legacy tools: no legacy rules to worry about.
  const linkText = ok(links);
  if (linkText) {
    const ifs = JSON.parse(linkText) as { ifname: string; addr_info?: { local?: string; prefixlen?: number }[] }[];
    view.interfaces = ifs.map((i) => i.ifname).filter((n) => n !== 'lo');
    view.addresses = ifs.flatMap((i) => (i.addr_info ?? []).filter((a) => a.local && a.prefixlen !== undefined).map((a) => ({ iface: i.ifname, cidr: `${a.local}/${a.prefixlen}` })));
  }
  if (forward4 !== null && forward6 !== null) view.forwarding = { 4: forward4.trim() === '1', 6: forward6.trim() === '1' };
  const routeText = [ok(routes4), ok(routes6)];
  if (routeText.every((t) => t !== null)) view.routes = routeText.flatMap((t, i) => parseRoutes(t!, i === 0 ? 4 : 6));
  const notInstalled = nft instanceof Error && (nft as NodeJS.ErrnoException).code === 'ENOENT';
  if (nft instanceof Error && !notInstalled) view.error = nft.message;
  else if (!(nft instanceof Error) && nft.code !== 0) view.error = nft.stderr.trim().split('\n')[0] ?? `nft exited ${nft.code}`;
  else if (notInstalled && ok(legacy4) === null) view.error = 'nft is not installed';
  else {
    view.ruleset = parseNftJson(ok(nft) || '{"nftables":[]}');
    // nft 1.0.6's JSON does not say which device an ingress chain is attached to; its text does.
    if ([...view.ruleset.chains.values()].some((c) => c.hook === 'ingress' && !c.devices)) {
      const chains = ok(await run('nft', ['list', 'chains']));
      if (chains) fillDevices(view.ruleset, chains);
    }
    for (const [text, fam] of [[ok(xt4), 4], [ok(xt6), 6]] as const) if (text) fillXt(view.ruleset, text, fam);
    for (const [text, fam] of [[ok(legacy4), 4], [ok(legacy6), 6]] as const) if (text) view.legacyRules += addLegacy(view.ruleset, text, fam);
    view.published = findPublished(view.ruleset);
  }
  return view;
}

/** `ip -j route show` → routes by interface ("default" is the whole family). Pure. */
export function parseRoutes(text: string, family: 4 | 6): Route[] {
  const rows = JSON.parse(text || '[]') as { dst?: string; dev?: string; type?: string }[];
  return rows
    .filter((r) => r.dev && r.dst && (r.type === undefined || r.type === 'unicast'))
    .map((r) => ({ iface: r.dev!, family, dst: r.dst === 'default' ? (family === 4 ? '0.0.0.0/0' : '::/0') : r.dst!.includes('/') ? r.dst! : `${r.dst}/${family === 4 ? 32 : 128}` }));
}

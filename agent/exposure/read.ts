// Reads the live firewall — nftables, iptables-legacy, and iptables-nft's own listing for the rules
// nft can only show as `xt` — and the interfaces with their addresses (inside --netns when given),
// all at once. I/O edge.
import { readFile } from 'node:fs/promises';
import { exec as defaultExec, inNetns, netnsPath, type Exec, type ExecResult } from '../exec.js';
import type { FirewallView } from './exposure.js';
import type { Route } from './host.js';
import { addLegacy, fillXt } from './iptables-save.js';
import { fillDevices, parseNftJson } from './nft-json.js';
import { findPublished } from './published.js';

/**
 * Per-namespace /proc files (sysctls, ip_tables_names) as the namespace sees them: file → text,
 * null when unreadable or empty. Inside --netns one `grep -H` reads them all: one child, not one a file.
 */
async function readProcFiles(netns: string | undefined, exec: Exec, files: string[]): Promise<Map<string, string | null>> {
  if (netns === undefined) return new Map(await Promise.all(files.map(async (f) => [f, await readFile(f, 'utf8').catch(() => null)] as const)));
  const out = new Map<string, string | null>(files.map((f) => [f, null]));
  // Each line as "FILE:line"; -s: an unreadable file is left out (grep then exits 2, the rest is there).
  const r = await exec(...inNetns(netns, 'grep', ['-H', '-s', '', ...files])).catch(() => null);
  for (const line of r?.stdout.split('\n') ?? []) {
    const f = files.find((x) => line.startsWith(`${x}:`));
    if (f) out.set(f, `${out.get(f) ?? ''}${line.slice(f.length + 1)}\n`);
  }
  return out;
}

const PROC_FILES = ['/proc/sys/net/ipv4/conf/all/forwarding', '/proc/sys/net/ipv6/conf/all/forwarding', '/proc/net/ip_tables_names', '/proc/net/ip6_tables_names'];

/** Whether iptables-legacy holds tables of this family (/proc/net/ip{,6}_tables_names lists them). */
export async function legacyTables(netns: string | undefined, exec: Exec, file: string): Promise<boolean> {
  return ((await readProcFiles(netns, exec, [file])).get(file)?.trim() ?? '') !== '';
}

export async function readFirewall(netns?: string, exec: Exec = defaultExec): Promise<FirewallView> {
  // A bad name is a usage error before any child starts (none is left with an unheard rejection).
  if (netns !== undefined) netnsPath(netns);
  const run = (cmd: string, args: string[]): Promise<ExecResult | Error> => exec(...inNetns(netns, cmd, args)).catch((err: Error) => err);
  const ok = (r: ExecResult | Error | null): string | null => (r && !(r instanceof Error) && r.code === 0 ? r.stdout : null);
  // ip addr (-d: which links are a bridge's ports) and the IPv4 routes in one `ip -batch` (a
  // batch line cannot ask for IPv6 routes).
  const ipBatch = async (): Promise<[ExecResult | Error, ExecResult | Error]> => {
    const r = await exec(...inNetns(netns, 'ip', ['-j', '-d', '-batch', '-']), { input: 'addr show\nroute show\n' }).catch((err: Error) => err);
    const lines = r instanceof Error || r.code !== 0 ? [] : r.stdout.split('\n').filter((l) => l.trim());
    if (lines.length === 2) return [{ stdout: lines[0]!, stderr: '', code: 0 }, { stdout: lines[1]!, stderr: '', code: 0 }];
    return Promise.all([run('ip', ['-j', '-d', 'addr', 'show']), run('ip', ['-j', '-4', 'route', 'show'])]);
  };
  const [[links, routes4], routes6, proc, nft] = await Promise.all([
    ipBatch(),
    run('ip', ['-j', '-6', 'route', 'show']),
    readProcFiles(netns, exec, PROC_FILES),
    run('nft', ['-j', 'list', 'ruleset']),
  ]);
  const [forward4, forward6, names4, names6] = PROC_FILES.map((f) => proc.get(f) ?? null);
  // iptables-legacy holds tables of a family when ip{,6}_tables_names lists one.
  const has4 = (names4?.trim() ?? '') !== '';
  const has6 = (names6?.trim() ?? '') !== '';
  // iptables-legacy-save only where legacy tables exist (it would load the kernel module), and
  // iptables-nft-save only when nft shows rules it cannot print (xt expressions).
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
    const ifs = JSON.parse(linkText) as { ifname: string; linkinfo?: { info_slave_kind?: string }; addr_info?: { local?: string; prefixlen?: number }[] }[];
    // A bridge's or bond's port (a container's veth on docker0) hands its packets to the master:
    // the IP layer, and every iifname match, sees them arrive on the master.
    const port = (i: (typeof ifs)[number]) => i.linkinfo?.info_slave_kind === 'bridge' || i.linkinfo?.info_slave_kind === 'bond';
    view.interfaces = ifs.filter((i) => i.ifname !== 'lo' && !port(i)).map((i) => i.ifname);
    view.addresses = ifs.flatMap((i) => (i.addr_info ?? []).filter((a) => a.local && a.prefixlen !== undefined).map((a) => ({ iface: i.ifname, cidr: `${a.local}/${a.prefixlen}` })));
  }
  if (forward4 && forward6) view.forwarding = { 4: forward4.trim() === '1', 6: forward6.trim() === '1' };
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

// Reads the live firewall — nftables, iptables-legacy, and iptables-nft's own listing for the rules
// nft can only show as `xt` — and the interfaces with their addresses (inside --netns when given),
// all at once. I/O edge.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { exec as defaultExec, inNetns, netnsPath, type Exec, type ExecOptions, type ExecResult } from '../exec.js';
import type { FirewallView } from './exposure.js';
import type { Route } from './host.js';
import { addLegacy, fillXt } from './iptables-save.js';
import { fillDevices, nftObjects, rulesetOf, tableOf, type NftObject } from './nft-json.js';
import { OUR_TABLE_KEY } from '../firewall/model.js';
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

const FORWARDING = ['/proc/sys/net/ipv4/conf/all/forwarding', '/proc/sys/net/ipv6/conf/all/forwarding'];
const LEGACY_NAMES = ['/proc/net/ip_tables_names', '/proc/net/ip6_tables_names'];

/** Whether iptables-legacy holds tables of this family (/proc/net/ip{,6}_tables_names lists them). */
export async function legacyTables(netns: string | undefined, exec: Exec, file: string): Promise<boolean> {
  return ((await readProcFiles(netns, exec, [file])).get(file)?.trim() ?? '') !== '';
}

/** The part of the view read from the rules (nft, iptables-nft's xt listing, iptables-legacy). */
type RulesPart = Pick<FirewallView, 'ruleset' | 'error' | 'legacyRules' | 'published'>;

/** What was read, with nft's objects by table, so that a change of a few tables re-reads only those. */
export interface KeptRules {
  key: string;
  part: RulesPart;
  /** The nft generation when it was read (null: not watched). */
  generation: number | null;
  tables: Map<string, NftObject[]>;
  /** Whether a listing had xt expressions (iptables-nft's own rules). */
  xt: boolean;
  /** The legacy part of the key. */
  legacy: string;
}

/** Listings (tables, chains, sets) a change may need and be re-read alone; more read everything. */
const RELIST_MAX = 8;
const XT = /"xt":\s*\{/;
/** What changed in one table: the whole of it (a chain, a set, the table itself), or only the rules of some chains and the elements of some sets. */
export interface Touched {
  whole: boolean;
  chains: string[];
  sets: string[];
}

/** The part read from the host: interfaces, addresses, routes, forwarding. */
type HostPart = Pick<FirewallView, 'interfaces' | 'addresses' | 'routes' | 'forwarding'>;

/**
 * What the daemon keeps between cycles: the rules part of the view and what it was read from. The
 * ruleset is parsed again only when that changed; the interfaces, routes and sysctls are cheap and
 * read every time.
 */
export interface RulesCache {
  /** Changes whenever the nft ruleset may have changed (nft monitor); null: nothing watches it, so its text listing is hashed instead. */
  generation(): number | null;
  kept: KeptRules | null;
  /**
   * What the monitor saw change after generation `since`, by table ("family name"); null when that
   * cannot be told (a change naming no table, the monitor restarted): then everything is read.
   */
  touched?(since: number): Map<string, Touched> | null;
  /** Changes whenever the interfaces, addresses, routes or forwarding may have changed (ip monitor); null: read them every time. */
  hostGeneration?(): number | null;
  keptHost?: { key: number; part: HostPart } | null;
  /** A process inside the namespace, whose /proc/PID/net saves starting a program to read it. */
  procPid?(): number | undefined;
}

/** iptables-legacy-save without what changes with every packet or call: counters, the dated comments. Pure. */
export function legacyFingerprint(text: string): string {
  return createHash('sha256').update(text.replace(/^#.*\n?/gm, '').replace(/\[\d+:\d+\]/g, '')).digest('hex');
}

const LEGACY_SAVES = ['iptables-legacy-save', 'ip6tables-legacy-save'];

/** ip{,6}_tables_names through /proc/PID/net of a process inside the namespace: no program to start. */
const legacyNamesOf = (pid: number) => Promise.all(LEGACY_NAMES.map((f) => readFile(`/proc/${pid}/net/${f.slice('/proc/net/'.length)}`, 'utf8').catch(() => null)));

/**
 * A fingerprint of what iptables-legacy holds (it has no monitor: this is its poll). `nsPid`: a
 * process inside the namespace, whose /proc/PID/net saves starting a program to read the names.
 */
export async function legacyKey(netns: string | undefined, exec: Exec = defaultExec, nsPid?: number): Promise<string> {
  const names = nsPid ? await legacyNamesOf(nsPid) : await readProcFiles(netns, exec, LEGACY_NAMES).then((m) => LEGACY_NAMES.map((f) => m.get(f) ?? null));
  const parts = await Promise.all(LEGACY_SAVES.map(async (save, i) => {
    if (!names[i]?.trim()) return '-';
    const r = await exec(...inNetns(netns, save, [])).catch(() => null);
    return r && r.code === 0 ? legacyFingerprint(r.stdout) : `error ${r?.code ?? ''}`;
  }));
  return parts.join(' ');
}

export async function readFirewall(netns?: string, exec: Exec = defaultExec, cache?: RulesCache): Promise<FirewallView> {
  const run = (cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult | Error> => exec(...inNetns(netns, cmd, args), opts).catch((err: Error) => err);
  const ok = (r: ExecResult | Error | null): string | null => (r && !(r instanceof Error) && r.code === 0 ? r.stdout : null);
  if (netns !== undefined) netnsPath(netns); // a bad name is refused before any read starts
  // Read before anything else: a change while we read moves it on, and the next cycle reads again.
  const generation = cache ? cache.generation() : null;
  const hostGeneration = cache?.hostGeneration?.() ?? null;
  const keptHost = hostGeneration !== null && cache?.keptHost?.key === hostGeneration ? cache.keptHost.part : null;
  const pid = cache?.procPid?.();
  // The /proc files in one read (one child inside --netns): the forwarding sysctls when the host
  // part is read, the legacy table names unless the monitor's process lets us read them directly.
  const wanted = [...(keptHost ? [] : FORWARDING), ...(pid ? [] : LEGACY_NAMES)];
  const [proc, hostTools, nftFirst, pidNames] = await Promise.all([
    wanted.length ? readProcFiles(netns, exec, wanted) : new Map<string, string | null>(),
    keptHost ? null : readHostTools(netns, exec, run),
    // Cached and not watched: the text listing, hashed, says whether the JSON must be read again.
    !cache ? run('nft', ['-j', 'list', 'ruleset']) : generation === null ? run('nft', ['list', 'ruleset'], { stdoutToFile: true }) : null, // text: see stdoutToFile
    pid ? legacyNamesOf(pid) : null,
  ]);
  const host = keptHost ?? hostPart(hostTools!, proc.get(FORWARDING[0]!) ?? null, proc.get(FORWARDING[1]!) ?? null, ok);
  // A failed read is never kept (an ip that timed out would leave no interfaces until the next change).
  const complete = keptHost !== null || (ok(hostTools![0]) !== null && host.routes !== undefined && host.forwarding !== undefined);
  if (cache && hostGeneration !== null) cache.keptHost = complete ? { key: hostGeneration, part: host } : null;
  // iptables-legacy-save only where legacy tables exist (it would load the kernel module).
  const [names4, names6] = pidNames ?? LEGACY_NAMES.map((f) => proc.get(f) ?? null);
  const has4 = (names4?.trim() ?? '') !== '';
  const has6 = (names6?.trim() ?? '') !== '';
  const [legacy4, legacy6] = await Promise.all([has4 ? run(LEGACY_SAVES[0]!, []) : null, has6 ? run(LEGACY_SAVES[1]!, []) : null]);
  const view: FirewallView = { ruleset: null, error: null, interfaces: host.interfaces, addresses: host.addresses, legacyRules: 0, published: [] };
  if (host.forwarding) view.forwarding = host.forwarding;
  if (host.routes) view.routes = host.routes;
  // A failed read is never kept: the next cycle tries again.
  const listing = generation !== null ? `generation ${generation}` : cache ? ok(nftFirst) : null;
  const legacyTexts = [has4 ? ok(legacy4) : '-', has6 ? ok(legacy6) : '-'];
  const legacyPart = legacyTexts.includes(null) ? null : legacyTexts.map((t) => (t === '-' ? t : legacyFingerprint(t!))).join(' ');
  const key = listing === null || legacyPart === null ? null : `${generation !== null ? listing : legacyFingerprint(listing)} ${legacyPart}`;
  const kept = cache?.kept ?? null;
  let part = key !== null && kept?.key === key ? kept.part : null;
  if (!part && key !== null && kept && generation !== null && kept.generation !== null && kept.legacy === legacyPart) {
    const touched = cache!.touched?.(kept.generation) ?? null;
    if (touched) {
      const again = await relist(kept, touched, run);
      if (again) {
        part = await rulesFrom(again.tables, again.xt, ok(legacy4), ok(legacy6), run, ok);
        cache!.kept = { ...again, key, part, generation, legacy: legacyPart };
      }
    }
  }
  if (!part) {
    const nft = cache ? await run('nft', ['-j', 'list', 'ruleset']) : nftFirst!;
    const read = await readRules(nft, ok(legacy4), ok(legacy6), run, ok);
    part = read.part;
    if (cache) cache.kept = key !== null && part.error === null ? { key, part, generation, tables: read.tables, xt: read.xt, legacy: legacyPart! } : null;
  }
  return Object.assign(view, part);
}

/** nft's objects grouped by table, in the listing's order (which is the order the tables were made). */
function byTable(objects: NftObject[]): Map<string, NftObject[]> {
  const tables = new Map<string, NftObject[]>();
  for (const o of objects) {
    const t = tableOf(o);
    if (t === null) continue;
    let list = tables.get(t);
    if (!list) tables.set(t, (list = []));
    list.push(o);
  }
  return tables;
}

/** One `nft -j list` of what changed: a table, a chain (its rules), or a set or map (its elements). */
type Listing = { table: string; what: 'table' | 'chain' | 'set' | 'map'; name: string };

/**
 * The listings a change needs: a table touched whole is listed whole, and so is one not kept
 * (new); of the others only the chains whose rules and the sets whose elements changed. Our own
 * table touched whole (apply made it anew, thousands of rules) and more than RELIST_MAX listings:
 * null, everything is read. Pure.
 */
export function listingsFor(kept: ReadonlyMap<string, NftObject[]>, touched: ReadonlyMap<string, Touched>): Listing[] | null {
  const out: Listing[] = [];
  for (const [table, t] of touched) {
    const objects = kept.get(table);
    if (t.whole || !objects) {
      if (table === OUR_TABLE_KEY) return null;
      out.push({ table, what: 'table', name: table.slice(table.indexOf(' ') + 1) });
      continue;
    }
    for (const chain of t.chains) out.push({ table, what: 'chain', name: chain });
    // An element event does not say set or map: the kept listing does.
    for (const set of t.sets) out.push({ table, what: objects.some((o) => o.map?.name === set) ? 'map' : 'set', name: set });
  }
  return out.length <= RELIST_MAX ? out : null;
}

/**
 * A table's kept objects with what was listed again put in place: a chain's rules where its
 * rules were (or at the end: the interpreter groups rules by chain, in order), a set or map
 * object where it was. Pure.
 */
export function withRelisted(objects: readonly NftObject[], what: 'chain' | 'set' | 'map', name: string, listed: readonly NftObject[]): NftObject[] {
  if (what !== 'chain') {
    const fresh = listed.find((o) => o[what]?.name === name);
    return fresh ? objects.map((o) => (o[what]?.name === name ? fresh : o)) : objects.filter((o) => o[what]?.name !== name);
  }
  const rules = listed.filter((o) => o.rule?.chain === name);
  const at = objects.findIndex((o) => o.rule?.chain === name);
  const others = objects.filter((o) => o.rule?.chain !== name);
  const place = at < 0 ? others.length : objects.slice(0, at).filter((o) => o.rule?.chain !== name).length;
  return [...others.slice(0, place), ...rules, ...others.slice(place)];
}

/**
 * The kept tables with what changed listed again (`nft -j list table|chain|set|map`: milliseconds
 * for a small table or a set, a fraction of a second for one chain of a large table, against
 * seconds for everything), a table gone left out. null when everything must be read: too much
 * changed, our table was made anew, or a listing failed (a chain or set deleted meanwhile: its
 * event, still to come, reads the table).
 */
async function relist(kept: KeptRules, touched: ReadonlyMap<string, Touched>, run: (cmd: string, args: string[]) => Promise<ExecResult | Error>): Promise<{ tables: Map<string, NftObject[]>; xt: boolean } | null> {
  const wanted = listingsFor(kept.tables, touched);
  if (!wanted) return null;
  const tables = new Map(kept.tables);
  let xt = kept.xt;
  const listed = await Promise.all(wanted.map(async (l) => {
    const space = l.table.indexOf(' ');
    return [l, await run('nft', ['-j', 'list', l.what, l.table.slice(0, space), ...(l.what === 'table' ? [] : [l.table.slice(space + 1)]), l.name])] as const;
  }));
  for (const [l, r] of listed) {
    if (r instanceof Error) return null;
    if (r.code !== 0) {
      if (l.what !== 'table' || !/No such file or directory/.test(r.stderr)) return null;
      tables.delete(l.table);
      continue;
    }
    xt ||= XT.test(r.stdout);
    const objects = byTable(nftObjects(r.stdout)).get(l.table) ?? [];
    tables.set(l.table, l.what === 'table' ? objects : withRelisted(tables.get(l.table) ?? [], l.what, l.name, objects));
  }
  return { tables, xt };
}

/** `ip addr` (-d: which links are a bridge's ports) and the routes: the IPv4 ones in the same `ip -batch` (a batch line cannot ask for IPv6 routes). */
async function readHostTools(
  netns: string | undefined,
  exec: Exec,
  run: (cmd: string, args: string[]) => Promise<ExecResult | Error>,
): Promise<[links: ExecResult | Error, routes4: ExecResult | Error, routes6: ExecResult | Error]> {
  const batch = async (): Promise<[ExecResult | Error, ExecResult | Error]> => {
    const r = await exec(...inNetns(netns, 'ip', ['-j', '-d', '-batch', '-']), { input: 'addr show\nroute show\n' }).catch((err: Error) => err);
    const lines = r instanceof Error || r.code !== 0 ? [] : r.stdout.split('\n').filter((l) => l.trim());
    if (lines.length === 2) return [{ stdout: lines[0]!, stderr: '', code: 0 }, { stdout: lines[1]!, stderr: '', code: 0 }];
    return Promise.all([run('ip', ['-j', '-d', 'addr', 'show']), run('ip', ['-j', '-4', 'route', 'show'])]);
  };
  const [[links, routes4], routes6] = await Promise.all([batch(), run('ip', ['-j', '-6', 'route', 'show'])]);
  return [links, routes4, routes6];
}

/** Interfaces, addresses, routes and forwarding from what was read. No ip: evaluate for a generic interface. */
function hostPart(
  [links, routes4, routes6]: [ExecResult | Error, ExecResult | Error, ExecResult | Error],
  forward4: string | null,
  forward6: string | null,
  ok: (r: ExecResult | Error | null) => string | null,
): HostPart {
  const host: HostPart = { interfaces: [], addresses: [] };
  const linkText = ok(links);
  if (linkText) {
    const ifs = JSON.parse(linkText) as { ifname: string; linkinfo?: { info_slave_kind?: string }; addr_info?: { local?: string; prefixlen?: number }[] }[];
    // A bridge's or bond's port (a container's veth on docker0) hands its packets to the master:
    // the IP layer, and every iifname match, sees them arrive on the master.
    const port = (i: (typeof ifs)[number]) => i.linkinfo?.info_slave_kind === 'bridge' || i.linkinfo?.info_slave_kind === 'bond';
    host.interfaces = ifs.filter((i) => i.ifname !== 'lo' && !port(i)).map((i) => i.ifname);
    host.addresses = ifs.flatMap((i) => (i.addr_info ?? []).filter((a) => a.local && a.prefixlen !== undefined).map((a) => ({ iface: i.ifname, cidr: `${a.local}/${a.prefixlen}` })));
  }
  if (forward4 && forward6) host.forwarding = { 4: forward4.trim() === '1', 6: forward6.trim() === '1' };
  const routeText = [ok(routes4), ok(routes6)];
  if (routeText.every((t) => t !== null)) host.routes = routeText.flatMap((t, i) => parseRoutes(t!, i === 0 ? 4 : 6));
  return host;
}

/** The rules part from nft's JSON (plus the xt and legacy listings it needs), and nft's objects by table. */
async function readRules(
  nft: ExecResult | Error,
  legacy4: string | null,
  legacy6: string | null,
  run: (cmd: string, args: string[]) => Promise<ExecResult | Error>,
  ok: (r: ExecResult | Error | null) => string | null,
): Promise<{ part: RulesPart; tables: Map<string, NftObject[]>; xt: boolean }> {
  const notInstalled = nft instanceof Error && (nft as NodeJS.ErrnoException).code === 'ENOENT';
  const failed = (error: string) => ({ part: { ruleset: null, error, legacyRules: 0, published: [] }, tables: new Map<string, NftObject[]>(), xt: false });
  if (nft instanceof Error && !notInstalled) return failed(nft.message);
  if (!(nft instanceof Error) && nft.code !== 0) return failed(nft.stderr.trim().split('\n')[0] ?? `nft exited ${nft.code}`);
  if (notInstalled && legacy4 === null) return failed('nft is not installed');
  const text = ok(nft) || '{"nftables":[]}';
  const tables = byTable(nftObjects(text));
  const xt = XT.test(text);
  return { part: await rulesFrom(tables, xt, legacy4, legacy6, run, ok), tables, xt };
}

/** The rules part from nft's objects by table, with iptables-nft's xt listing where it has xt rules, and the legacy rules. */
async function rulesFrom(
  tables: Map<string, NftObject[]>,
  hasXt: boolean,
  legacy4: string | null,
  legacy6: string | null,
  run: (cmd: string, args: string[]) => Promise<ExecResult | Error>,
  ok: (r: ExecResult | Error | null) => string | null,
): Promise<RulesPart> {
  const part: RulesPart = { ruleset: null, error: null, legacyRules: 0, published: [] };
  const ruleset = rulesetOf((function* () {
    for (const list of tables.values()) yield* list;
  })());
  const [xt4, xt6] = await Promise.all([hasXt ? run('iptables-nft-save', []) : null, hasXt ? run('ip6tables-nft-save', []) : null]);
  // nft 1.0.6's JSON does not say which device an ingress chain is attached to; its text does.
  if ([...ruleset.chains.values()].some((c) => c.hook === 'ingress' && !c.devices)) {
    const chains = ok(await run('nft', ['list', 'chains']));
    if (chains) fillDevices(ruleset, chains);
  }
  for (const [text, fam] of [[ok(xt4), 4], [ok(xt6), 6]] as const) if (text) fillXt(ruleset, text, fam);
  for (const [text, fam] of [[legacy4, 4], [legacy6, 6]] as const) if (text) part.legacyRules += addLegacy(ruleset, text, fam);
  part.ruleset = ruleset;
  part.published = findPublished(ruleset);
  return part;
}

/** `ip -j route show` → routes by interface ("default" is the whole family). Pure. */
export function parseRoutes(text: string, family: 4 | 6): Route[] {
  const rows = JSON.parse(text || '[]') as { dst?: string; dev?: string; type?: string }[];
  return rows
    .filter((r) => r.dev && r.dst && (r.type === undefined || r.type === 'unicast'))
    .map((r) => ({ iface: r.dev!, family, dst: r.dst === 'default' ? (family === 4 ? '0.0.0.0/0' : '::/0') : r.dst!.includes('/') ? r.dst! : `${r.dst}/${family === 4 ? 32 : 128}` }));
}

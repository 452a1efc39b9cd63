// The live firewall, one backend at a time: check, read, load, restore and remove only portwarden's
// own part (table inet portwarden, or the PORTWARDEN-* chains and the INPUT and FORWARD jumps). I/O edge.
import { RuntimeError } from '../errors.js';
import { writeFileAtomic } from '../fs-atomic.js';
import { exec as defaultExec, inNetns, ToolMissingError, type Exec } from '../exec.js';
import type { CompiledPolicy } from '../policy/compile.js';
import { ensureSingleJump, removeJumps, countJumps, JUMPS, type IptablesBinary } from './iptables-jump.js';
import { NFT_TABLE } from './model.js';
import { renderRuleset } from './render.js';

/** What a backend loads: one text per tool (nft; or the iptables and ip6tables files). */
export type Texts = Record<string, string>;

/** One reading of the live firewall: everything (the backup) and our part cut from that same listing. */
export interface LiveReading {
  all: Texts;
  ours: Texts | null;
}

/**
 * The chains of the `filter` tables iptables-nft shares with others, per nft family ('ip', 'ip6'),
 * before portwarden first loaded anything; null for a table that did not exist. iptables-nft
 * creates the table and its INPUT/FORWARD base chains on demand, and leaves them behind.
 */
export type BaseChains = Record<string, string[] | null>;

export interface LiveBackend {
  readonly name: 'nft' | 'iptables';
  render(policy: CompiledPolicy, source: string): Texts;
  /** Asks the real tool whether it would accept the texts; throws with the tool's own message. */
  check(texts: Texts): Promise<void>;
  /** Our part as the tool lists it (stateless), or null when none is loaded. Reloadable by restore(). */
  readOurs(): Promise<Texts | null>;
  /** Everything loaded, for forensics. */
  readAll(): Promise<Texts>;
  /** readAll() and readOurs() from one listing (nft lists the whole ruleset for either). */
  readState(): Promise<LiveReading>;
  /** Whether load() is one transaction that either happens whole or not at all (nft -f). */
  readonly atomicLoad: boolean;
  /**
   * Loads the texts. With dir (a private directory of ours), nft reads its script from a file
   * there (new.nft) rather than from a pipe this process must keep feeding, so this process can
   * work meanwhile.
   */
  load(texts: Texts, dir?: string): Promise<void>;
  /**
   * Our part right after load(texts), as readOurs() would list it up to normalisation (diff.ts):
   * nft's atomic load leaves exactly the script, so nothing is read; iptables lists it.
   */
  afterLoad(texts: Texts): Promise<Texts | null>;
  /** The shared tables' chains as they are now (null: not knowable, e.g. no nft tool or not iptables-nft). */
  readBase(): Promise<BaseChains | null>;
  /** Puts back what readOurs() returned earlier (null: removes our part, as remove() does). */
  restore(ours: Texts | null, baseBefore?: BaseChains | null): Promise<void>;
  /** Removes our part; then the empty base chains and filter tables that were not in baseBefore. */
  remove(baseBefore?: BaseChains | null): Promise<void>;
}

function toolError(tool: string, code: number, stderr: string): RuntimeError {
  const msg = stderr.trim();
  if (/Operation not permitted|Permission denied/i.test(msg)) {
    return new RuntimeError(`${tool}: permission denied: portwarden needs root or CAP_NET_ADMIN to change the firewall\n${msg}`);
  }
  return new RuntimeError(msg ? `${tool} refused the rules:\n${msg}` : `${tool} failed (exit ${code}) without saying why`);
}

/** Missing tools and timeouts are already RuntimeErrors naming the tool (exec.ts). */
async function run(exec: Exec, netns: string | undefined, cmd: string, args: string[], input?: string, stdoutToFile = false): Promise<string> {
  const [c, a] = inNetns(netns, cmd, args);
  const r = await exec(c, a, { input, killWithParent: true, stdoutToFile });
  if (r.code !== 0) throw toolError(cmd, r.code, r.stderr);
  return r.stdout;
}

/**
 * A listing without the elements of dynamic sets (rate meters, the attempt counters): the kernel
 * adds those as packets pass, so they are state, not rules — neither drift nor worth restoring.
 */
export function withoutDynamicElements(listing: string): string {
  const out: string[] = [];
  let dynamic = false;
  let skipping = false;
  for (const line of listing.split('\n')) {
    const t = line.trim();
    if (skipping) {
      if (t.endsWith('}')) skipping = false;
      continue;
    }
    if (/^(set|map|chain|flowtable) \S+ \{/.test(t)) dynamic = false;
    else if (/^flags .*\bdynamic\b/.test(t)) dynamic = true;
    else if (dynamic && t.startsWith('elements = {')) {
      skipping = !t.endsWith('}');
      continue;
    }
    out.push(line);
  }
  return out.join('\n');
}

const NFT_REPLACE_HEAD = `table inet ${NFT_TABLE} {}\ndelete table inet ${NFT_TABLE}\n`;
const NFT_OUR_TABLE_HEAD = `table inet ${NFT_TABLE} {`;

/**
 * Our table's block out of an `nft list ruleset` listing: byte for byte what `nft list table inet
 * portwarden` prints (each table opens with `table … {` and closes with `}` at column 0; nothing
 * inside starts at column 0, and a string cannot hold a newline). Null when it is not there.
 */
export function cutNftTable(ruleset: string): string | null {
  const text = `\n${ruleset}${ruleset.endsWith('\n') ? '' : '\n'}`;
  const at = text.indexOf(`\n${NFT_OUR_TABLE_HEAD}\n`);
  if (at < 0) return null;
  const end = text.indexOf('\n}\n', at + 1);
  return end < 0 ? null : text.slice(at + 1, end + 3);
}

/** A nat prerouting chain in a table other than ours: the only place a published port (DNAT) can be. */
export function hasForeignNatPrerouting(ruleset: string): boolean {
  const ours = cutNftTable(ruleset);
  return /\btype nat hook prerouting\b/.test(ours === null ? ruleset : ruleset.replace(ours, ''));
}

export function nftBackend(netns?: string, exec: Exec = defaultExec): LiveBackend {
  const nft = (args: string[], input?: string) => run(exec, netns, 'nft', args, input);
  /** A text listing: through a file (stdoutToFile), nft writes it a few bytes per write(2). */
  const list = (args: string[]) => run(exec, netns, 'nft', ['-s', 'list', ...args], undefined, true);
  return {
    name: 'nft',
    render: (policy, source) => ({ nft: renderRuleset(policy, 'nft', source) }),
    check: async (t) => void (await nft(['-c', '-f', '-'], t.nft)),
    readOurs: async () => {
      // One listing, not `list tables` first (nft reads the whole ruleset for each call): a table
      // that does not exist is "No such file or directory".
      const [c, a] = inNetns(netns, 'nft', ['-s', 'list', 'table', 'inet', NFT_TABLE]);
      const r = await exec(c, a, { killWithParent: true, stdoutToFile: true });
      if (r.code === 0) return { nft: withoutDynamicElements(r.stdout) };
      if (/No such file or directory/.test(r.stderr)) return null;
      throw toolError('nft', r.code, r.stderr);
    },
    readAll: async () => ({ nft: await list(['ruleset']) }),
    readState: async () => {
      const all = await list(['ruleset']);
      const ours = cutNftTable(all);
      return { all: { nft: all }, ours: ours === null ? null : { nft: ours } };
    },
    atomicLoad: true,
    load: async (t, dir) => {
      if (!dir) return void (await nft(['-f', '-'], t.nft));
      writeFileAtomic(`${dir}/new.nft`, t.nft!, 0o600);
      await nft(['-f', `${dir}/new.nft`]);
    },
    afterLoad: async (t) => t, // the same object: its normal form is already computed for the diff
    readBase: async () => null,
    restore: async (ours) => void (await nft(['-f', '-'], NFT_REPLACE_HEAD + (ours?.nft ?? ''))),
    remove: async () => void (await nft(['-f', '-'], NFT_REPLACE_HEAD)),
  };
}

const FAMILIES: [IptablesBinary, string][] = [
  ['iptables', 'v4'],
  ['ip6tables', 'v6'],
];

/** The `*filter` section of an iptables-save dump of all tables (the whole text when it has none). */
export function filterSection(save: string): string {
  const start = save.search(/^\*filter$/m);
  if (start < 0) return save;
  const end = save.indexOf('\nCOMMIT', start);
  return end < 0 ? save.slice(start) : save.slice(start, end + 8);
}

/** Our chains and rules out of an iptables-save dump of the filter table (or of all tables). */
export function extractOurs(save: string): { chains: string[]; rules: string[]; jumps: number } {
  const lines = filterSection(save).split('\n');
  return {
    chains: lines.filter((l) => l.startsWith(':PORTWARDEN-')).map((l) => l.slice(1).split(' ')[0]!),
    rules: lines.filter((l) => l.startsWith('-A PORTWARDEN-')),
    jumps: JUMPS.reduce((n, [from, to]) => n + countJumps(save, from, to), 0),
  };
}

export function iptablesBackend(netns?: string, exec: Exec = defaultExec): LiveBackend {
  const save = (bin: IptablesBinary) => run(exec, netns, `${bin}-save`, ['-t', 'filter']);
  const restoreFile = (bin: IptablesBinary, text: string, test = false) =>
    run(exec, netns, `${bin}-restore`, ['-w', '5', '--noflush', ...(test ? ['--test'] : [])], text);
  /** A file that empties and deletes our chains except `keep` (after the jumps are gone). */
  const dropChains = (chains: string[]) => `*filter\n${chains.map((c) => `:${c} - [0:0]`).join('\n')}\n${chains.map((c) => `-X ${c}`).join('\n')}\nCOMMIT\n`;
  const ours = async (bin: IptablesBinary) => extractOurs(await save(bin));
  /** Our part as readOurs() gives it, from each family's iptables-save text. */
  const oursOf = (saves: Record<string, string>): Texts | null => {
    const out: Texts = {};
    let any = false;
    for (const [, key] of FAMILIES) {
      const o = extractOurs(saves[key]!);
      if (o.chains.length) any = true;
      out[key] = `*filter\n${o.chains.map((c) => `:${c} - [0:0]`).join('\n')}\n${o.rules.join('\n')}${o.rules.length ? '\n' : ''}COMMIT\n`;
      out[`${key}-jump`] = String(o.jumps > 0);
    }
    return any ? out : null;
  };

  const backend: LiveBackend = {
    name: 'iptables',
    render: (policy, source) => ({ v4: renderRuleset(policy, 'iptables', source), v6: renderRuleset(policy, 'ip6tables', source) }),
    check: async (t) => {
      for (const [bin, key] of FAMILIES) await restoreFile(bin, t[key]!, true);
    },
    readOurs: async () => {
      const saves: Record<string, string> = {};
      for (const [bin, key] of FAMILIES) saves[key] = await save(bin);
      return oursOf(saves);
    },
    readAll: async () => {
      const out: Texts = {};
      for (const [bin, key] of FAMILIES) out[key] = await run(exec, netns, `${bin}-save`, []);
      return out;
    },
    readState: async () => {
      const all = await backend.readAll();
      return { all, ours: oursOf(all) };
    },
    // Two families and the jumps are separate steps: a failure part-way leaves a mix, so check first.
    atomicLoad: false,
    afterLoad: () => backend.readOurs(),
    load: async (t) => {
      for (const [bin, key] of FAMILIES) {
        const before = await ours(bin);
        await restoreFile(bin, t[key]!);
        const declared = new Set([...t[key]!.matchAll(/^:(PORTWARDEN-\S+)/gm)].map((m) => m[1]!));
        await ensureSingleJump(exec, bin, netns, declared);
        // Chains an earlier ruleset had (e.g. a log chain) and this one no longer declares.
        const stale = before.chains.filter((c) => !declared.has(c));
        if (stale.length) await restoreFile(bin, dropChains(stale));
      }
    },
    readBase: async () => {
      const tables = await readFilterTables(exec, netns);
      if (!tables) return null;
      return Object.fromEntries(BASE_FAMILIES.map((f) => [f, tables[f] ? tables[f].chains.map((c) => c.name) : null]));
    },
    restore: async (saved, baseBefore) => {
      if (!saved) return backend.remove(baseBefore);
      for (const [bin, key] of FAMILIES) {
        const before = await ours(bin);
        const declared = new Set([...saved[key]!.matchAll(/^:(PORTWARDEN-\S+)/gm)].map((m) => m[1]!));
        if (saved[`${key}-jump`] !== 'true') await removeJumps(exec, bin, netns);
        await restoreFile(bin, saved[key]!);
        if (saved[`${key}-jump`] === 'true') await ensureSingleJump(exec, bin, netns, declared);
        const stale = before.chains.filter((c) => !declared.has(c));
        if (stale.length) await restoreFile(bin, dropChains(stale));
      }
    },
    remove: async (baseBefore) => {
      for (const [bin] of FAMILIES) {
        await removeJumps(exec, bin, netns);
        const o = await ours(bin);
        if (o.chains.length) await restoreFile(bin, dropChains(o.chains));
      }
      if (baseBefore) await dropCreatedBase(exec, netns, baseBefore);
    },
  };
  return backend;
}

const BASE_FAMILIES = ['ip', 'ip6'] as const;
const BASE_CHAINS = new Set(['INPUT', 'FORWARD', 'OUTPUT']);

interface FilterTable {
  chains: { name: string; hook?: string; policy?: string }[];
  rules: Map<string, number>;
  /** Sets, maps, flowtables…: anything but chains and rules keeps the table. */
  others: number;
}

/** The nft view of the ip/ip6 `filter` tables (null: nft is not installed, so nothing is known). */
async function readFilterTables(exec: Exec, netns: string | undefined): Promise<Record<string, FilterTable | null> | null> {
  const nftJson = async (args: string[]) => JSON.parse(await run(exec, netns, 'nft', ['-j', ...args])) as { nftables: Record<string, Record<string, unknown>>[] };
  let tables;
  try {
    tables = await nftJson(['list', 'tables']);
  } catch (err) {
    if (err instanceof ToolMissingError) return null;
    throw err;
  }
  const out: Record<string, FilterTable | null> = {};
  for (const family of BASE_FAMILIES) {
    const exists = tables.nftables.some((o) => o.table?.family === family && o.table?.name === 'filter');
    if (!exists) {
      out[family] = null;
      continue;
    }
    const t: FilterTable = { chains: [], rules: new Map(), others: 0 };
    for (const o of (await nftJson(['list', 'table', family, 'filter'])).nftables) {
      if (o.chain) t.chains.push(o.chain as FilterTable['chains'][number]);
      else if (o.rule) t.rules.set(String(o.rule.chain), (t.rules.get(String(o.rule.chain)) ?? 0) + 1);
      else if (!o.table && !o.metainfo) t.others++;
    }
    out[family] = t;
  }
  return out;
}

/**
 * Deletes the INPUT/FORWARD/OUTPUT base chains that iptables-nft created for us (absent from
 * baseBefore) while they are empty with policy accept, then a filter table that did not exist
 * before and is empty now: one nft transaction.
 */
async function dropCreatedBase(exec: Exec, netns: string | undefined, baseBefore: BaseChains): Promise<void> {
  const now = await readFilterTables(exec, netns);
  if (!now) return;
  const script: string[] = [];
  for (const family of BASE_FAMILIES) {
    const t = now[family];
    const before = baseBefore[family];
    if (!t || before === undefined) continue;
    const drop = t.chains.filter((c) => BASE_CHAINS.has(c.name) && c.hook && c.policy === 'accept' && !(before ?? []).includes(c.name) && !t.rules.get(c.name));
    for (const c of drop) script.push(`delete chain ${family} filter ${c.name}`);
    if (before === null && t.others === 0 && t.chains.length === drop.length) script.push(`delete table ${family} filter`);
  }
  if (script.length) await run(exec, netns, 'nft', ['-f', '-'], script.join('\n') + '\n');
}

export function liveBackend(name: 'nft' | 'iptables', netns?: string, exec: Exec = defaultExec): LiveBackend {
  return name === 'nft' ? nftBackend(netns, exec) : iptablesBackend(netns, exec);
}

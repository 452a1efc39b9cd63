// Reads what portwarden's rules counted from the kernel (inside --netns when given). I/O edge.
import { readFile } from 'node:fs/promises';
import { RuntimeError } from '../errors.js';
import { exec as defaultExec, inNetns, type Exec } from '../exec.js';
import { ATTEMPT_SETS, NFT_TABLE } from '../firewall/model.js';
import { attemptSetsKeyOf, parseIptablesCounters, parseNftCounters, parseRecentList, type CounterReading } from './counters.js';

const RECENT_DIR = '/proc/net/xt_recent';

async function run(exec: Exec, netns: string | undefined, cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return exec(...inNetns(netns, cmd, args));
}

function failed(tool: string, r: { code: number; stderr: string }): RuntimeError {
  const why = r.stderr.trim().split('\n')[0] || `exit ${r.code}`;
  return new RuntimeError(`${tool}: cannot read portwarden's counters: ${why}`);
}

/** Whether table inet portwarden is loaded (then the counters come from nft). */
export async function nftLoaded(netns: string | undefined, exec: Exec = defaultExec): Promise<boolean> {
  const r = await run(exec, netns, 'nft', ['list', 'tables', 'inet']).catch(() => null);
  return Boolean(r && r.code === 0 && new RegExp(`^table inet ${NFT_TABLE}$`, 'm').test(r.stdout));
}

export async function readNftCounters(netns: string | undefined, exec: Exec = defaultExec): Promise<CounterReading> {
  const r = await run(exec, netns, 'nft', ['-j', 'list', 'table', 'inet', NFT_TABLE]);
  if (r.code !== 0) throw failed('nft', r);
  return parseNftCounters(r.stdout);
}

const SET_NAMES = Object.values(ATTEMPT_SETS).flatMap((f) => [f[4], f[6]]);

/**
 * The attempt sets alone, keyed as a full reading keys them. nft lists one set without the rest
 * of the table (milliseconds, where the table of a 10 000-rule policy takes seconds). One run
 * reads all four: `-i` takes one command a line and prints one JSON document each (a script with
 * two `list set` fails in nft 1.0.6).
 */
export async function readNftAttemptSets(netns: string | undefined, exec: Exec = defaultExec): Promise<{ key: string; full: boolean }> {
  const [cmd, args] = inNetns(netns, 'nft', ['-j', '-i']);
  const r = await exec(cmd, args, { input: SET_NAMES.map((n) => `list set inet ${NFT_TABLE} ${n}\n`).join('') });
  const listings = r.stdout.split('\n').filter((l) => l.startsWith('{'));
  if (r.code !== 0 || listings.length !== SET_NAMES.length) throw failed('nft', { code: r.code, stderr: r.stderr || `${listings.length} of ${SET_NAMES.length} attempt sets listed` });
  return attemptSetsKeyOf(listings);
}

/** The recent lists' files, all in one program run inside a namespace (`tail` heads each with its name). */
async function readRecentLists(netns: string | undefined, names: string[], exec: Exec): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!names.length) return out;
  if (netns === undefined) {
    await Promise.all(names.map(async (n) => out.set(n, await readFile(`${RECENT_DIR}/${n}`, 'utf8').catch(() => ''))));
    return out;
  }
  const r = await run(exec, netns, 'tail', ['-v', '-n', '+1', '--', ...names.map((n) => `${RECENT_DIR}/${n}`)]);
  let current: string | null = null;
  for (const line of r.stdout.split('\n')) {
    const head = /^==> \/proc\/net\/xt_recent\/(\S+) <==$/.exec(line);
    if (head) current = head[1]!;
    else if (current) out.set(current, `${out.get(current) ?? ''}${line}\n`);
  }
  return out;
}

export async function readIptablesCounters(netns: string | undefined, exec: Exec = defaultExec): Promise<CounterReading> {
  const saves: string[] = [];
  for (const bin of ['iptables-save', 'ip6tables-save']) {
    const r = await run(exec, netns, bin, ['-c', '-t', 'filter']);
    if (r.code !== 0) throw failed(bin, r);
    saves.push(r.stdout);
  }
  const { rules, lists } = parseIptablesCounters(saves);
  const texts = await readRecentLists(netns, [...lists.keys()], exec);
  const sources = [...lists].flatMap(([name, { rule, kind }]) => parseRecentList(texts.get(name) ?? '', rule, kind));
  return { backend: 'iptables', rules, sources };
}

export function readCounters(backend: 'nft' | 'iptables', netns: string | undefined, exec: Exec = defaultExec): Promise<CounterReading> {
  return backend === 'nft' ? readNftCounters(netns, exec) : readIptablesCounters(netns, exec);
}

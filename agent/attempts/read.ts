// Reads what portwarden's rules counted from the kernel (inside --netns when given). I/O edge.
import { readFile } from 'node:fs/promises';
import { RuntimeError } from '../errors.js';
import { exec as defaultExec, inNetns, type Exec } from '../exec.js';
import { NFT_TABLE } from '../firewall/render-nft.js';
import { parseIptablesCounters, parseNftCounters, parseRecentList, type CounterReading } from './counters.js';

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

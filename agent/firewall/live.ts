// The live firewall, one backend at a time: check, read, load, restore and remove only portwarden's
// own part (table inet portwarden, or the PORTWARDEN-* chains and the INPUT and FORWARD jumps). I/O edge.
import { RuntimeError } from '../errors.js';
import { exec as defaultExec, inNetns, type Exec } from '../exec.js';
import type { CompiledPolicy } from '../policy/compile.js';
import { ensureSingleJump, removeJumps, countJumps, JUMPS, type IptablesBinary } from './iptables-jump.js';
import { NFT_TABLE } from './render-nft.js';
import { renderRuleset } from './render.js';

/** What a backend loads: one text per tool (nft; or the iptables and ip6tables files). */
export type Texts = Record<string, string>;

export interface LiveBackend {
  readonly name: 'nft' | 'iptables';
  render(policy: CompiledPolicy, source: string): Texts;
  /** Asks the real tool whether it would accept the texts; throws with the tool's own message. */
  check(texts: Texts): Promise<void>;
  /** Our part as the tool lists it (stateless), or null when none is loaded. Reloadable by restore(). */
  readOurs(): Promise<Texts | null>;
  /** Everything loaded, for forensics. */
  readAll(): Promise<Texts>;
  load(texts: Texts): Promise<void>;
  /** Puts back what readOurs() returned earlier (null: removes our part). */
  restore(ours: Texts | null): Promise<void>;
  remove(): Promise<void>;
}

function toolError(tool: string, stderr: string): RuntimeError {
  const msg = stderr.trim();
  if (/Operation not permitted|Permission denied/i.test(msg)) {
    return new RuntimeError(`${tool}: permission denied: portwarden needs root or CAP_NET_ADMIN to change the firewall\n${msg}`);
  }
  return new RuntimeError(`${tool} refused the rules:\n${msg}`);
}

async function run(exec: Exec, netns: string | undefined, cmd: string, args: string[], input?: string): Promise<string> {
  const [c, a] = inNetns(netns, cmd, args);
  let r;
  try {
    r = await exec(c, a, input === undefined ? {} : { input });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new RuntimeError(`${cmd} is not installed (or nsenter is missing for --netns)`);
    throw err;
  }
  if (r.code !== 0) throw toolError(cmd, r.stderr);
  return r.stdout;
}

const NFT_REPLACE_HEAD = `table inet ${NFT_TABLE} {}\ndelete table inet ${NFT_TABLE}\n`;

export function nftBackend(netns?: string, exec: Exec = defaultExec): LiveBackend {
  const nft = (args: string[], input?: string) => run(exec, netns, 'nft', args, input);
  return {
    name: 'nft',
    render: (policy, source) => ({ nft: renderRuleset(policy, 'nft', source) }),
    check: async (t) => void (await nft(['-c', '-f', '-'], t.nft)),
    readOurs: async () => {
      const tables = await nft(['list', 'tables']);
      if (!tables.split('\n').includes(`table inet ${NFT_TABLE}`)) return null;
      return { nft: await nft(['-s', 'list', 'table', 'inet', NFT_TABLE]) };
    },
    readAll: async () => ({ nft: await nft(['-s', 'list', 'ruleset']) }),
    load: async (t) => void (await nft(['-f', '-'], t.nft)),
    restore: async (ours) => void (await nft(['-f', '-'], NFT_REPLACE_HEAD + (ours?.nft ?? ''))),
    remove: async () => void (await nft(['-f', '-'], NFT_REPLACE_HEAD)),
  };
}

const FAMILIES: [IptablesBinary, string][] = [
  ['iptables', 'v4'],
  ['ip6tables', 'v6'],
];

/** Our chains and rules out of an iptables-save dump of the filter table. */
export function extractOurs(save: string): { chains: string[]; rules: string[]; jumps: number } {
  const lines = save.split('\n');
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

  const backend: LiveBackend = {
    name: 'iptables',
    render: (policy, source) => ({ v4: renderRuleset(policy, 'iptables', source), v6: renderRuleset(policy, 'ip6tables', source) }),
    check: async (t) => {
      for (const [bin, key] of FAMILIES) await restoreFile(bin, t[key]!, true);
    },
    readOurs: async () => {
      const out: Texts = {};
      let any = false;
      for (const [bin, key] of FAMILIES) {
        const o = await ours(bin);
        if (o.chains.length) any = true;
        out[key] = `*filter\n${o.chains.map((c) => `:${c} - [0:0]`).join('\n')}\n${o.rules.join('\n')}${o.rules.length ? '\n' : ''}COMMIT\n`;
        out[`${key}-jump`] = String(o.jumps > 0);
      }
      return any ? out : null;
    },
    readAll: async () => {
      const out: Texts = {};
      for (const [bin, key] of FAMILIES) out[key] = await run(exec, netns, `${bin}-save`, []);
      return out;
    },
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
    restore: async (saved) => {
      if (!saved) return backend.remove();
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
    remove: async () => {
      for (const [bin] of FAMILIES) {
        await removeJumps(exec, bin, netns);
        const o = await ours(bin);
        if (o.chains.length) await restoreFile(bin, dropChains(o.chains));
      }
    },
  };
  return backend;
}

export function liveBackend(name: 'nft' | 'iptables', netns?: string, exec: Exec = defaultExec): LiveBackend {
  return name === 'nft' ? nftBackend(netns, exec) : iptablesBackend(netns, exec);
}

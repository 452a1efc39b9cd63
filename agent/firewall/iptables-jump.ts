// Keeps exactly one jump from each built-in chain (INPUT, FORWARD) to ours: iptables-restore
// --noflush appends a declared jump again on every load, so the static file carries none and this
// adds/removes them.
import { RuntimeError } from '../errors.js';
import { inNetns, type Exec } from '../exec.js';
import { IPT_CHAIN, IPT_FORWARD_CHAIN } from './render-iptables.js';

export type IptablesBinary = 'iptables' | 'ip6tables';

/** Built-in chain → our chain it jumps to. */
export const JUMPS: readonly [string, string][] = [
  ['INPUT', IPT_CHAIN],
  ['FORWARD', IPT_FORWARD_CHAIN],
];

async function run(exec: Exec, netns: string | undefined, bin: IptablesBinary, args: string[]): Promise<string> {
  const [cmd, argv] = inNetns(netns, bin, ['-w', '5', ...args]);
  const r = await exec(cmd, argv, { killWithParent: true });
  if (r.code !== 0) throw new RuntimeError(`${bin} ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/** How many times `from` jumps to `to` in iptables -S / iptables-save text. */
export function countJumps(rules: string, from = 'INPUT', to = IPT_CHAIN): number {
  return rules.split('\n').filter((l) => l.trim() === `-A ${from} -j ${to}`).length;
}

/** Each built-in chain whose target is in `chains` starts with exactly one jump to it. */
export async function ensureSingleJump(exec: Exec, bin: IptablesBinary, netns?: string, chains: ReadonlySet<string> = new Set(JUMPS.map(([, c]) => c))): Promise<void> {
  for (const [from, to] of JUMPS) {
    if (!chains.has(to)) continue;
    let n = countJumps(await run(exec, netns, bin, ['-S', from]), from, to);
    for (; n > 1; n--) await run(exec, netns, bin, ['-D', from, '-j', to]);
    if (n === 0) await run(exec, netns, bin, ['-I', from, '1', '-j', to]);
  }
}

/** Removes every jump to our chains from the built-in chains. */
export async function removeJumps(exec: Exec, bin: IptablesBinary, netns?: string): Promise<void> {
  for (const [from, to] of JUMPS) {
    const n = countJumps(await run(exec, netns, bin, ['-S', from]), from, to);
    for (let i = 0; i < n; i++) await run(exec, netns, bin, ['-D', from, '-j', to]);
  }
}

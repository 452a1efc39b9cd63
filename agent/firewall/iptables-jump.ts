// Keeps exactly one jump from INPUT to our chain: iptables-restore --noflush appends a declared
// jump again on every load, so the static file carries none and this adds/removes it.
import { RuntimeError } from '../errors.js';
import { inNetns, type Exec } from '../exec.js';
import { IPT_CHAIN } from './render-iptables.js';

export type IptablesBinary = 'iptables' | 'ip6tables';

async function run(exec: Exec, netns: string | undefined, bin: IptablesBinary, args: string[]): Promise<string> {
  const [cmd, argv] = inNetns(netns, bin, ['-w', '5', ...args]);
  const r = await exec(cmd, argv);
  if (r.code !== 0) throw new RuntimeError(`${bin} ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

export function countJumps(inputRules: string): number {
  return inputRules.split('\n').filter((l) => l.trim() === `-A INPUT -j ${IPT_CHAIN}`).length;
}

/** Ensures INPUT starts its evaluation of our chain exactly once (inserting at the top if absent). */
export async function ensureSingleJump(exec: Exec, bin: IptablesBinary, netns?: string): Promise<void> {
  let n = countJumps(await run(exec, netns, bin, ['-S', 'INPUT']));
  for (; n > 1; n--) await run(exec, netns, bin, ['-D', 'INPUT', '-j', IPT_CHAIN]);
  if (n === 0) await run(exec, netns, bin, ['-I', 'INPUT', '1', '-j', IPT_CHAIN]);
}

/** Removes every jump to our chain from INPUT. */
export async function removeJumps(exec: Exec, bin: IptablesBinary, netns?: string): Promise<void> {
  const n = countJumps(await run(exec, netns, bin, ['-S', 'INPUT']));
  for (let i = 0; i < n; i++) await run(exec, netns, bin, ['-D', 'INPUT', '-j', IPT_CHAIN]);
}

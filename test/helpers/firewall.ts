// Loads a policy's rendered rules into a test namespace with the real tools.
import { ensureSingleJump } from '../../agent/firewall/iptables-jump.js';
import { renderRuleset } from '../../agent/firewall/render.js';
import { exec } from '../../agent/exec.js';
import type { CompiledPolicy } from '../../agent/policy/compile.js';
import { nsRun } from './lab.js';

export type TestBackend = 'nft' | 'iptables';

export async function loadRules(ns: string, backend: TestBackend, policy: CompiledPolicy): Promise<void> {
  if (backend === 'nft') {
    nsRun(ns, 'nft', ['-f', '-'], renderRuleset(policy, 'nft'));
    return;
  }
  nsRun(ns, 'iptables-restore', ['--noflush'], renderRuleset(policy, 'iptables'));
  nsRun(ns, 'ip6tables-restore', ['--noflush'], renderRuleset(policy, 'ip6tables'));
  await ensureSingleJump(exec, 'iptables', ns);
  await ensureSingleJump(exec, 'ip6tables', ns);
}

/** Packet count of the rules carrying this comment whose text matches `verdict` (e.g. /accept|ACCEPT/). */
export function counterFor(ns: string, backend: TestBackend, comment: string, verdict: RegExp, family: 4 | 6 = 4): number {
  if (backend === 'nft') {
    const text = nsRun(ns, 'nft', ['list', 'table', 'inet', 'portwarden']);
    return text
      .split('\n')
      .filter((l) => l.includes(`comment "${comment}"`) && verdict.test(l))
      .reduce((sum, l) => sum + Number(/counter packets (\d+)/.exec(l)?.[1] ?? 0), 0);
  }
  const text = nsRun(ns, family === 4 ? 'iptables-save' : 'ip6tables-save', ['-c', '-t', 'filter']);
  return text
    .split('\n')
    .filter((l) => (l.includes(`--comment ${JSON.stringify(comment)} `) || l.includes(`--comment ${comment} `)) && verdict.test(l))
    .reduce((sum, l) => sum + Number(/^\[(\d+):/.exec(l)?.[1] ?? 0), 0);
}

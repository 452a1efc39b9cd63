// First-match lookup of the deciding rule for (proto, port) in O(1), built in O(65536 + rules):
// each port is filled once by the first rule that names it, skipping already-filled runs.
import type { Proto } from '../model.js';
import type { CompiledRule } from './compile.js';
import { PortFill } from './port-fill.js';

export type PortIndex = Record<Proto, Int32Array>;

/** Built once per compiled rule list (read-only): the daemon evaluates the same policy every cycle. */
const built = new WeakMap<readonly CompiledRule[], PortIndex>();

export function buildPortIndex(rules: readonly CompiledRule[]): PortIndex {
  let index = built.get(rules);
  if (!index) built.set(rules, (index = { tcp: buildFor(rules, 'tcp'), udp: buildFor(rules, 'udp') }));
  return index;
}

function buildFor(rules: readonly CompiledRule[], proto: Proto): Int32Array {
  const table = new Int32Array(65536).fill(-1);
  const fill = new PortFill();
  rules.forEach((rule, idx) => {
    if (rule.proto !== proto) return;
    for (const { lo, hi } of rule.ports) fill.fill(lo, hi, (p) => (table[p] = idx));
  });
  return table;
}

/** Index of the rule that decides (proto, port), or -1. */
export function decidingRule(index: PortIndex, proto: Proto, port: number): number {
  return index[proto][port] ?? -1;
}

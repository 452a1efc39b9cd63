// First-match lookup of the deciding rule for (proto, port) in O(1), built in O(65536 + rules):
// each port is filled once by the first rule that names it, skipping already-filled runs.
import type { Proto } from '../model.js';
import type { CompiledRule } from './compile.js';

export type PortIndex = Record<Proto, Int32Array>;

export function buildPortIndex(rules: readonly CompiledRule[]): PortIndex {
  return { tcp: buildFor(rules, 'tcp'), udp: buildFor(rules, 'udp') };
}

function buildFor(rules: readonly CompiledRule[], proto: Proto): Int32Array {
  const table = new Int32Array(65536).fill(-1);
  // next[p] leads to the smallest unfilled port ≥ p (union-find with path compression).
  const next = new Int32Array(65537).map((_, i) => i);
  const find = (p: number): number => {
    let root = p;
    while (next[root] !== root) root = next[root]!;
    while (next[p] !== root) {
      const n = next[p]!;
      next[p] = root;
      p = n;
    }
    return root;
  };
  rules.forEach((rule, idx) => {
    if (rule.proto !== proto) return;
    for (const { lo, hi } of rule.ports) {
      for (let p = find(lo); p <= hi; p = find(p + 1)) {
        table[p] = idx;
        next[p] = p + 1;
      }
    }
  });
  return table;
}

/** Index of the rule that decides (proto, port), or -1. */
export function decidingRule(index: PortIndex, proto: Proto, port: number): number {
  return index[proto][port] ?? -1;
}

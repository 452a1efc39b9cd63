// First-match lookup of the deciding rule for (proto, port) in O(1), built in O(65536 + rules):
// each port is filled once by the first rule that names it, skipping already-filled runs.
// PortFill is also what finds shadowed rules at load time.
import type { Proto } from '../model.js';
import type { CompiledRule } from './compile.js';

export type PortIndex = Record<Proto, Int32Array>;

/** Built once per compiled rule list (read-only): the daemon evaluates the same policy every cycle. */
const built = new WeakMap<readonly CompiledRule[], PortIndex>();

export function buildPortIndex(rules: readonly CompiledRule[]): PortIndex {
  let index = built.get(rules);
  if (!index) built.set(rules, (index = { tcp: buildFor(rules, 'tcp'), udp: buildFor(rules, 'udp') }));
  return index;
}

/** Ports 0..65535, each filled at most once; finds the next unfilled port in near O(1). */
export class PortFill {
  // next[p] leads to the smallest unfilled port ≥ p (union-find with path compression).
  private readonly next = new Int32Array(65537).map((_, i) => i);

  private find(p: number): number {
    let root = p;
    while (this.next[root] !== root) root = this.next[root]!;
    while (this.next[p] !== root) {
      const n = this.next[p]!;
      this.next[p] = root;
      p = n;
    }
    return root;
  }

  /** Is every port in lo..hi filled already? */
  covered(lo: number, hi: number): boolean {
    return this.find(lo) > hi;
  }

  /** Fills lo..hi, calling onFill for each port that was not filled before. */
  fill(lo: number, hi: number, onFill: (port: number) => void = () => undefined): void {
    for (let p = this.find(lo); p <= hi; p = this.find(p + 1)) {
      onFill(p);
      this.next[p] = p + 1;
    }
  }
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

// Ports 0..65535 filled first-come: what builds the port index and finds shadowed rules at load
// time. No policy types here, so compile.ts and port-index.ts both use it without an import loop.

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

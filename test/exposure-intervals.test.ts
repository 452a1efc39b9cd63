// Address sets hold IPv4 as numbers and IPv6 as bigints: their algebra, against membership
// counted address by address (the slow definition), at the edges where a number could go wrong
// (0, 2^31, 2^32 - 1) and over whole IPv6 prefixes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fromBig, IntervalSet, MAX, prefixSet, type Fam, type Range } from '../agent/exposure/intervals.js';

/** Random sets of `fam` with a few ranges, some touching or overlapping, some at the space's ends. */
const setOf = (fam: Fam) => {
  const top = MAX[fam];
  const edges = fam === 4 ? [0n, (1n << 31n) - 1n, 1n << 31n, top] : [0n, 1n << 127n, top];
  const addr = fc.oneof(fc.bigInt(0n, top), fc.constantFrom(...edges));
  const range = fc.tuple(addr, fc.bigInt(0n, 1n << 20n)).map(([a, l]): Range => [a, a + l > top ? top : a + l]);
  return fc.array(range, { maxLength: 6 }).map((rs) => IntervalSet.of(fam, rs));
};

/** The addresses worth probing: each range's ends and their neighbours, and the space's ends. */
function probes(fam: Fam, ...sets: IntervalSet[]): bigint[] {
  const out = new Set<bigint>([0n, MAX[fam], 1n << 31n, (1n << 31n) - 1n]);
  for (const s of sets) for (const [a, b] of s.ranges) for (const x of [a - 1n, a, b, b + 1n]) if (x >= 0n && x <= MAX[fam]) out.add(x);
  return [...out];
}

for (const fam of [4, 6] as const) {
  test(`intervals (IPv${fam}): union, intersect, subtract and complement hold address by address; ranges read back as bigints`, () => {
    const has = (s: IntervalSet, v: bigint) => s.has(fromBig(v, fam));
    fc.assert(
      fc.property(setOf(fam), setOf(fam), (a, b) => {
        const [u, i, d, c] = [a.union(b), a.intersect(b), a.subtract(b), a.complement()];
        for (const v of probes(fam, a, b, u, i, d, c)) {
          const [ia, ib] = [has(a, v), has(b, v)];
          if (has(u, v) !== (ia || ib) || has(i, v) !== (ia && ib) || has(d, v) !== (ia && !ib) || has(c, v) === ia) return false;
        }
        // Each result is in its one form: sorted, disjoint, not touching; the same as built from its own ranges.
        return [u, i, d, c].every((s) => s.ranges.every(([x, y], k) => x <= y && (k === 0 || x > s.ranges[k - 1]![1] + 1n)) && IntervalSet.of(fam, s.ranges.map(([x, y]): Range => [x, y])).equals(s));
      }),
      { numRuns: 1500 },
    );
  });
}

test('intervals: the IPv4 space in numbers, at its ends', () => {
  const full = IntervalSet.full(4);
  assert.deepEqual(full.ranges, [[0n, 0xffffffffn]]);
  assert.deepEqual(full.toCidrs(), ['0.0.0.0/0']);
  assert.ok(full.subtract(prefixSet(4, '255.255.255.255')).union(prefixSet(4, '255.255.255.255')).isFull());
  assert.deepEqual(full.subtract(prefixSet(4, '128.0.0.0/1')).toCidrs(), ['0.0.0.0/1']);
  assert.deepEqual(prefixSet(4, '127.255.255.255').union(prefixSet(4, '128.0.0.0')).toCidrs(), ['127.255.255.255/32', '128.0.0.0/32']);
  assert.ok(prefixSet(4, '0.0.0.0/0').equals(full) && !prefixSet(4, '10.0.0.0/8').has('2001:db8::1'));
});

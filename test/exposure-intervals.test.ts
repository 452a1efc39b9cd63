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

for (const fam of [4, 6] as const) {
  test(`intervals (IPv${fam}): a complement not yet read says empty and full like the one computed, and its algebra holds`, () => {
    const has = (s: IntervalSet, v: bigint) => s.has(fromBig(v, fam));
    fc.assert(
      fc.property(setOf(fam), setOf(fam), fc.boolean(), (a, b, viaFull) => {
        // The complement is made lazily (its intervals when first read): ask empty/full first.
        const c = viaFull ? IntervalSet.full(fam).subtract(a) : a.complement();
        const computed = IntervalSet.of(fam, [...c.ranges]);
        if (!viaFull && (a.complement() !== c || c.complement() !== a)) return false;
        const fresh = a.complement();
        if (fresh.isEmpty() !== computed.isEmpty() || fresh.isFull() !== computed.isFull()) return false;
        const [u, i, d] = [c.union(b), b.intersect(c), b.subtract(c)];
        return probes(fam, a, b, u, i, d).every((v) => has(u, v) === (!has(a, v) || has(b, v)) && has(i, v) === (has(b, v) && !has(a, v)) && has(d, v) === (has(b, v) && has(a, v)));
      }),
      { numRuns: 800 },
    );
  });
}

test('intervals: IPv6 prefixes as nft prints them (compressed, leading zeros, upper case) cover what their groups say; other text is refused', () => {
  const group = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
  fc.assert(
    fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), fc.integer({ min: 0, max: 128 }), fc.constantFrom('plain', 'padded', 'upper', 'compressed'), (g, len, form) => {
      const v = g.reduce((acc, x) => (acc << 16n) | BigInt(x), 0n);
      const text = form === 'compressed' ? fromBig(v, 6) : g.map((x) => (form === 'padded' ? x.toString(16).padStart(4, '0') : x.toString(16))).join(':');
      const host = (1n << BigInt(128 - len)) - 1n;
      const want = IntervalSet.of(6, [[v & ~host & MAX[6], v | host]]);
      return prefixSet(6, `${form === 'upper' ? text.toUpperCase() : text}/${len}`).equals(want);
    }),
    { numRuns: 3000 },
  );
  assert.deepEqual(prefixSet(6, '::/0').toCidrs(), ['::/0']);
  assert.deepEqual(prefixSet(6, '::').toCidrs(), ['::/128']);
  assert.deepEqual(prefixSet(6, '2001:db8::/32').toCidrs(), ['2001:db8::/32']);
  assert.deepEqual(prefixSet(6, '::ffff:192.0.2.1').toCidrs(), ['::ffff:c000:201/128'], 'embedded IPv4 goes through the general parser');
  for (const bad of ['1::2::3', ':1::2', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:', '12345::', '::g', ':::', '1:2:3:4::5:6:7:8']) {
    assert.throws(() => prefixSet(6, bad), /not an IP address/, bad);
  }
});

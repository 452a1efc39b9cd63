// A policy's sources are read by arithmetic where they are plain (a dotted quad, IPv6 hex groups)
// and merged as address intervals. Both must answer exactly as the general reader and the library
// they replaced: parseAnyPrefix (node:net isIP and cidr-tools' normalizeCidr) and cidr-tools'
// mergeCidr, over generated spellings, the error cases among them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mergeCidr } from 'cidr-tools';
import { parseAnyPrefix, parsePrefix } from '../agent/policy/compile.js';
import { mergePrefixes } from '../agent/exposure/intervals.js';

const hex = fc.integer({ min: 0, max: 0xffff }).chain((g) => fc.constantFrom(g.toString(16), g.toString(16).toUpperCase(), g.toString(16).padStart(4, '0'), '0'));
/** IPv6 in hex groups: all eight, or some of them around one "::"; now and then a mapped or embedded IPv4 tail. */
const v6 = fc.oneof(
  fc.array(hex, { minLength: 8, maxLength: 8 }).map((g) => g.join(':')),
  fc.tuple(fc.array(hex, { maxLength: 4 }), fc.array(hex, { maxLength: 3 })).map(([a, b]) => `${a.join(':')}::${b.join(':')}`),
  fc.ipV6(),
  fc.ipV4().map((v4) => `::ffff:${v4}`),
  fc.constantFrom('::', '::1', '::ffff:0:0', '::ffff:a00:1', '2001:db8::', '1:2:3:4:5:6:7::', '::1:2:3:4:5:6:7', 'fe80::1%eth0', '1::2::3', ':1::', '1:::2', '12345::'),
  // Control characters: a character | 32 that passed for ":" or a digit let these through once.
  fc.constantFrom('1\x1a2\x1a3\x1a4\x1a5\x1a6\x1a7\x1a8', '\x10::', '1:2:3:4:5:6:7:\x18', '0\x1a\x1a0'),
);
const octet = fc.oneof(fc.integer({ min: 0, max: 255 }).map(String), fc.constantFrom('00', '010', '256', '0001', ''));
const v4 = fc.oneof(fc.ipV4(), fc.array(octet, { minLength: 4, maxLength: 4 }).map((o) => o.join('.')), fc.constantFrom('1.2.3', '1.2.3.4.5', ' 1.2.3.4'));
const len = fc.oneof(fc.constant(''), fc.integer({ min: 0, max: 130 }).map((n) => `/${n}`), fc.constantFrom('/', '/01', '/00', '/0', '/1000', '/x'));
/** A prefix of the usual shape: the host bits of the address cleared, so most of them are valid. */
const aligned = fc.oneof(
  fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, l]) => {
    const n = a.split('.').reduce((x, o) => x * 256 + Number(o), 0);
    const net = n - (n % 2 ** (32 - l));
    return `${[24, 16, 8, 0].map((s) => Math.floor(net / 2 ** s) % 256).join('.')}/${l}`;
  }),
  fc.tuple(fc.array(hex, { minLength: 4, maxLength: 4 }), fc.constantFrom(32, 48, 56, 64)).map(([g, l]) => `${g.slice(0, l / 16).join(':')}${l < 64 ? '::' : '::'}/${l}`),
);

test('parsePrefix answers as the general reader does, prefix or error, for every spelling', () => {
  let plain = 0;
  fc.assert(
    fc.property(fc.oneof(fc.tuple(fc.oneof(v4, v6), len).map(([a, l]) => a + l), aligned), (text) => {
      const got = parsePrefix(text);
      assert.deepEqual(got, parseAnyPrefix(text), text);
      if ('prefix' in got) plain++;
    }),
    { numRuns: 20_000 },
  );
  assert.ok(plain > 4000, `valid prefixes among the generated ones: ${plain}`);
});

test('parsePrefix: the forms the fast path leaves to the general reader keep their messages', () => {
  assert.deepEqual(parsePrefix('10.0.0.1/24'), { error: '"10.0.0.1/24" has host bits set (did you mean 10.0.0.0/24?)' });
  assert.deepEqual(parsePrefix('2001:DB8::1/64'), { error: '"2001:DB8::1/64" has host bits set (did you mean 2001:db8::/64?)' });
  assert.deepEqual(parsePrefix('010.0.0.0/8'), { error: '"010.0.0.0/8": leading zeros are ambiguous (some tools read them as octal): write 10.0.0.0/8 if you mean decimal' });
  assert.match((parsePrefix('::ffff:10.0.0.1') as { error: string }).error, /IPv4-mapped IPv6 address.*write 10\.0\.0\.1\)/);
  assert.deepEqual(parsePrefix('2001:0db8:0000:0000:0000:0000:0000:0000/32'), { prefix: '2001:db8::/32', family: 6 });
  assert.deepEqual(parsePrefix('2001:db8:0:1:1:1:1:1'), { prefix: '2001:db8:0:1:1:1:1:1/128', family: 6 });
  assert.deepEqual(parsePrefix('\x10::/16'), { error: '"\\u0010::/16" is not an IP address or CIDR' });
});

test('mergePrefixes covers exactly what cidr-tools mergeCidr does, in the same order and text', () => {
  const prefixOf = (fam: 4 | 6) => (fam === 4 ? fc.oneof(aligned.filter((p) => !p.includes(':')), fc.ipV4()) : aligned.filter((p) => p.includes(':')));
  for (const fam of [4, 6] as const) {
    fc.assert(
      fc.property(fc.array(prefixOf(fam), { minLength: 1, maxLength: 40 }), (list) => {
        assert.deepEqual(mergePrefixes(fam, list), mergeCidr(list));
      }),
      { numRuns: 2000 },
    );
  }
  // Adjacent halves join; a prefix inside another disappears.
  assert.deepEqual(mergePrefixes(4, ['10.0.0.0/25', '10.0.0.128/25', '10.0.0.7']), ['10.0.0.0/24']);
  assert.deepEqual(mergePrefixes(6, ['2001:db8::/33', '2001:db8:8000::/33']), ['2001:db8::/32']);
  assert.deepEqual(mergePrefixes(4, []), []);
});

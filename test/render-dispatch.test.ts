// The nft renderer dispatches on the destination port with one verdict-map lookup: the map must
// send each port to the first rule that covers it (first match decides), and the chains a packet
// walks must not grow with the policy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildFirewallModel } from '../agent/firewall/model.js';
import { decide } from '../agent/firewall/oracle.js';
import { renderRuleset } from '../agent/firewall/render.js';
import { compilePolicy } from '../agent/policy/compile.js';
import type { Policy } from '../agent/policy/policy-types.js';

const portItem = fc.oneof(
  fc.integer({ min: 1, max: 40 }),
  fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 30 })).map(([lo, n]) => `${lo}-${Math.min(65535, lo + n)}`),
  fc.constant('1-65535'),
);
const policyDoc = fc.array(
  fc.record({
    port: fc.array(portItem, { minLength: 1, maxLength: 3 }),
    proto: fc.constantFrom('tcp', 'udp'),
    from: fc.constantFrom('any', 'localhost'),
  }),
  { maxLength: 8 },
);

test('dispatch: each port goes to the chain of the first rule covering it, as the oracle decides', () => {
  fc.assert(
    fc.property(policyDoc, (rules) => {
      const doc = { version: 1, rules: rules.map((r, i) => ({ name: `r${i}`, ...r })) } as Policy;
      const { policy } = compilePolicy(doc, 'random');
      const model = buildFirewallModel(policy);
      for (const proto of ['tcp', 'udp'] as const) {
        const spans = model.dispatch.filter((d) => d.proto === proto);
        spans.forEach((d, i) => {
          assert.ok(d.lo <= d.hi);
          if (i) assert.ok(spans[i - 1]!.hi < d.lo, 'spans are sorted and disjoint (an interval map refuses overlaps)');
        });
        for (const port of [...Array.from({ length: 72 }, (_, i) => i + 1), 65534, 65535]) {
          const want = decide(policy, '192.0.2.1', proto, port).rule?.name ?? null;
          const span = spans.find((d) => d.lo <= port && port <= d.hi);
          const got = span ? model.ruleChains.find((c) => c.name === span.chain)!.rule : null;
          assert.equal(got, want, `${proto}/${port}`);
        }
      }
    }),
    { numRuns: 300 },
  );
});

test('dispatch: adjacent ports of one rule are one span; a shadowed rule gets none', () => {
  const doc: Policy = {
    version: 1,
    rules: [
      { name: 'web', port: [80, 81, '82-90'], proto: 'tcp', from: 'any' },
      { name: 'wide', port: '1-65535', proto: 'tcp', from: 'localhost' },
      { name: 'shadowed', port: 85, proto: 'tcp', from: 'any' },
    ],
  };
  const model = buildFirewallModel(compilePolicy(doc, 'doc').policy);
  assert.deepEqual(model.dispatch, [
    { proto: 'tcp', lo: 1, hi: 79, chain: 'rule_wide' },
    { proto: 'tcp', lo: 80, hi: 90, chain: 'rule_web' },
    { proto: 'tcp', lo: 91, hi: 65535, chain: 'rule_wide' },
  ]);
});

/** The rules of one chain in a rendered nft file. */
function chainRules(text: string, name: string): string[] {
  const body = text.split(`\tchain ${name} {\n`)[1]!.split('\n\t}\n')[0]!;
  return body.split('\n').filter((l) => l.trim() && !l.includes('type filter hook'));
}

test('nft: the input and published chains have as many rules for 2 000 policy rules as for 10', () => {
  const doc = (n: number): Policy => ({
    version: 1,
    rules: Array.from({ length: n }, (_, i) => ({ name: `r${i}`, port: 1024 + i, proto: i % 5 === 0 ? 'udp' : 'tcp', from: i % 3 ? ['192.0.2.0/24', '2001:db8::/32'] : 'any' })),
  });
  const small = renderRuleset(compilePolicy(doc(10), 'small').policy, 'nft');
  const big = renderRuleset(compilePolicy(doc(2000), 'big').policy, 'nft');
  for (const chain of ['input', 'published']) assert.equal(chainRules(big, chain).length, chainRules(small, chain).length, chain);
  assert.ok(chainRules(big, 'input').some((l) => l.includes('tcp dport vmap @tcp_ports')));
  assert.ok(chainRules(big, 'published').some((l) => l.includes('meta l4proto udp ct original proto-dst vmap @udp_ports')));
  // Each rule's own chain holds only its own steps: sources, then the refusal of the others
  // (counted per source, protocol and port in the refused_v4/v6 sets first, by the one chain
  // every rule chain shares for it).
  assert.deepEqual(chainRules(big, 'rule_r1'), [
    '\t\tip saddr @src_r1_v4 counter accept comment "r1"',
    '\t\tip6 saddr @src_r1_v6 counter accept comment "r1"',
    '\t\tjump note_refused',
    '\t\tcounter drop comment "r1"',
  ]);
  assert.deepEqual(chainRules(big, 'note_refused'), [
    '\t\tupdate @refused_v4 { ip saddr . meta l4proto . th dport }',
    '\t\tupdate @refused_v6 { ip6 saddr . meta l4proto . th dport }',
  ]);
  assert.equal(big.split('\tchain note_refused {').length, 2, 'one note_refused chain');
});

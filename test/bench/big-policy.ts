// The large policy the bench and the apply-diff test load: `rules` rules over 100 source groups
// sharing `cidrs` CIDRs (a quarter IPv6). `portShift` moves every rule's port, so the same shape
// renders to a ruleset in which every rule differs. Each (port, protocol) is used once, up to 128 000 rules.
import type { Policy } from '../../agent/policy/policy-types.js';

/** Ports 1024…65024: a rule past the first 64 000 takes the port of the rule 64 000 before it with the other protocol (100 000 rules fit). */
const PORTS = 64_000;

export function bigPolicy(rules: number, cidrs: number, portShift = 0): Policy {
  const perRule = Math.floor(cidrs / 100);
  const groups: Record<string, string[]> = {};
  for (let g = 0; g < 100; g++) {
    groups[`net${g}`] = Array.from({ length: perRule }, (_, i) => {
      const n = g * perRule + i;
      return i % 4 === 3 ? `2001:db8:${(n >> 8).toString(16)}:${(n & 255).toString(16)}::/64` : `${10 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}.0/24`;
    });
  }
  return {
    version: 1,
    sources: groups,
    rules: Array.from({ length: rules }, (_, i) => ({
      name: `r${i}`,
      port: 1024 + (i % PORTS) + portShift,
      proto: (i % 5 === 0) !== i >= PORTS ? 'udp' : 'tcp',
      from: i % 3 === 0 ? 'any' : [`net${i % 100}`],
      ...(i % 50 === 0 ? { rate: '30/minute' } : {}),
    })),
  };
}

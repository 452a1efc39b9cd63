// The large policy the bench and the apply-diff test load: `rules` rules over 100 source groups
// sharing `cidrs` CIDRs (a quarter IPv6). `portShift` moves every rule's port, so the same shape
// renders to a ruleset in which every rule differs.
import type { Policy } from '../../agent/policy/policy-types.js';

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
      port: 1024 + i + portShift,
      proto: i % 5 === 0 ? 'udp' : 'tcp',
      from: i % 3 === 0 ? 'any' : [`net${i % 100}`],
      ...(i % 50 === 0 ? { rate: '30/minute' } : {}),
    })),
  };
}

// apply's comparison of old and new rules (agent/firewall/diff.ts): normalisation of the kernel's
// listing, per-chain summaries, and bounded cost on large, very different inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describeAll, fullDiff, MAX_DIFF_LINES, normalIptablesRule, normalText, parseIptables, parseNft, summarize } from '../agent/firewall/diff.js';
import { FIXTURES } from './helpers/paths.js';

// `nft -a list table inet portwarden` after `nft -f` of test/fixtures/golden/examples_bastion.nft
// in a namespace (counters and handles), with dynamic-set elements (a rate meter's, and a counted
// refusal's in refused_v4) and a counter that moved; chains note_refused and rule_ssh listed again
// when refusals went through note_refused.
const BASTION_LISTED = `table inet portwarden { # handle 2
	set src_trusted_v4 { # handle 7
		type ipv4_addr
		flags interval
		elements = { 10.8.0.0/16, 203.0.113.0/24 }
	}

	set src_trusted_v6 { # handle 8
		type ipv6_addr
		flags interval
		elements = { 2001:db8:10::/48,
			     fd00:8::/64 }
	}

	set refused_v4 { # handle 9
		type ipv4_addr . inet_proto . inet_service
		size 65535
		flags dynamic,timeout
		counter
		timeout 1h
		elements = { 192.0.2.9 . tcp . 25 counter packets 3 bytes 180 expires 59m59s988ms }
	}

	set refused_v6 { # handle 10
		type ipv6_addr . inet_proto . inet_service
		size 65535
		flags dynamic,timeout
		counter
		timeout 1h
	}

	set limited_v4 { # handle 11
		type ipv4_addr . inet_proto . inet_service
		size 65535
		flags dynamic,timeout
		counter
		timeout 1h
	}

	set limited_v6 { # handle 12
		type ipv6_addr . inet_proto . inet_service
		size 65535
		flags dynamic,timeout
		counter
		timeout 1h
	}

	set rate_0_ssh_v4 { # handle 13
		type ipv4_addr
		size 4096
		flags dynamic,timeout
		timeout 2m
		elements = { 192.0.2.7 timeout 2m expires 1m10s }
	}

	set rate_0_ssh_v6 { # handle 14
		type ipv6_addr
		size 4096
		flags dynamic,timeout
		timeout 2m
	}

	map tcp_ports { # handle 15
		type inet_service : verdict
		flags interval
		elements = { 22 : jump rule_ssh }
	}

	map udp_ports { # handle 16
		type inet_service : verdict
		flags interval
		elements = { 51820 : jump rule_wireguard }
	}

	chain input { # handle 1
		type filter hook input priority filter; policy drop;
		ct state established,related counter packets 17 bytes 2048 accept comment "established" # handle 17
		ct state invalid counter packets 0 bytes 0 drop comment "invalid" # handle 18
		iif "lo" counter packets 0 bytes 0 accept comment "loopback" # handle 19
		icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, mld-listener-query, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } counter packets 0 bytes 0 accept comment "icmpv6 essentials" # handle 21
		icmpv6 type echo-request limit rate 10/second burst 20 packets counter packets 0 bytes 0 accept comment "ping6" # handle 22
		icmp type { destination-unreachable, time-exceeded, parameter-problem } counter packets 0 bytes 0 accept comment "icmp errors" # handle 24
		icmp type echo-request limit rate 10/second burst 20 packets counter packets 0 bytes 0 accept comment "ping" # handle 25
		tcp dport vmap @tcp_ports # handle 26
		udp dport vmap @udp_ports # handle 27
		meta l4proto { tcp, udp } update @refused_v4 { ip saddr . meta l4proto . th dport } # handle 29
		meta l4proto { tcp, udp } update @refused_v6 { ip6 saddr . meta l4proto . th dport } # handle 31
		counter packets 0 bytes 0 comment "default drop" # handle 32
	}

	chain forward { # handle 2
		type filter hook forward priority filter; policy accept;
		ct state established,related counter packets 0 bytes 0 accept comment "established" # handle 33
		ct status dnat counter packets 0 bytes 0 jump published comment "published container ports" # handle 34
	}

	chain published { # handle 3
		meta l4proto tcp ct original proto-dst vmap @tcp_ports # handle 35
		meta l4proto udp ct original proto-dst vmap @udp_ports # handle 36
		counter packets 0 bytes 0 drop comment "default drop" # handle 37
	}

	chain note_refused { # handle 4
		update @refused_v4 { ip saddr . meta l4proto . th dport } # handle 39
		update @refused_v6 { ip6 saddr . meta l4proto . th dport } # handle 40
	}

	chain rule_ssh { # handle 5
		ip saddr @src_trusted_v4 ct state new update @rate_0_ssh_v4 { ip saddr limit rate over 6/minute burst 6 packets } update @limited_v4 { ip saddr . meta l4proto . th dport } counter packets 0 bytes 0 jump log_0 comment "ssh: rate" # handle 41
		ip6 saddr @src_trusted_v6 ct state new update @rate_0_ssh_v6 { ip6 saddr limit rate over 6/minute burst 6 packets } update @limited_v6 { ip6 saddr . meta l4proto . th dport } counter packets 0 bytes 0 jump log_0 comment "ssh: rate" # handle 42
		ip saddr @src_trusted_v4 counter packets 0 bytes 0 accept comment "ssh" # handle 43
		ip6 saddr @src_trusted_v6 counter packets 0 bytes 0 accept comment "ssh" # handle 44
		jump note_refused # handle 45
		counter packets 0 bytes 0 jump log_0 comment "ssh" # handle 46
	}

	chain rule_wireguard { # handle 6
		counter packets 0 bytes 0 accept comment "wireguard" # handle 45
	}

	chain log_0 { # handle 7
		limit rate 10/minute counter packets 0 bytes 0 log prefix "pw ssh: " level info comment "ssh" # handle 46
		meta l4proto tcp counter packets 0 bytes 0 drop comment "ssh" # handle 47
	}
}
`;

test('the kernel listing of a loaded script normalises to the same rules as the script', () => {
  const rendered = readFileSync(`${FIXTURES}golden/examples_bastion.nft`, 'utf8');
  assert.equal(normalText(parseNft(BASTION_LISTED)), normalText(parseNft(rendered)));
  const r = describeAll('auto', 'loaded now', 'bastion.yaml', { nft: BASTION_LISTED }, { nft: rendered });
  assert.deepEqual(r, { same: true, text: 'nft: no change\n' });
});

test('the kernel spelling of ports, addresses and defaults counts as the same rule', () => {
  const rendered = 'table inet portwarden {\n chain published {\n  meta l4proto tcp ct original proto-dst { 80, 443 } counter accept comment "http"\n  ip6 saddr { 2001:db8:0:0::/64, 2001:db8:0:1::/64 } tcp dport 1 counter accept\n  meta nfproto ipv4 ip saddr 192.0.2.1/32 tcp dport 2 counter reject with icmpx port-unreachable\n  limit rate 10/minute burst 5 packets counter accept\n }\n}\n';
  const listed = 'table inet portwarden {\n\tchain published {\n\t\tmeta l4proto tcp ct original proto-dst { 0x1bb [invalid type], 0x50 [invalid type] } counter packets 1 bytes 60 accept comment "http"\n\t\tip6 saddr { 2001:db8::/64, 2001:db8:0:1::/64 } tcp dport 1 counter accept\n\t\tip saddr 192.0.2.1 tcp dport 2 counter reject\n\t\tlimit rate 10/minute counter accept\n\t}\n}\n';
  assert.equal(normalText(parseNft(listed)), normalText(parseNft(rendered)));
  // …but a real difference still shows.
  assert.notEqual(normalText(parseNft(listed.replace('0x50', '0x51'))), normalText(parseNft(rendered)));
});

test('iptables-save counters, quoting and ctstate order do not count as changes', () => {
  const rendered = '*filter\n:PORTWARDEN-INPUT - [0:0]\n-A PORTWARDEN-INPUT -m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment "established" -j RETURN\n-A PORTWARDEN-INPUT -s 192.0.2.1/32 -p tcp -m tcp --dport 22 -m comment --comment "ssh admin" -j ACCEPT\nCOMMIT\n';
  const saved = ':PORTWARDEN-INPUT - [0:0]\n[5:300] -A PORTWARDEN-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment established -j RETURN\n-A PORTWARDEN-INPUT -s 192.0.2.1 -p tcp -m tcp --dport 22 -m comment --comment "ssh admin" -j ACCEPT\n';
  assert.equal(normalText(parseIptables(saved)), normalText(parseIptables(rendered)));
});

test("iptables-save's option order within a match, implicit -m, ICMP type numbers, default burst and log level names count as the same", () => {
  // Rendered lines (test/fixtures/golden) and what iptables-save / ip6tables-save print after loading them.
  const pairs = [
    ['-p tcp -m conntrack --ctorigdstport 25 -m conntrack --ctstate NEW -m hashlimit --hashlimit-name pw-rate-0 --hashlimit-mode srcip --hashlimit-above 30/min --hashlimit-burst 30 --hashlimit-htable-expire 120000 -m comment --comment "smtp: rate" -j PORTWARDEN-LOG-0',
      '-p tcp -m conntrack --ctorigdstport 25 -m conntrack --ctstate NEW -m hashlimit --hashlimit-above 30/min --hashlimit-burst 30 --hashlimit-mode srcip --hashlimit-name pw-rate-0 --hashlimit-htable-expire 120000 -m comment --comment "smtp: rate" -j PORTWARDEN-LOG-0'],
    ['-p icmp --icmp-type destination-unreachable -m comment --comment "icmp errors" -j ACCEPT', '-p icmp -m icmp --icmp-type 3 -m comment --comment "icmp errors" -j ACCEPT'],
    ['-p ipv6-icmp --icmpv6-type packet-too-big -m comment --comment "icmpv6 essentials" -j ACCEPT', '-p ipv6-icmp -m icmp6 --icmpv6-type 2 -m comment --comment "icmpv6 essentials" -j ACCEPT'],
    ['-p tcp --dport 25 -m comment --comment "smtp" -j ACCEPT', '-p tcp -m tcp --dport 25 -m comment --comment smtp -j ACCEPT'],
    ['-m limit --limit 10/min --limit-burst 5 -m comment --comment "ssh" -j LOG --log-prefix "pw ssh: " --log-level info', '-m limit --limit 10/min -m comment --comment ssh -j LOG --log-prefix "pw ssh: " --log-level 6'],
  ];
  for (const [rendered, saved] of pairs) assert.equal(normalIptablesRule(saved!), normalIptablesRule(rendered!), rendered);
  // …but a real difference still shows.
  assert.notEqual(normalIptablesRule('-p tcp -m tcp --dport 26 -m comment --comment smtp -j ACCEPT'), normalIptablesRule(pairs[3]![0]!));
  assert.notEqual(normalIptablesRule('-p tcp -m tcp ! --dport 25 -m comment --comment smtp -j ACCEPT'), normalIptablesRule(pairs[3]![0]!));
});

test('the summary counts rules added, removed and changed per chain, and set elements before → after', () => {
  const before = parseNft('table inet portwarden {\n set s {\n  type ipv4_addr\n  flags interval\n  elements = { 10.0.0.0/8 }\n }\n chain input {\n  type filter hook input priority filter; policy drop;\n  tcp dport 80 counter accept comment "web"\n  tcp dport 22 counter accept comment "ssh"\n  tcp dport 25 counter accept comment "mail"\n }\n chain old {\n  counter drop\n }\n chain same {\n  tcp dport 1 accept\n  tcp dport 2 accept\n }\n}\n');
  const after = parseNft('table inet portwarden {\n set s {\n  type ipv4_addr\n  flags interval\n  elements = { 10.0.0.0/8, 192.0.2.0/24, 198.51.100.0/24 }\n }\n chain input {\n  type filter hook input priority filter; policy accept;\n  tcp dport 8080 counter accept comment "web"\n  tcp dport 22 counter accept comment "ssh"\n  udp dport 53 counter accept comment "dns"\n }\n chain same {\n  tcp dport 2 accept\n  tcp dport 1 accept\n }\n chain new {\n  counter accept\n }\n}\n');
  assert.deepEqual(summarize(before, after), {
    chains: [
      { chain: 'input', added: 1, removed: 1, changed: 1, reordered: false, headChanged: true, status: 'changed' },
      { chain: 'old', added: 0, removed: 1, changed: 0, reordered: false, headChanged: false, status: 'gone' },
      { chain: 'same', added: 0, removed: 0, changed: 0, reordered: true, headChanged: false, status: 'changed' },
      { chain: 'new', added: 1, removed: 0, changed: 0, reordered: false, headChanged: false, status: 'new' },
    ],
    sets: [{ set: 's', before: 1, after: 3, declChanged: false, added: 2, removed: 0 }],
  });
  assert.deepEqual(summarize(after, after), { chains: [], sets: [] });
});

/** A table of `n` rules (and one set of n elements): `shift` moves every port and address. */
function big(n: number, shift: number): string {
  const rules = Array.from({ length: n }, (_, i) => `\t\tip saddr @s tcp dport ${1024 + i + shift} counter accept comment "r${i}"`);
  const elements = Array.from({ length: n }, (_, i) => `${10 + ((i + shift) >> 16)}.${((i + shift) >> 8) & 255}.${(i + shift) & 255}.0/24`);
  return `table inet portwarden {\n\tset s {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { ${elements.join(',\n\t\t\t')} }\n\t}\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n${rules.join('\n')}\n\t}\n}\n`;
}

test('large, very different tables: summary and full diff stay fast, and the full diff is capped with a note', () => {
  const a = big(50_000, 0);
  const b = big(50_000, 1);
  let t0 = performance.now();
  const s = describeAll('auto', 'loaded now', 'big.yaml', { nft: a }, { nft: b });
  const summaryMs = performance.now() - t0;
  assert.match(s.text, /^ {2}chain input: \+0 added, -0 removed, ~50000 changed$/m, s.text);
  assert.match(s.text, /^ {2}set s: 50000 → 50000 elements \(\+1 -1\)$/m, s.text);
  assert.ok(summaryMs < 10_000, `summary took ${summaryMs.toFixed(0)} ms`);

  t0 = performance.now();
  const full = describeAll('full', 'loaded now', 'big.yaml', { nft: a }, { nft: b });
  const fullMs = performance.now() - t0;
  assert.ok(fullMs < 20_000, `full diff took ${fullMs.toFixed(0)} ms`);
  const lines = full.text.split('\n');
  assert.ok(lines.length <= MAX_DIFF_LINES + 2, `${lines.length} lines printed`);
  assert.match(full.text, /… \d+ more diff lines not shown \(at most 20000 are printed; --diff summary gives the counts\)\n$/);
});

test('a few changes in a large table: the full diff is a unified diff of just those lines', () => {
  const a = parseNft(big(50_000, 0));
  const b = parseNft(big(50_000, 0).replace('dport 30000 ', 'dport 9 '));
  const t0 = performance.now();
  const text = fullDiff('nft', 'loaded now', 'big.yaml', a, b);
  assert.ok(performance.now() - t0 < 10_000);
  assert.deepEqual(text.split('\n').filter((l) => /^[-+] /.test(l)), ['-  ip saddr @s tcp dport 30000 counter accept comment "r28976"', '+  ip saddr @s tcp dport 9 counter accept comment "r28976"']);
  assert.match(text, /^@@ /m);
});

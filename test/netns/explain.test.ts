// portwarden explain follows one connection through the live ruleset: its verdict must be what a
// real connect from that address sees, and each step names the rule's handle and comment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { needsRootAnd } from '../helpers/env.js';
import { createLab, flushNeighbours, nsRun, probe, startListeners } from '../helpers/lab.js';
import { runCli } from '../helpers/cli.js';

const RULESET = `table inet ex {
	set office { type ipv4_addr; flags interval; elements = { 192.0.2.8/29 } }
	chain input {
		type filter hook input priority 0; policy drop;
		ct state vmap { established : accept, related : accept, invalid : drop }
		iif "lo" accept
		tcp dport 7000 jump services comment "to services"
		tcp dport 7001 ip saddr 192.0.2.12 reject with tcp reset comment "not c2"
		tcp dport 7001 accept
	}
	chain pre {
		type filter hook prerouting priority raw; policy accept;
		ip saddr 192.0.2.12 tcp dport 7000 drop comment "raw blocklist"
	}
	chain services {
		ip saddr @office counter accept comment "office"
		ip6 saddr 2001:db8:1::/64 accept
	}
}
`;

interface Explained {
  packet: { port?: number; dport: number; from: string };
  steps: { chain: string; handle: number | null; comment: string | null; rule: string; outcome: string }[];
  verdict: string;
}

test('explain: the verdict matches a real connect, and the steps name handles and comments', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip')) return;
  const lab = createLab(2);
  const children: ChildProcess[] = [];
  const [c1, c2] = lab.clients as [(typeof lab.clients)[0], (typeof lab.clients)[0]];
  try {
    children.push(await startListeners(lab.server.ns, [7000, 7001, 7002].map((port) => ({ proto: 'tcp' as const, host: '::', port, ipv6Only: false }))));
    nsRun(lab.server.ns, 'nft', ['-f', '-'], RULESET);
    const cases: [string, typeof c1, number, string][] = [
      [c1.v4, c1, 7000, 'accept'], // 192.0.2.11 is in the office set
      [c2.v4, c2, 7000, 'drop'], // in the office set, but dropped before routing
      [c1.v6, c1, 7000, 'drop'], // the rules accept it, but drop neighbour discovery: IPv6 never arrives
      [c2.v4, c2, 7001, 'reject'],
      [c1.v4, c1, 7001, 'accept'],
      [c1.v4, c1, 7002, 'drop'],
    ];
    for (const [from, client, port, expected] of cases) {
      const r = await runCli(['explain', `${port}/tcp`, '--from', from, '--netns', lab.server.ns, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const e = JSON.parse(r.stdout) as Explained;
      assert.equal(e.verdict, expected, `${from} → ${port}: ${r.stdout}`);
      const host = from.includes(':') ? lab.server.v6 : lab.server.v4;
      const seen = probe(client.ns, [{ proto: 'tcp', host, port }], { timeoutMs: 500 })[0];
      assert.equal(seen, { accept: 'open', reject: 'refused', drop: 'timeout' }[expected], `${from} → ${port}: explain said ${e.verdict}, a connect saw ${seen}`);
    }
    // The text form: chain, handle, comment, the rule in nft syntax, the verdict.
    const text = await runCli(['explain', '7000', '--from', c1.v4, '--netns', lab.server.ns]);
    assert.match(text.stdout, /^new tcp connection from 192\.0\.2\.11 to port 7000 via eth0:$/m);
    assert.match(text.stdout, /^ {2}inet ex input handle \d+ "to services": jump services\n {4}tcp dport 7000 jump services$/m);
    assert.match(text.stdout, /^ {2}inet ex services handle \d+ "office": accept\n {4}ip saddr @office accept$/m);
    assert.match(text.stdout, /^verdict: accept$/m);
    const raw = await runCli(['explain', '7000', '--from', c2.v4, '--netns', lab.server.ns]);
    assert.match(raw.stdout, /^ {2}inet ex pre handle \d+ "raw blocklist": drop\n {4}ip saddr 192\.0\.2\.12 tcp dport 7000 drop$/m);
    assert.match(raw.stdout, /^verdict: drop$/m);
    const v6 = JSON.parse((await runCli(['explain', '7000', '--from', c1.v6, '--netns', lab.server.ns, '--json'])).stdout) as Explained & { reasons: string[] };
    assert.ok(v6.reasons.some((r) => /a neighbour solicitation from 2001:db8:1::11 on eth0 is refused/.test(r)), v6.reasons.join('\n'));
    // With neighbour discovery let in, the same connection gets through.
    nsRun(lab.server.ns, 'nft', ['insert', 'rule', 'inet', 'ex', 'input', 'icmpv6', 'type', 'nd-neighbor-solicit', 'accept']);
    const after = JSON.parse((await runCli(['explain', '7000', '--from', c1.v6, '--netns', lab.server.ns, '--json'])).stdout) as Explained;
    assert.equal(after.verdict, 'accept');
    flushNeighbours(c1.ns, lab.server.ns); // the failed resolution is remembered for a while
    assert.equal(probe(c1.ns, [{ proto: 'tcp', host: lab.server.v6, port: 7000 }], { timeoutMs: 2000 })[0], 'open');
    const bad = await runCli(['explain', '70000', '--from', c1.v4]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /usage: portwarden explain PORT/);
  } finally {
    children.forEach((c) => c.kill('SIGKILL'));
    lab.destroy();
  }
});

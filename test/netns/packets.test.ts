// The generated rules, loaded with the real nft / iptables-restore in a lab of namespaces, against
// real TCP connects and UDP exchanges from two clients over IPv4 and IPv6.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadPolicy } from '../../agent/policy/load.js';
import { needsRootAnd } from '../helpers/env.js';
import { createLab, probe, startListeners, type Lab, type Probe, type ProbeResult } from '../helpers/lab.js';
import { counterFor, loadRules, type TestBackend } from '../helpers/firewall.js';

const POLICY = (refuse: 'drop' | 'reject') => `
version: 1
default: deny
refuse: ${refuse}
sources:
  c1only: [192.0.2.11, "2001:db8:1::11"]
rules:
  - { name: web, port: 8080, from: any }
  - { name: admin, port: 2222, from: [c1only], log: true }
  - { name: dns, port: 5353, proto: udp, from: [c1only] }
  - { name: db, port: 5432, from: localhost }
  - { name: smtp, port: 2525, from: any, rate: 3/minute }
  - { name: telnet, port: 2323, action: deny }
  - { name: range, port: ["7000-7002", 7005] }
`;

const LISTEN = [
  ...[8080, 2222, 2323, 2525, 5432, 7001, 7005, 7003, 9999].map((port) => ({ proto: 'tcp' as const, host: '::', port, ipv6Only: false })),
  { proto: 'tcp' as const, host: '127.0.0.1', port: 5433 },
  { proto: 'udp' as const, host: '::', port: 5353, ipv6Only: false },
  { proto: 'udp' as const, host: '::', port: 5354, ipv6Only: false },
];

/** [proto, port, expected from c1, expected from c2] with refuse: reject. */
const EXPECT: ['tcp' | 'udp', number, ProbeResult, ProbeResult][] = [
  ['tcp', 8080, 'open', 'open'],
  ['tcp', 2222, 'open', 'refused'],
  ['udp', 5353, 'open', 'refused'],
  ['udp', 5354, 'refused', 'refused'],
  ['tcp', 5432, 'refused', 'refused'],
  ['tcp', 5433, 'refused', 'refused'], // loopback-only: unreachable from clients
  ['tcp', 2323, 'refused', 'refused'],
  ['tcp', 7001, 'open', 'open'],
  ['tcp', 7005, 'open', 'open'],
  ['tcp', 7003, 'refused', 'refused'],
  ['tcp', 9999, 'refused', 'refused'],
];

/** Kernel log lines stamped after `since` (seconds of uptime); a full ring buffer keeps its line count, so count by time. */
function dmesgSince(since: number): string[] {
  return execFileSync('dmesg', [], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => Number(/^\[\s*(\d+\.\d+)\]/.exec(l)?.[1] ?? -1) >= since);
}

const uptime = () => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);

/** Kernel logging from non-initial namespaces is off by default; switch it on only for the test. */
function withNetnsLogging<T>(fn: () => Promise<T>): Promise<T> {
  const knob = '/proc/sys/net/netfilter/nf_log_all_netns';
  const old = readFileSync(knob, 'utf8').trim();
  writeFileSync(knob, '1');
  return fn().finally(() => writeFileSync(knob, old));
}

async function scenario(backend: TestBackend): Promise<void> {
  const lab: Lab = createLab(2);
  const children: ChildProcess[] = [];
  try {
    children.push(await startListeners(lab.server.ns, LISTEN));
    const [c1, c2] = lab.clients as [Lab['clients'][0], Lab['clients'][0]];
    const before = probe(c2.ns, [{ proto: 'tcp', host: lab.server.v4, port: 2222 }]);
    assert.deepEqual(before, ['open'], 'without rules the port is reachable (the lab works)');

    await loadRules(lab.server.ns, backend, loadPolicy('p.yaml', { text: POLICY('reject'), hostname: 'lab' }).policy);
    for (const family of [4, 6] as const) {
      const server = family === 4 ? lab.server.v4 : lab.server.v6;
      const probes: Probe[] = EXPECT.map(([proto, port]) => ({ proto, host: server, port }));
      assert.deepEqual(probe(c1.ns, probes), EXPECT.map((e) => e[2]), `${backend} IPv${family} from c1`);
      assert.deepEqual(probe(c2.ns, probes), EXPECT.map((e) => e[3]), `${backend} IPv${family} from c2`);
      // Per-source rate: 3 new connections a minute, the 4th and 5th refused; another source unaffected.
      const smtp = Array.from({ length: 5 }, () => ({ proto: 'tcp' as const, host: server, port: 2525 }));
      assert.deepEqual(probe(c2.ns, smtp, { sequential: true }), ['open', 'open', 'open', 'refused', 'refused'], `${backend} IPv${family} rate`);
      assert.deepEqual(probe(c1.ns, smtp.slice(0, 1)), ['open'], `${backend} IPv${family} rate is per source`);
      assert.ok(counterFor(lab.server.ns, backend, 'smtp: rate', /reject|REJECT|jump|-j PORTWARDEN/, family) >= 2, 'rate counter moved');
    }
    // Counters move on the accept and refuse rules of a rule.
    assert.ok(counterFor(lab.server.ns, backend, 'admin', /accept|ACCEPT/) >= 1, 'admin accept counter');
    assert.ok(counterFor(lab.server.ns, backend, 'admin', /jump|PORTWARDEN-LOG/) >= 1, 'admin refuse counter');
    assert.ok(counterFor(lab.server.ns, backend, 'web', /accept|ACCEPT/) >= 2, 'web accept counter');

    // A logged rule leaves a kernel log line naming the rule and the refused source.
    await withNetnsLogging(async () => {
      const mark = uptime();
      assert.deepEqual(probe(c2.ns, [{ proto: 'tcp', host: lab.server.v4, port: 2222 }]), ['refused']);
      let found = false;
      for (let i = 0; i < 20 && !found; i++) {
        found = dmesgSince(mark).some((l) => l.includes('pw admin: ') && l.includes(`SRC=${c2.v4}`) && l.includes('DPT=2222'));
        if (!found) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(found, 'a "pw admin: " log line with the source appeared');
    });

    // refuse: drop → refused connects time out instead of failing at once.
    await loadRules(lab.server.ns, backend, loadPolicy('p.yaml', { text: POLICY('drop'), hostname: 'lab' }).policy);
    assert.deepEqual(
      probe(c2.ns, [
        { proto: 'tcp', host: lab.server.v4, port: 9999 },
        { proto: 'tcp', host: lab.server.v6, port: 2222 },
        { proto: 'tcp', host: lab.server.v6, port: 8080 },
      ]),
      ['timeout', 'timeout', 'open'],
    );
  } finally {
    children.forEach((c) => c.kill('SIGKILL'));
    lab.destroy();
  }
}

test('nft: rules enforce the policy on real packets (IPv4 and IPv6)', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip', 'dmesg')) return;
  await scenario('nft');
});

test('iptables/ip6tables: rules enforce the policy on real packets, one jump from INPUT', async (t) => {
  if (!needsRootAnd(t, 'iptables-restore', 'ip6tables-restore', 'nsenter', 'ip', 'dmesg')) return;
  await scenario('iptables');
});

// End to end: real listeners in a namespace the test creates, the CLI run against it from the host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { needsRootAnd } from '../helpers/env.js';
import { createNamespace, deleteNamespace, startListeners } from '../helpers/lab.js';
import { runCli } from '../helpers/cli.js';

interface JsonListener {
  proto: string;
  family: number;
  address: string;
  port: number;
  scope: string;
  dualStack: boolean;
  processes: { pid: number; name: string; exe: string | null; user: string }[];
}

test('scan, check and init against real listeners in a namespace', async (t) => {
  if (!needsRootAnd(t, 'ss', 'nsenter', 'ip')) return;
  const ns = createNamespace('e2e');
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(`${tmpdir()}/pw-e2e-`);
  try {
    // Namespace-local addresses: loopback only (no link needed).
    children.push(
      await startListeners(ns, [
        { proto: 'tcp', host: '0.0.0.0', port: 8080 },
        { proto: 'tcp', host: '::', port: 8443, ipv6Only: false },
        { proto: 'tcp', host: '::', port: 8444, ipv6Only: true },
        { proto: 'tcp', host: '127.0.0.1', port: 5432 },
        { proto: 'tcp', host: '::1', port: 5433 },
        { proto: 'udp', host: '0.0.0.0', port: 5353 },
        { proto: 'udp', host: '::', port: 5354, ipv6Only: true },
        { proto: 'udp', host: '127.0.0.1', port: 5355 },
      ]),
      await startListeners(ns, [{ proto: 'tcp', host: '0.0.0.0', port: 25 }], 'master'),
    );
    const scan = await runCli(['scan', '--json', '--netns', ns]);
    assert.equal(scan.code, 0, scan.stderr);
    assert.equal(scan.stderr, '', 'no cgroup2 noise or other warnings reach the user');
    const { host, listeners } = JSON.parse(scan.stdout) as { host: { netns: string; source: string }; listeners: JsonListener[] };
    assert.equal(host.netns, ns);
    assert.equal(host.source, 'ss');
    const find = (proto: string, port: number) => listeners.find((l) => l.proto === proto && l.port === port);
    assert.equal(listeners.length, 9);
    assert.deepEqual(
      listeners.map((l) => `${l.proto}/${l.family}/${l.address}/${l.port}/${l.scope}/${l.dualStack}`),
      [
        'tcp/4/0.0.0.0/25/wildcard/false',
        'tcp/4/127.0.0.1/5432/loopback/false',
        'tcp/6/::1/5433/loopback/false',
        'tcp/4/0.0.0.0/8080/wildcard/false',
        'tcp/6/::/8443/wildcard/true',
        'tcp/6/::/8444/wildcard/false',
        'udp/4/0.0.0.0/5353/wildcard/false',
        'udp/6/::/5354/wildcard/false',
        'udp/4/127.0.0.1/5355/loopback/false',
      ],
    );
    const master = find('tcp', 25)!.processes;
    assert.equal(master.length, 1);
    assert.equal(master[0]!.name, 'master');
    assert.equal(master[0]!.pid, children[1]!.pid);
    assert.equal(master[0]!.exe, process.execPath);
    assert.equal(master[0]!.user, 'root');
    assert.equal(find('tcp', 8080)!.processes[0]!.pid, children[0]!.pid);
    assert.equal(find('udp', 5353)!.processes[0]!.name, 'node');

    const table = await runCli(['scan', '--netns', ns]);
    assert.match(table.stdout, /^PROTO\s+ADDRESS:PORT\s+SCOPE\s+DUAL\s+EXPOSURE\s+PROCESSES$/m);
    assert.match(table.stdout, /^tcp6\s+\[::\]:8443\s+wildcard\s+v4\+v6\s+any\s+node\(\d+,root\)$/m);
    assert.match(table.stdout, /^tcp\s+127\.0\.0\.1:5432\s+loopback\s+localhost\s+node/m);

    // The policy admits some and forbids others.
    const policy = `${dir}/policy.yaml`;
    writeFileSync(
      policy,
      [
        'version: 1',
        'rules:',
        '  - { name: smtp, port: 25, process: [master] }',
        '  - { name: web, port: [8080, 8443, 8444], process: [nginx] }',
        '  - { name: mdns, port: "5353-5354", proto: udp }',
        '  - { name: ssh, port: 22, required: true }',
        '  - { name: pg, port: 5432, from: localhost }',
        '',
      ].join('\n'),
    );
    const check = await runCli(['check', '--json', '--netns', ns, '--policy', policy]);
    assert.equal(check.code, 1, check.stderr);
    const out = JSON.parse(check.stdout) as { findings: { id: string; kind: string; severity: string; port: number; rule: string | null }[]; listeners: unknown[] };
    assert.deepEqual(out.findings.map((f) => f.id).sort(), [
      'missing-listener:tcp/22:ssh',
      'unexpected-process:tcp/8080:wildcard:node',
      'unexpected-process:tcp/8443:wildcard:node',
      'unexpected-process:tcp/8444:wildcard:node',
    ]);
    assert.equal(out.listeners.length, 9);
    for (const key of ['id', 'kind', 'severity', 'proto', 'port', 'address', 'rule', 'processes', 'message', 'remedy']) {
      assert.ok(key in out.findings[0]!, `finding has ${key}`);
    }
    assert.equal((await runCli(['check', '--netns', ns, '--policy', policy, '--fail-on', 'critical'])).code, 0);
    const human = await runCli(['check', '--netns', ns, '--policy', policy]);
    assert.match(human.stdout, /^HIGH \(4\)$/m);
    assert.ok(!human.stdout.includes('\u001b['), 'no colour without a TTY');

    // init writes a policy that check passes at once, and never overwrites without --force.
    const starter = `${dir}/starter.yaml`;
    assert.equal((await runCli(['init', '--netns', ns, '--output', starter])).code, 0);
    assert.ok(existsSync(starter));
    assert.match(readFileSync(starter, 'utf8'), /process: \["master"\]/);
    const again = await runCli(['check', '--netns', ns, '--policy', starter]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    const refused = await runCli(['init', '--netns', ns, '--output', starter]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /exists; pass --force/);
    assert.equal((await runCli(['init', '--netns', ns, '--output', starter, '--force'])).code, 0);

    // report (what npm start runs): listeners with exposure, findings, suggested rules; exit 0.
    const report = await runCli(['report', '--netns', ns, '--policy', policy]);
    assert.equal(report.code, 0, report.stderr);
    assert.match(report.stdout, /^== listeners on \S+ \(netns \S+\)$/m);
    assert.match(report.stdout, /^tcp\s+0\.0\.0\.0:25\s+wildcard\s+any\s+master\(\d+,root\)$/m);
    assert.match(report.stdout, /^== findings against .*policy\.yaml\n(?:.*\n)*? {2}missing-listener: /m);
    assert.match(report.stdout, /^== suggested nftables rules \(portwarden rules --policy .*\)\n(?:.*\n)*table inet portwarden \{$/m);

    const noNs = await runCli(['scan', '--netns', 'pw-does-not-exist']);
    assert.equal(noNs.code, 2);
    assert.match(noNs.stderr, /no network namespace named "pw-does-not-exist"/);
  } finally {
    children.forEach((c) => c.kill('SIGKILL'));
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});

// After a change, the daemon lists again only what changed — someone else's table, a chain whose
// rules moved, a set whose elements moved — not the whole ruleset (which for a 10 000-rule policy
// of ours takes nft seconds): real nft, a real monitor, a real listener in a lab namespace; the
// tools the agent runs are counted on their way out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import pino from 'pino';
import { Agent } from '../../agent/daemon/agent.js';
import { exec as realExec, type Exec } from '../../agent/exec.js';
import { needsRootAnd } from '../helpers/env.js';
import { createNamespace, deleteNamespace, nsRun, startListeners } from '../helpers/lab.js';
import { runCli } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

test('watch: a change re-reads the table, chain or set it touched, not the whole ruleset', async (t) => {
  if (!needsRootAnd(t, 'nft', 'ip', 'nsenter')) return;
  const ns = createNamespace('tables');
  const dir = mkdtempSync(`${tmpdir()}/pw-tables-`);
  let server: ChildProcess | null = null;
  const calls: string[] = [];
  const exec: Exec = (cmd, args, opts) => {
    calls.push([cmd, ...args].join(' ').replace(/^nsenter --net=\S+ -- /, ''));
    return realExec(cmd, args, opts);
  };
  const agent = new Agent(`${dir}/config.yaml`, pino({ level: 'silent' }), false, exec);
  try {
    server = await startListeners(ns, [{ proto: 'tcp', host: '0.0.0.0', port: 3000 }]);
    writeFileSync(`${dir}/policy.yaml`, 'version: 1\ndefault: deny\nrules:\n  - { name: app, port: 3000 }\n');
    const r = await runCli(['apply', '--policy', `${dir}/policy.yaml`, '--netns', ns, '--state-dir', `${dir}/state`, '--backend', 'nft', '--confirm', '0', '--yes']);
    assert.equal(r.code, 0, r.stderr);
    // Someone else's table drops what the policy allows.
    nsRun(ns, 'nft', ['-f', '-'], 'table inet filter {\n\tset deny {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t}\n\tchain input {\n\t\ttype filter hook input priority 10; policy accept;\n\t\ttcp dport 3000 drop\n\t\tip saddr @deny tcp dport 3000 drop\n\t}\n}\n');
    writeFileSync(`${dir}/config.yaml`, [`policy: ${dir}/policy.yaml`, `state_dir: ${dir}/state`, 'schedule: "0 0 * * * *"', 'settle: 1', 'repeat: 0', `netns: ${ns}`, 'attempts: false', 'sinks: []', ''].join('\n'));
    await agent.start();
    agent.schedule();
    await until('monitors', () => agent.watchingFirewall, 10_000);
    await agent.runCycle();
    const events = () => readFileSync(`${dir}/state/events.jsonl`, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; finding: { kind: string } });
    const count = (event: string, kind: string) => events().filter((e) => e.event === event && e.finding.kind === kind).length;
    assert.equal(count('opened', 'blocked-service'), 1, 'the other table blocks what the policy allows');

    const notAll = () => assert.ok(!calls.some((c) => c.startsWith('nft -j list ruleset')), `the whole ruleset was listed again:\n${calls.join('\n')}`);
    // A rule of someone else's chain deleted: that chain alone.
    calls.length = 0;
    const handle = /tcp dport 3000 drop # handle (\d+)/.exec(nsRun(ns, 'nft', ['-a', 'list', 'chain', 'inet', 'filter', 'input']))![1]!;
    nsRun(ns, 'nft', ['delete', 'rule', 'inet', 'filter', 'input', 'handle', handle]);
    await until('blocked-service resolved', () => count('resolved', 'blocked-service') === 1, 10_000);
    assert.ok(calls.includes('nft -j list chain inet filter input'), calls.join('\n'));
    notAll();

    // Elements of someone else's set (a blocklist a tool keeps up to date): that set alone.
    calls.length = 0;
    nsRun(ns, 'nft', ['add', 'element', 'inet', 'filter', 'deny', '{ 0.0.0.0/1 }']);
    await until('blocked-service opened again', () => count('opened', 'blocked-service') === 2, 10_000);
    assert.ok(calls.includes('nft -j list set inet filter deny'), calls.join('\n'));
    notAll();

    // A rule inserted into our own table: its chain alone (the rules' places in it matter, and they come with it).
    nsRun(ns, 'nft', ['delete', 'table', 'inet', 'filter']);
    await until('blocked-service resolved again', () => count('resolved', 'blocked-service') === 2, 10_000);
    calls.length = 0;
    nsRun(ns, 'nft', ['insert', 'rule', 'inet', 'portwarden', 'input', 'tcp', 'dport', '3000', 'drop']);
    await until('our own rule blocks it', () => count('opened', 'blocked-service') === 3, 10_000);
    assert.ok(calls.includes('nft -j list chain inet portwarden input'), calls.join('\n'));
    notAll();

    // Changes that never pause (a tool updating its set every 100 ms) do not hold the check back.
    nsRun(ns, 'nft', ['-f', '-'], 'table inet noise {\n\tset s {\n\t\ttype ipv4_addr\n\t}\n}\n');
    let noisy = true;
    const noise = (async () => {
      for (let i = 0; noisy && i < 300; i++) {
        await realExec('nsenter', [`--net=/run/netns/${ns}`, '--', 'nft', 'add', 'element', 'inet', 'noise', 's', `{ 10.9.${i >> 8}.${i & 255} }`]);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      await new Promise((r) => setTimeout(r, 500));
      const ours = /tcp dport 3000 drop # handle (\d+)/.exec(nsRun(ns, 'nft', ['-a', 'list', 'chain', 'inet', 'portwarden', 'input']))![1]!;
      nsRun(ns, 'nft', ['delete', 'rule', 'inet', 'portwarden', 'input', 'handle', ours]);
      await until('resolved while the changes go on', () => count('resolved', 'blocked-service') === 3, 5_000);
    } finally {
      noisy = false;
      await noise;
    }
  } finally {
    await agent.stop(500);
    server?.kill('SIGKILL');
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});

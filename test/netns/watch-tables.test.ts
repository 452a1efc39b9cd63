// After a change of someone else's table, the daemon lists that table again, not the whole
// ruleset (which for a 10 000-rule policy of ours takes nft seconds): real nft, a real monitor, a
// real listener in a lab namespace; the tools the agent runs are counted on their way out.
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

test('watch: a change of another table re-reads that table alone; a change of ours reads everything', async (t) => {
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
    nsRun(ns, 'nft', ['-f', '-'], 'table inet filter {\n\tchain input {\n\t\ttype filter hook input priority 10; policy accept;\n\t\ttcp dport 3000 drop\n\t}\n}\n');
    writeFileSync(`${dir}/config.yaml`, [`policy: ${dir}/policy.yaml`, `state_dir: ${dir}/state`, 'schedule: "0 0 * * * *"', 'settle: 1', 'repeat: 0', `netns: ${ns}`, 'attempts: false', 'sinks: []', ''].join('\n'));
    await agent.start();
    agent.schedule();
    await until('monitors', () => agent.watchingFirewall, 10_000);
    await agent.runCycle();
    const events = () => readFileSync(`${dir}/state/events.jsonl`, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; finding: { kind: string } });
    const count = (event: string, kind: string) => events().filter((e) => e.event === event && e.finding.kind === kind).length;
    assert.equal(count('opened', 'blocked-service'), 1, 'the other table blocks what the policy allows');

    calls.length = 0;
    const handle = /tcp dport 3000 drop # handle (\d+)/.exec(nsRun(ns, 'nft', ['-a', 'list', 'chain', 'inet', 'filter', 'input']))![1]!;
    nsRun(ns, 'nft', ['delete', 'rule', 'inet', 'filter', 'input', 'handle', handle]);
    await until('blocked-service resolved', () => count('resolved', 'blocked-service') === 1, 10_000);
    assert.ok(calls.includes('nft -j list table inet filter'), calls.join('\n'));
    assert.ok(!calls.some((c) => c.startsWith('nft -j list ruleset')), `the whole ruleset was listed again:\n${calls.join('\n')}`);

    // Our own table changed: everything is read (it may hold thousands of rules, and its rules' places matter).
    calls.length = 0;
    nsRun(ns, 'nft', ['insert', 'rule', 'inet', 'portwarden', 'input', 'tcp', 'dport', '3001', 'accept']);
    await until('read again', () => calls.some((c) => c.startsWith('nft -j list ruleset')), 10_000);
  } finally {
    await agent.stop(500);
    server?.kill('SIGKILL');
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});

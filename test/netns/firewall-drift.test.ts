// The agent notices when the rules portwarden applied are changed or removed behind its back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { needsRootAnd } from '../helpers/env.js';
import { createNamespace, deleteNamespace, nsRun, startListeners } from '../helpers/lab.js';
import { runCli } from '../helpers/cli.js';
import { readEvents } from '../../agent/alerts/journal.js';

test('watch --once raises firewall-drift when our table is changed or removed, and resolves it', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip', 'ss')) return;
  const ns = createNamespace('drift');
  const dir = mkdtempSync(`${tmpdir()}/pw-drift-`);
  try {
    const policy = `${dir}/policy.yaml`;
    writeFileSync(policy, 'version: 1\nrules:\n  - { name: ssh, port: 22 }\n');
    const config = `${dir}/config.yaml`;
    writeFileSync(config, `policy: ${policy}\nstate_dir: ${dir}/state\nsettle: 1\nrepeat: 0\nnetns: ${ns}\n`);
    const once = async () => {
      const r = await runCli(['watch', '--once', '--config', config]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    };
    const drift = () => readEvents(`${dir}/state`).filter((e) => e.finding.kind === 'firewall-drift').map((e) => `${e.event}: ${e.finding.message}`);
    const apply = await runCli(['apply', '--policy', policy, '--netns', ns, '--state-dir', `${dir}/state`, '--confirm', '0', '--yes']);
    assert.equal(apply.code, 0, apply.stderr);
    await once();
    assert.deepEqual(drift(), [], 'applied rules in place: no drift');
    nsRun(ns, 'nft', ['add', 'rule', 'inet', 'portwarden', 'input', 'tcp', 'dport', '9999', 'accept']);
    await once();
    assert.equal(drift().length, 1);
    assert.match(drift()[0]!, /^opened: table inet portwarden differs from what portwarden applied at /);
    nsRun(ns, 'nft', ['delete', 'table', 'inet', 'portwarden']);
    await once();
    assert.equal(drift().length, 1, 'still the same open finding (same id), no new event');
    const reapply = await runCli(['apply', '--policy', policy, '--netns', ns, '--state-dir', `${dir}/state`, '--confirm', '0', '--yes']);
    assert.equal(reapply.code, 0, reapply.stderr);
    await once();
    assert.equal(drift().length, 2);
    assert.match(drift()[1]!, /^resolved: /);
  } finally {
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('watch --once raises firewall-gap when the live firewall admits more than the policy, and resolves it when it no longer does', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip', 'ss')) return;
  const ns = createNamespace('gap');
  const dir = mkdtempSync(`${tmpdir()}/pw-gap-`);
  const listener = await startListeners(ns, [{ proto: 'tcp', host: '0.0.0.0', port: 7000 }]);
  try {
    const policy = `${dir}/policy.yaml`;
    writeFileSync(policy, 'version: 1\nrules:\n  - { name: db, port: 7000, from: [192.0.2.0/24] }\n');
    const config = `${dir}/config.yaml`;
    writeFileSync(config, `policy: ${policy}\nstate_dir: ${dir}/state\nsettle: 1\nrepeat: 0\nnetns: ${ns}\n`);
    const once = async () => assert.equal((await runCli(['watch', '--once', '--config', config])).code, 0);
    const gap = () => readEvents(`${dir}/state`).filter((e) => e.finding.kind === 'firewall-gap').map((e) => `${e.event}: ${e.finding.message}`);
    await once();
    assert.deepEqual(gap(), ['opened: the live firewall lets 0.0.0.0/1, 128.0.0.0/2, 192.0.0.0/23 and 21 more reach tcp/7000 on 0.0.0.0, which rule "db" does not allow']);
    // A hand-made rule narrows it to the policy's sources: the finding resolves.
    nsRun(ns, 'nft', ['-f', '-'], 'table inet hand {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 7000 ip saddr != 192.0.2.0/24 drop\n\t}\n}\n');
    await once();
    assert.equal(gap().length, 2);
    assert.match(gap()[1]!, /^resolved: /);
    // With exposure: false in the config the daemon does not read the firewall at all.
    nsRun(ns, 'nft', ['delete', 'table', 'inet', 'hand']);
    writeFileSync(config, `policy: ${policy}\nstate_dir: ${dir}/state\nsettle: 1\nrepeat: 0\nnetns: ${ns}\nexposure: false\n`);
    await once();
    assert.equal(gap().length, 2, 'no new firewall-gap event');
  } finally {
    listener.kill('SIGKILL');
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});

// The agent notices when the rules portwarden applied are changed or removed behind its back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { needsRootAnd } from '../helpers/env.js';
import { createNamespace, deleteNamespace, nsRun } from '../helpers/lab.js';
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

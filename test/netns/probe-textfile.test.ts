// probe --textfile: the outside view as node_exporter metrics, written by the real command. The
// prober and the listeners share one lab namespace (probing its own loopback), and the file is
// judged by promtool's strict exposition-format checker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { needsRootAnd } from '../helpers/env.js';
import { createNamespace, deleteNamespace, startListeners } from '../helpers/lab.js';
import { CLI } from '../helpers/paths.js';

const POLICY = `version: 1
default: deny
loopback: allow
rules:
  - name: web
    port: 8080
    from: any
  - name: api
    port: 8081
    from: any
`;

function probeIn(ns: string, args: string[]) {
  return spawnSync('nsenter', [`--net=/run/netns/${ns}`, '--', process.execPath, CLI, 'probe', ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } });
}

test('probe --textfile writes one mismatch gauge per probed port and the run time; promtool accepts it', async (t) => {
  if (!needsRootAnd(t, 'ip', 'nsenter', 'promtool')) return;
  const dir = mkdtempSync(`${tmpdir()}/pw-probe-tf-`);
  const ns = createNamespace('ptf');
  let listener: ChildProcess | undefined;
  try {
    writeFileSync(`${dir}/policy.yaml`, POLICY);
    listener = await startListeners(ns, [{ proto: 'tcp', host: '127.0.0.1', port: 8080 }]);
    const file = `${dir}/probe.prom`;
    const before = Date.now() / 1000;
    const r = probeIn(ns, ['127.0.0.1', '--policy', `${dir}/policy.yaml`, '--timeout', '2', '--textfile', file]);
    // 8081 is allowed from anywhere and nothing listens: a mismatch, so exit 1.
    assert.equal(r.status, 1, r.stderr + r.stdout);
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^portwarden_probe_mismatch\{target="127\.0\.0\.1",proto="tcp",port="8080",expected="open",observed="open"\} 0$/m);
    assert.match(text, /^portwarden_probe_mismatch\{target="127\.0\.0\.1",proto="tcp",port="8081",expected="open",observed="closed"\} 1$/m);
    const at = Number(/^portwarden_probe_last_run_timestamp_seconds\{target="127\.0\.0\.1"\} (\S+)$/m.exec(text)?.[1]);
    assert.ok(at >= before - 1 && at <= Date.now() / 1000 + 1, `last run ${at}`);
    execFileSync('promtool', ['check', 'metrics'], { input: text }); // throws on a format error

    // A symbolic link as FILE is refused before anything is probed, and what it points to stays.
    writeFileSync(`${dir}/target`, 'keep\n');
    symlinkSync(`${dir}/target`, `${dir}/link.prom`);
    const bad = probeIn(ns, ['127.0.0.1', '--policy', `${dir}/policy.yaml`, '--textfile', `${dir}/link.prom`]);
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /link\.prom.*symbolic link/);
    assert.equal(readFileSync(`${dir}/target`, 'utf8'), 'keep\n');
  } finally {
    listener?.kill();
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});

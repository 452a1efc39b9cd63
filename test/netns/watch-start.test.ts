// A daemon that cannot open one of its /metrics listeners stops with a one-line reason and lets go
// of its state dir: it must not linger half started, holding watch.lock and ignoring SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { needsRootAnd } from '../helpers/env.js';
import { createNamespace, deleteNamespace } from '../helpers/lab.js';
import { CLI } from '../helpers/paths.js';

test('watch: a second /metrics listener whose port is taken ends the agent (exit 3, watch.lock released), within seconds', async (t) => {
  if (!needsRootAnd(t, 'ip', 'nsenter')) return;
  const ns = createNamespace('wstart');
  const dir = mkdtempSync(`${tmpdir()}/pw-wstart-`);
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
  const port = (taken.address() as { port: number }).port;
  try {
    writeFileSync(`${dir}/policy.yaml`, 'version: 1\nrules:\n  - { name: web, port: 8080 }\n');
    writeFileSync(`${dir}/config.yaml`, [
      `policy: ${dir}/policy.yaml`, `state_dir: ${dir}/state`, `netns: ${ns}`, 'exposure: false', 'sinks:',
      '  - type: prometheus', '    name: first', `    textfile: ${dir}/a.prom`, '    listen: 127.0.0.1:0',
      '  - type: prometheus', '    name: second', `    textfile: ${dir}/b.prom`, `    listen: 127.0.0.1:${port}`, '',
    ].join('\n'));
    const child = spawn(process.execPath, [CLI, 'watch', '--config', `${dir}/config.yaml`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(null);
      }, 20_000);
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.equal(code, 3, `exit ${code} (null: still running after 20 s)\n${stderr}`);
    assert.match(stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
    assert.equal(existsSync(`${dir}/state/watch.lock`), false, 'watch.lock released');
  } finally {
    taken.close();
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});

// exec's stdoutToFile (agent/exec.ts): the program's stdout is an unlinked file in TMPDIR, not a
// pipe (nft writes a listing a few bytes per write(2); through a pipe each write can wake us).
// Whatever the program writes comes back whole, nothing is left in TMPDIR, and the timeout still
// stops the program.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { exec, ToolTimeoutError } from '../agent/exec.js';

function inTmp(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(`${tmpdir()}/pw-exec-out-`);
    const before = process.env.TMPDIR;
    process.env.TMPDIR = dir;
    try {
      await fn(dir);
    } finally {
      if (before === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = before;
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  "stdoutToFile: the program's stdout is a deleted file in TMPDIR, and nothing stays there",
  inTmp(async (dir) => {
    const r = await exec('readlink', ['/proc/self/fd/1'], { stdoutToFile: true });
    assert.equal(r.code, 0);
    assert.match(r.stdout.trim(), new RegExp(`^${dir}/\\.portwarden-out\\.${process.pid}\\.[0-9a-f]{16} \\(deleted\\)$`));
    assert.deepEqual(readdirSync(dir), []);
    // Without the option, a pipe (a socket pair in Node) as before.
    assert.match((await exec('readlink', ['/proc/self/fd/1'])).stdout, /^(?:pipe|socket):/);
  }),
);

test(
  'stdoutToFile: 4 MB written two bytes at a time comes back whole, stderr and the exit code too',
  inTmp(async (dir) => {
    const script = "const fs = require('fs'); for (let i = 0; i < 2e6; i++) fs.writeSync(1, 'ab'); fs.writeSync(2, 'done'); process.exitCode = 3;";
    const r = await exec(process.execPath, ['-e', script], { stdoutToFile: true });
    assert.equal(r.code, 3);
    assert.equal(r.stderr, 'done');
    assert.equal(r.stdout.length, 4e6);
    assert.ok(/^(?:ab)+$/.test(r.stdout));
    assert.deepEqual(readdirSync(dir), []);
  }),
);

test(
  'stdoutToFile: a program that does not finish is stopped at the timeout, and no file stays',
  inTmp(async (dir) => {
    const t0 = Date.now();
    await assert.rejects(exec('sleep', ['30'], { stdoutToFile: true, timeoutMs: 300 }), ToolTimeoutError);
    assert.ok(Date.now() - t0 < 10_000);
    assert.deepEqual(readdirSync(dir), []);
  }),
);

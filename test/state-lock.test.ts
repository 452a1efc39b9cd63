// The state lock against a dead holder: several real processes judge the same stale lock at once,
// and still only one at a time holds it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { HELPERS } from './helpers/paths.js';

/** A pid that just exited (nothing runs under it now). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

const contender = (lock: string, startAt: number, holdMs: number, judgeMs: number) =>
  new Promise<{ pid: number; entered: number; left: number }>((resolve, reject) => {
    execFile(process.execPath, [`${HELPERS}lock-contender.js`, lock, String(startAt), String(holdMs), String(judgeMs)], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as { pid: number; entered: number; left: number });
    });
  });

test('tryLock: contenders that all find the same dead holder take the lock one at a time', async () => {
  const dir = mkdtempSync(`${tmpdir()}/pw-lock-`);
  try {
    const lock = `${dir}/apply.lock`;
    for (let round = 0; round < 3; round++) {
      writeFileSync(lock, String(deadPid()), { mode: 0o600 });
      const startAt = Date.now() + 1500; // after every node process has started
      // Each judges the holder for 100 ms; the second reads the dead pid 30 ms after the first, so
      // it is still judging when the first has taken the lock over.
      const runs = await Promise.all([0, 30, 60].map((d) => contender(lock, startAt + d, 300, 100)));
      runs.sort((a, b) => a.entered - b.entered);
      for (let i = 1; i < runs.length; i++) {
        assert.ok(runs[i]!.entered >= runs[i - 1]!.left, `round ${round}: pid ${runs[i]!.pid} entered while pid ${runs[i - 1]!.pid} held the lock`);
      }
      assert.deepEqual(readdirSync(dir), [], 'no lock or takeover file left behind');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

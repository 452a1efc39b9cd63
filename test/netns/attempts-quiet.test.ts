// The daemon's cheap attempts cycle (issue 12): with nft and a watched ruleset, a cycle in which
// the attempt sets did not move reads only those sets, not the whole table (seconds for a large
// policy). Proved on real rules in a lab namespace with real connects: a quiet cycle writes no
// counter state (the full reading's mark), a refusal is still counted at the next cycle, the
// accepted counts are at most one window old, and a new apply forces a full reading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { needsRootAnd } from '../helpers/env.js';
import { createLab, probe, startListeners } from '../helpers/lab.js';
import { runCli } from '../helpers/cli.js';
import { sleep } from '../helpers/wait.js';
import { AttemptSampler } from '../../agent/attempts/sampler.js';
import { refusedKey } from '../../agent/attempts/window.js';

const WINDOW_MS = 1500;

test('attempts: a quiet cycle reads only the attempt sets; refusals still counted at once, accepts within a window, a re-apply read in full', async (t) => {
  if (!needsRootAnd(t, 'nft', 'ip', 'nsenter')) return;
  const lab = createLab(2);
  const [bad, good] = lab.clients as [(typeof lab.clients)[0], (typeof lab.clients)[0]];
  const dir = mkdtempSync(`${tmpdir()}/pw-attempts-quiet-`);
  const S = `${dir}/state`;
  let server: ChildProcess | null = null;
  try {
    server = await startListeners(lab.server.ns, [{ proto: 'tcp', host: '0.0.0.0', port: 25 }]);
    const policy = `${dir}/policy.yaml`;
    writeFileSync(policy, ['version: 1', 'default: deny', 'refuse: reject', 'rules:', `  - { name: smtp, port: 25, from: [${good.v4}] }`, ''].join('\n'));
    const r = await runCli(['apply', '--policy', policy, '--netns', lab.server.ns, '--state-dir', S, '--backend', 'nft', '--confirm', '0', '--yes']);
    assert.equal(r.code, 0, r.stderr);
    const sampler = new AttemptSampler(S, lab.server.ns, { window: '1500ms', windowMs: WINDOW_MS, threshold: 1000, scanPorts: 100, top: 5 });
    // Each full reading replaces counters.json (a new inode); a quiet cycle writes nothing.
    const mark = () => lstatSync(`${S}/attempts/counters.json`).ino;
    const cycle = async () => {
      const c = await sampler.cycle(new Date());
      assert.ok(c);
      return c;
    };
    const smtpRefused = (c: Awaited<ReturnType<typeof cycle>>) => c.totals.refused[refusedKey('smtp', 'tcp', 25)] ?? 0;

    await cycle(); // the baseline, a full reading
    let ino = mark();
    await cycle();
    assert.equal(mark(), ino, 'nothing happened: the quiet cycle did not read the table');

    assert.deepEqual(probe(bad.ns, [{ proto: 'tcp', host: lab.server.v4, port: 25 }]), ['refused']);
    const afterRefusal = await cycle();
    assert.notEqual(mark(), ino, 'a refusal moved the attempt sets: a full reading');
    assert.equal(smtpRefused(afterRefusal), 1);
    ino = mark();

    assert.deepEqual(probe(good.ns, [{ proto: 'tcp', host: lab.server.v4, port: 25 }]), ['open']);
    const soon = await cycle();
    assert.equal(mark(), ino, 'an accepted connection alone does not move the sets');
    assert.equal(soon.totals.accepted.smtp ?? 0, 0);
    await sleep(WINDOW_MS + 100);
    const later = await cycle();
    assert.notEqual(mark(), ino, 'a window after the last full reading: a full reading');
    assert.equal(later.totals.accepted.smtp, 1, 'the accepted count is at most a window old');
    assert.equal(smtpRefused(later), 1, 'and nothing counted twice');

    ino = mark();
    await cycle();
    assert.equal(mark(), ino);
    writeFileSync(policy, ['version: 1', 'default: deny', 'refuse: reject', 'rules:', `  - { name: smtp, port: 25, from: [${good.v4}] }`, '  - { name: submission, port: 587 }', ''].join('\n'));
    const again = await runCli(['apply', '--policy', policy, '--netns', lab.server.ns, '--state-dir', S, '--backend', 'nft', '--confirm', '0', '--yes']);
    assert.equal(again.code, 0, again.stderr);
    const reapplied = await cycle();
    assert.notEqual(mark(), ino, 'a new apply (applied.json replaced): a full reading');
    assert.equal(smtpRefused(reapplied), 1, 'the counters the re-apply started again are not counted twice');
  } finally {
    server?.kill('SIGKILL');
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

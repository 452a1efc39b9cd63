// Safe apply under hostile conditions, with the real CLI, real files and a real network namespace:
// foreign entries and a planted symlink in backups/, a CLI killed while nft loads, absurd --confirm
// values, a hanging or missing nft, iptables-nft base chains, a missing or unreadable state dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { needsRootAnd } from '../helpers/env.js';
import { createNamespace, deleteNamespace, nsRun } from '../helpers/lab.js';
import { runCli } from '../helpers/cli.js';
import { CLI } from '../helpers/paths.js';

const policy = (port: number) => `
version: 1
refuse: reject
rules:
  - { name: web, port: ${port}, from: any }
`;

async function sleep(ms: number) {
  await new Promise((r) => setTimeout(r, ms));
}

function ourTable(ns: string): string {
  return nsRun(ns, 'nft', ['list', 'tables']).includes('inet portwarden') ? nsRun(ns, 'nft', ['-s', 'list', 'table', 'inet', 'portwarden']) : '';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A namespace and a scratch directory with two policies, removed even on failure. */
async function withBox(fn: (b: { ns: string; dir: string; S: string; A: string; B: string; args: string[] }) => Promise<void>): Promise<void> {
  const ns = createNamespace('h');
  const dir = mkdtempSync(`${tmpdir()}/pw-hard-`);
  try {
    const A = `${dir}/a.yaml`;
    const B = `${dir}/b.yaml`;
    writeFileSync(A, policy(8080));
    writeFileSync(B, policy(8081));
    const S = `${dir}/state`;
    await fn({ ns, dir, S, A, B, args: ['--netns', ns, '--state-dir', S, '--yes'] });
  } finally {
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
}

test('backup pruning keeps foreign entries and the new backup; a backups symlink is refused', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip')) return;
  await withBox(async ({ ns, dir, S, A, B, args }) => {
    // 15 entries portwarden did not make, some sorting before our timestamps and some after.
    const bk = `${S}/backups`;
    mkdirSync(bk, { recursive: true });
    const elsewhere = `${dir}/elsewhere`;
    mkdirSync(elsewhere);
    writeFileSync(`${elsewhere}/precious`, 'keep me\n');
    const foreign: string[] = [];
    for (let i = 0; i < 6; i++) {
      writeFileSync(`${bk}/0note-${i}.txt`, `note ${i}\n`);
      foreign.push(`0note-${i}.txt`);
    }
    for (let i = 0; i < 5; i++) {
      mkdirSync(`${bk}/zz-operator-${i}`);
      writeFileSync(`${bk}/zz-operator-${i}/file`, `mine ${i}\n`);
      foreign.push(`zz-operator-${i}`);
    }
    mkdirSync(`${bk}/1999-01-01T00-00-00-000Z-deadbeef`); // our name format, not our content
    writeFileSync(`${bk}/1999-01-01T00-00-00-000Z-deadbeef/photo.jpg`, 'jpeg\n');
    foreign.push('1999-01-01T00-00-00-000Z-deadbeef');
    symlinkSync(elsewhere, `${bk}/2000-01-01T00-00-00-000Z-cafebabe`);
    foreign.push('2000-01-01T00-00-00-000Z-cafebabe');
    writeFileSync(`${bk}/README`, 'hands off\n');
    writeFileSync(`${bk}/.hidden`, 'hidden\n');
    foreign.push('README', '.hidden');
    assert.equal(foreign.length, 15);
    const snapshot = () => foreign.map((f) => [f, lstatSync(`${bk}/${f}`).isSymbolicLink() ? 'link' : lstatSync(`${bk}/${f}`).isDirectory() ? readdirSync(`${bk}/${f}`).join() : readFileSync(`${bk}/${f}`, 'utf8')]);
    const before = snapshot();

    let r = await runCli(['apply', '--policy', A, '--confirm', '0', ...args]);
    assert.equal(r.code, 0, r.stderr);
    const made = /\(backup (\S+)\)/.exec(r.stdout)![1]!;
    assert.ok(existsSync(`${bk}/${made}/meta.json`), 'the backup just made is kept');
    assert.deepEqual(snapshot(), before, 'foreign entries untouched');
    // Many more applies: our own backups are pruned to 10, foreign ones never.
    for (let i = 0; i < 11; i++) assert.equal((await runCli(['apply', '--policy', i % 2 ? A : B, '--confirm', '0', ...args])).code, 0);
    assert.deepEqual(snapshot(), before, 'foreign entries untouched after pruning');
    assert.equal(readFileSync(`${elsewhere}/precious`, 'utf8'), 'keep me\n');
    const ours = readdirSync(bk).filter((n) => !foreign.includes(n));
    assert.equal(ours.length, 10, `our backups pruned to 10: ${ours.join(' ')}`);
    r = await runCli(['rollback', '--netns', ns, '--state-dir', S]);
    assert.equal(r.code, 0, r.stderr);

    // backups -> elsewhere: refused before anything changes, naming the path; elsewhere untouched.
    const S2 = `${dir}/state2`;
    mkdirSync(S2);
    symlinkSync(elsewhere, `${S2}/backups`);
    const tableBefore = ourTable(ns);
    r = await runCli(['apply', '--policy', B, '--confirm', '0', '--netns', ns, '--state-dir', S2, '--yes']);
    assert.ok(r.code === 2 || r.code === 3, `exit ${r.code}: ${r.stderr}`);
    assert.ok(r.stderr.includes(`${S2}/backups`), r.stderr);
    assert.match(r.stderr, /symbolic link/);
    assert.doesNotMatch(r.stderr, /unexpected failure/);
    assert.deepEqual(readdirSync(elsewhere), ['precious']);
    assert.equal(ourTable(ns), tableBefore, 'nothing loaded');
  });
});

/** An nft in front of the real one that, while `slow` exists, announces and sleeps before `-f` loads. */
function writeSlowNft(dir: string): { path: string; slow: string; loading: string } {
  const bin = `${dir}/bin`;
  mkdirSync(bin);
  const realNft = ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].find((p) => existsSync(p))!;
  const slow = `${dir}/slow`;
  const loading = `${dir}/loading`;
  writeFileSync(
    `${bin}/nft`,
    `#!/bin/sh\ncheck=no\nfor a in "$@"; do [ "$a" = -c ] && check=yes; done\nif [ -e ${slow} ] && [ $check = no ] && [ "$1" = -f ]; then touch ${loading}; sleep 4; fi\nexec ${realNft} "$@"\n`,
  );
  chmodSync(`${bin}/nft`, 0o755);
  return { path: bin, slow, loading };
}

test('SIGKILL of apply while nft loads: the timer restores by itself, and rollback by hand works too', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip')) return;
  await withBox(async ({ ns, dir, S, A, B, args }) => {
    const fake = writeSlowNft(dir);
    const env = { ...process.env, PATH: `${fake.path}:${process.env.PATH}`, SSH_CONNECTION: '', SSH_CLIENT: '' };
    let r = await runCli(['apply', '--policy', A, '--confirm', '0', ...args]);
    assert.equal(r.code, 0, r.stderr);
    const oursA = ourTable(ns);
    assert.notEqual(oursA, '');

    const killDuringLoad = async (confirm: string) => {
      rmSync(fake.loading, { force: true });
      writeFileSync(fake.slow, '');
      const cli = spawn(process.execPath, [CLI, 'apply', '--policy', B, '--confirm', confirm, ...args], { stdio: 'ignore', env });
      for (let i = 0; i < 200 && !existsSync(fake.loading); i++) await sleep(50);
      assert.ok(existsSync(fake.loading), 'apply reached nft -f');
      cli.kill('SIGKILL');
      await new Promise((res) => cli.once('exit', res));
      rmSync(fake.slow);
    };

    // 1. Nobody comes back: the rollback timer restores A within the window.
    await killDuringLoad('2');
    const status = JSON.parse((await runCli(['status', '--json', '--netns', ns, '--state-dir', S])).stdout) as { pending: { id: string } | null };
    assert.ok(status.pending, 'the intent is recorded before the load');
    const killed = Date.now();
    for (let i = 0; i < 200 && !existsSync(`${S}/last-result.json`); i++) await sleep(100);
    await sleep(Math.max(0, killed + 5000 - Date.now())); // past the (killed) loader's sleep too
    assert.equal(ourTable(ns), oursA, 'A is back after the window');
    assert.equal((JSON.parse(readFileSync(`${S}/last-result.json`, 'utf8')) as { outcome: string }).outcome, 'rolled-back');
    assert.ok(!existsSync(`${S}/pending.json`));

    // 2. The operator comes back at once and rolls back by hand.
    await killDuringLoad('60');
    const pending = JSON.parse(readFileSync(`${S}/pending.json`, 'utf8')) as { timerPid: number | null };
    r = await runCli(['rollback', '--netns', ns, '--state-dir', S]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^rolled back/);
    await sleep(4500); // a loader left running would load B by now
    assert.equal(ourTable(ns), oursA, 'A after rollback by hand');
    if (pending.timerPid) assert.ok(!alive(pending.timerPid), 'the timer is stopped');
    r = await runCli(['apply', '--policy', B, '--confirm', '0', ...args]);
    assert.equal(r.code, 0, `a fresh apply works afterwards: ${r.stderr}`);
  });
});

test('--confirm is bounded and checked before anything changes; a far deadline does not fire early', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip')) return;
  await withBox(async ({ ns, S, A, B, args }) => {
    for (const bad of ['99999999999999999999', '2200000', '86401', '-1', '1.5', 'soon', '']) {
      const r = await runCli(['apply', '--policy', A, `--confirm=${bad}`, ...args]);
      assert.equal(r.code, 2, `--confirm ${JSON.stringify(bad)}: exit ${r.code} ${r.stderr}`);
      assert.match(r.stderr, /--confirm takes whole seconds from 0 to 86400/);
      assert.equal(ourTable(ns), '', `--confirm ${bad}: nothing loaded`);
      assert.ok(!existsSync(`${S}/applied.json`));
    }
    let r = await runCli(['apply', '--policy', A, '--confirm', '0', ...args]);
    assert.equal(r.code, 0, r.stderr);
    const oursA = ourTable(ns);
    r = await runCli(['apply', '--policy', B, '--confirm', '86400', ...args]);
    assert.equal(r.code, 0, r.stderr);
    const oursB = ourTable(ns);
    // A deadline beyond 2^31 ms (as a hand-edited or future pending.json may hold): the timer waits.
    const p = JSON.parse(readFileSync(`${S}/pending.json`, 'utf8')) as { id: string; timerPid: number; deadline: string };
    process.kill(p.timerPid, 'SIGTERM');
    p.deadline = new Date(Date.now() + 30 * 86400_000).toISOString();
    writeFileSync(`${S}/pending.json`, JSON.stringify(p));
    const timer = spawn(process.execPath, [CLI, '_rollback-timer', '--state-dir', S, '--id', p.id], { stdio: 'ignore' });
    try {
      await sleep(2000);
      assert.equal(timer.exitCode, null, 'the timer still waits');
      // …asleep: not woken every millisecond by an overflowing setTimeout.
      const switches = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${timer.pid}/task/${timer.pid}/status`, 'utf8'))![1]);
      assert.ok(switches < 300, `the waiting timer woke ${switches} times`);
      assert.equal(ourTable(ns), oursB, 'nothing rolled back early');
    } finally {
      timer.kill('SIGKILL');
    }
    r = await runCli(['rollback', '--netns', ns, '--state-dir', S]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(ourTable(ns), oursA);
  });
});

test('a hanging nft times out naming the tool and the time; a missing nft names the package', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip')) return;
  await withBox(async ({ ns, dir, A, args }) => {
    const hang = `${dir}/hang`;
    mkdirSync(hang);
    writeFileSync(`${hang}/nft`, '#!/bin/sh\nsleep 8\n'); // not exec: a grandchild holds the pipes too
    chmodSync(`${hang}/nft`, 0o755);
    const t0 = Date.now();
    let r = await runCli(['apply', '--policy', A, '--confirm', '0', ...args], { PATH: `${hang}:${process.env.PATH}`, PORTWARDEN_TOOL_TIMEOUT: '1' });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^portwarden: nft did not answer within 1 s/m);
    assert.doesNotMatch(r.stderr, /refused|unexpected/);
    assert.ok(Date.now() - t0 < 6000, `gave up after ${Date.now() - t0} ms`);
    assert.equal(ourTable(ns), '');

    // Inside --netns nsenter runs nft: it is missing from PATH there.
    const only = `${dir}/only`;
    mkdirSync(only);
    for (const tool of ['nsenter', 'setpriv', 'ip']) {
      const found = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].map((d) => `${d}/${tool}`).find((p) => existsSync(p));
      if (found) symlinkSync(found, `${only}/${tool}`);
    }
    r = await runCli(['apply', '--policy', A, '--confirm', '0', ...args], { PATH: only });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^portwarden: nft is not installed \(apt-get install nftables\)$/m);
    assert.doesNotMatch(r.stderr, /nsenter|refused|unexpected/);
  });
});

test('iptables: remove and rollback leave no base chains or filter table that apply created', async (t) => {
  if (!needsRootAnd(t, 'iptables-restore', 'ip6tables-restore', 'nft', 'nsenter', 'ip')) return;
  await withBox(async ({ ns, S, A, B, args }) => {
    const ipt = [...args, '--backend', 'iptables'];
    const dump = () => nsRun(ns, 'nft', ['-s', 'list', 'ruleset']) + ['iptables-save', 'ip6tables-save'].map((b) => nsRun(ns, b, []).split('\n').filter((l) => !l.startsWith('#')).join('\n')).join('\n');
    const empty = dump();
    let r = await runCli(['apply', '--policy', A, '--confirm', '0', ...ipt]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(nsRun(ns, 'nft', ['list', 'tables']), /table ip filter/);
    r = await runCli(['apply', '--policy', B, '--confirm', '0', ...ipt]);
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['remove', '--netns', ns, '--state-dir', S]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(dump(), empty, 'remove: as before the first apply');

    r = await runCli(['apply', '--policy', A, '--confirm', '0', ...ipt]);
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['rollback', '--netns', ns, '--state-dir', S]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(dump(), empty, 'rollback: as before the apply');

    // A filter table someone else made (Docker's FORWARD jump) stays; only our INPUT goes.
    for (const bin of ['iptables', 'ip6tables']) {
      nsRun(ns, bin, ['-N', 'DOCKER-USER']);
      nsRun(ns, bin, ['-A', 'FORWARD', '-j', 'DOCKER-USER']);
    }
    const docker = dump();
    r = await runCli(['apply', '--policy', A, '--confirm', '0', ...ipt]);
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['remove', '--netns', ns, '--state-dir', S]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(dump(), docker, 'remove: Docker\'s chains as they were');
  });
});

test('confirm/rollback/status: a missing state dir is exit 2, an unreadable one exit 3, naming the path', async (t) => {
  if (!needsRootAnd(t, 'setpriv')) return;
  const dir = mkdtempSync(`${tmpdir()}/pw-sd-`);
  try {
    const missing = `${dir}/no/such/state`;
    for (const cmd of ['confirm', 'rollback', 'status']) {
      const r = await runCli([cmd, '--state-dir', missing]);
      assert.equal(r.code, 2, `${cmd}: ${r.stderr}`);
      assert.ok(r.stderr.includes(missing), `${cmd}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /unexpected/);
    }
    const S = `${dir}/state`;
    mkdirSync(S, { mode: 0o700 });
    writeFileSync(`${S}/applied.json`, '{}');
    chmodSync(dir, 0o755);
    for (const cmd of ['status', 'confirm', 'rollback']) {
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, CLI, cmd, '--state-dir', S], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('exit', (code) => resolve({ code, stderr }));
      });
      assert.equal(r.code, 3, `${cmd}: ${r.stderr}`);
      assert.ok(r.stderr.includes(S), `${cmd}: ${r.stderr}`);
      assert.match(r.stderr, /permission denied/);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /unexpected/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

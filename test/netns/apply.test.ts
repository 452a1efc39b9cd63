// Safe apply in a namespace lab, with the real nft / iptables and real TCP connects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { needsRootAnd } from '../helpers/env.js';
import { createLab, nsRun, probe, startListeners, type Lab, type Probe } from '../helpers/lab.js';
import { runCli } from '../helpers/cli.js';
import { CLI, HELPERS } from '../helpers/paths.js';
import { StateDir, planApply } from '../../agent/firewall/apply.js';
import { liveBackend, withoutDynamicElements } from '../../agent/firewall/live.js';
import { withLock } from '../../agent/state-files.js';
import { until } from '../helpers/wait.js';
import { RuntimeError } from '../../agent/errors.js';

const policy = (admin: string) => `
version: 1
refuse: reject
sources: { admin: ["${admin}"] }
rules:
  - { name: web, port: 8080, from: any }
  - { name: admin, port: 2222, from: [admin] }
`;

const FOREIGN_NFT = `
table ip nat {
	chain PREROUTING { type nat hook prerouting priority dstnat; policy accept; fib daddr type local counter jump DOCKER; }
	chain DOCKER { iifname != "docker0" tcp dport 8081 counter dnat to 172.17.0.2:80; }
}
table inet firewalld {
	set allowed { type ipv4_addr; flags interval; elements = { 198.51.100.0/24 } }
	chain filter_INPUT { type filter hook input priority filter + 10; policy accept; ct state established,related accept; ip saddr @allowed accept; }
}
table inet handmade {
	chain input { type filter hook input priority 20; policy accept; tcp dport 9 counter accept comment "mine"; }
}
`;

/** The process runs (a zombie waiting for its parent to reap it does not). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Everything that is not portwarden's: other nft tables byte for byte, and foreign iptables lines. */
function foreign(ns: string): string {
  const tables = nsRun(ns, 'nft', ['list', 'tables']).split('\n').filter((t) => t && !t.includes('portwarden') && !/^table ip6? filter$/.test(t));
  const nft = tables.map((t) => nsRun(ns, 'nft', ['-s', 'list', ...t.split(' ')])).join('');
  const ipt = ['iptables-save', 'ip6tables-save']
    .map((b) => nsRun(ns, b, ['-t', 'filter']).split('\n').filter((l) => !l.startsWith('#') && !l.includes('PORTWARDEN')).join('\n'))
    .join('\n');
  return nft + ipt;
}

function ours(ns: string, backend: 'nft' | 'iptables'): string {
  if (backend === 'nft') {
    // Without the dynamic sets' elements (rate meters, who-knocked counts): kernel state, like the counters -s leaves out.
    return nsRun(ns, 'nft', ['list', 'tables']).includes('inet portwarden') ? withoutDynamicElements(nsRun(ns, 'nft', ['-s', 'list', 'table', 'inet', 'portwarden'])) : '';
  }
  return ['iptables-save', 'ip6tables-save'].flatMap((b) => nsRun(ns, b, ['-t', 'filter']).split('\n').filter((l) => l.includes('PORTWARDEN'))).join('\n');
}

function setupForeign(ns: string): void {
  nsRun(ns, 'nft', ['-f', '-'], FOREIGN_NFT);
  for (const [bin, src] of [['iptables', '192.0.2.99'], ['ip6tables', '2001:db8:1::99']] as const) {
    nsRun(ns, bin, ['-N', 'DOCKER-USER']);
    nsRun(ns, bin, ['-A', 'DOCKER-USER', '-s', src, '-j', 'RETURN']);
    nsRun(ns, bin, ['-A', 'FORWARD', '-j', 'DOCKER-USER']);
    nsRun(ns, bin, ['-A', 'INPUT', '-p', 'tcp', '--dport', '7', '-j', 'ACCEPT']);
  }
}

async function scenario(backend: 'nft' | 'iptables'): Promise<void> {
  const lab: Lab = createLab(2);
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(`${tmpdir()}/pw-apply-`);
  const S = `${dir}/state`;
  const ns = lab.server.ns;
  const [c1, c2] = lab.clients as [Lab['clients'][0], Lab['clients'][0]];
  const A = `${dir}/a.yaml`;
  const B = `${dir}/b.yaml`;
  writeFileSync(A, policy(c1.v4));
  writeFileSync(B, policy(c2.v4));
  const args = (extra: string[]) => ['--netns', ns, '--state-dir', S, '--backend', backend, '--yes', ...extra];
  const both = (port: number): Probe[] => [{ proto: 'tcp', host: lab.server.v4, port }];
  const reach = () => [...probe(c1.ns, [...both(8080), ...both(2222)]), ...probe(c2.ns, [...both(8080), ...both(2222)])];
  try {
    children.push(await startListeners(ns, [8080, 2222].map((port) => ({ proto: 'tcp' as const, host: '::', port, ipv6Only: false }))));
    setupForeign(ns);
    const foreignBefore = foreign(ns);
    const open = ['open', 'open', 'open', 'open'];
    assert.deepEqual(reach(), open);

    // apply A → probes follow A; status shows it.
    let r = await runCli(['apply', '--policy', A, '--confirm', '0', ...args([])]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^applied (nft|iptables) rules [0-9a-f]{12}/m);
    const withA = ['open', 'open', 'open', 'refused'];
    assert.deepEqual(reach(), withA, `${backend}: apply A`);
    const status = JSON.parse((await runCli(['status', '--json', '--netns', ns, '--state-dir', S])).stdout) as { applied: { policy: string; hash: string; backend: string }; live: string; pending: null };
    assert.equal(status.applied.policy, A);
    assert.equal(status.applied.backend, backend);
    assert.equal(status.live, 'in place');
    assert.equal(status.pending, null);
    const oursA = ours(ns, backend);
    if (backend === 'iptables') assert.equal(nsRun(ns, 'iptables', ['-S', 'INPUT']).split('\n').filter((l) => l === '-A INPUT -j PORTWARDEN-INPUT').length, 1);

    // apply B with a window, SIGKILL the CLI, never confirm → A is back soon after the deadline.
    // The detached rollback timer is held still (SIGSTOP) while the pending state is checked, since
    // probes and a CLI run can outlast any short window on a loaded host; once resumed it must
    // still roll back by itself. The wait for that is a condition, not a fixed time.
    const cli = spawn(process.execPath, [CLI, 'apply', '--policy', B, '--confirm', '5', ...args([])], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SSH_CONNECTION: '' } });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      cli.stdout!.on('data', (d: Buffer) => (out += d.toString()).includes('portwarden confirm') && resolve());
      cli.once('exit', (code) => reject(new Error(`apply exited ${code} before asking for confirmation: ${out}`)));
    });
    cli.kill('SIGKILL');
    const pending = JSON.parse(readFileSync(`${S}/pending.json`, 'utf8')) as { deadline: string; timerPid: number };
    process.kill(pending.timerPid, 'SIGSTOP');
    let pendingReach: string[];
    let pendingStatus: Awaited<ReturnType<typeof runCli>>;
    try {
      const late = Date.now() - Date.parse(pending.deadline);
      assert.ok(late < 0, `${backend}: the rollback timer was held ${late} ms after the window closed (host too slow)`);
      pendingReach = reach();
      pendingStatus = await runCli(['status', '--netns', ns, '--state-dir', S]);
    } finally {
      process.kill(pending.timerPid, 'SIGCONT');
    }
    assert.deepEqual(pendingReach, ['open', 'refused', 'open', 'open'], `${backend}: B in force while pending`);
    assert.match(pendingStatus.stdout, /^pending: confirmation of \S+ until /m);
    await until(`${backend}: rules byte-identical to A after the unconfirmed window`, () => ours(ns, backend) === oursA, 60_000);
    assert.deepEqual(reach(), withA);
    const tooLate = await runCli(['confirm', '--state-dir', S]);
    assert.equal(tooLate.code, 3);
    assert.match(tooLate.stderr, /too late/);

    // apply B then confirm in time → its rollback timer is gone and B stays. (A window long
    // enough for a confirm on a loaded host; the test waits for the timer to go, not the window.)
    r = await runCli(['apply', '--policy', B, '--confirm', '60', ...args([])]);
    assert.equal(r.code, 0, r.stderr);
    const timerPid = (JSON.parse(readFileSync(`${S}/pending.json`, 'utf8')) as { timerPid: number }).timerPid;
    assert.ok(running(timerPid), 'a rollback timer waits for the window');
    const ok = await runCli(['confirm', '--state-dir', S]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^confirmed/);
    await until('the rollback timer to exit after confirm', () => !running(timerPid), 30_000);
    assert.equal((JSON.parse((await runCli(['status', '--json', '--netns', ns, '--state-dir', S])).stdout) as { pending: unknown }).pending, null);
    assert.deepEqual(reach(), ['open', 'refused', 'open', 'open'], `${backend}: B stays after confirm`);

    // A tight connect loop from a client that keeps access never fails during an apply.
    // It runs from its first connect until the applies are done (its stdin is closed then).
    const loop = spawn('nsenter', [`--net=/run/netns/${c2.ns}`, '--', process.execPath, `${HELPERS}loop.js`, JSON.stringify({ host: lab.server.v4, port: 8080, ms: 300_000 })], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(loop); // killed if the test fails before it ends
    let loopOut = '';
    loop.stdout!.on('data', (d: Buffer) => (loopOut += d.toString()));
    const loopExit = new Promise((resolve) => loop.once('exit', resolve));
    await until('the connect loop to connect', () => loopOut.startsWith('connected\n'), 60_000);
    for (const p of [A, B, A]) assert.equal((await runCli(['apply', '--policy', p, '--confirm', '0', ...args([])])).code, 0);
    loop.stdin!.end();
    await loopExit;
    const counts = JSON.parse(loopOut.slice('connected\n'.length)) as { ok: number; failed: number };
    assert.equal(counts.failed, 0, `${backend}: ${counts.failed} connects failed during apply: ${JSON.stringify(counts)}`);
    assert.ok(counts.ok > 20, `loop made ${counts.ok} connects`);

    // The SSH client the policy would cut off → refused, nothing changes; --force-lockout proceeds.
    const before = ours(ns, backend);
    const ssh = { SSH_CONNECTION: `${c2.v4} 50000 ${lab.server.v4} 22` };
    r = await runCli(['apply', '--policy', B, '--confirm', '0', ...args([])], ssh);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /refusing to apply: the default \(deny\) would cut off your SSH session from 192\.0\.2\.12 to port 22/);
    assert.equal(ours(ns, backend), before);
    r = await runCli(['apply', '--policy', B, '--confirm', '0', '--force-lockout', ...args([])], ssh);
    assert.equal(r.code, 0, r.stderr);
    assert.notEqual(ours(ns, backend), before);

    // Two applies at once: never interleaved; a loser says why.
    const [x, y] = await Promise.all([A, B].map((p) => runCli(['apply', '--policy', p, '--confirm', '0', ...args([])])));
    for (const res of [x!, y!]) assert.ok(res.code === 0 || /another portwarden apply is in progress/.test(res.stderr), res.stderr);
    const finalRules = ours(ns, backend);
    assert.ok(finalRules === oursA || reach().join() === ['open', 'refused', 'open', 'open'].join(), 'the final ruleset is one whole policy');
    // While an apply holds the lock, another fails clearly and changes nothing.
    await withLock(new StateDir(S).lock, 'apply', async () => {
      const C = `${dir}/c.yaml`;
      writeFileSync(C, policy('192.0.2.0/24'));
      const blocked = await runCli(['apply', '--policy', C, '--confirm', '0', ...args([])]);
      assert.equal(blocked.code, 3);
      assert.match(blocked.stderr, /another portwarden apply is in progress \(pid \d+/);
      assert.equal(ours(ns, backend), finalRules);
    });

    // rollback now, then remove: foreign tables and chains byte-identical throughout.
    assert.equal(foreign(ns), foreignBefore, 'foreign rules unchanged after apply');
    r = await runCli(['rollback', '--netns', ns, '--state-dir', S]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(foreign(ns), foreignBefore, 'foreign rules unchanged after rollback');
    r = await runCli(['remove', '--netns', ns, '--state-dir', S]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(ours(ns, backend), '');
    assert.equal(foreign(ns), foreignBefore, 'foreign rules unchanged after remove');
    assert.deepEqual(reach(), open);
    assert.ok(readdirSync(`${S}/backups`).length <= 10, 'keeps the last 10 backups');
  } finally {
    children.forEach((c) => c.kill('SIGKILL'));
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('apply (nft): checked, atomic, confirm-or-rollback, lockout-proof, foreign tables untouched', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip')) return;
  await scenario('nft');
});

test('apply (iptables): the same with iptables-restore and one INPUT jump', async (t) => {
  if (!needsRootAnd(t, 'iptables-restore', 'ip6tables-restore', 'nft', 'nsenter', 'ip')) return;
  await scenario('iptables');
});

test('a ruleset nft rejects changes nothing and reports nft\'s own message', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip')) return;
  const lab = createLab(1);
  const dir = mkdtempSync(`${tmpdir()}/pw-bad-`);
  try {
    nsRun(lab.server.ns, 'nft', ['-f', '-'], FOREIGN_NFT);
    const before = nsRun(lab.server.ns, 'nft', ['-s', 'list', 'ruleset']);
    const bad = { nft: 'table inet portwarden {}\ndelete table inet portwarden\ntable inet portwarden {\n\tchain input {\n\t\ttcp dport 22 frobnicate\n\t}\n}\n' };
    await assert.rejects(planApply(new StateDir(`${dir}/s`), liveBackend('nft', lab.server.ns), bad), (err: unknown) => {
      assert.ok(err instanceof RuntimeError);
      assert.equal(err.exitCode, 3);
      assert.match(err.message, /nft refused the rules:\n.*Error: syntax error/);
      return true;
    });
    assert.equal(nsRun(lab.server.ns, 'nft', ['-s', 'list', 'ruleset']), before);
  } finally {
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without CAP_NET_ADMIN apply fails clearly with exit 3', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip', 'setpriv')) return;
  const lab = createLab(1);
  const dir = mkdtempSync(`${tmpdir()}/pw-nocap-`);
  try {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, CLI, 'apply', '--netns', lab.server.ns, '--state-dir', `${dir}/s`, '--policy', `${HELPERS}../../../rules/default.yaml`, '--yes'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('exit', (code) => resolve({ code, stderr }));
    });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /needs root or CAP_NET_ADMIN/);
    assert.doesNotMatch(nsRun(lab.server.ns, 'nft', ['list', 'tables']), /portwarden/);
  } finally {
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

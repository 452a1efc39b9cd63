// The daemon sees firewall changes when they happen (nft monitor, the iptables-legacy poll) and
// keeps the parsed ruleset between cycles otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import pino from 'pino';
import { needsRootAnd } from '../helpers/env.js';
import { createNamespace, deleteNamespace, nsRun, startListeners } from '../helpers/lab.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';
import { CLI } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';
import { readFirewall, type RulesCache } from '../../agent/exposure/read.js';
import { FirewallWatch } from '../../agent/daemon/firewall-watch.js';

const quiet = pino({ level: 'silent' });

/** The direct children of a process (the daemon's nft monitor). */
function childrenOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
}
const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
};

test('watch on an hourly schedule: a ruleset change reaches the webhook within seconds, and its monitor dies with the daemon', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip', 'ss')) return;
  const ns = createNamespace('fwwatch');
  const dir = mkdtempSync(`${tmpdir()}/pw-fwwatch-`);
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  const receiver = new WebhookReceiver(secret);
  let daemon: ChildProcess | null = null;
  const listener = await startListeners(ns, [{ proto: 'tcp', host: '0.0.0.0', port: 7000 }]);
  try {
    await receiver.start();
    const policy = `${dir}/policy.yaml`;
    writeFileSync(policy, 'version: 1\nrules:\n  - { name: db, port: 7000, from: [192.0.2.0/24] }\n');
    writeFileSync(`${dir}/secret`, secret, { mode: 0o600 });
    const state = `${dir}/state`;
    const apply = await runCli(['apply', '--policy', policy, '--netns', ns, '--state-dir', state, '--confirm', '0', '--yes']);
    assert.equal(apply.code, 0, apply.stderr);
    const config = `${dir}/config.yaml`;
    writeFileSync(config, [
      `policy: ${policy}`, `state_dir: ${state}`,
      'schedule: "0 0 * * * *"', // hourly: only the change itself can bring the events in time
      'settle: 2', 'repeat: 0', `netns: ${ns}`,
      'sinks:', '  - type: webhook', `    url: http://127.0.0.1:${receiver.port}/hook`, `    secret_file: ${dir}/secret`, '',
    ].join('\n'));
    let log = '';
    daemon = spawn(process.execPath, [CLI, 'watch', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    daemon.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    daemon.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await until('agent start', () => log.includes('portwarden agent started'));
    const pid = daemon.pid!;
    const monitor = await until('nft monitor', () => childrenOf(pid).find((c) => /(^|\s)nft -j monitor\s*$/.test(cmdline(c))));
    await new Promise((r) => setTimeout(r, 1000)); // the first cycle done, the monitor subscribed
    const drifts = (event: string) => receiver.events().filter((e) => e.event === event && e.id === 'firewall-drift:nft').length;

    // Someone opens the port to everyone inside our table.
    let t0 = performance.now();
    const insert = () => /# handle (\d+)/.exec(nsRun(ns, 'nft', ['-e', '-a', 'insert', 'rule', 'inet', 'portwarden', 'input', 'tcp', 'dport', '7000', 'accept']))![1]!;
    const handle = insert();
    await until('firewall-drift opened', () => drifts('opened') === 1, 10_000);
    console.log(`# change → webhook (opened): ${(performance.now() - t0).toFixed(0)} ms`);
    await until('firewall-gap opened', () => receiver.events().find((e) => e.event === 'opened' && e.id.startsWith('firewall-gap:')), 10_000);

    // The same rule deleted again (the monitor's events cancel out): resolved.
    nsRun(ns, 'nft', ['delete', 'rule', 'inet', 'portwarden', 'input', 'handle', handle]);
    await until('firewall-drift resolved', () => drifts('resolved') === 1, 10_000);

    // Again, and this time the policy applied again: the drift resolves just as fast.
    insert();
    await until('firewall-drift opened again', () => drifts('opened') === 2, 10_000);
    t0 = performance.now();
    const reapply = await runCli(['apply', '--policy', policy, '--netns', ns, '--state-dir', state, '--confirm', '0', '--yes']);
    assert.equal(reapply.code, 0, reapply.stderr);
    await until('firewall-drift resolved again', () => drifts('resolved') === 2, 10_000);
    console.log(`# re-apply → webhook (resolved): ${(performance.now() - t0).toFixed(0)} ms (the apply itself included)`);

    // Our table flushed: drift again.
    nsRun(ns, 'nft', ['flush', 'table', 'inet', 'portwarden']);
    await until('firewall-drift opened a third time', () => drifts('opened') === 3, 10_000);

    const exited = new Promise<number | null>((r) => daemon!.once('exit', (code) => r(code)));
    const stopAt = performance.now();
    daemon.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.ok(performance.now() - stopAt < 5000, 'SIGTERM within 5 s');
    await until('monitor gone', () => !existsSync(`/proc/${monitor}`) || cmdline(monitor) === '', 2000);
    assert.doesNotMatch(log, /scan cycle failed|nft monitor stopped/);
  } finally {
    daemon?.kill('SIGKILL');
    listener.kill('SIGKILL');
    await receiver.stop();
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readFirewall with a cache: the parsed ruleset is kept while the generation (or the listing hash) stays, read again when it moves', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip')) return;
  const ns = createNamespace('fwcache');
  try {
    nsRun(ns, 'nft', ['-f', '-'], 'table inet t {\n chain input {\n  type filter hook input priority 0; policy drop;\n  tcp dport 22 accept\n }\n}\n');
    let gen: number | null = 1;
    const cache: RulesCache = { generation: () => gen, kept: null };
    const a = await readFirewall(ns, undefined, cache);
    const b = await readFirewall(ns, undefined, cache);
    assert.ok(a.ruleset && a.ruleset === b.ruleset, 'same generation: the parsed ruleset is reused');
    nsRun(ns, 'nft', ['add', 'rule', 'inet', 't', 'input', 'tcp', 'dport', '80', 'accept']);
    gen = 2;
    const c = await readFirewall(ns, undefined, cache);
    assert.notEqual(c.ruleset, b.ruleset, 'generation moved: read again');
    assert.equal([...c.ruleset!.chains.values()].reduce((n, ch) => n + ch.rules.length, 0), 2);

    // The host part (ip monitor's generation): kept while it stays, read again when it moves.
    let hostGen = 1;
    cache.hostGeneration = () => hostGen;
    cache.keptHost = null;
    const before = await readFirewall(ns, undefined, cache);
    nsRun(ns, 'ip', ['addr', 'add', '198.51.100.1/24', 'dev', 'lo']);
    const kept = await readFirewall(ns, undefined, cache);
    assert.deepEqual(kept.addresses, before.addresses, 'same host generation: the addresses read before');
    hostGen = 2;
    const moved = await readFirewall(ns, undefined, cache);
    assert.ok(moved.addresses!.some((a) => a.cidr === '198.51.100.1/24'), 'host generation moved: read again');

    // No monitor: the text listing's hash decides.
    gen = null;
    const d = await readFirewall(ns, undefined, cache);
    const e = await readFirewall(ns, undefined, cache);
    assert.equal(d.ruleset, e.ruleset, 'listing unchanged: reused');
    nsRun(ns, 'nft', ['add', 'rule', 'inet', 't', 'input', 'tcp', 'dport', '443', 'accept']);
    const f = await readFirewall(ns, undefined, cache);
    assert.notEqual(f.ruleset, e.ruleset, 'listing changed: read again');
    assert.equal([...f.ruleset!.chains.values()].reduce((n, ch) => n + ch.rules.length, 0), 3);
  } finally {
    deleteNamespace(ns);
  }
});

test('FirewallWatch: nft changes and iptables-legacy changes (polled) are reported; the generation stays put otherwise', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'iptables-legacy', 'iptables-legacy-save')) return;
  const ns = createNamespace('fwmon');
  const seen: string[] = [];
  const watch: FirewallWatch = new FirewallWatch({ netns: ns, log: quiet, onChange: (s) => seen.push(s), legacyPollMs: 200 });
  try {
    nsRun(ns, 'iptables-legacy', ['-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']);
    watch.start();
    await until('monitor running', () => watch.watching, 5000);
    await new Promise((r) => setTimeout(r, 600)); // the legacy baseline taken
    const g0 = watch.generation();
    // Traffic moves the legacy counters; that is not a change.
    for (let i = 0; i < 3; i++) {
      try {
        nsRun(ns, 'curl', ['-s', '--max-time', '1', 'http://127.0.0.1:9/'], undefined, true);
      } catch {
        /* refused: the SYN went through INPUT all the same */
      }
    }
    assert.match(nsRun(ns, 'iptables-legacy', ['-L', 'INPUT', '-v', '-n', '-x']), /policy ACCEPT [1-9]\d* packets/, 'the counters moved');
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(seen.join(), '', 'no change reported');
    assert.equal(watch.generation(), g0);

    nsRun(ns, 'nft', ['add', 'table', 'inet', 'x']);
    await until('nft change seen', () => seen.includes('nft'), 5000);
    assert.ok(watch.generation()! > g0!);

    nsRun(ns, 'iptables-legacy', ['-A', 'INPUT', '-p', 'tcp', '--dport', '80', '-j', 'ACCEPT']);
    await until('legacy change seen', () => seen.includes('iptables-legacy'), 5000);

    // Addresses (and routes, links, forwarding) come from ip monitor.
    const h0 = watch.hostGeneration()!;
    nsRun(ns, 'ip', ['addr', 'add', '198.51.100.1/24', 'dev', 'lo']);
    await until('address change seen', () => seen.includes('ip'), 5000);
    assert.ok(watch.hostGeneration()! > h0);
  } finally {
    await watch.stop();
    deleteNamespace(ns);
  }
});

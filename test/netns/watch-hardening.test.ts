// The agent's state under stress, with real processes and a real file system: a second daemon on
// the same state dir, a torn journal line, a symlink planted in the state dir, a corrupt
// state.json, a sink that says "retry in an hour" at SIGTERM, a full disk (a small tmpfs in a
// private mount namespace), and state paths the system refuses.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { needsRootAnd } from '../helpers/env.js';
import { createNamespace, deleteNamespace, startListeners } from '../helpers/lab.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';
import { CLI } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { sleep, until } from '../helpers/wait.js';


class Daemon {
  proc: ChildProcess;
  log = '';
  code: number | null = null;
  exited: Promise<number | null>;
  constructor(config: string, wrap: string[] = []) {
    const argv = [...wrap, process.execPath, CLI, 'watch', '--config', config];
    this.proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    this.proc.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    this.exited = new Promise((r) => this.proc.once('exit', (code) => r((this.code = code))));
  }
  started() {
    return until('agent start', () => this.log.includes('portwarden agent started')).catch((err: Error) => {
      throw new Error(`${err.message}; daemon said:\n${this.log}`);
    });
  }
  /** The exit code, or a failure after ms (the daemon is killed in the test's finally). */
  async exit(ms = 10_000): Promise<number | null> {
    const r = await Promise.race([this.exited, sleep(ms).then(() => 'timeout' as const)]);
    if (r === 'timeout') throw new Error(`still running after ${ms} ms:\n${this.log}`);
    return r;
  }
  alive() {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }
}

interface Setup {
  ns: string;
  dir: string;
  state: string;
  policy: string;
  secret: string;
  receiver: WebhookReceiver;
  config(extra?: { stateDir?: string; sinks?: string[]; schedule?: string }): string;
  daemons: Daemon[];
  children: ChildProcess[];
}

/** A namespace where nothing listens and a policy that requires tcp/8080: one finding, at once. */
async function setup(t: TestContext, fn: (s: Setup) => Promise<void>): Promise<void> {
  const ns = createNamespace('wh');
  const dir = mkdtempSync(`${tmpdir()}/pw-wh-`);
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  const receiver = new WebhookReceiver(secret);
  const s: Setup = {
    ns,
    dir,
    state: `${dir}/state`,
    policy: `${dir}/policy.yaml`,
    secret,
    receiver,
    daemons: [],
    children: [],
    config(extra = {}) {
      const file = `${dir}/config-${randomBytes(4).toString('hex')}.yaml`;
      writeFileSync(
        file,
        [
          `policy: ${s.policy}`,
          `state_dir: ${extra.stateDir ?? s.state}`,
          `schedule: "${extra.schedule ?? '* * * * * *'}"`,
          'settle: 1',
          'repeat: 0',
          `netns: ${ns}`,
          'exposure: false',
          'sinks:',
          ...(extra.sinks ?? [
            '  - type: webhook',
            `    url: http://127.0.0.1:${receiver.port}/hook`,
            `    secret_file: ${dir}/secret`,
          ]),
          '',
        ].join('\n'),
      );
      return file;
    },
  };
  try {
    await receiver.start();
    writeFileSync(s.policy, 'version: 1\nrules:\n  - { name: web, port: 8080, required: true }\n  - { name: legacy, port: 2323, action: deny }\n');
    writeFileSync(`${dir}/secret`, secret, { mode: 0o600 });
    await fn(s);
  } finally {
    for (const d of s.daemons) d.proc.kill('SIGKILL');
    s.children.forEach((c) => c.kill('SIGKILL'));
    await receiver.stop();
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
  void t;
}

const MISSING = 'missing-listener:tcp/8080:web';

function journal(state: string): { event: string; finding: { id: string; kind: string } }[] {
  return readFileSync(`${state}/events.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; finding: { id: string; kind: string } });
}

test('two watch daemons on one state dir: the second exits 2 naming the holder; a dead holder\'s lock is taken over', { timeout: 60_000 }, async (t) => {
  if (!needsRootAnd(t, 'ss', 'nsenter', 'ip')) return;
  await setup(t, async (s) => {
    const config = s.config();
    const first = new Daemon(config);
    s.daemons.push(first);
    await first.started();
    await until('opened', () => s.receiver.events().find((e) => e.event === 'opened'));
    const second = new Daemon(config);
    s.daemons.push(second);
    assert.equal(await second.exit(), 2, second.log);
    assert.match(second.log, new RegExp(`pid ${first.proc.pid}\\b`));
    assert.match(second.log, new RegExp(`${s.state}/watch\\.lock`));
    assert.doesNotMatch(second.log, /unexpected failure|\n\s+at /);
    assert.ok(first.alive(), 'the first keeps running');
    await sleep(1500);
    assert.deepEqual(s.receiver.events().map((e) => `${e.event} ${e.id}`), [`opened ${MISSING}`], 'delivered once');
    // A holder that died without releasing the lock: the next daemon takes it over.
    first.proc.kill('SIGKILL');
    await first.exit();
    assert.ok(existsSync(`${s.state}/watch.lock`));
    const third = new Daemon(config);
    s.daemons.push(third);
    await third.started();
    assert.equal(readFileSync(`${s.state}/watch.lock`, 'utf8').trim(), String(third.proc.pid));
    third.proc.kill('SIGTERM');
    assert.equal(await third.exit(), 0);
    assert.ok(!existsSync(`${s.state}/watch.lock`), 'released on a clean stop');
    // A dead holder's pid reused by another program does not block the next start either.
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    s.children.push(other);
    writeFileSync(`${s.state}/watch.lock`, String(other.pid), { mode: 0o600 });
    const once = await runCli(['watch', '--once', '--config', config]);
    assert.equal(once.code, 0, once.stdout + once.stderr);
    assert.equal(journal(s.state).filter((e) => e.event === 'opened').length, 1, 'no duplicate in the journal');
  });
});

test('a torn last journal line does not swallow the next event; alerts counts it', { timeout: 60_000 }, async (t) => {
  if (!needsRootAnd(t, 'ss', 'nsenter', 'ip')) return;
  await setup(t, async (s) => {
    mkdirSync(s.state, { mode: 0o700 });
    const old = { event: 'opened', at: new Date(Date.now() - 60_000).toISOString(), host: 'h', finding: { id: 'x', kind: 'unexpected-listener', severity: 'high', proto: 'tcp', port: 1, address: '0.0.0.0', rule: null, processes: [], message: 'm', remedy: 'r' } };
    writeFileSync(`${s.state}/events.jsonl`, `${JSON.stringify(old)}\n{"event":"opened","at":"2026-11-2`);
    const once = await runCli(['watch', '--once', '--config', s.config()]);
    assert.equal(once.code, 0, once.stderr + once.stdout);
    const res = await runCli(['alerts', '--json', '--state-dir', s.state]);
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout) as { events: { event: string; finding: { id: string } }[]; unreadable: number };
    assert.deepEqual(out.events.map((e) => `${e.event} ${e.finding.id}`), ['opened x', `opened ${MISSING}`]);
    assert.equal(out.unreadable, 1);
    assert.match(res.stderr, new RegExp(`skipped 1 unreadable line in ${s.state}/events\\.jsonl`));
    const human = await runCli(['alerts', '--state-dir', s.state]);
    assert.match(human.stdout, /missing-listener/);
    assert.match(human.stderr, /skipped 1 unreadable line/);
  });
});

test('a state dir writable by others is refused (exit 2, naming it)', { timeout: 60_000 }, async (t) => {
  if (!needsRootAnd(t, 'ss', 'nsenter', 'ip')) return;
  await setup(t, async (s) => {
    mkdirSync(s.state);
    chmodSync(s.state, 0o777);
    const refused = await runCli(['watch', '--once', '--config', s.config()]);
    assert.equal(refused.code, 2, refused.stderr + refused.stdout);
    assert.match(refused.stderr, new RegExp(`${s.state}: .*writable by others`));
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
    assert.ok(!existsSync(`${s.state}/events.jsonl`));
  });
});

test('a symlink planted as events.jsonl is not followed, by watch or alerts', { timeout: 60_000 }, async (t) => {
  if (!needsRootAnd(t, 'ss', 'nsenter', 'ip')) return;
  await setup(t, async (s) => {
    mkdirSync(s.state, { mode: 0o700 });
    const victim = `${s.dir}/victim`;
    writeFileSync(victim, 'precious\n');
    symlinkSync(victim, `${s.state}/events.jsonl`);
    const once = await runCli(['watch', '--once', '--config', s.config()]);
    assert.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the symlink target is untouched');
    assert.equal(once.code, 3, once.stdout + once.stderr);
    assert.match(once.stdout + once.stderr, new RegExp(`${s.state}/events\\.jsonl.*symbolic link`));
    const alerts = await runCli(['alerts', '--state-dir', s.state]);
    assert.equal(alerts.code, 3);
    assert.match(alerts.stderr, new RegExp(`^portwarden: ${s.state}/events\\.jsonl: .*symbolic link`));
  });
});

test('a corrupt state.json is kept aside, rebuilt from the journal and reported to the sinks', { timeout: 60_000 }, async (t) => {
  if (!needsRootAnd(t, 'ss', 'nsenter', 'ip')) return;
  await setup(t, async (s) => {
    const config = s.config();
    const first = await runCli(['watch', '--once', '--config', config]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.deepEqual(s.receiver.events().map((e) => `${e.event} ${e.id}`), [`opened ${MISSING}`]);
    writeFileSync(`${s.state}/state.json`, '{"version":1,"tracked":{"missing-listener:tc');
    const second = await runCli(['watch', '--once', '--config', config]);
    assert.equal(second.code, 0, second.stdout + second.stderr);
    const kept = readdirSync(s.state).filter((f) => /^state\.json\.corrupt-/.test(f));
    assert.equal(kept.length, 1, readdirSync(s.state).join(' '));
    assert.equal(readFileSync(`${s.state}/${kept[0]}`, 'utf8'), '{"version":1,"tracked":{"missing-listener:tc');
    const events = s.receiver.events().map((e) => `${e.event} ${e.id}`);
    assert.deepEqual(events, [`opened ${MISSING}`, 'opened state-corrupt'], 'the open finding is not raised again');
    const corrupt = s.receiver.received.flatMap((r) => r.body.events).find((e) => e.finding.kind === 'state-corrupt')!;
    assert.match((corrupt.finding as unknown as { message: string }).message, new RegExp(kept[0]!.replace(/\./g, '\\.')));
    const open = JSON.parse((await runCli(['alerts', '--open', '--json', '--state-dir', s.state])).stdout) as { open: { finding: { id: string } }[] };
    assert.deepEqual(open.open.map((o) => o.finding.id).sort(), [MISSING, 'state-corrupt']);
    // Once the operator has looked at it and removed it, the finding resolves.
    rmSync(`${s.state}/${kept[0]}`);
    assert.equal((await runCli(['watch', '--once', '--config', config])).code, 0);
    assert.equal(s.receiver.events().at(-1)!.event + ' ' + s.receiver.events().at(-1)!.id, 'resolved state-corrupt');
  });
});

/**
 * An HTTP endpoint that answers 429 with Retry-After: 3600 (after 2 s, so that SIGTERM comes while
 * the request is in flight), or 500, or never answers.
 */
async function stubbornServer(mode: '429' | '500' | 'hang'): Promise<{ port: number; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      hits++;
      if (mode === '429') setTimeout(() => res.writeHead(429, { 'retry-after': '3600' }).end(), 2000);
      if (mode === '500') res.writeHead(500).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    hits: () => hits,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

for (const mode of ['429', 'hang'] as const) {
  test(`SIGTERM stops within 5 s while a sink ${mode === '429' ? 'asks to retry in an hour' : 'never answers'}; the batch stays spooled`, { timeout: 60_000 }, async (t) => {
    if (!needsRootAnd(t, 'ss', 'nsenter', 'ip')) return;
    await setup(t, async (s) => {
      const stub = await stubbornServer(mode);
      try {
        const config = s.config({ sinks: ['  - type: webhook', `    url: http://127.0.0.1:${stub.port}/hook`, '    name: slow', '    timeout: 120'] });
        const d = new Daemon(config);
        s.daemons.push(d);
        await d.started();
        await until('a delivery attempt', () => stub.hits() > 0);
        const t0 = Date.now();
        d.proc.kill('SIGTERM');
        const code = await Promise.race([d.exited, sleep(8000).then(() => 'still running')]);
        const took = Date.now() - t0;
        assert.equal(code, 0, d.log);
        assert.ok(took < 5000, `stopped after ${took} ms`);
        const spooled = readdirSync(`${s.state}/spool/slow`).filter((f) => f.endsWith('.json'));
        assert.equal(spooled.length, 1);
        const batch = JSON.parse(readFileSync(`${s.state}/spool/slow/${spooled[0]}`, 'utf8')) as { events: { finding: { id: string } }[] };
        assert.deepEqual(batch.events.map((e) => e.finding.id), [MISSING]);
      } finally {
        await stub.close();
      }
    });
  });
}

test('a full disk while a sink fails: the daemon keeps alerting from memory, raises state-write-failed, recovers at the next cycle', { timeout: 60_000 }, async (t) => {
  if (!needsRootAnd(t, 'ss', 'nsenter', 'ip', 'unshare', 'mount')) return;
  await setup(t, async (s) => {
    // It asks to retry in an hour: the recovery must not wait for that sink's next attempt.
    const stub = await stubbornServer('429');
    const small = `${s.dir}/small`;
    mkdirSync(small, { mode: 0o700 });
    try {
      const state = `${small}/state`;
      const config = s.config({
        stateDir: state,
        sinks: [
          '  - type: webhook',
          `    url: http://127.0.0.1:${s.receiver.port}/hook`,
          `    secret_file: ${s.dir}/secret`,
          '    name: good',
          '  - type: webhook',
          `    url: http://127.0.0.1:${stub.port}/hook`,
          '    name: failing',
        ],
      });
      // A 1 MiB tmpfs that only the daemon's private mount namespace sees (never the host's).
      const d = new Daemon(config, ['unshare', '-m', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs -o size=1m,mode=0700 tmpfs "$1" && shift && exec "$@"', 'sh', small]);
      s.daemons.push(d);
      await d.started();
      await until('opened', () => s.receiver.events().find((e) => e.id === MISSING));
      const inNs = (...argv: string[]) => execFileSync('nsenter', [`--mount=/proc/${d.proc.pid}/ns/mnt`, '--', ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      assert.match(inNs('findmnt', '-n', '-o', 'FSTYPE', small), /tmpfs/);
      assert.ok(!existsSync(`${state}/events.jsonl`), 'the tmpfs is not visible outside the daemon');
      try {
        inNs('dd', 'if=/dev/zero', `of=${small}/fill`, 'bs=4k');
      } catch {
        /* dd stops at ENOSPC */
      }
      // A new finding while the disk is full and one sink keeps failing.
      const l = await startListeners(s.ns, [{ proto: 'tcp', host: '0.0.0.0', port: 2323 }]);
      s.children.push(l);
      await until('forbidden-listener delivered from memory', () => s.receiver.events().find((e) => e.id.startsWith('forbidden-listener:tcp/2323')), 20_000);
      const failed = await until('state-write-failed delivered', () => s.receiver.received.flatMap((r) => r.body.events).find((e) => e.finding.kind === 'state-write-failed' && e.event === 'opened'), 20_000);
      assert.match((failed.finding as unknown as { message: string }).message, new RegExp(`${state}/\\S+: no space left on device`, 'i'));
      await sleep(3000);
      assert.ok(d.alive(), `the daemon is still running:\n${d.log}`);
      assert.doesNotMatch(d.log, /\n\s+at |unexpected failure/);
      const complaints = d.log.split('\n').filter((l) => /cannot write the agent's state/.test(l)).length;
      assert.equal(complaints, 1, 'logged once');
      // Space returns: the finding resolves and the journal catches up with what was held in memory.
      inNs('rm', `${small}/fill`);
      await until('state-write-failed resolved', () => s.receiver.events().find((e) => e.id === 'state-write-failed' && e.event === 'resolved'), 10_000);
      const journalled = inNs('cat', `${state}/events.jsonl`).trim().split('\n').map((line) => JSON.parse(line) as { event: string; finding: { id: string } });
      const ids = journalled.map((e) => `${e.event} ${e.finding.id}`);
      for (const want of [`opened ${MISSING}`, 'opened forbidden-listener:tcp/2323', 'opened state-write-failed', 'resolved state-write-failed']) {
        assert.ok(ids.some((i) => i.startsWith(want)), `${want} in the journal: ${ids.join(', ')}`);
      }
      const keys = s.receiver.events().map((e) => `${e.event}|${e.id}|${e.at}`);
      assert.equal(new Set(keys).size, keys.length, 'nothing delivered twice');
      d.proc.kill('SIGTERM');
      assert.equal(await d.exit(), 0);
      if (process.env.PW_DEBUG) console.log(d.log);
    } finally {
      await stub.close();
    }
  });
});

test('a state path the system refuses: one line naming it, exit 3, never "unexpected failure"', { timeout: 60_000 }, async (t) => {
  if (!needsRootAnd(t, 'ss', 'nsenter', 'ip')) return;
  await setup(t, async (s) => {
    writeFileSync(`${s.dir}/afile`, '');
    const res = await runCli(['watch', '--once', '--config', s.config({ stateDir: `${s.dir}/afile/state` })]);
    assert.equal(res.code, 3, res.stdout + res.stderr);
    assert.match(res.stderr, new RegExp(`^portwarden: .*${s.dir}/afile/state.*not a directory`, 'i'));
    assert.doesNotMatch(res.stderr, /unexpected failure/);
    assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr);
  });
});

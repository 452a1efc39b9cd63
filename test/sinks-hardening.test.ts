// Alert delivery and sink config under bad conditions, with a real HTTP receiver on loopback and
// real spool files: corrupt spool files, secrets in URLs, backoff and Retry-After in every mode,
// stop() with a send in flight, a receiver that stalls the body, a full disk (tmpfs in a private
// mount namespace), secret file permissions, and configs that could never deliver.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chownSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { SinkQueue, type DeliveryLog, type QueueOptions } from '../agent/alerts/delivery.js';
import { webhookSender } from '../agent/alerts/sinks/webhook.js';
import { emailSender } from '../agent/alerts/sinks/email.js';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { redact, redactUrl } from '../agent/alerts/sinks/redact.js';
import type { Batch } from '../agent/alerts/sinks/sink.js';
import type { JournalEvent } from '../agent/alerts/journal.js';
import { loadConfig } from '../agent/daemon/config.js';
import { InputError } from '../agent/errors.js';
import { needsRootAnd } from './helpers/env.js';
import { createNamespace, deleteNamespace } from './helpers/lab.js';
import { runCli } from './helpers/cli.js';
import { HELPERS } from './helpers/paths.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** "resolved", "rejected: why" or "hung" (still pending after ms). */
function settle(p: Promise<unknown>, ms: number): Promise<string> {
  return Promise.race([p.then(() => 'resolved', (e: Error) => `rejected: ${e.message}`), sleep(ms).then(() => 'hung')]);
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A real HTTP server on 127.0.0.1 that records every POST and answers with `handler`. */
class Receiver {
  posts: { url: string; id: string; at: number }[] = [];
  port = 0;
  private readonly server: Server;
  constructor(handler: Handler) {
    this.server = createServer((req, res) => {
      this.posts.push({ url: req.url ?? '', id: String(req.headers['webhook-id'] ?? ''), at: Date.now() });
      req.resume();
      handler(req, res);
    });
  }
  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

const ok: Handler = (_req, res) => res.writeHead(204).end();
const fail500: Handler = (_req, res) => res.writeHead(500).end();

function event(n: number): JournalEvent {
  return {
    event: 'opened',
    at: new Date().toISOString(),
    host: 'testhost',
    finding: { id: `f-${n}`, kind: 'forbidden-listener', severity: 'high', proto: 'tcp', port: 2000 + n, address: '0.0.0.0', rule: null, processes: [], message: `m${n}`, remedy: 'r' },
  } as JournalEvent;
}

function batch(id: string, createdAt: string, attempts = 0): Batch {
  return { id, createdAt, attempts, events: [event(1)] };
}

/** Every log call as one JSON line, to look for leaks and count messages. */
class MemoryLog implements DeliveryLog {
  lines: string[] = [];
  info(o: object, m: string) {
    this.lines.push(JSON.stringify({ level: 'info', ...o, msg: m }));
  }
  warn(o: object, m: string) {
    this.lines.push(JSON.stringify({ level: 'warn', ...o, msg: m }));
  }
  error(o: object, m: string) {
    this.lines.push(JSON.stringify({ level: 'error', ...o, msg: m }));
  }
  text() {
    return this.lines.join('\n');
  }
}

interface Setup {
  dir: string;
  log: MemoryLog;
  queue: SinkQueue;
  spool: string;
}

/** A queue for a webhook sink at url, with its spool in a fresh directory; stopped and removed after the test. */
function setup(t: TestContext, url: string, extra: Partial<QueueOptions> & Record<string, unknown> = {}, timeoutMs = 5000, prepare?: (spool: string) => void): Setup {
  const dir = mkdtempSync(`${tmpdir()}/pw-sinks-`);
  const log = new MemoryLog();
  const spool = `${dir}/spool/hook`;
  if (prepare) {
    mkdirSync(spool, { recursive: true });
    prepare(spool);
  }
  const opts = { spoolDir: `${dir}/spool`, limit: 100, log, host: 'testhost', onOutcome: () => undefined, ...extra } as QueueOptions;
  const queue = new SinkQueue(webhookSender({ name: 'hook', url, format: 'standard', secret: null, timeoutMs }), opts);
  t.after(async () => {
    await settle(queue.stop(), 3000);
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, log, queue, spool };
}

const spooled = (spool: string) => readdirSync(spool).filter((f) => f.endsWith('.json')).sort();
const stopWithin = (q: SinkQueue, ms: number) => (q as unknown as { stop(ms: number): Promise<void> }).stop(ms);

test('spool: a truncated or foreign batch file is moved to bad/, logged, and the rest is delivered (#6)', async (t) => {
  const rx = await new Receiver(ok).start();
  t.after(() => rx.stop());
  const s = setup(t, `http://127.0.0.1:${rx.port}/hook`, {}, 5000, (spool) => {
    writeFileSync(`${spool}/2026-01-01T00-00-00-000Z_msg_a.json`, '{"id": "msg_a", "createdAt": "2026-01-01T0');
    writeFileSync(`${spool}/2026-01-01T00-00-01-000Z_msg_b.json`, '{"hello": "world"}\n');
    writeFileSync(`${spool}/2026-01-01T00-00-02-000Z_msg_c.json`, JSON.stringify(batch('msg_c', '2026-01-01T00:00:02.000Z')));
    writeFileSync(`${spool}/notes.txt`, 'not ours\n');
  });
  s.queue.kick();
  await s.queue.drain(Date.now() + 5000);
  assert.deepEqual(rx.posts.map((p) => p.id), ['msg_c'], 'only the valid batch was sent, once');
  assert.deepEqual(spooled(s.spool), []);
  assert.deepEqual(readdirSync(`${s.spool}/bad`).sort(), ['2026-01-01T00-00-00-000Z_msg_a.json', '2026-01-01T00-00-01-000Z_msg_b.json']);
  assert.equal(readFileSync(`${s.spool}/notes.txt`, 'utf8'), 'not ours\n', 'a file that is not a batch name is left alone');
  const moved = s.log.lines.filter((l) => l.includes('bad/'));
  assert.equal(moved.length, 2, s.log.text());
});

/**
 * `watch --once` with one webhook sink pointing at `rx`, in a namespace of its own, with batches
 * already in the sink's spool (file name → content): the spool dir and the CLI's result.
 */
async function watchOnceWithSpool(rx: Receiver, spooled: Record<string, string>): Promise<{ spool: string; r: Awaited<ReturnType<typeof runCli>>; ms: number }> {
  const ns = createNamespace('once');
  const dir = mkdtempSync(`${tmpdir()}/pw-sinks-`);
  try {
    const spool = `${dir}/state/spool/webhook-1`;
    mkdirSync(spool, { recursive: true });
    for (const [name, text] of Object.entries(spooled)) writeFileSync(`${spool}/${name}`, text);
    writeFileSync(`${dir}/policy.yaml`, 'version: 1\nrules:\n  - { name: web, port: 8080 }\n');
    writeFileSync(`${dir}/config.yaml`, `policy: ${dir}/policy.yaml\nstate_dir: ${dir}/state\nnetns: ${ns}\nexposure: false\nsinks:\n  - type: webhook\n    url: http://127.0.0.1:${rx.port}/hook\n`);
    const started = Date.now();
    const r = await runCli(['watch', '--config', `${dir}/config.yaml`, '--once']);
    // What the spool holds now, read before the directory goes.
    const kept = mkdtempSync(`${tmpdir()}/pw-sinks-kept-`);
    cpSync(spool, kept, { recursive: true });
    return { spool: kept, r, ms: Date.now() - started };
  } finally {
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
}

test('watch --once: a corrupt spool file does not stop the daemon (#6)', async (t) => {
  if (!needsRootAnd(t, 'ip', 'ss', 'nsenter')) return;
  const rx = await new Receiver(ok).start();
  try {
    const { spool, r } = await watchOnceWithSpool(rx, {
      '2026-01-01T00-00-00-000Z_msg_trunc.json': '{"id": "msg_tr',
      '2026-01-01T00-00-01-000Z_msg_good.json': JSON.stringify(batch('msg_good', '2026-01-01T00:00:01.000Z')),
    });
    t.after(() => rmSync(spool, { recursive: true, force: true }));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(rx.posts.some((p) => p.id === 'msg_good'), 'the good batch was delivered');
    assert.deepEqual(readdirSync(`${spool}/bad`), ['2026-01-01T00-00-00-000Z_msg_trunc.json']);
    assert.match(r.stdout, /msg_trunc\.json/);
  } finally {
    await rx.stop();
  }
});

test('logs never show credentials, tokens or Slack-style secret paths of a webhook URL (#9)', async (t) => {
  const rx = await new Receiver(fail500).start();
  t.after(() => rx.stop());
  const slack = setup(t, `http://127.0.0.1:${rx.port}/services/T0AAAA1111/B0BBBB2222/Zx9SECRETslackPART4xYz?token=tok-SECRET-1&x=1`, { once: true });
  slack.queue.enqueue([event(1)]);
  await slack.queue.drain(Date.now() + 1500);
  const creds = setup(t, 'http://alice:pw-SECRET-2@127.0.0.1:1/hook', { once: true });
  creds.queue.enqueue([event(2)]);
  await creds.queue.drain(Date.now() + 1500);
  for (const s of [slack, creds]) {
    const text = s.log.text();
    assert.match(text, /delivery failed/, text);
    assert.match(text, /127\.0\.0\.1/, 'the host stays visible');
    assert.doesNotMatch(text, /SECRET/, text);
  }
});

test('config: a webhook URL with user:pass@ is refused at load with file:line:col, redacted (#9)', () => {
  const text = 'sinks:\n  - type: webhook\n    url: "https://alice:s3cret-PW@hooks.example.com/x?token=abc-SECRET"\n';
  assert.throws(
    () => loadConfig('/etc/pw/config.yaml', text),
    (e: unknown) => {
      assert.ok(e instanceof InputError, String(e));
      assert.match(e.message, /^\/etc\/pw\/config\.yaml:3:10: sinks\[0\]\.url: .*credentials/);
      assert.doesNotMatch(e.message, /s3cret|SECRET/);
      return true;
    },
  );
});

test('config: a URL that fails the schema is shown redacted too (#9)', () => {
  assert.throws(
    () => loadConfig('/etc/pw/config.yaml', 'sinks:\n  - type: webhook\n    url: "ftp://bob:hunter2-SECRET@files.example.com/x"\n'),
    (e: unknown) => e instanceof InputError && /^\/etc\/pw\/config\.yaml:3:10: sinks\[0\]\.url: "ftp:\/\/\[redacted\]@files\.example\.com\/x" is not valid/.test(e.message) && !e.message.includes('SECRET'),
  );
});

test('redactUrl keeps scheme, host, port and plain path words; hides the rest (#9)', () => {
  assert.equal(redactUrl('https://hooks.slack.com/services/T0AAAA1111/B0BBBB2222/Zx9abcdefghijklmnopqrstu'), 'https://hooks.slack.com/services/[redacted]/[redacted]/[redacted]');
  assert.equal(redactUrl('http://alice:pw@h.example:8080/hook?token=abc&x=1#frag'), 'http://[redacted]@h.example:8080/hook?token=[redacted]&x=[redacted]#[redacted]');
  assert.equal(redactUrl('http://exa mple.com/x?token=t0k'), 'http://exa mple.com/x?token=[redacted]', 'works on invalid URLs too');
  assert.equal(redact('POST https://u:p@h/x?k=v: connect ECONNREFUSED'), 'POST https://[redacted]@h/x?k=[redacted]: connect ECONNREFUSED');
});

test('backoff: new events do not make a failing sink retry at once (500 receiver, 3 s) (#10)', async (t) => {
  const rx = await new Receiver(fail500).start();
  t.after(() => rx.stop());
  const s = setup(t, `http://127.0.0.1:${rx.port}/hook`);
  const end = Date.now() + 3000;
  for (let i = 0; Date.now() < end; i++) {
    s.queue.enqueue([event(i)]); // the daemon's cycles keep adding events
    await sleep(150);
  }
  t.diagnostic(`${rx.posts.length} POSTs in 3 s`);
  assert.ok(rx.posts.length >= 2, 'it does retry');
  assert.ok(rx.posts.length <= 5, `${rx.posts.length} POSTs in 3 s: backoff not honoured`);
});

test('backoff: 429 with Retry-After: 3600 gets one POST; drain returns instead of hammering (#10)', async (t) => {
  const rx = await new Receiver((_req, res) => res.writeHead(429, { 'retry-after': '3600' }).end()).start();
  t.after(() => rx.stop());
  const s = setup(t, `http://127.0.0.1:${rx.port}/hook`);
  s.queue.enqueue([event(1)]);
  const t0 = Date.now();
  const drained = s.queue.drain(Date.now() + 3000);
  for (let i = 0; i < 10; i++) {
    s.queue.enqueue([event(i + 2)]);
    await sleep(100);
  }
  await drained;
  assert.equal(rx.posts.length, 1, `${rx.posts.length} POSTs`);
  assert.ok(Date.now() - t0 < 2500, `drain took ${Date.now() - t0} ms although the next try is an hour away`);
  assert.equal(spooled(s.spool).length, 11, 'everything stays spooled');
});

test('once: one attempt per sink, what is left stays spooled (#10)', async (t) => {
  const rx = await new Receiver(fail500).start();
  t.after(() => rx.stop());
  const s = setup(t, `http://127.0.0.1:${rx.port}/hook`, { once: true, baseDelayMs: 50 });
  for (let i = 0; i < 3; i++) s.queue.enqueue([event(i)]);
  const t0 = Date.now();
  await s.queue.drain(Date.now() + 3000);
  assert.equal(rx.posts.length, 1, `${rx.posts.length} POSTs`);
  assert.ok(Date.now() - t0 < 1500, `drain took ${Date.now() - t0} ms`);
  const files = spooled(s.spool);
  assert.equal(files.length, 3);
  assert.equal((JSON.parse(readFileSync(`${s.spool}/${files[0]}`, 'utf8')) as Batch).attempts, 1);
});

test('once: the pass ends at its first failure however long ago it was; a later enqueue or drain sends nothing (#10)', async (t) => {
  // watch --once kicks the queue at start, enqueues after its check and drains at the end: on a
  // loaded host the backoff of the first failure may be over by then, and that is no new pass.
  const rx = await new Receiver(fail500).start();
  t.after(() => rx.stop());
  const s = setup(t, `http://127.0.0.1:${rx.port}/hook`, { once: true, baseDelayMs: 1, maxDelayMs: 1 });
  s.queue.enqueue([event(1)]);
  await s.queue.drain(Date.now() + 3000);
  assert.equal(rx.posts.length, 1);
  await sleep(20); // the 1 ms backoff is over
  s.queue.enqueue([event(2)]);
  await s.queue.drain(Date.now() + 3000);
  assert.equal(rx.posts.length, 1, `${rx.posts.length} POSTs in one pass`);
  assert.equal(spooled(s.spool).length, 2, 'both batches stay spooled');
});

test('stop(deadline) aborts a send in flight and keeps the batch spooled (#11)', async (t) => {
  const rx = await new Receiver(() => undefined).start(); // accepts, never answers
  t.after(() => rx.stop());
  const s = setup(t, `http://127.0.0.1:${rx.port}/hook`, {}, 60_000);
  s.queue.enqueue([event(1)]);
  const until = Date.now() + 5000;
  while (!rx.posts.length && Date.now() < until) await sleep(20);
  assert.equal(rx.posts.length, 1);
  const t0 = Date.now();
  assert.equal(await settle(stopWithin(s.queue, 300), 5000), 'resolved');
  const took = Date.now() - t0;
  assert.ok(took < 1500, `stop took ${took} ms`);
  const files = spooled(s.spool);
  assert.equal(files.length, 1, 'still spooled');
  assert.equal((JSON.parse(readFileSync(`${s.spool}/${files[0]}`, 'utf8')) as Batch).attempts, 0, 'an interrupted send is not an attempt');
});

test('stop(deadline) also interrupts an SMTP server that never greets (#11)', async (t) => {
  const sockets: Socket[] = [];
  const smtp = createTcpServer((c) => void sockets.push(c)); // accepts, says nothing
  await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
  t.after(() => {
    sockets.forEach((c) => c.destroy());
    smtp.close();
  });
  const dir = mkdtempSync(`${tmpdir()}/pw-sinks-`);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = (smtp.address() as { port: number }).port;
  const sender = emailSender({ name: 'mail', host: '127.0.0.1', port, tls: 'none', from: 'a@b.c', to: ['d@e.f'], timeoutMs: 60_000 });
  const q = new SinkQueue(sender, { spoolDir: dir, limit: 10, log: new MemoryLog(), host: 'h', onOutcome: () => undefined });
  q.enqueue([event(1)]);
  const until = Date.now() + 5000;
  while (!sockets.length && Date.now() < until) await sleep(20);
  assert.equal(sockets.length, 1, 'connected');
  const t0 = Date.now();
  assert.equal(await settle(stopWithin(q, 300), 5000), 'resolved');
  assert.ok(Date.now() - t0 < 1500, `stop took ${Date.now() - t0} ms`);
  assert.equal(spooled(`${dir}/mail`).length, 1, 'still spooled');
});

test('webhook: a receiver that sends headers and stalls the body fails the send at the timeout (#12)', async (t) => {
  const rx = await new Receiver((_req, res) => {
    res.writeHead(200, { 'content-length': '1000' });
    res.write('x'); // ... and nothing more
  }).start();
  t.after(() => rx.stop());
  const sender = webhookSender({ name: 'hook', url: `http://127.0.0.1:${rx.port}/hook`, format: 'standard', secret: null, timeoutMs: 1000 });
  const t0 = Date.now();
  const result = await settle(sender.send(batch('msg_stall', new Date().toISOString())), 8000);
  assert.match(result, /^rejected: .*(timed out|no complete response)/, result);
  assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
});

test('spool on a full disk: batches are kept in memory and delivered, the failure reported once (#5)', async (t) => {
  if (!needsRootAnd(t, 'unshare', 'mount')) return;
  const rx = await new Receiver(ok).start();
  const dir = mkdtempSync(`${tmpdir()}/pw-enospc-`);
  try {
    // The child mounts a tiny tmpfs on dir in its own mount namespace and fills it.
    const child = spawn('unshare', ['--mount', '--propagation', 'private', process.execPath, `${HELPERS}spool-full.js`, dir, String(rx.port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    assert.equal(code, 0, out);
    const report = JSON.parse(out.trim().split('\n').at(-1)!) as { reported: (string | null)[]; logged: number; spooledWhileFull: number; spooledAfter: number };
    assert.deepEqual(report.reported, ['ENOSPC', null], 'one failure, then recovery');
    assert.equal(report.logged, 1, 'logged once although three writes failed');
    assert.equal(report.spooledWhileFull, 0, 'nothing could be written');
    assert.equal(report.spooledAfter, 0, 'delivered after the disk had room again');
    assert.equal(new Set(rx.posts.map((p) => p.id)).size, 4, 'all four batches delivered');
  } finally {
    await rx.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Writes config.yaml with one sink (YAML lines under "- ") into a fresh dir; returns its path. */
function sinkConfig(t: TestContext, sinkLines: string[], files: Record<string, { text: string; mode?: number }> = {}): { dir: string; file: string; text: string } {
  const dir = mkdtempSync(`${tmpdir()}/pw-cfg-`);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, f] of Object.entries(files)) writeFileSync(`${dir}/${name}`, f.text, { mode: f.mode ?? 0o600 });
  const text = ['sinks:', ...sinkLines.map((l, i) => (i ? '    ' : '  - ') + l.replace(/DIR/g, dir)), ''].join('\n');
  writeFileSync(`${dir}/config.yaml`, text);
  return { dir, file: `${dir}/config.yaml`, text };
}

function refused(file: string, where: RegExp, what: RegExp): void {
  assert.throws(
    () => loadConfig(file),
    (e: unknown) => {
      assert.ok(e instanceof InputError, `not an InputError: ${String(e)}`);
      assert.match(e.message, where);
      assert.match(e.message, what);
      return true;
    },
  );
}

test('secret files readable by others or not owned by root are refused (#16)', (t) => {
  if (!needsRootAnd(t)) return;
  const secret = 'whsec_' + Buffer.alloc(24, 7).toString('base64');
  const open = sinkConfig(t, ['type: webhook', 'url: http://127.0.0.1:9/x', 'secret_file: DIR/secret'], { secret: { text: secret, mode: 0o644 } });
  refused(open.file, /config\.yaml:4:\d+: sinks\[0\]\.secret_file: /, /readable by group or others .*chmod/);
  const foreign = sinkConfig(t, ['type: webhook', 'url: http://127.0.0.1:9/x', 'secret_file: DIR/secret'], { secret: { text: secret } });
  chownSync(`${foreign.dir}/secret`, 1000, 1000);
  refused(foreign.file, /config\.yaml:4:\d+: sinks\[0\]\.secret_file: /, /owned by uid 1000, not root/);
  const mail = sinkConfig(t, ['type: email', 'host: 127.0.0.1', 'from: a@b.c', 'to: [d@e.f]', 'user: u', 'password_file: DIR/pw'], { pw: { text: 'hunter2', mode: 0o640 } });
  refused(mail.file, /config\.yaml:7:\d+: sinks\[0\]\.password_file: /, /readable by group or others/);
  const good = sinkConfig(t, ['type: webhook', 'url: http://127.0.0.1:9/x', 'secret_file: DIR/secret'], { secret: { text: secret + '\n' } });
  assert.equal(loadConfig(good.file).sinks.length, 1, 'a 0600 root-owned secret is fine');
});

test('configs that can never deliver are refused at load with file:line:col (#17)', (t) => {
  const good = 'whsec_' + Buffer.alloc(24, 1).toString('base64');
  const cases: [string[], Record<string, { text: string }>, RegExp][] = [
    [['type: webhook', 'url: "http://"'], {}, /config\.yaml:3:10: sinks\[0\]\.url: .*(no host|not a valid URL)/],
    [['type: webhook', 'url: "http://exa mple.com/hook"'], {}, /config\.yaml:3:10: sinks\[0\]\.url: /],
    [['type: webhook', 'url: "http://127.0.0.1:0/hook"'], {}, /config\.yaml:3:10: sinks\[0\]\.url: .*port 0/],
    [['type: webhook', 'url: http://127.0.0.1:8/x', 'timeout: 1e12'], {}, /config\.yaml:4:14: sinks\[0\]\.timeout: must be ≤/],
    [['type: email', 'host: "mail example.com"', 'from: a@b.c', 'to: [d@e.f]'], {}, /config\.yaml:3:11: sinks\[0\]\.host: /],
    [['type: email', 'host: mail.example.com', 'from: a@b.c', 'to: [d@e.f]', 'timeout: 1e12'], {}, /config\.yaml:6:14: sinks\[0\]\.timeout: must be ≤/],
    [['type: webhook', 'url: http://127.0.0.1:8/x', 'secret_file: DIR/s'], { s: { text: '!!!!' } }, /config\.yaml:4:18: sinks\[0\]\.secret_file: .*not base64/],
    [['type: webhook', 'url: http://127.0.0.1:8/x', 'secret_file: DIR/s'], { s: { text: 'whsec_abc!def=' } }, /config\.yaml:4:18: sinks\[0\]\.secret_file: .*not base64/],
    [['type: webhook', 'url: http://127.0.0.1:8/x', 'secret_file: DIR/s'], { s: { text: '' } }, /config\.yaml:4:18: sinks\[0\]\.secret_file: .*empty/],
    [['type: email', 'host: mail.example.com', 'from: a@b.c', 'to: [d@e.f]', 'user: u', 'password_file: DIR/p'], { p: { text: '\n' } }, /config\.yaml:7:\d+: sinks\[0\]\.password_file: .*empty/],
  ];
  for (const [lines, files, want] of cases) {
    const c = sinkConfig(t, lines, files);
    refused(c.file, want, /./);
  }
  const fine = sinkConfig(t, ['type: webhook', 'url: https://hooks.example.com:8443/portwarden', 'secret_file: DIR/s', 'timeout: 30'], { s: { text: good + '\n' } });
  assert.equal(loadConfig(fine.file).sinks[0]!.name, 'webhook-1');
});

test('watch: operator environment errors exit 2 with file:line:col, a busy port exits 3, never "unexpected failure" (#18)', async (t) => {
  const secretDir = mkdtempSync(`${tmpdir()}/pw-env-`);
  t.after(() => rmSync(secretDir, { recursive: true, force: true }));
  const cases: [string[], RegExp][] = [
    [['type: webhook', 'url: http://127.0.0.1:8/x', 'secret_env: PW_TEST_SURELY_UNSET'], /config\.yaml:4:17: sinks\[0\]\.secret_env: environment variable PW_TEST_SURELY_UNSET is not set/],
    [['type: email', 'host: h.example.com', 'from: a@b.c', 'to: [d@e.f]', 'user: u', 'password_file: DIR/missing'], /config\.yaml:7:20: sinks\[0\]\.password_file: cannot read .*missing: ENOENT/],
    [['type: email', 'host: h.example.com', 'from: a@b.c', 'to: [d@e.f]', 'user: u', `password_file: ${secretDir}`], /config\.yaml:7:20: sinks\[0\]\.password_file: .*is a directory/],
    [['type: prometheus', 'listen: 0.0.0.0:99999'], /config\.yaml:3:13: sinks\[0\]\.listen: port 99999 is out of range/],
  ];
  for (const [lines, want] of cases) {
    const c = sinkConfig(t, lines);
    const r = await runCli(['watch', '--config', c.file, '--once']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, want);
    assert.doesNotMatch(r.stderr, /unexpected failure/);
  }
  // A port someone else holds is the environment at run time: exit 3, one line, naming it.
  const busy = await new Receiver(ok).start();
  t.after(() => busy.stop());
  const c = sinkConfig(t, ['type: prometheus', `listen: 127.0.0.1:${busy.port}`]);
  writeFileSync(`${c.dir}/policy.yaml`, 'version: 1\nrules:\n  - { name: web, port: 8080 }\n');
  writeFileSync(c.file, `policy: ${c.dir}/policy.yaml\nstate_dir: ${c.dir}/state\n${c.text}`);
  const r = await runCli(['watch', '--config', c.file, '--once']);
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stderr, `portwarden: cannot serve /metrics on 127.0.0.1:${busy.port}: address already in use (EADDRINUSE)\n`);
});

test('watch --once against a failing receiver: one attempt per sink, the rest stays spooled (#10, end to end)', async (t) => {
  if (!needsRootAnd(t, 'ip', 'ss', 'nsenter')) return;
  const rx = await new Receiver(fail500).start();
  try {
    const batches = Object.fromEntries([0, 1, 2, 3, 4].map((i) => [`2026-01-01T00-00-0${i}-000Z_msg_${i}.json`, JSON.stringify(batch(`msg_${i}`, `2026-01-01T00:00:0${i}.000Z`))]));
    const { spool, r, ms } = await watchOnceWithSpool(rx, batches);
    t.after(() => rmSync(spool, { recursive: true, force: true }));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(rx.posts.length, 1, `one POST, not a retry loop (${rx.posts.length} in ${ms} ms)`);
    assert.equal(readdirSync(spool).filter((f) => f.endsWith('.json')).length, 5, 'every batch is still spooled');
  } finally {
    await rx.stop();
  }
});

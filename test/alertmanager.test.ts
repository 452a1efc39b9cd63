// The Alertmanager sink against two real Alertmanager processes on loopback (Debian's
// prometheus-alertmanager): labels and annotations read back from /api/v2/alerts, alerts kept
// alive by resends, resolved with endsAt, both instances down then up, one down; config checks.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { SinkQueue, type DeliveryLog } from '../agent/alerts/delivery.js';
import { alertmanagerSender, alertName, authorization, Resender, toAlert } from '../agent/alerts/sinks/alertmanager.js';
import type { JournalEvent } from '../agent/alerts/journal.js';
import { loadConfig } from '../agent/daemon/config.js';
import { InputError } from '../agent/errors.js';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { DeliveryError } from '../agent/alerts/sinks/sink.js';
import { hasCommand, needsRootAnd } from './helpers/env.js';
import { createNamespace, deleteNamespace, startListeners } from './helpers/lab.js';
import { CLI } from './helpers/paths.js';
import { Alertmanager, ALERTMANAGER, freePort } from './helpers/alertmanager.js';
import { sleep, until } from './helpers/wait.js';

const quiet: DeliveryLog = { info: () => undefined, warn: () => undefined, error: () => undefined };

function ev(event: JournalEvent['event'], n: number, at = new Date().toISOString()): JournalEvent {
  return {
    event,
    at,
    host: 'web-1',
    finding: {
      id: `forbidden-listener:tcp/${6000 + n}:wildcard:redis-server`, kind: 'forbidden-listener', severity: 'critical', proto: 'tcp', port: 6000 + n, address: '0.0.0.0', rule: 'no-redis',
      processes: [{ pid: 42, name: 'redis-server', exe: '/usr/bin/redis-server', user: 'redis', cmdline: null }], message: `redis on tcp/${6000 + n} open to all`, remedy: 'bind it to 127.0.0.1',
    },
  };
}

/** Needs the real engine; skipped with a reason (a failure under CI) when it is not installed. */
function needsAlertmanager(t: TestContext): boolean {
  if (hasCommand(ALERTMANAGER)) return true;
  if (process.env.CI === 'true') throw new Error(`needs ${ALERTMANAGER}, and CI=true requires this test to run`);
  t.skip(`needs ${ALERTMANAGER}`);
  return false;
}

async function twoInstances(t: TestContext): Promise<[Alertmanager, Alertmanager]> {
  const ams = [new Alertmanager(), new Alertmanager()] as const;
  t.after(() => Promise.all(ams.map((a) => a.destroy())));
  await Promise.all(ams.map((a) => a.start()));
  return [ams[0], ams[1]];
}

/** One queue per instance, as the agent builds them, with a fast backoff for the test. */
function queues(t: TestContext, urls: string[], resendMs = 60_000): SinkQueue[] {
  const spool = mkdtempSync(`${tmpdir()}/pw-am-spool-`);
  const qs = urls.map((url, i) => new SinkQueue(alertmanagerSender({ name: `am#${i + 1}`, url, authorization: null, resendMs, timeoutMs: 5000 }), {
    spoolDir: spool, limit: 100, log: quiet, host: 'web-1', onOutcome: () => undefined, baseDelayMs: 100, maxDelayMs: 400,
  }));
  t.after(async () => {
    await Promise.all(qs.map((q) => q.stop(0)));
    rmSync(spool, { recursive: true, force: true });
  });
  return qs;
}

const byFinding = <A extends { labels: Record<string, string> }>(alerts: A[], id: string) => alerts.find((a) => a.labels.finding_id === id);

test('alertmanager: alertname and labels of a finding; empty labels left out; endsAt four resends ahead', () => {
  assert.equal(alertName('forbidden-listener'), 'PortwardenForbiddenListener');
  assert.equal(alertName('firewall-drift'), 'PortwardenFirewallDrift');
  const now = new Date('2026-01-01T00:00:00Z');
  const a = toAlert(ev('opened', 1, '2025-12-31T23:00:00.000Z'), now, 60_000);
  assert.deepEqual(a.labels, {
    alertname: 'PortwardenForbiddenListener', host: 'web-1', severity: 'critical', kind: 'forbidden-listener', proto: 'tcp', port: '6001', rule: 'no-redis', program: 'redis-server', finding_id: 'forbidden-listener:tcp/6001:wildcard:redis-server',
  });
  assert.deepEqual(a.annotations, { summary: 'redis on tcp/6001 open to all', remedy: 'bind it to 127.0.0.1' });
  assert.equal(a.startsAt, '2025-12-31T23:00:00.000Z');
  assert.equal(a.endsAt, '2026-01-01T00:04:00.000Z');
  const hostWide = ev('resolved', 2, '2026-01-01T00:00:05.000Z');
  Object.assign(hostWide.finding, { kind: 'firewall-drift', proto: null, port: null, rule: null, processes: [] });
  const r = toAlert(hostWide, now, 60_000);
  assert.deepEqual(Object.keys(r.labels).sort(), ['alertname', 'finding_id', 'host', 'kind', 'severity']);
  assert.equal(r.endsAt, '2026-01-01T00:00:05.000Z', 'a resolve ends when it resolved');
  assert.equal(authorization({ bearer_token_file: '/x' }, 'tok'), 'Bearer tok');
  assert.equal(authorization({ basic_auth: { user: 'pw' } }, 'secret'), `Basic ${Buffer.from('pw:secret').toString('base64')}`);
});

test('alertmanager: two real instances both get each open finding with its labels, and the resolve (endsAt) clears it', async (t) => {
  if (!needsAlertmanager(t)) return;
  const ams = await twoInstances(t);
  const qs = queues(t, ams.map((a) => a.url));
  const opened = [ev('opened', 1), ev('opened', 2)];
  for (const q of qs) q.enqueue(opened);
  for (const am of ams) {
    const alerts = await pollAlerts(am, (as) => as.length === 2);
    const a = byFinding(alerts, opened[0]!.finding.id);
    assert.ok(a, JSON.stringify(alerts));
    assert.equal(a.labels.alertname, 'PortwardenForbiddenListener');
    assert.equal(a.labels.host, 'web-1');
    assert.equal(a.labels.port, '6001');
    assert.equal(a.labels.program, 'redis-server');
    assert.equal(a.annotations.summary, 'redis on tcp/6001 open to all');
    assert.equal(a.annotations.remedy, 'bind it to 127.0.0.1');
    assert.equal(a.status.state, 'active');
  }
  for (const q of qs) q.enqueue([ev('resolved', 1)]);
  for (const am of ams) {
    const left = await pollAlerts(am, (as) => as.length === 1);
    assert.equal(left[0]!.labels.port, '6002', 'only the resolved one is gone');
  }
});

async function pollAlerts(am: Alertmanager, ok: (alerts: Awaited<ReturnType<Alertmanager['alerts']>>) => boolean, ms = 15_000) {
  const end = Date.now() + ms;
  let last: Awaited<ReturnType<Alertmanager['alerts']>> = [];
  for (;;) {
    try {
      last = await am.alerts();
      if (ok(last)) return last;
    } catch {
      /* not up (yet) */
    }
    if (Date.now() > end) throw new Error(`timed out waiting on ${am.url}; last: ${JSON.stringify(last)}`);
    await sleep(100);
  }
}

test('alertmanager: resends keep an open finding alive past its endsAt; without them it expires', async (t) => {
  if (!needsAlertmanager(t)) return;
  const [am] = await twoInstances(t);
  const resendMs = 1000; // endsAt = send + 4 s
  const [kept, dropped] = queues(t, [am.url, am.url], resendMs);
  const open = ev('opened', 1);
  kept!.enqueue([open]);
  dropped!.enqueue([ev('opened', 2)]);
  const r = new Resender(kept!, resendMs, () => [open]);
  r.start();
  t.after(() => r.stop());
  const first = await pollAlerts(am, (as) => as.length === 2);
  const endsAt0 = Date.parse(byFinding(first, open.finding.id)!.endsAt);
  await sleep(6500); // past both first endsAt
  const later = await am.alerts();
  const a = byFinding(later, open.finding.id);
  assert.ok(a, `the resent alert is still active: ${JSON.stringify(later)}`);
  assert.ok(Date.parse(a.endsAt) > endsAt0 + 1500, 'each resend moved endsAt on');
  assert.equal(Date.parse(a.startsAt), Date.parse(open.at), 'startsAt stays when it opened');
  assert.equal(byFinding(later, ev('opened', 2).finding.id), undefined, 'an alert not resent expires');
});

test('alertmanager: both instances down, then up: every alert arrives (spooled, retried)', async (t) => {
  if (!needsAlertmanager(t)) return;
  const ams = [new Alertmanager(), new Alertmanager()];
  t.after(() => Promise.all(ams.map((a) => a.destroy())));
  for (const a of ams) a.port = await freePort();
  const qs = queues(t, ams.map((a) => a.url));
  for (const q of qs) q.enqueue([ev('opened', 1)]);
  for (const q of qs) q.enqueue([ev('opened', 2)]);
  await sleep(800); // several failed tries
  for (const q of qs) assert.equal(q.waiting, 2, 'nothing is lost while all are down');
  await Promise.all(ams.map((a) => a.start()));
  for (const am of ams) await pollAlerts(am, (as) => as.length === 2);
  await until('spools empty', () => qs.every((q) => q.waiting === 0));
});

test('alertmanager: one instance down does not hold back the other', async (t) => {
  if (!needsAlertmanager(t)) return;
  const [up, down] = await twoInstances(t);
  await down.stop();
  const qs = queues(t, [up.url, down.url]);
  for (const q of qs) q.enqueue([ev('opened', 1)]);
  await pollAlerts(up, (as) => as.length === 1, 5000);
  assert.equal(qs[1]!.waiting, 1, 'the batch for the down instance waits in its spool');
  await down.start();
  await pollAlerts(down, (as) => as.length === 1);
});

test('config: alertmanager sink keys, credentials in URLs refused, one auth only, secret file permissions', (t) => {
  const dir = mkdtempSync(`${tmpdir()}/pw-am-cfg-`);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(`${dir}/token`, 'tok-1\n');
  chmodSync(`${dir}/token`, 0o600);
  const c = loadConfig(`${dir}/c.yaml`, `sinks:\n  - type: alertmanager\n    urls: [http://127.0.0.1:9093, http://127.0.0.1:9094/]\n    bearer_token_file: ${dir}/token\n    resend: 30s\n`);
  const s = c.sinks[0]!;
  assert.equal(s.type, 'alertmanager');
  assert.equal(s.name, 'alertmanager-1');
  assert.equal(s.type === 'alertmanager' && s.credential, 'tok-1');
  const bad = (text: string, re: RegExp) => assert.throws(() => loadConfig(`${dir}/c.yaml`, text), (e: unknown) => e instanceof InputError && re.test(e.message) || assert.fail(String(e)));
  bad('sinks:\n  - type: alertmanager\n    urls: ["http://u:SECRET@am:9093"]\n', /c\.yaml:3:12: sinks\[0\]\.urls\[0\]: credentials in the URL .*bearer_token_file or basic_auth/);
  bad(`sinks:\n  - type: alertmanager\n    urls: [http://am:9093]\n    bearer_token_file: ${dir}/token\n    basic_auth: { user: a, password_file: ${dir}/token }\n`, /c\.yaml:2:5: sinks\[0\]: give bearer_token_file or basic_auth, not both/);
  bad('sinks:\n  - type: alertmanager\n    urls: []\n', /c\.yaml:3:11: .*urls/);
  bad('sinks:\n  - type: alertmanager\n    urls: [http://am:9093]\n    resend: 1\n', /c\.yaml:4:13: .*resend/);
  writeFileSync(`${dir}/token2`, 'tok\nsecond line\n');
  chmodSync(`${dir}/token2`, 0o600);
  bad(`sinks:\n  - type: alertmanager\n    urls: [http://am:9093]\n    bearer_token_file: ${dir}/token2\n`, /c\.yaml:4:24: sinks\[0\]\.bearer_token_file: .*token2 must hold one token of printable ASCII/);
  if (process.getuid?.() === 0) {
    chmodSync(`${dir}/token`, 0o644);
    bad(`sinks:\n  - type: alertmanager\n    urls: [http://am:9093]\n    basic_auth: { user: a, password_file: ${dir}/token }\n`, /c\.yaml:4:43: sinks\[0\]\.basic_auth\.password_file: .*readable by group or others/);
  }
});

test('watch: an open finding reaches both Alertmanagers with its labels, stays active across resends, and resolves', async (t) => {
  if (!needsRootAnd(t, 'ip', 'ss', 'nsenter') || !needsAlertmanager(t)) return;
  const ams = await twoInstances(t);
  const ns = createNamespace('am');
  t.after(() => deleteNamespace(ns));
  const dir = mkdtempSync(`${tmpdir()}/pw-am-watch-`);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(`${dir}/policy.yaml`, 'version: 1\ndefault: deny\nrules:\n  - { name: web, port: 8080 }\n');
  writeFileSync(`${dir}/config.yaml`, `policy: ${dir}/policy.yaml\nstate_dir: ${dir}/state\nnetns: ${ns}\nexposure: false\nsettle: 1\nschedule: "* * * * * *"\nsinks:\n  - type: alertmanager\n    name: am\n    urls: [${ams.map((a) => a.url).join(', ')}]\n    resend: 1s\n`);
  const listener = await startListeners(ns, [{ proto: 'tcp', host: '0.0.0.0', port: 6379 }]);
  t.after(() => listener.kill());
  const daemon = spawn(process.execPath, [CLI, 'watch', '--config', `${dir}/config.yaml`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  daemon.stdout.on('data', (d: Buffer) => (log += d.toString()));
  daemon.stderr.on('data', (d: Buffer) => (log += d.toString()));
  t.after(() => daemon.kill('SIGKILL'));
  const mine = <A extends { labels: Record<string, string> }>(as: A[]) => as.filter((a) => a.labels.port === '6379');
  let firstEnd = 0;
  for (const am of ams) {
    const [a] = mine(await pollAlerts(am, (as) => mine(as).length === 1).catch((e: Error) => assert.fail(`${e.message}\n${log}`)));
    assert.equal(a!.labels.alertname, alertName(a!.labels.kind!));
    assert.equal(a!.labels.host, hostname());
    assert.equal(a!.labels.proto, 'tcp');
    assert.ok(a!.labels.finding_id && a!.labels.severity, JSON.stringify(a));
    firstEnd = Date.parse(a!.endsAt);
  }
  await sleep(5500); // past the first endsAt (4 resends)
  for (const am of ams) {
    const [a] = mine(await am.alerts());
    assert.ok(a && Date.parse(a.endsAt) > firstEnd, `still active after its first endsAt, re-posted: ${JSON.stringify(a)}\n${log}`);
  }
  listener.kill();
  for (const am of ams) await pollAlerts(am, (as) => mine(as).length === 0).catch((e: Error) => assert.fail(`${e.message}\n${log}`));
  assert.match(log, /"sink":"am#2"/, 'each instance is its own queue, named NAME#N');
});

test('alertmanager sender: POST /api/v2/alerts with the Authorization header; 400 is not retried, 503 is', async (t) => {
  const seen: { url: string; auth: string; body: string }[] = [];
  let status = 200;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      seen.push({ url: req.url ?? '', auth: String(req.headers.authorization ?? ''), body });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise((r) => server.close(r)));
  const port = (server.address() as { port: number }).port;
  const s = alertmanagerSender({ name: 'am#1', url: `http://127.0.0.1:${port}/`, authorization: authorization({ bearer_token_file: '/x' }, 'tok-1'), resendMs: 60_000, timeoutMs: 5000 });
  const batch = { id: 'b1', createdAt: new Date().toISOString(), attempts: 0, events: [ev('opened', 1), ev('opened', 2), ev('resolved', 1)] };
  await s.send(batch);
  assert.equal(seen[0]!.url, '/api/v2/alerts');
  assert.equal(seen[0]!.auth, 'Bearer tok-1');
  const alerts = JSON.parse(seen[0]!.body) as { labels: Record<string, string>; endsAt: string; startsAt: string }[];
  assert.equal(alerts.length, 2, 'one alert per finding: its last event in the batch decides');
  const first = alerts.find((a) => a.labels.port === '6001')!;
  assert.equal(first.endsAt, first.startsAt, 'opened then resolved in one batch: posted resolved');
  status = 400;
  await assert.rejects(s.send(batch), (e: unknown) => e instanceof DeliveryError && !e.retryable && /HTTP 400/.test(e.message));
  status = 503;
  await assert.rejects(s.send(batch), (e: unknown) => e instanceof DeliveryError && e.retryable);
});

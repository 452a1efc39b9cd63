// The agent end to end: `watch` on a one-second schedule against a namespace, a real HTTP receiver
// that verifies signatures, a real SMTP server process, the Prometheus textfile and endpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { needsRootAnd } from '../helpers/env.js';
import { createNamespace, deleteNamespace, startListeners } from '../helpers/lab.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';
import { CLI, HELPERS } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { sleep, until } from '../helpers/wait.js';


class Daemon {
  proc: ChildProcess;
  log = '';
  constructor(config: string) {
    this.proc = spawn(process.execPath, [CLI, 'watch', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    this.proc.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
  }
  started() {
    return until('agent start', () => this.log.includes('portwarden agent started')).catch((err: Error) => {
      throw new Error(`${err.message}; daemon said:\n${this.log}`);
    });
  }
  async stop(): Promise<number | null> {
    const exited = new Promise<number | null>((r) => this.proc.once('exit', (code) => r(code)));
    this.proc.kill('SIGTERM');
    return exited;
  }
}

/** Strict enough check of the Prometheus text format (0.0.4). */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (m) {
      if (m[1] === 'TYPE') {
        assert.match(m[3]!, /^(counter|gauge|histogram|summary|untyped)$/);
        typed.add(m[2]!);
      }
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)?\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/.exec(line);
    assert.ok(m, `not a valid exposition line: ${line}`);
    assert.ok(typed.has(m[1]!), `sample before its TYPE: ${line}`);
    samples.set(m[1]! + (m[2] ?? ''), Number(m[4]));
  }
  return samples;
}

test('watch: drift alerts to webhook and e-mail, spool across restarts, metrics, SIGHUP', async (t) => {
  if (!needsRootAnd(t, 'ss', 'nsenter', 'ip', 'nft')) return;
  const ns = createNamespace('watch');
  const dir = mkdtempSync(`${tmpdir()}/pw-watch-`);
  const children: ChildProcess[] = [];
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  const receiver = new WebhookReceiver(secret);
  const daemons: Daemon[] = [];
  try {
    await receiver.start();
    const smtp = spawn(process.execPath, [`${HELPERS}smtp-server.js`], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(smtp);
    let smtpOut = '';
    smtp.stdout!.on('data', (d: Buffer) => (smtpOut += d.toString()));
    const smtpPort = Number((await until('smtp server', () => /ready (\d+)/.exec(smtpOut) ?? undefined))[1]);
    const mails = () => smtpOut.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { to: string[]; raw: string });

    const policy = `${dir}/policy.yaml`;
    const goodPolicy = 'version: 1\nrules:\n  - { name: web, port: 8080 }\n  - { name: legacy, port: "2320-2330", action: deny }\n';
    writeFileSync(policy, goodPolicy);
    writeFileSync(`${dir}/secret`, secret, { mode: 0o600 });
    mkdirSync(`${dir}/textfile`);
    const config = `${dir}/config.yaml`;
    writeFileSync(
      config,
      [
        `policy: ${policy}`,
        `state_dir: ${dir}/state`,
        'schedule: "* * * * * *"',
        'settle: 2',
        'repeat: 0',
        `netns: ${ns}`,
        'sinks:',
        '  - type: webhook',
        `    url: http://127.0.0.1:${receiver.port}/hook`,
        `    secret_file: ${dir}/secret`,
        '  - type: email',
        '    host: 127.0.0.1',
        `    port: ${smtpPort}`,
        '    tls: none',
        '    from: portwarden@example.com',
        '    to: [ops@example.com]',
        '  - type: prometheus',
        `    textfile: ${dir}/textfile/portwarden.prom`,
        '    listen: 127.0.0.1:0',
        '',
      ].join('\n'),
    );
    let d = new Daemon(config);
    daemons.push(d);
    await d.started();

    // A forbidden port opens → exactly one "opened", signed, with the check --json finding.
    const l1 = await startListeners(ns, [{ proto: 'tcp', host: '0.0.0.0', port: 2323 }]);
    children.push(l1);
    await until('opened', () => receiver.events().find((e) => e.event === 'opened'));
    await sleep(2500);
    const first = receiver.events();
    assert.deepEqual(first.map((e) => `${e.event} ${e.id}`), ['opened forbidden-listener:tcp/2323:wildcard:node']);
    assert.equal(receiver.rejected, 0, 'every request carried a valid signature');
    const body = receiver.received[0]!.body;
    assert.equal(body.type, 'portwarden.alert');
    const finding = body.events[0]!.finding as unknown as Record<string, unknown>;
    for (const k of ['id', 'kind', 'severity', 'proto', 'port', 'address', 'rule', 'processes', 'message', 'remedy']) assert.ok(k in finding, k);
    assert.equal(finding.severity, 'critical');

    // The e-mail for the same batch.
    const mail = await until('mail', () => mails()[0]);
    // The body is quoted-printable: undo soft line breaks and =XX escapes before matching.
    const text = mail.raw.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
    assert.deepEqual(mail.to, ['ops@example.com']);
    assert.match(mail.raw, /^Subject: \[portwarden\] \S+: 1 event, worst critical$/m);
    assert.match(text, /OPENED critical forbidden-listener tcp\/2323 \(rule legacy\): tcp\/2323 on 0\.0\.0\.0 \(node/);
    assert.match(text, /remedy: stop and disable the program holding tcp\/2323/);

    // Closing it → exactly one "resolved".
    l1.kill('SIGKILL');
    await until('resolved', () => receiver.events().find((e) => e.event === 'resolved'));
    await sleep(2500);
    assert.deepEqual(receiver.events().map((e) => e.event), ['opened', 'resolved']);

    // Metrics: the textfile and /metrics parse as exposition format.
    // The e-mail sink is a queue of its own: its second delivery may come after the webhook's,
    // and the textfile counts it at the next cycle. Wait for both counts, not a fixed time.
    const delivered = (m: Map<string, number>, sink: string) => m.get(`portwarden_alerts_total{sink="${sink}",result="delivered"}`) ?? 0;
    const prom = await until('both sinks counted as delivered twice in the textfile', () => {
      const m = parseExposition(readFileSync(`${dir}/textfile/portwarden.prom`, 'utf8'));
      return delivered(m, 'webhook-1') >= 2 && delivered(m, 'email-1') >= 2 && m;
    });
    assert.ok((prom.get('portwarden_last_scan_timestamp_seconds') ?? 0) > Date.now() / 1000 - 10);
    assert.ok(prom.has('portwarden_scan_duration_seconds'));
    assert.ok(prom.has('portwarden_listeners{scope="wildcard"}'));

    // Receiver down: events open and resolve meanwhile, the daemon restarts, then the receiver
    // comes back → every event delivered, with the spooled ids, none twice.
    await receiver.stop();
    const l2 = await startListeners(ns, [{ proto: 'tcp', host: '0.0.0.0', port: 2324 }, { proto: 'udp', host: '0.0.0.0', port: 2325 }]);
    children.push(l2);
    const journal = () => readFileSync(`${dir}/state/events.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; finding: { id: string } });
    await until('opened in journal', () => journal().filter((e) => e.event === 'opened').length === 3);
    l2.kill('SIGKILL');
    await until('resolved in journal', () => journal().filter((e) => e.event === 'resolved').length === 3);
    assert.equal(await d.stop(), 0, 'SIGTERM exits cleanly');
    const spoolDir = `${dir}/state/spool/webhook-1`;
    const spooled = readdirSync(spoolDir).map((f) => (JSON.parse(readFileSync(`${spoolDir}/${f}`, 'utf8')) as { id: string }).id).sort();
    assert.ok(spooled.length >= 2, `spooled ${spooled.length} batches`);
    d = new Daemon(config);
    daemons.push(d);
    await d.started();
    await receiver.start();
    await until('spool delivered', () => readdirSync(spoolDir).length === 0, 30_000);
    const lateIds = receiver.received.slice(2).map((r) => r.id).sort();
    assert.deepEqual(lateIds, spooled, 'delivered with the same webhook-id');
    const keys = receiver.events().map((e) => `${e.event}|${e.id}|${e.at}`);
    assert.equal(new Set(keys).size, keys.length, 'no event delivered twice');
    assert.deepEqual(receiver.events().map((e) => e.event).sort(), journal().map((e) => e.event).sort(), 'every journalled event delivered');

    // SIGHUP with a broken policy keeps the old one and says why; fixing it resolves that.
    writeFileSync(policy, 'version: 1\nrules:\n  - { name: web, port: 99999 }\n');
    d.proc.kill('SIGHUP');
    const cfgAlert = await until('config alert', () => receiver.received.flatMap((r) => r.body.events).find((e) => e.finding.kind === 'agent-config-invalid'));
    assert.equal(cfgAlert.event, 'opened');
    assert.match((cfgAlert.finding as unknown as { message: string }).message, /policy\.yaml:3:\d+: rules\[0\]\.port: must be ≤ 65535/);
    const l3 = await startListeners(ns, [{ proto: 'tcp', host: '0.0.0.0', port: 2326 }]);
    children.push(l3);
    await until('old policy still enforced', () => receiver.events().find((e) => e.id === 'forbidden-listener:tcp/2326:wildcard:node'));
    l3.kill('SIGKILL');
    writeFileSync(policy, goodPolicy);
    d.proc.kill('SIGHUP');
    await until('config alert resolved', () => receiver.events().find((e) => e.event === 'resolved' && e.id === 'agent-config-invalid'));

    // alerts: the history and what is open now. The daemon stops first: while it runs it may
    // still journal an event (tcp/2326 resolving) between the two reads being compared.
    assert.equal(await d.stop(), 0);
    const hist = JSON.parse((await runCli(['alerts', '--json', '--state-dir', `${dir}/state`])).stdout) as { events: { event: string }[] };
    assert.equal(hist.events.length, journal().length);
    const human = await runCli(['alerts', '--since', '1h', '--state-dir', `${dir}/state`]);
    assert.match(human.stdout, /^AT\s+EVENT\s+SEVERITY\s+KIND\s+PORT\s+PROGRAM\s+RULE\s+MESSAGE$/m);
    assert.match(human.stdout, /opened\s+critical\s+forbidden-listener\s+tcp\/2323\s+node\s+legacy/);
  } finally {
    for (const dm of daemons) dm.proc.kill('SIGKILL');
    children.forEach((c) => c.kill('SIGKILL'));
    await receiver.stop();
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});

// Service expectations against a real Postfix (+ Dovecot for SASL) in the lab's server namespace:
// portwarden probe from a trusted and an untrusted client, check --netns and the agent on the host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
import { needsRootAnd } from '../helpers/env.js';
import { createLab, nsRun, startListeners, type Lab } from '../helpers/lab.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { startImap, startMail, type Mail } from '../helpers/mail.js';
import { CLI } from '../helpers/paths.js';

interface ProbeJson {
  target: string;
  source: string;
  ports: { proto: string; port: number; expected: string; observed: string; rule: string | null; checks: { name: string; ok: boolean; detail: string }[] }[];
}

const MAIL_EXPECT = 'cert_days: 14, cert_names: [mail.example.test]';
const POLICY = `version: 1
default: deny
refuse: reject
sources:
  trusted: [192.0.2.11]
rules:
  - name: smtp
    port: 25
    process: [master]
    expect: { tls: starttls, tls_min: "1.2", ${MAIL_EXPECT}, smtp: { relay: refuse, auth: tls-only } }
  - name: submission
    port: 587
    process: [master]
    expect: { tls: starttls, ${MAIL_EXPECT}, smtp: { auth: tls-only } }
  - name: smtps
    port: 465
    process: [master]
    expect: { tls: implicit, ${MAIL_EXPECT}, smtp: { relay: refuse } }
  - name: metrics
    port: 9100
    from: [trusted]
  - name: dns
    port: 53
    proto: udp
    from: [trusted]
`;

/** Runs the CLI inside a namespace, as an operator on that machine would. */
function cliIn(ns: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', process.execPath, CLI, ...args], { env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? 99, stdout, stderr }));
  });
}

async function probe(ns: string, policy: string, extra: string[] = []): Promise<{ r: CliResult; json: ProbeJson }> {
  const r = await cliIn(ns, ['probe', '192.0.2.1', '--policy', policy, '--json', '--timeout', '3', ...extra]);
  assert.equal(r.stderr, '', r.stderr);
  return { r, json: JSON.parse(r.stdout) as ProbeJson };
}

const port = (j: ProbeJson, proto: string, n: number) => j.ports.find((p) => p.proto === proto && p.port === n)!;
const failed = (j: ProbeJson, n: number) => port(j, 'tcp', n).checks.filter((c) => !c.ok).map((c) => c.name).sort();

async function serviceFindings(ns: string, policy: string): Promise<string[]> {
  const r = await runCli(['check', '--policy', policy, '--netns', ns, '--json', '--fail-on', 'none']);
  assert.equal(r.code, 0, r.stderr);
  const kinds = new Set(['tls-missing', 'tls-weak', 'cert-expiring', 'cert-name-mismatch', 'smtp-plaintext-auth', 'service-unanswered']);
  return (JSON.parse(r.stdout) as { findings: { id: string; kind: string }[] }).findings.filter((f) => kinds.has(f.kind)).map((f) => f.id).sort();
}

test('probe, check and the agent against a real Postfix with STARTTLS, submission, wrapper mode and Dovecot SASL', async (t) => {
  if (!needsRootAnd(t, 'nsenter', 'ip', 'nft', 'postfix', 'dovecot', 'openssl')) return;
  const dir = mkdtempSync(`${tmpdir()}/pw-probe-`);
  let lab: Lab | null = null;
  let mail: Mail | null = null;
  const children: ChildProcess[] = [];
  try {
    lab = createLab(2);
    const [trusted, stranger] = lab.clients as [Lab['server'], Lab['server']];
    const server = lab.server.ns;
    mail = await startMail(server);
    children.push(await startListeners(server, [{ proto: 'tcp', host: '0.0.0.0', port: 9100 }, { proto: 'udp', host: '0.0.0.0', port: 53 }]));
    const policy = `${dir}/policy.yaml`;
    writeFileSync(policy, POLICY);
    const rules = await runCli(['rules', '--policy', policy, '--backend', 'nft']);
    assert.equal(rules.code, 0, rules.stderr);
    nsRun(server, 'nft', ['-f', '-'], rules.stdout);

    await t.test('the probe agrees with the policy from a trusted and an untrusted client', async () => {
      const a = await probe(trusted.ns, policy);
      assert.equal(a.r.code, 0, a.r.stdout);
      assert.equal(a.json.target, '192.0.2.1');
      assert.equal(a.json.source, trusted.v4, 'the source defaults to the address the route uses');
      assert.deepEqual(a.json.ports.map((p) => `${p.proto}/${p.port} ${p.expected} ${p.observed} ${p.rule}`), [
        'tcp/25 open open smtp', 'tcp/465 open open smtps', 'tcp/587 open open submission', 'tcp/9100 open open metrics', 'udp/53 open open dns',
      ]);
      assert.deepEqual(port(a.json, 'tcp', 25).checks.map((c) => `${c.name} ${c.ok}`), [
        'tls-missing true', 'tls-weak true', 'cert-expiring true', 'cert-name-mismatch true', 'smtp-plaintext-auth true', 'open-relay true',
      ]);
      assert.match(port(a.json, 'tcp', 25).checks.find((c) => c.name === 'open-relay')!.detail, /: (454|554) .*Relay access denied/, 'Postfix refuses to relay for a stranger');
      assert.ok(port(a.json, 'tcp', 465).checks.some((c) => c.name === 'open-relay' && c.ok), 'the relay test runs in wrapper mode too');

      const b = await probe(stranger.ns, policy);
      assert.equal(b.r.code, 0, b.r.stdout);
      assert.deepEqual(b.json.ports.map((p) => `${p.proto}/${p.port} ${p.expected} ${p.observed}`), [
        'tcp/25 open open', 'tcp/465 open open', 'tcp/587 open open', 'tcp/9100 closed closed', 'udp/53 closed closed',
      ]);
      assert.deepEqual(failed(b.json, 25), []);
      assert.deepEqual(await serviceFindings(server, policy), [], 'the host-side checks agree: nothing wrong');

      const text = await cliIn(stranger.ns, ['probe', '192.0.2.1', '--policy', policy, '--timeout', '3']);
      assert.equal(text.code, 0);
      assert.match(text.stdout, /^tcp\s+9100\s+closed\s+closed\s+metrics\s+ok\s+-$/m);
      assert.match(text.stdout, /^all 5 ports match the policy$/m);
    });

    await t.test('the policy is wrong for a source: a mismatch, exit 1', async () => {
      const r = await cliIn(stranger.ns, ['probe', '192.0.2.1', '--policy', policy, '--source', trusted.v4, '--timeout', '1']);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stdout, /^MISMATCH tcp\/9100 \(rule "metrics"\): the policy allows 192\.0\.2\.11, but the port is closed$/m);
    });

    await t.test('an open relay (mynetworks = 0.0.0.0/0) is open-relay for the stranger', async () => {
      await mail!.set({ mynetworks: '0.0.0.0/0' });
      const b = await probe(stranger.ns, policy);
      assert.equal(b.r.code, 1);
      assert.deepEqual(failed(b.json, 25), ['open-relay']);
      assert.deepEqual(failed(b.json, 465), ['open-relay']);
      assert.match(port(b.json, 'tcp', 25).checks.find((c) => c.name === 'open-relay')!.detail, /: 250 /);
      await mail!.set({ mynetworks: '127.0.0.0/8' });
      assert.deepEqual(failed((await probe(stranger.ns, policy)).json, 25), [], 'back to the default: no open relay');
    });

    await t.test('old TLS versions, a certificate that expires tomorrow, STARTTLS removed, AUTH before STARTTLS: findings in check', async () => {
      await mail!.set({ smtpd_tls_protocols: '>=TLSv1' });
      assert.deepEqual(await serviceFindings(server, policy), ['tls-weak:tcp/25'], 'TLS 1.0/1.1 accepted where the rule says 1.2');
      await mail!.certificate(1, { smtpd_tls_protocols: '>=TLSv1.2' });
      assert.deepEqual(await serviceFindings(server, policy), ['cert-expiring:tcp/25', 'cert-expiring:tcp/465', 'cert-expiring:tcp/587']);
      const b = await probe(stranger.ns, policy);
      assert.deepEqual(failed(b.json, 587), ['cert-expiring']);
      assert.match(port(b.json, 'tcp', 587).checks.find((c) => c.name === 'cert-expiring')!.detail, /\(0 days left, fewer than 14\)|\(1 day left, fewer than 14\)/);

      await mail!.set({ smtpd_tls_security_level: 'none' });
      assert.deepEqual(await serviceFindings(server, policy), ['cert-expiring:tcp/465', 'cert-expiring:tcp/587', 'tls-missing:tcp/25']);

      await mail!.set({ smtpd_tls_security_level: 'may', smtpd_tls_auth_only: 'no' });
      assert.deepEqual(await serviceFindings(server, policy), [
        'cert-expiring:tcp/25', 'cert-expiring:tcp/465', 'cert-expiring:tcp/587', 'smtp-plaintext-auth:tcp/25',
      ]);
    });

    await t.test('the agent raises them as events, once each', async () => {
      const config = `${dir}/config.yaml`;
      writeFileSync(config, [`policy: ${policy}`, `state_dir: ${dir}/state`, 'settle: 1', 'repeat: 0', 'exposure: false', 'service_interval: 1h', `netns: ${server}`, ''].join('\n'));
      for (let i = 0; i < 2; i++) {
        const r = await runCli(['watch', '--once', '--config', config]);
        assert.equal(r.code, 0, r.stderr);
      }
      const events = readFileSync(`${dir}/state/events.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; finding: { id: string } });
      const service = events.filter((e) => /^(cert-|smtp-|tls-)/.test(e.finding.id)).map((e) => `${e.event} ${e.finding.id}`).sort();
      assert.deepEqual(service, ['opened cert-expiring:tcp/25', 'opened cert-expiring:tcp/465', 'opened cert-expiring:tcp/587', 'opened smtp-plaintext-auth:tcp/25']);
    });

    await t.test('IMAP STARTTLS and POP3 STLS against a real Dovecot: offered, then not', async () => {
      const p3 = `${dir}/imap.yaml`;
      writeFileSync(p3, [
        'version: 1', 'default: allow', 'rules:',
        '  - { name: imap, port: 143, expect: { tls: starttls, cert_days: 14, cert_names: [mail.example.test] } }',
        '  - { name: imaps, port: 993, expect: { tls: implicit, tls_min: "1.3" } }',
        '  - { name: pop3, port: 110, expect: { tls: starttls, cert_names: [pop.example.org] } }',
        '  - { name: pop3s, port: 995, expect: { tls: implicit } }',
        '',
      ].join('\n'));
      nsRun(server, 'nft', ['flush', 'ruleset']); // the first policy's firewall refuses these ports
      let imap = await startImap(server, { ssl: true, days: 7 });
      try {
        const b = await probe(stranger.ns, p3);
        assert.deepEqual(b.json.ports.filter((p) => p.rule).map((p) => `${p.port} ${p.observed} ${p.checks.map((c) => `${c.name}:${c.ok}`).join(',')}`), [
          '110 open tls-missing:true,cert-name-mismatch:false',
          '143 open tls-missing:true,cert-expiring:false,cert-name-mismatch:true',
          '993 open tls-missing:true,tls-weak:false',
          '995 open tls-missing:true',
        ]);
      } finally {
        await imap.stop();
      }
      imap = await startImap(server, { ssl: false, days: 7 });
      try {
        assert.deepEqual((await serviceFindings(server, p3)).filter((id) => /:tcp\/(110|143|993|995)$/.test(id)), [
          'tls-missing:tcp/110', 'tls-missing:tcp/143', 'tls-missing:tcp/993', 'tls-missing:tcp/995',
        ]);
      } finally {
        await imap.stop();
      }
    });

    await t.test('a server that accepts and never speaks is a finding within the timeout', async () => {
      const silent = spawn('nsenter', [`--net=/run/netns/${server}`, '--', process.execPath, '-e',
        "require('net').createServer(() => {}).listen(2525, () => console.log('ready')); process.stdin.resume(); process.stdin.on('end', () => process.exit(0));"]);
      children.push(silent);
      await new Promise((r) => silent.stdout.once('data', r));
      const p2 = `${dir}/silent.yaml`;
      writeFileSync(p2, 'version: 1\ndefault: allow\nrules:\n  - { name: silent, port: 2525, expect: { tls: implicit } }\n');
      const t0 = Date.now();
      const b = await probe(stranger.ns, p2, ['--timeout', '1']);
      assert.ok(Date.now() - t0 < 8000, `the probe took ${Date.now() - t0} ms`);
      assert.equal(b.r.code, 1);
      assert.deepEqual(failed(b.json, 2525), ['service-unanswered']);
      assert.match(port(b.json, 'tcp', 2525).checks[0]!.detail, /no TLS handshake within 1 s/);
      const t1 = Date.now();
      assert.deepEqual((await serviceFindings(server, p2)).filter((id) => id.includes('2525')), ['service-unanswered:tcp/2525']);
      assert.ok(Date.now() - t1 < 15000, `check took ${Date.now() - t1} ms`);
    });
  } finally {
    for (const c of children) c.kill('SIGKILL');
    mail?.stop();
    lab?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

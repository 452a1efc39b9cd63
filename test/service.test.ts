// The pure parts of the service checks: protocol parsers, the judge, expect validation, the probe plan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ehloExtensions, imapCapabilities, imapTagged, pgSslAnswer, pop3Multi, smtpReply } from '../agent/service/protocols.js';
import { judge, serviceFindings } from '../agent/service/judge.js';
import type { Observation } from '../agent/service/observe.js';
import { probeFailed, probeJson, probePlan, probeResult, namedPorts } from '../agent/service/probe.js';
import { probeMismatch as mismatch } from '../agent/probe-textfile.js';
import { loadPolicy } from '../agent/policy/load.js';
import { InputError } from '../agent/errors.js';
import { runCli } from './helpers/cli.js';
import { ROOT } from './helpers/paths.js';

test('SMTP replies are whole only at the last line; EHLO extensions are read from them', () => {
  assert.equal(smtpReply('250-mail.example\r\n250-STARTTLS\r\n'), null);
  const r = smtpReply('250-mail.example\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n220 next');
  assert.deepEqual(r?.value, { code: 250, lines: ['mail.example', 'AUTH PLAIN LOGIN', 'STARTTLS'] });
  assert.equal(r?.length, ' 250-mail.example\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n'.length - 1);
  assert.deepEqual(ehloExtensions(r!.value), { starttls: true, auth: ['PLAIN', 'LOGIN'] });
  assert.deepEqual(ehloExtensions({ code: 250, lines: ['m', 'PIPELINING'] }), { starttls: false, auth: [] });
  assert.equal(smtpReply('HTTP/1.1 400 Bad\r\n')?.value.code, 0, 'not SMTP: code 0, not a wait for more');
});

test('IMAP, POP3 and PostgreSQL answers', () => {
  assert.equal(imapTagged('* CAPABILITY IMAP4rev1\r\n', 'pw1'), null);
  const caps = imapTagged('* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\npw1 OK done\r\n', 'pw1');
  assert.equal(caps?.value.status, 'OK');
  assert.deepEqual(imapCapabilities(caps!.value.untagged), ['IMAP4REV1', 'STARTTLS', 'LOGINDISABLED']);
  assert.deepEqual(imapCapabilities(['* OK [CAPABILITY IMAP4rev1 STARTTLS] ready']), ['IMAP4REV1', 'STARTTLS']);
  assert.equal(pop3Multi('+OK\r\nSTLS\r\n'), null);
  assert.deepEqual(pop3Multi('+OK\r\nstls\r\nUSER\r\n.\r\n')?.value, { ok: true, lines: ['STLS', 'USER'] });
  assert.deepEqual(pop3Multi('-ERR no\r\n')?.value, { ok: false, lines: [] });
  assert.equal(pgSslAnswer('S')?.value, 'S');
  assert.equal(pgSslAnswer('N')?.value, 'N');
  assert.equal(pgSslAnswer(''), null);
});

const now = new Date('2026-06-01T00:00:00Z');
const base: Observation = { host: '127.0.0.1', port: 25, failure: null, tls: null, starttlsOffered: null, plaintextAuth: null, weakVersion: null, relay: null };
const cert = (validTo: string, san = 'DNS:mail.example.test') => ({ subjectCN: 'mail.example.test', subjectaltname: san, validTo });
const fails = (checks: ReturnType<typeof judge>) => checks.filter((c) => !c.ok).map((c) => `${c.name}/${c.severity}`);

test('judge: TLS, versions, certificate dates and names, AUTH and relaying', () => {
  const tls = { mode: 'starttls' as const, version: 'TLSv1.3', cert: cert('2026-12-01T00:00:00Z') };
  assert.deepEqual(fails(judge({ tls: 'starttls', tls_min: '1.2', cert_days: 14, cert_names: ['mail.example.test'] }, { ...base, tls, starttlsOffered: true }, now)), []);
  assert.deepEqual(fails(judge({ tls: 'starttls' }, { ...base, starttlsOffered: false }, now)), ['tls-missing/high']);
  assert.deepEqual(fails(judge({ tls: 'starttls', tls_min: '1.3' }, { ...base, tls: { ...tls, version: 'TLSv1.2' } }, now)), ['tls-weak/medium']);
  assert.deepEqual(fails(judge({ tls: 'starttls', tls_min: '1.2' }, { ...base, tls, weakVersion: 'TLSv1' }, now)), ['tls-weak/medium'], 'an older version accepted on a second try');
  // Days left: under cert_days medium; under 3 days or expired high; expired even without cert_days.
  assert.deepEqual(fails(judge({ cert_days: 30 }, { ...base, tls: { ...tls, cert: cert('2026-06-20T00:00:00Z') } }, now)), ['cert-expiring/medium']);
  assert.deepEqual(fails(judge({ cert_days: 30 }, { ...base, tls: { ...tls, cert: cert('2026-06-02T12:00:00Z') } }, now)), ['cert-expiring/high']);
  assert.deepEqual(fails(judge({}, { ...base, tls: { ...tls, cert: cert('2026-05-01T00:00:00Z') } }, now)), ['cert-expiring/high']);
  assert.deepEqual(fails(judge({}, { ...base, tls: { ...tls, cert: cert('2026-06-20T00:00:00Z') } }, now)), [], 'no cert_days: only an expired certificate is a finding');
  // Names are checked as a client checks them: wildcards cover one label.
  const wild = { ...base, tls: { ...tls, cert: cert('2026-12-01T00:00:00Z', 'DNS:*.example.test') } };
  assert.deepEqual(fails(judge({ cert_names: ['mx.example.test'] }, wild, now)), []);
  assert.deepEqual(fails(judge({ cert_names: ['a.b.example.test', 'example.test'] }, wild, now)), ['cert-name-mismatch/medium', 'cert-name-mismatch/medium']);
  assert.deepEqual(fails(judge({ smtp: { auth: 'tls-only' } }, { ...base, tls, plaintextAuth: ['PLAIN'] }, now)), ['smtp-plaintext-auth/high']);
  assert.deepEqual(fails(judge({ smtp: { relay: 'refuse' } }, { ...base, tls, relay: { code: 250, text: '2.1.5 Ok' } }, now)), ['open-relay/critical']);
  assert.deepEqual(fails(judge({ smtp: { relay: 'refuse' } }, { ...base, tls, relay: { code: 454, text: 'Relay access denied' } }, now)), []);
  // A server that never answered: one finding, nothing else decided.
  assert.deepEqual(fails(judge({ tls: 'implicit', cert_days: 3 }, { ...base, failure: { message: 'no TLS handshake within 5 s', silent: true } }, now)), ['service-unanswered/high']);
});

test('serviceFindings: one finding per kind and port, with a stable id', () => {
  const checks = judge({ cert_names: ['a.example', 'b.example'] }, { ...base, tls: { mode: 'implicit', version: 'TLSv1.3', cert: cert('2027-01-01T00:00:00Z') } }, now);
  const fs = serviceFindings(checks, { port: 465, address: '0.0.0.0', rule: 'smtps', place: 'tcp/465 on 0.0.0.0', processes: [] });
  assert.equal(fs.length, 1);
  assert.equal(fs[0]!.id, 'cert-name-mismatch:tcp/465');
  assert.match(fs[0]!.message, /^tcp\/465 on 0\.0\.0\.0: not valid for a\.example .*; not valid for b\.example .*\(rule "smtps"\)$/);
});

test('expect problems are file:line:col errors', () => {
  const text = 'version: 1\nrules:\n  - name: web\n    port: 443\n    expect: { tls: starttls }\n  - name: pg\n    port: 5432\n    expect: { tls: starttls, cert_days: 7 }\n';
  assert.throws(() => loadPolicy('p.yaml', { text, hostname: 'h' }), (err: unknown) => {
    assert.ok(err instanceof InputError);
    assert.deepEqual(err.problems, ["p.yaml:5:20: rules[0].expect.tls: starttls speaks the service's protocol, known on ports 25, 587 (SMTP), 143 (IMAP), 110 (POP3), 5432 (PostgreSQL); not on 443: use implicit, or a rule of its own for those ports"]);
    return true;
  });
});

test('probe plan: what each source should see, and what is a mismatch', () => {
  const text = [
    'version: 1', 'sources:', '  admins: [192.0.2.0/28]', 'rules:',
    '  - { name: ssh, port: 22, from: [admins] }',
    '  - { name: web, port: "80-81" }',
    '  - { name: db, port: 5432, from: localhost }',
    '  - { name: dns, port: 53, proto: udp, from: [admins] }',
    '  - { name: old, port: 23, action: deny }',
  ].join('\n') + '\n';
  const { policy } = loadPolicy('p.yaml', { text, hostname: 'h' });
  const plan = (src: string) => probePlan(policy, src).map((p) => `${p.proto}/${p.port} ${p.expected}`);
  assert.deepEqual(plan('192.0.2.5'), ['tcp/22 open', 'tcp/23 closed', 'tcp/80 open', 'tcp/81 open', 'tcp/5432 closed', 'udp/53 open']);
  assert.deepEqual(plan('198.51.100.7'), ['tcp/22 closed', 'tcp/23 closed', 'tcp/80 open', 'tcp/81 open', 'tcp/5432 closed', 'udp/53 closed']);
  assert.equal(probePlan(policy, '192.0.2.5', true).filter((p) => p.proto === 'tcp').length, 65535);
  assert.equal(mismatch({ expected: 'open', observed: 'filtered' }), true);
  assert.equal(mismatch({ expected: 'closed', observed: 'filtered' }), false);
  assert.equal(mismatch({ expected: 'closed', observed: 'open' }), true);
  assert.equal(mismatch({ expected: 'open', observed: 'open|filtered' }), false, 'UDP silence says nothing for sure');
  // --all-ports: of the ports no rule names, only the open ones are in the result.
  const all = probePlan(policy, '192.0.2.5', true);
  const seen = all.map((p) => ({ observed: p.port === 8080 || p.port === 22 ? ('open' as const) : ('closed' as const), checks: [] }));
  const r = probeResult('h', '192.0.2.5', all, seen, namedPorts(policy));
  assert.deepEqual(r.ports.map((p) => `${p.proto}/${p.port} ${p.expected} ${p.observed}`), [
    'tcp/22 open open', 'tcp/23 closed closed', 'tcp/80 open closed', 'tcp/81 open closed', 'tcp/5432 closed closed', 'tcp/8080 closed open', 'udp/53 open closed',
  ]);
  assert.equal(probeFailed(r), true);
  assert.deepEqual(Object.keys(probeJson(r)), ['target', 'source', 'ports']);
  assert.deepEqual(Object.keys(probeJson(r).ports[0]!), ['proto', 'port', 'expected', 'observed', 'rule', 'checks']);
});

test('probe: bad usage is exit 2 with one line, before any packet is sent', async () => {
  const policy = `${ROOT}rules/examples/mail-relay.yaml`;
  const cases: [string[], RegExp][] = [
    [['probe', '--policy', policy], /^portwarden: usage: portwarden probe HOST /],
    [['probe', '192.0.2.1', '--policy', policy, '--timeout', '0'], /^portwarden: --timeout must be a number from 0\.1 to 120, not "0"$/m],
    [['probe', '192.0.2.1', '--policy', policy, '--concurrency', '1.5'], /^portwarden: --concurrency must be a whole number from 1 to 256, not "1\.5"$/m],
    [['probe', '192.0.2.1', '--policy', policy, '--source', 'nope'], /^portwarden: --source must be an IP address, not "nope"$/m],
    [['probe', '192.0.2.1', '--policy', policy, '--source', '2001:db8::1'], /^portwarden: --source 2001:db8::1 and 192\.0\.2\.1 \(192\.0\.2\.1\) are not the same address family$/m],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
  }
});

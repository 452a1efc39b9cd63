// The pure side of `attempts` (issue 13): reading the kernel's counters back, growth with counter
// resets, the report, the findings, the config and the metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIptablesCounters, parseNftCounters, parseRecentList } from '../agent/attempts/counters.js';
import { addToTotals, attemptFindings, buildReport, emptyTotals, rawOf, sampleOf } from '../agent/attempts/window.js';
import { withoutDynamicElements } from '../agent/firewall/live.js';
import { loadConfig } from '../agent/daemon/config.js';
import { InputError } from '../agent/errors.js';
import { Metrics } from '../agent/alerts/sinks/prometheus.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { readCounterState, readSamples, saveSample } from '../agent/attempts/history.js';

const concat = (a: string, p: string, port: number, packets: number, expires = 3590) => ({ elem: { val: { concat: [a, p, port] }, expires, counter: { packets, bytes: packets * 60 } } });
const upd = (set: string) => ({ set: { op: 'update', set: `@${set}`, elem: {} } });

/** The shape `nft -j list table inet portwarden` has (nft 1.0.6), trimmed to what is read. */
function nftJson(refused: unknown[], limited: unknown[] = [], counts = { smtpRefused: 7, subRate: 2, subAccept: 4, dflt: 9 }) {
  return JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { set: { family: 'inet', name: 'refused_v4', table: 'portwarden', type: ['ipv4_addr', 'inet_proto', 'inet_service'], timeout: 3600, elem: refused } },
      { set: { family: 'inet', name: 'limited_v4', table: 'portwarden', type: ['ipv4_addr', 'inet_proto', 'inet_service'], timeout: 3600, elem: limited } },
      { map: { family: 'inet', name: 'tcp_ports', table: 'portwarden', type: 'inet_service', map: 'verdict', elem: [[25, { jump: { target: 'rule_smtp' } }], [{ range: [580, 590] }, { jump: { target: 'rule_submission' } }]] } },
      { rule: { chain: 'input', comment: 'established', expr: [{ counter: { packets: 500, bytes: 1 } }, { accept: null }] } },
      { rule: { chain: 'input', expr: [upd('refused_v4')] } },
      { rule: { chain: 'input', comment: 'default', expr: [{ counter: { packets: counts.dflt, bytes: 1 } }, { reject: null }] } },
      { rule: { chain: 'rule_smtp', comment: 'smtp', expr: [{ counter: { packets: 11, bytes: 1 } }, { accept: null }] } },
      { rule: { chain: 'rule_smtp', expr: [upd('refused_v4')] } },
      { rule: { chain: 'rule_smtp', comment: 'smtp', expr: [{ counter: { packets: counts.smtpRefused, bytes: 1 } }, { jump: { target: 'log_0' } }] } },
      { rule: { chain: 'rule_submission', comment: 'submission: rate', expr: [upd('limited_v4'), { counter: { packets: counts.subRate, bytes: 1 } }, { drop: null }] } },
      { rule: { chain: 'rule_submission', comment: 'submission', expr: [{ counter: { packets: counts.subAccept, bytes: 1 } }, { accept: null }] } },
      { rule: { chain: 'log_0', comment: 'smtp', expr: [{ counter: { packets: 99, bytes: 1 } }, { drop: null }] } },
    ],
  });
}

test('nft: rule counters by comment, sources by port mapped to their rule (ranges too, unmapped ports to default)', () => {
  const r = parseNftCounters(nftJson([concat('192.0.2.7', 'tcp', 25, 5), concat('192.0.2.7', 'tcp', 8080, 2, 3000)], [concat('192.0.2.8', 'tcp', 587, 2)]));
  assert.deepEqual(
    r.rules.sort((a, b) => a.rule.localeCompare(b.rule)),
    [
      { rule: 'default', refused: 9, rateLimited: 0, accepted: 0 },
      { rule: 'smtp', refused: 7, rateLimited: 0, accepted: 11 },
      { rule: 'submission', refused: 0, rateLimited: 2, accepted: 4 },
    ],
    'the log chain and the input chain accepts are not counted twice',
  );
  assert.deepEqual(
    r.sources.map((s) => [s.kind, s.rule, s.address, s.port, s.count, s.secondsAgo]),
    [
      ['refused', 'smtp', '192.0.2.7', 25, 5, 10],
      ['refused', 'default', '192.0.2.7', 8080, 2, 600],
      ['limited', 'submission', '192.0.2.8', 587, 2, 10],
    ],
  );
});

test('growth between readings: a counter that went down was reset (re-apply, timeout) and counts in full; totals only grow', () => {
  const t0 = new Date('2026-11-28T10:00:00Z');
  const t1 = new Date('2026-11-28T10:00:30Z');
  const t2 = new Date('2026-11-28T10:01:00Z');
  const r0 = parseNftCounters(nftJson([concat('192.0.2.7', 'tcp', 25, 5)]));
  const r1 = parseNftCounters(nftJson([concat('192.0.2.7', 'tcp', 25, 12)], [], { smtpRefused: 14, subRate: 2, subAccept: 6, dflt: 9 }));
  // Re-applied: everything starts again from zero; 3 new refusals since.
  const r2 = parseNftCounters(nftJson([concat('192.0.2.7', 'tcp', 25, 3)], [], { smtpRefused: 3, subRate: 0, subAccept: 1, dflt: 0 }));
  const raw0 = rawOf(r0, t0);
  const raw1 = rawOf(r1, t1);
  const raw2 = rawOf(r2, t2);
  const s1 = sampleOf(raw0, raw1, r1);
  const s2 = sampleOf(raw1, raw2, r2);
  assert.deepEqual(s1.sources.map((s) => s.slice(0, 6)), [['r', 'smtp', '192.0.2.7', 'tcp', 25, 7]]);
  assert.deepEqual(s1.rules, { smtp: [7, 0, 0, null, null], submission: [0, 0, 2, null, null] });
  assert.deepEqual(s2.sources.map((s) => s[5]), [3], 'a lower count is a reset: all of it is new');
  assert.deepEqual(s2.rules.submission, [0, 0, 1, null, null]);
  const totals = emptyTotals();
  addToTotals(totals, sampleOf(null, raw0, r0));
  addToTotals(totals, s1);
  addToTotals(totals, s2);
  assert.deepEqual(totals.refused, { 'smtp\0tcp\u000025': 15 });
  assert.deepEqual(totals.accepted, { smtp: 11, submission: 7 });
});

test('report: per rule and port with top sources, accepted per rule, --port, scanners over scan_ports; findings', () => {
  const at = '2026-11-28T10:00:00.000Z';
  const sources = Array.from({ length: 30 }, (_, i) => ['r', 'default', '198.51.100.9', 'tcp', 2000 + i, 1, at] as const);
  const samples = [
    {
      at,
      backend: 'nft' as const,
      rules: { smtp: [40, 0, 3, null, null] as [number, number, number, null, null] },
      sources: [['r', 'smtp', '192.0.2.7', 'tcp', 25, 30, at], ['r', 'smtp', '192.0.2.8', 'tcp', 25, 10, at], ...sources].map((s) => [...s]) as never,
    },
  ];
  const report = buildReport(samples, { window: '5m', top: 1, scanPorts: 20 });
  const smtp = report.rules.find((r) => r.rule === 'smtp')!;
  assert.deepEqual(smtp, { rule: 'smtp', proto: 'tcp', port: 25, refused: 40, rateLimited: 0, accepted: 3, sources: [{ address: '192.0.2.7', count: 30, firstSeen: at, lastSeen: at }] });
  assert.deepEqual(report.scanners, [{ address: '198.51.100.9', ports: 30, count: 30 }]);
  assert.deepEqual(buildReport(samples, { window: '5m', top: 5, scanPorts: 20, port: 25 }).rules.map((r) => r.rule), ['smtp']);
  const findings = attemptFindings(report, { window: '5m', threshold: 35, scanPorts: 20, top: 2 });
  assert.deepEqual(findings.map((f) => f.id), ['attempt-surge:smtp', 'port-scan:198.51.100.9']);
  assert.match(findings[0]!.message, /^40 refused or rate-limited new connections on rule smtp within 5m \(threshold 35\); top sources: 192\.0\.2\.7 \(30\)$/);
  assert.deepEqual(attemptFindings(report, { window: '5m', threshold: 40, scanPorts: 30, top: 2 }), [], 'at the threshold is not above it');
});

test('iptables: per-rule counters by comment with the one port they name; recent lists; IPv6 sources in short form', () => {
  const save = [
    '[3:180] -A PORTWARDEN-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment established -j ACCEPT',
    '[4:240] -A PORTWARDEN-INPUT -s 192.0.2.1/32 -p tcp -m tcp --dport 25 -m comment --comment smtp -j ACCEPT',
    '[6:360] -A PORTWARDEN-INPUT -p tcp -m tcp --dport 25 -m recent --set --name pw-r0 --mask 255.255.255.255 --rsource -m comment --comment smtp -j REJECT --reject-with tcp-reset',
    '[2:120] -A PORTWARDEN-INPUT -p tcp -m tcp --dport 587 -m conntrack --ctstate NEW -m hashlimit --hashlimit-above 10/min -m recent --set --name pw-l1 --mask 255.255.255.255 --rsource -m comment --comment "submission: rate" -j DROP',
    '[8:480] -A PORTWARDEN-INPUT -m recent --set --name pw-default --mask 255.255.255.255 --rsource -m comment --comment "default drop" -j DROP',
    '[1:60] -A PORTWARDEN-FORWARD -p tcp -m comment --comment smtp -j DROP',
  ].join('\n');
  const { rules, lists } = parseIptablesCounters([save]);
  assert.deepEqual(rules, [
    { rule: 'smtp', refused: 6, rateLimited: 0, accepted: 4, proto: 'tcp', port: 25 },
    { rule: 'submission', refused: 0, rateLimited: 2, accepted: 0, proto: 'tcp', port: 587 },
    { rule: 'default', refused: 8, rateLimited: 0, accepted: 0, proto: null, port: null },
  ]);
  assert.deepEqual([...lists], [['pw-r0', { rule: 'smtp', kind: 'refused' }], ['pw-l1', { rule: 'submission', kind: 'limited' }], ['pw-default', { rule: 'default', kind: 'refused' }]]);
  const text = 'src=2001:0db8:0001:0000:0000:0000:0000:0011 ttl: 64 last_seen: 4297613777 oldest_pkt: 2 4297613519, 4297613777\nsrc=192.0.2.9 ttl: 63 last_seen: 5 oldest_pkt: 1 5\n';
  assert.deepEqual(parseRecentList(text, 'smtp', 'refused').map((s) => [s.address, s.count]), [['2001:db8:1::11', 2], ['192.0.2.9', 1]]);
});

test('drift and restore ignore the elements of dynamic sets only (meters, attempt counters), never a map or a static set', () => {
  const listing = [
    'table inet portwarden {',
    '\tset src_a_v4 {', '\t\ttype ipv4_addr', '\t\tflags interval', '\t\telements = { 10.0.0.0/8 }', '\t}',
    '\tset refused_v4 {', '\t\ttype ipv4_addr . inet_proto . inet_service', '\t\tflags dynamic,timeout', '\t\tcounter', '\t\ttimeout 1h',
    '\t\telements = { 192.0.2.9 . tcp . 25 counter packets 3 bytes 180 expires 59m,', '\t\t\t     192.0.2.9 . tcp . 26 counter packets 1 bytes 60 expires 58m }', '\t}',
    '\tmap tcp_ports {', '\t\ttype inet_service : verdict', '\t\tflags interval', '\t\telements = { 22 : jump rule_ssh }', '\t}',
    '}',
  ].join('\n');
  const out = withoutDynamicElements(listing);
  assert.ok(!out.includes('192.0.2.9'));
  assert.ok(out.includes('elements = { 10.0.0.0/8 }'));
  assert.ok(out.includes('elements = { 22 : jump rule_ssh }'));
});

test('config attempts: defaults, false turns it off, a bad window is file:line:col', () => {
  const base = 'policy: /dev/null\n';
  assert.deepEqual(loadConfig('c.yaml', base).attempts, { window: '5m', windowMs: 300_000, threshold: 100, scanPorts: 20, top: 10 });
  assert.equal(loadConfig('c.yaml', `${base}attempts: false\n`).attempts, null);
  assert.deepEqual(loadConfig('c.yaml', `${base}attempts: { window: 90s, scan_ports: 5 }\n`).attempts, { window: '90s', windowMs: 90_000, threshold: 100, scanPorts: 5, top: 10 });
  assert.throws(() => loadConfig('c.yaml', `${base}attempts:\n  window: soon\n`), (err: InputError) => /^c\.yaml:3:11: attempts\.window: "soon" is not valid/m.test(err.message) && err.exitCode === 2);
});

test('metrics: the four attempt families, labelled and escaped', () => {
  const m = new Metrics();
  m.observeAttempts({ refused: { 'a"b\0tcp\u000025': 3 }, rateLimited: { sub: 2 }, accepted: { sub: 5 } }, { 'a"b': 1 });
  const text = m.render();
  assert.match(text, /^# TYPE portwarden_refused_connections_total counter\nportwarden_refused_connections_total\{rule="a\\"b",proto="tcp",port="25"\} 3$/m);
  assert.match(text, /^portwarden_rate_limited_total\{rule="sub"\} 2$/m);
  assert.match(text, /^portwarden_accepted_connections_total\{rule="sub"\} 5$/m);
  assert.match(text, /^# TYPE portwarden_refused_sources gauge\nportwarden_refused_sources\{rule="a\\"b"\} 1$/m);
});

test('samples in the state dir: written per cycle that grew, read by window, foreign or torn files skipped, bounded by age', () => {
  const dir = mkdtempSync(`${tmpdir()}/pw-attempts-unit-`);
  try {
    const now = new Date('2026-11-28T10:00:00Z');
    const sample = (at: string) => ({ at, backend: 'nft' as const, rules: {}, sources: [['r', 'smtp', '192.0.2.7', 'tcp', 25, 3, at]] as never });
    saveSample(dir, sample('2026-11-27T09:00:00.000Z'), new Date('2026-11-27T09:00:00Z'));
    saveSample(dir, sample('2026-11-28T09:58:00.000Z'), now);
    saveSample(dir, { at: '2026-11-28T09:59:00.000Z', backend: 'nft', rules: {}, sources: [] }, now); // nothing grew: no file
    mkdirSync(`${dir}/attempts`, { recursive: true });
    writeFileSync(`${dir}/attempts/sample-20261128T095900000Z.json`, '{"at":"2026-11-28T09:59:00Z","backend":"nft","rules":{},"sources":[[1,2]]}');
    writeFileSync(`${dir}/attempts/sample-20261128T095930000Z.json`, '{"at":"2026-11-28T09:59');
    writeFileSync(`${dir}/attempts/counters.json`, '{"raw":{"at":"x","backend":"nft","rules":{"a":[1]},"sources":{}},"totals":{}}');
    assert.deepEqual(readSamples(dir, new Date('2026-11-28T09:00:00Z')).map((s) => s.at), ['2026-11-28T09:58:00.000Z']);
    assert.equal(readSamples(dir, new Date('2026-11-20T00:00:00Z')).length, 1, 'the day-old sample was removed when the next was saved');
    assert.equal(readCounterState(dir), null, 'a foreign counters.json is not trusted');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The review page's data model and HTML from fixture rulesets, snapshots and journals (no root).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseNftJson } from '../agent/exposure/nft-json.js';
import { fillXt } from '../agent/exposure/iptables-save.js';
import { findPublished } from '../agent/exposure/published.js';
import type { FirewallView } from '../agent/exposure/exposure.js';
import { prefixSet } from '../agent/exposure/intervals.js';
import { compareExposure } from '../agent/exposure/compare.js';
import { evaluate } from '../agent/policy/evaluate.js';
import { loadPolicy } from '../agent/policy/load.js';
import type { Finding, Listener, Snapshot } from '../agent/model.js';
import type { JournalEvent } from '../agent/alerts/journal.js';
import { buildPage, sampleAddress, type PageInput } from '../agent/report/model.js';
import { esc, renderPage } from '../agent/report/html.js';
import { FIXTURES } from './helpers/paths.js';

const POLICY = `version: 1
sources:
  admins: [203.0.113.0/26, 2001:db8:a::/48]
  partners: [198.51.100.0/24, 2001:db8:b::/48]
rules:
  - { name: ssh, port: 22, from: admins }
  - { name: smtp, port: 25, from: partners }
  - { name: metrics, port: 9100, from: [partners] }
`;
const policy = loadPolicy('/fixture/policy.yaml', { text: POLICY, hostname: 'relay' }).policy;
const relay = (): FirewallView => ({ ruleset: parseNftJson(readFileSync(`${FIXTURES}nft/portwarden-mail-relay.json`, 'utf8')), error: null, interfaces: ['eth0'], legacyRules: 0, published: [] });
const EVIL = '<img src=x onerror=alert(1)>';
const L = (port: number, family: 4 | 6 = 6, extra: Partial<Listener> = {}): Listener => ({
  proto: 'tcp', family, address: family === 4 ? '0.0.0.0' : '::', port, scope: 'wildcard', dualStack: family === 6, inode: port, processes: [{ pid: port, name: 'node', exe: null, user: 'root', cmdline: null }], ...extra,
});
const listeners = [L(22), L(25, 6, { processes: [{ pid: 7, name: EVIL, exe: null, user: 'root', cmdline: null }] }), L(9100, 4), L(631, 4, { address: '127.0.0.1', scope: 'loopback' })];
const snapshot = (ls: Listener[] = listeners): Snapshot => ({ host: { hostname: 'relay', netns: null, source: 'ss', precise: true }, listeners: ls });
const NOW = new Date('2026-11-28T12:00:00Z');
const ev = (event: JournalEvent['event'], at: string, f: Partial<Finding> & { id: string }): JournalEvent => ({
  event, at, host: 'relay', finding: { kind: 'firewall-gap', severity: 'high', proto: 'tcp', port: 25, address: '::', rule: 'smtp', processes: [], message: 'm', remedy: 'r', ...f },
});
const EVENTS: JournalEvent[] = [
  ev('opened', '2026-11-27T10:00:00Z', { id: 'firewall-gap:tcp/25:wildcard' }),
  ev('opened', '2026-11-20T10:00:00Z', { id: 'too-old' }), // before --since 7d
  ev('reminder', '2026-11-28T10:00:00Z', { id: 'firewall-gap:tcp/25:wildcard' }),
  ev('opened', '2026-11-26T09:00:00Z', { id: 'forbidden-listener:tcp/2323:wildcard:telnetd', kind: 'forbidden-listener', severity: 'critical' }),
  ev('resolved', '2026-11-26T09:30:00Z', { id: 'forbidden-listener:tcp/2323:wildcard:telnetd', kind: 'forbidden-listener', severity: 'critical' }),
];

function input(fw: FirewallView = relay(), ls: Listener[] = listeners, events: JournalEvent[] = EVENTS): PageInput {
  const findings = [...evaluate(policy, ls), ...compareExposure(policy, ls, fw)];
  return {
    generatedAt: NOW, snapshot: snapshot(ls), fw, policy: { file: '/fixture/policy.yaml', sha256: 'ab'.repeat(32), compiled: policy }, findings,
    openedAt: new Map([['firewall-gap:tcp/25:wildcard', '2026-11-27T10:00:00.000Z']]), events, since: new Date(NOW.getTime() - 7 * 86_400_000), status: null,
  };
}

const state = (page: ReturnType<typeof buildPage>, port: number, column: string) => {
  const i = page.map.columns.findIndex((c) => c.label === column);
  const row = page.map.rows.find((r) => r.port === port);
  assert.ok(i >= 0 && row, `${port} × ${column}`);
  return row.cells[i]!;
};

test('exposure map: policy source lists, loopback, other and each interface; cells are allowed × reachable', () => {
  const page = buildPage(input());
  assert.deepEqual(page.map.columns.map((c) => `${c.kind}:${c.label}`), ['group:admins', 'group:partners', 'loopback:loopback', 'other:other', 'interface:eth0']);
  const grid = Object.fromEntries(page.map.rows.map((r) => [`${r.proto}/${r.port}`, r.cells.map((c) => c.state).join(' ')]));
  assert.deepEqual(grid, {
    'tcp/22': 'open closed open closed open',
    // The firewall accepts smtp from everywhere; the policy only from partners.
    'tcp/25': 'gap open open gap gap',
    // 198.51.100.7 and the admins' /26 get through; the policy wants partners (all of 198.51.100.0/24).
    'tcp/9100': 'gap blocked open closed gap',
    'tcp/631': 'closed closed open closed closed',
  });
  const blocked = state(page, 9100, 'partners');
  assert.deepEqual(blocked.reachable, ['198.51.100.7/32']);
  assert.ok(blocked.blocked.includes('198.51.100.0/30') && !blocked.gap.length);
  assert.deepEqual(state(page, 25, 'other').allowed, []);
  assert.deepEqual(state(page, 9100, 'loopback').reachable, ['127.0.0.0/8'], 'an IPv4-only socket: not ::1');
  assert.deepEqual(state(page, 22, 'loopback').reachable, ['127.0.0.0/8', '::1/128']);
  assert.equal(page.counts.gapCells, 5);
  assert.equal(page.counts.blockedCells, 1);
});

test('exposure map: the gap and blocked cells are what firewall-gap and blocked-service say', () => {
  const page = buildPage(input());
  const groups = page.map.columns.map((c, i) => (c.kind === 'group' || c.kind === 'other' ? i : -1)).filter((i) => i >= 0);
  const portsWith = (s: string) => page.map.rows.filter((r) => groups.some((i) => r.cells[i]!.state === s)).map((r) => `${r.proto}/${r.port}`).sort();
  const portsOf = (kind: string) => page.findings.filter((f) => f.kind === kind).map((f) => `${f.proto}/${f.port}`).sort();
  assert.deepEqual(portsWith('gap'), portsOf('firewall-gap'));
  assert.deepEqual(portsWith('gap'), ['tcp/25', 'tcp/9100']);
  assert.deepEqual(portsWith('blocked'), portsOf('blocked-service'));
});

test('findings: grouped data with since, and an explain trace of one offending source per exposure finding', () => {
  const page = buildPage(input());
  const gap = page.findings.find((f) => f.id === 'firewall-gap:tcp/25:wildcard')!;
  assert.equal(gap.since, '2026-11-27T10:00:00.000Z');
  assert.ok(gap.explain, 'a trace');
  assert.equal(gap.explain.verdict, 'accept');
  assert.equal(gap.explain.iif, 'eth0');
  const fam = gap.explain.from.includes(':') ? 6 : 4;
  assert.ok(!prefixSet(fam, fam === 4 ? '198.51.100.0/24' : '2001:db8:b::/48').has(gap.explain.from), `${gap.explain.from} is a source the policy does not allow`);
  assert.ok(gap.explain.steps.some((s) => s.outcome === 'accept' && /dport 25/.test(s.rule)), 'the accepting rule is in the trace');
  const blocked = page.findings.find((f) => f.kind === 'blocked-service')!;
  assert.equal(blocked.explain?.verdict, 'reject');
  assert.ok(prefixSet(4, '198.51.100.0/24').has(blocked.explain.from) && blocked.explain.from !== '198.51.100.7');
  for (const f of page.findings) assert.equal(f.explain !== null, ['firewall-gap', 'blocked-service', 'published-container-port'].includes(f.kind), f.id);
  assert.equal(page.worst, 'high');
  assert.equal(page.counts.findings, page.findings.length);
  assert.equal(page.counts.bySeverity.high, page.findings.filter((f) => f.severity === 'high').length);
});

test('sample source: a documentation address when the set has one, else one just past the allowed part', () => {
  assert.equal(sampleAddress(prefixSet(4, '0.0.0.0/0')), '203.0.113.1');
  assert.equal(sampleAddress(prefixSet(4, '10.0.0.0/8')), '10.0.0.1');
  assert.equal(sampleAddress(prefixSet(4, '0.0.0.0/1').subtract(prefixSet(4, '0.0.0.0/8'))), '1.0.0.1');
  assert.equal(sampleAddress(prefixSet(6, '::/0')), '2001:db8::1');
  assert.equal(sampleAddress(prefixSet(4, '10.0.0.0/8').subtract(prefixSet(4, '10.0.0.0/8'))), null);
});

test('history: one lane per finding id over --since, in time order; older events left out', () => {
  const page = buildPage(input());
  assert.equal(page.counts.events, 4);
  assert.deepEqual(page.history.lanes.map((l) => `${l.id}:${l.events.map((e) => e.event).join(',')}`), [
    'forbidden-listener:tcp/2323:wildcard:telnetd:opened,resolved',
    'firewall-gap:tcp/25:wildcard:opened,reminder',
  ]);
  assert.equal(page.history.since, '2026-11-21T12:00:00.000Z');
});

test('published container ports: listed with where they lead, a map row when nothing listens, an explain trace through the forward path', () => {
  const fw: FirewallView = { ruleset: parseNftJson(readFileSync(`${FIXTURES}nft/docker-iptables-nft.json`, 'utf8')), error: null, interfaces: ['eth0', 'docker0'], legacyRules: 0, published: [] };
  fillXt(fw.ruleset!, readFileSync(`${FIXTURES}nft/docker-iptables-nft.save`, 'utf8'), 4);
  fw.published = findPublished(fw.ruleset!);
  fw.addresses = [{ iface: 'eth0', cidr: '203.0.113.1/24' }, { iface: 'docker0', cidr: '172.17.0.1/16' }];
  const page = buildPage(input(fw, []));
  assert.ok(page.published.length > 0);
  const p = page.published[0]!;
  const row = page.map.rows.find((r) => r.port === p.port && r.address === 'published');
  assert.ok(row, 'a row for the published port nothing on the host listens on');
  assert.deepEqual(page.map.columns.map((c) => c.label).slice(-2), ['eth0', 'docker0']);
  const f = page.findings.find((x) => x.kind === 'published-container-port');
  assert.ok(f, 'the policy has no rule for it: published-container-port');
  assert.equal(f.explain?.verdict, 'accept');
  assert.ok(f.explain.steps.some((s) => /DNAT|dnat/.test(s.rule)), 'the DNAT is in the trace');
  assert.match(renderPage(page), new RegExp(`<th scope="row">tcp/${p.port}</th><td class="mono">${p.to}`));
});

test('firewall unreadable: exposure cells are unknown, never a gap or "closed"', () => {
  const fw: FirewallView = { ruleset: null, error: 'nft: permission denied', interfaces: ['eth0'], legacyRules: 0, published: [] };
  const page = buildPage(input(fw));
  assert.equal(page.firewallError, 'nft: permission denied');
  assert.equal(page.counts.gapCells, 0);
  assert.deepEqual(page.map.rows.find((r) => r.port === 25)!.cells.map((c) => c.state), ['unknown', 'unknown', 'open', 'unknown', 'unknown']);
  assert.match(renderPage(page), /cannot be read: nft: permission denied/);
});

test('HTML: everything from the system is escaped; counts and the gap class are marked; no script, nothing fetched', () => {
  const evil: Listener = L(2525, 4, { processes: [{ pid: 9, name: '"><script>alert(1)</script>', exe: null, user: 'root', cmdline: null }] });
  const html = renderPage(buildPage(input(relay(), [...listeners, evil])));
  assert.ok(!/<script|<img|onerror=alert\(1\)>/i.test(html.replace(/&lt;|&gt;|&quot;/g, '_')), 'no markup from the system');
  assert.ok(html.includes(esc(EVIL)) && html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.ok(!/<script\b/i.test(html), 'no script element');
  assert.ok(!/\b(?:src|href)\s*=\s*"(?!#)/i.test(html), 'no src or href to load');
  assert.ok(!/url\(|@import/i.test(html), 'no CSS that fetches');
  assert.match(html, /<dd data-count="findings">\d+<\/dd>/);
  // tcp/25 from the partners' column is allowed; from everywhere else it is the gap, with its prefixes.
  assert.match(html, /<td class="c-gap" title="reachable: all of other\nallowed: none\ngap: 0\.0\.0\.0\/2, [^"]*">✖ gap<\/td>/, 'the gap cell says so in words, not colour alone');
  assert.match(html, /<td class="c-open" title="allowed and reachable: all of partners">✔<\/td>/);
  assert.match(html, /@media print/);
});

test('size: 1 000 listeners and 10 000 events make a page under 1 MB', () => {
  const many = Array.from({ length: 1000 }, (_, i) => L(20_000 + i, i % 2 ? 4 : 6, { processes: [{ pid: i + 1, name: `svc-${i}`, exe: null, user: 'root', cmdline: null }] }));
  const events = Array.from({ length: 10_000 }, (_, i) => ev(['opened', 'reminder', 'resolved'][i % 3] as JournalEvent['event'], new Date(NOW.getTime() - (i + 1) * 50_000).toISOString(), { id: `firewall-gap:tcp/${20_000 + (i % 400)}:wildcard` }));
  const t0 = performance.now();
  const page = buildPage(input(relay(), many, events));
  const html = renderPage(page);
  const ms = performance.now() - t0;
  console.log(`# 1000 listeners, 10000 events: ${(Buffer.byteLength(html) / 1024).toFixed(0)} KiB of HTML, ${(JSON.stringify(page).length / 1024).toFixed(0)} KiB of JSON, built in ${ms.toFixed(0)} ms (load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]})`);
  assert.equal(page.map.rows.length, 1000);
  assert.equal(page.counts.events, 10_000);
  assert.ok(Buffer.byteLength(html) < 1_000_000, `${Buffer.byteLength(html)} bytes`);
});

test('attempts: per rule and port within the window (rows with nothing counted left out), a bar per row, scanners; escaped', () => {
  const attempts = {
    window: '7d',
    rules: [
      { rule: 'smtp', proto: 'tcp' as const, port: 25, refused: 63, rateLimited: 0, accepted: 5, sources: [{ address: '192.0.2.11', count: 60, firstSeen: null, lastSeen: null }] },
      { rule: 'submission', proto: 'tcp' as const, port: 587, refused: 0, rateLimited: 20, accepted: 13, sources: [] },
      { rule: 'quiet', proto: 'tcp' as const, port: 993, refused: 0, rateLimited: 0, accepted: 0, sources: [] },
      { rule: '<b>x</b>', proto: null, port: null, refused: 1, rateLimited: 0, accepted: 0, sources: [] },
    ],
    scanners: [{ address: '192.0.2.11', ports: 102, count: 180 }],
  };
  const page = buildPage({ ...input(), attempts });
  assert.deepEqual(page.attempts?.rows.map((r) => `${r.rule} ${r.proto}/${r.port} ${r.refused}/${r.rateLimited}/${r.accepted} ${r.topSource}`), [
    'smtp tcp/25 63/0/5 192.0.2.11 (60)',
    'submission tcp/587 0/20/13 null',
    '<b>x</b> null/null 1/0/0 null',
  ]);
  const html = renderPage(page);
  assert.match(html, /<section id="attempts">.*<th scope="row">smtp<\/th><td>tcp\/25<\/td><td>63<\/td><td>0<\/td><td>5<\/td>/s);
  assert.match(html, /aria-label="20 refused or rate-limited"/);
  assert.match(html, /192\.0\.2\.11<\/span> \(102 ports\)/);
  assert.doesNotMatch(html, /<b>x<\/b>/);
  assert.equal(buildPage(input()).attempts, null);
  assert.match(renderPage(buildPage(input())), /<section id="attempts"><h2>Attempts<\/h2><p>None counted/);
});

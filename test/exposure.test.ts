import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseNftJson, inputChains } from '../agent/exposure/nft-json.js';
import { exposureOf, type FirewallView } from '../agent/exposure/exposure.js';
import { IntervalSet, prefixSet } from '../agent/exposure/intervals.js';
import { Interpreter } from '../agent/exposure/interpret.js';
import { compareExposure } from '../agent/exposure/compare.js';
import { findPublished } from '../agent/exposure/published.js';
import { loadPolicy } from '../agent/policy/load.js';
import type { Listener } from '../agent/model.js';
import { FIXTURES, ROOT } from './helpers/paths.js';

const view = (name: string): FirewallView => ({ ruleset: parseNftJson(readFileSync(`${FIXTURES}nft/${name}.json`, 'utf8')), error: null, interfaces: ['eth0'], legacyRules: 0, published: [] });
const L = (port: number, family: 4 | 6 = 6, dualStack = true, proto: 'tcp' | 'udp' = 'tcp'): Listener => ({
  proto, family, address: family === 4 ? '0.0.0.0' : '::', port, scope: 'wildcard', dualStack, inode: 1, processes: [],
});

test('intervals: set algebra and minimal CIDRs', () => {
  const a = prefixSet(4, '10.0.0.0/8').subtract(prefixSet(4, '10.0.0.1'));
  assert.deepEqual(a.toCidrs().slice(0, 3), ['10.0.0.0/32', '10.0.0.2/31', '10.0.0.4/30']);
  assert.equal(a.toCidrs().length, 24);
  assert.ok(a.has('10.255.255.255') && !a.has('10.0.0.1'));
  assert.ok(IntervalSet.full(6).subtract(prefixSet(6, '::/1')).equals(prefixSet(6, '8000::/1')));
  assert.deepEqual(prefixSet(6, '2001:db8::/32').union(prefixSet(6, '2001:db9::/32')).toCidrs(), ['2001:db8::/31']);
});

test('our own generated table: exposure follows the policy, rate limits count as reaching', () => {
  const fw = view('portwarden-mail-relay');
  assert.deepEqual(exposureOf(L(25), fw), { verdict: 'any', sources: ['::/0', '0.0.0.0/0'], reason: 'the input rules accept new connections from everywhere' });
  assert.deepEqual(exposureOf(L(22), fw).sources, ['2001:db8:a::/48', '203.0.113.0/26']);
  assert.deepEqual(exposureOf(L(9100, 4, false), fw).sources, ['198.51.100.7/32', '203.0.113.0/26']);
  assert.equal(exposureOf(L(53, 4, false, 'udp'), fw).verdict, 'none');
  assert.equal(exposureOf(L(8080), fw).verdict, 'none');
  assert.equal(exposureOf({ ...L(22), address: '::1', scope: 'loopback' }, fw).verdict, 'localhost');
});

test('firewalld-like: jumps, gotos, named sets, ct state, interface matches', () => {
  const fw = view('firewalld');
  assert.equal(inputChains(fw.ruleset!, 4).length, 1);
  assert.equal(exposureOf(L(22), fw).verdict, 'any');
  assert.deepEqual(exposureOf(L(5432, 4, false), fw).sources, ['198.51.100.0/24', '203.0.113.7/32']);
  assert.equal(exposureOf(L(5432, 6, false), fw).verdict, 'none');
  assert.equal(exposureOf(L(80), fw).verdict, 'none');
  // The interface decides: traffic from lo is accepted before anything else.
  const lo = new Interpreter(fw.ruleset!, { family: 4, proto: 'tcp', dport: 80, iif: 'lo' }).run();
  assert.ok(lo.accepted.isFull());
});

test('docker-like ip nat/ip filter tables: the published port is detected, its exposure not guessed', () => {
  const fw = view('docker');
  fw.published = findPublished(fw.ruleset!);
  assert.deepEqual(fw.published, [{ proto: 'tcp', port: 8081, to: null, where: `ip nat DOCKER handle ${fw.published[0]!.where.split(' ').at(-1)}` }]);
  const e = exposureOf(L(8081, 4, false), fw);
  assert.equal(e.verdict, 'undetermined');
  assert.match(e.reason, /published to a container by DNAT \(ip nat DOCKER handle \d+\)/);
  assert.equal(exposureOf(L(8082, 4, false), fw).verdict, 'any', 'other ports: nothing on the input hook refuses');
  const { policy } = loadPolicy('p.yaml', { text: 'version: 1\nrules:\n  - { name: web, port: 8081, from: [192.0.2.0/24] }\n', hostname: 'h' });
  const fs = compareExposure(policy, [L(8081, 4, false)], fw);
  assert.deepEqual(fs.map((f) => [f.kind, f.severity, f.rule]), [['published-container-port', 'high', 'web']]);
  assert.match(fs[0]!.message, /bypass the input chain, so rule "web" is not enforced on it/);
});

test('a native dnat statement names the container', () => {
  const rs = parseNftJson(JSON.stringify({ nftables: [
    { chain: { family: 'ip', table: 'nat', name: 'pre', type: 'nat', hook: 'prerouting', prio: -100, policy: 'accept' } },
    { rule: { family: 'ip', table: 'nat', chain: 'pre', handle: 4, expr: [{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: { set: [8080, 8443] } } }, { dnat: { addr: '10.88.0.5', port: 80 } }] } },
  ] }));
  assert.deepEqual(findPublished(rs).map((p) => `${p.proto}/${p.port}→${p.to}`), ['tcp/8080→10.88.0.5:80', 'tcp/8443→10.88.0.5:80']);
});

test('ufw-like iptables-nft rules: xt matches are undetermined with the expression named, never guessed', () => {
  const e = exposureOf(L(22, 4, false), view('ufw'));
  assert.equal(e.verdict, 'undetermined');
  assert.match(e.reason, /ip filter ufw-before-input handle \d+: cannot decide statement \{"xt":\{"type":"match","name":"conntrack"\}\}/);
});

test('check: firewall-gap and blocked-service against the policy', () => {
  const { policy } = loadPolicy(`${ROOT}rules/examples/mail-relay.yaml`, { hostname: 'h' });
  const fw = view('portwarden-mail-relay');
  assert.deepEqual(compareExposure(policy, [L(22), L(25), L(9100)], fw), [], 'the applied policy agrees with itself');
  const { policy: stricter } = loadPolicy('p.yaml', { text: 'version: 1\nsources: { ops: [203.0.113.0/28, 192.0.2.0/24] }\nrules:\n  - { name: ssh, port: 22, from: [ops] }\n', hostname: 'h' });
  const fs = compareExposure(stricter, [L(22, 4, false)], fw);
  assert.deepEqual(fs.map((f) => f.kind), ['firewall-gap', 'blocked-service']);
  assert.match(fs[0]!.message, /lets 203\.0\.113\.16\/28, 203\.0\.113\.32\/27 reach tcp\/22/);
  assert.match(fs[1]!.message, /allows 192\.0\.2\.0\/24 to reach tcp\/22 on 0\.0\.0\.0, but the live firewall blocks them/);
});

test('iptables-legacy rules make exposure undetermined and, beside nftables rules, raise mixed-firewall', () => {
  const fw = { ...view('portwarden-mail-relay'), legacyRules: 2 };
  const e = exposureOf(L(25), fw);
  assert.equal(e.verdict, 'undetermined');
  assert.match(e.reason, /iptables-legacy holds 2 rule\(s\)/);
  const { policy } = loadPolicy(`${ROOT}rules/examples/mail-relay.yaml`, { hostname: 'h' });
  assert.deepEqual(compareExposure(policy, [L(25)], fw).map((f) => f.kind), ['mixed-firewall']);
  assert.deepEqual(compareExposure(policy, [L(25)], { ...fw, legacyRules: 0 }), []);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseNftJson, baseChains, type Json } from '../agent/exposure/nft-json.js';
import { exprText } from '../agent/exposure/nft-text.js';
import { exposureOf, publishedTarget, targetExposure, type FirewallView } from '../agent/exposure/exposure.js';
import { addLegacy, fillXt, tokenize, translateRule } from '../agent/exposure/iptables-save.js';
import fc from 'fast-check';
import { containsCidr } from 'cidr-tools';
import { fromBig, IntervalSet, prefixSet, toBig } from '../agent/exposure/intervals.js';
import { Interpreter } from '../agent/exposure/interpret.js';
import { compareExposure, publishedPolicyRefuses } from '../agent/exposure/compare.js';
import { findPublished } from '../agent/exposure/published.js';
import { loadPolicy } from '../agent/policy/load.js';
import type { Listener } from '../agent/model.js';
import type { Exec } from '../agent/exec.js';
import { readFirewall, type RulesCache } from '../agent/exposure/read.js';
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

test('intervals: subtract, v4 CIDR lists and v6 text agree with their slow definitions (fast-check)', () => {
  const setArb = fc.array(fc.tuple(fc.nat(2 ** 32 - 1), fc.nat(1 << 20)), { maxLength: 8 }).map((rs) => IntervalSet.of(4, rs.map(([a, l]) => [BigInt(a), BigInt(Math.min(2 ** 32 - 1, a + l))])));
  fc.assert(fc.property(setArb, setArb, (a, b) => a.subtract(b).equals(a.intersect(b.complement())) && a.subtract(a).isEmpty()), { numRuns: 2000 });
  fc.assert(fc.property(fc.nat(2 ** 32 - 1), fc.integer({ min: 0, max: 32 }), (ip, len) => {
    const text = `${fromBig(BigInt(ip), 4)}/${len}`;
    const host = (1n << BigInt(32 - len)) - 1n;
    return prefixSet(4, text).equals(IntervalSet.of(4, [[BigInt(ip) & ~host, BigInt(ip) | host]]));
  }), { numRuns: 2000 });
  fc.assert(fc.property(setArb, (a) => a.toCidrs().reduce((s, c) => s.union(prefixSet(4, c)), IntervalSet.empty(4)).equals(a)), { numRuns: 1000 });
  // RFC 5952 text, as the WHATWG URL parser writes it.
  fc.assert(fc.property(fc.bigInt(0n, (1n << 128n) - 1n), fc.nat(7), fc.nat(7), (v0, i, n) => {
    const v = v0 & ~(((1n << BigInt(16 * n)) - 1n) << BigInt(16 * i)); // runs of zero groups
    const groups = Array.from({ length: 8 }, (_, k) => ((v >> BigInt(112 - 16 * k)) & 0xffffn).toString(16));
    const text = fromBig(v, 6);
    return text === new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1) && toBig(text) === v && toBig(groups.join(':')) === v;
  }), { numRuns: 5000 });
  assert.equal(toBig('::ffff:192.0.2.1'), 0xffffc0000201n, 'embedded IPv4 goes through URL\'s parser');
  assert.equal(toBig('fe80::1%eth0'), 0xfe800000000000000000000000000001n, 'a zone does not change the address');
  assert.throws(() => toBig('::1]@example.com/['), /not an IP address/);
  assert.throws(() => toBig('192.0.2'), /not an IP address/);
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
  assert.equal(baseChains(fw.ruleset!, 4, 'input', 'filter').length, 1);
  assert.equal(exposureOf(L(22), fw).verdict, 'any');
  assert.deepEqual(exposureOf(L(5432, 4, false), fw).sources, ['198.51.100.0/24', '203.0.113.7/32']);
  assert.equal(exposureOf(L(5432, 6, false), fw).verdict, 'none');
  assert.equal(exposureOf(L(80), fw).verdict, 'none');
  // The interface decides: traffic from lo is accepted before anything else.
  const lo = new Interpreter(fw.ruleset!, { family: 4, proto: 'tcp', dport: 80, iif: 'lo' }).run();
  assert.ok(lo.accepted.isFull());
});

test('docker-like ip nat/ip filter tables without iptables-nft-save: the published port is detected, its exposure not guessed', () => {
  const fw = view('docker');
  fw.published = findPublished(fw.ruleset!);
  assert.deepEqual(fw.published, [{ proto: 'tcp', port: 8081, to: null, where: `ip nat DOCKER handle ${fw.published[0]!.where.split(' ').at(-1)}`, family: 4, daddr: null }]);
  const e = targetExposure(publishedTarget(fw.published[0]!), fw);
  assert.equal(e.verdict, 'undetermined');
  assert.match(e.reason, /ip nat PREROUTING handle \d+: cannot decide iptables match -m addrtype/);
  assert.equal(exposureOf(L(8082, 4, false), fw).verdict, 'any', 'other ports: nothing on the input hook refuses');
  const { policy } = loadPolicy('p.yaml', { text: 'version: 1\nrules:\n  - { name: web, port: 8081, from: [192.0.2.0/24] }\n', hostname: 'h' });
  const fs = compareExposure(policy, [], fw);
  assert.deepEqual(fs.map((f) => [f.kind, f.severity, f.rule]), [['published-container-port', 'medium', 'web']]);
  assert.match(fs[0]!.message, /tcp\/8081 is published to a container by DNAT .* past the input chain; who reaches it cannot be determined/);
});

/** A recorded iptables-nft ruleset with its iptables-nft-save listing read back in. */
function xtView(name: string): FirewallView {
  const fw = view(`${name}-iptables-nft`);
  const filled = fillXt(fw.ruleset!, readFileSync(`${FIXTURES}nft/${name}-iptables-nft.save`, 'utf8'), 4);
  assert.ok(filled > 0, 'some xt rules were filled in');
  fw.published = findPublished(fw.ruleset!);
  fw.interfaces = ['eth0', 'docker0'];
  fw.addresses = [{ iface: 'eth0', cidr: '203.0.113.1/24' }, { iface: 'docker0', cidr: '172.17.0.1/16' }];
  return fw;
}

test('ufw-like iptables-nft rules: the xt matches nft cannot show are read back from iptables-nft-save', () => {
  const fw = xtView('ufw');
  assert.equal(exposureOf(L(22, 4, false), fw).verdict, 'any', 'recent --update is a "sometimes" match: the limit chain does not refuse everyone');
  assert.equal(exposureOf(L(443, 4, false), fw).verdict, 'any');
  assert.deepEqual(exposureOf(L(5432, 4, false), fw).sources, ['10.0.0.0/8']);
  assert.equal(exposureOf(L(137, 4, false, 'udp'), fw).verdict, 'none');
  assert.equal(exposureOf(L(8080, 4, false), fw).verdict, 'none');
  const e = exposureOf(L(9050, 4, false), fw);
  assert.equal(e.verdict, 'undetermined');
  assert.match(e.reason, /ip filter ufw-user-input handle \d+: cannot decide iptables match -m addrtype --src-type/);
});

test('docker-like iptables-nft rules: DNAT target and addrtype read back; exposure follows the forward path', () => {
  const fw = xtView('docker');
  assert.deepEqual(fw.published.map((p) => `${p.proto}/${p.port}→${p.to}`), ['tcp/8080→172.17.0.2:80']);
  const e = targetExposure(publishedTarget(fw.published[0]!), fw);
  assert.equal(e.verdict, 'any');
  assert.deepEqual(e.sources, ['0.0.0.0/0'], 'only IPv4 is published (no ip6 nat table)');
  assert.match(e.reason, /prerouting DNAT \(→ 172\.17\.0\.2:80\) and the forward rules accept/);
  assert.deepEqual(e.perInterface, { eth0: ['0.0.0.0/0'], docker0: [] }, 'from docker0 no DNAT happens (DOCKER returns first)');
  // A docker-proxy listener on the host port: DNAT'd sources via forward, the rest via input.
  assert.equal(exposureOf(L(8080, 4, false), fw).verdict, 'any');
  // …and from docker0, where no DNAT happens, the proxy itself answers (input accepts all).
  assert.equal(exposureOf(L(8080, 4, false), fw).perInterface, undefined, 'both interfaces reach it: eth0 by DNAT, docker0 directly');
  const { policy } = loadPolicy('p.yaml', { text: 'version: 1\nrules:\n  - { name: web, port: 8080, from: [192.0.2.0/24] }\n', hostname: 'h' });
  const fs = compareExposure(policy, [], fw);
  assert.deepEqual(fs.map((f) => [f.kind, f.severity]), [['published-container-port', 'high']]);
  assert.match(fs[0]!.message, /DNAT \(→ 172\.17\.0\.2:80\).*the forward rules let 0\.0\.0\.0\/1, 128\.0\.0\.0\/2, [0-9./]+ and \d+ more reach it, which rule "web" does not allow/);
  assert.deepEqual(publishedPolicyRefuses(policy, fw), [], 'web allows 8080 from someone');
  const { policy: other } = loadPolicy('p.yaml', { text: 'version: 1\nrules:\n  - { name: ssh, port: 22 }\n', hostname: 'h' });
  assert.deepEqual(publishedPolicyRefuses(other, fw), [
    `tcp/8080 is published to a container (→ 172.17.0.2:80, ${fw.published[0]!.where}), but the policy (no rule covers it) lets no one reach it: after this apply, connections to it are refused`,
  ]);
  // DOCKER-USER is where operators restrict published ports: a drop there is honoured.
  // A view is read once and never changed: each variant of DOCKER-USER gets a fresh one.
  const withUserRule = (args: string[]) => {
    const v = xtView('docker');
    v.ruleset!.chains.get('ip filter DOCKER-USER')!.rules.unshift({ handle: 99, comment: null, expr: translateRule(args, 4) });
    return v;
  };
  // Without -i the rule also drops the container's answers (their source is the container): no one gets through.
  const noIif = withUserRule(['!', '-s', '192.0.2.0/24', '-j', 'DROP']);
  assert.equal(targetExposure(publishedTarget(noIif.published[0]!), noIif).verdict, 'none');
  const ctorig = withUserRule(['-m', 'conntrack', '!', '--ctorigsrc', '192.0.2.0/24', '-j', 'DROP']);
  assert.deepEqual(targetExposure(publishedTarget(ctorig.published[0]!), ctorig).sources, ['192.0.2.0/24']);
  const restricted = withUserRule(['-i', 'eth0', '!', '-s', '192.0.2.0/24', '-j', 'DROP']);
  assert.deepEqual(targetExposure(publishedTarget(restricted.published[0]!), restricted).sources, ['192.0.2.0/24']);
  assert.deepEqual(compareExposure(policy, [], restricted), [], 'the forward path now matches the policy');
});

test('iptables-legacy rules are read as tables of their own; beside nftables rules they raise mixed-firewall', () => {
  const rs = parseNftJson('{"nftables":[]}');
  const n = addLegacy(rs, readFileSync(`${FIXTURES}nft/docker-iptables.rules`, 'utf8'), 4);
  assert.equal(n, 19);
  const fw: FirewallView = { ruleset: rs, error: null, interfaces: ['eth0', 'docker0'], addresses: [{ iface: 'docker0', cidr: '172.17.0.1/16' }], legacyRules: n, published: findPublished(rs) };
  assert.deepEqual(fw.published.map((p) => `${p.proto}/${p.port}→${p.to} (${p.where})`), ['tcp/8080→172.17.0.2:80 (ip nat (iptables-legacy) DOCKER handle 2)']);
  assert.deepEqual(targetExposure(publishedTarget(fw.published[0]!), fw).sources, ['0.0.0.0/0']);
  const { policy } = loadPolicy(`${ROOT}rules/examples/mail-relay.yaml`, { hostname: 'h' });
  assert.deepEqual(compareExposure(policy, [], { ...fw, published: [] }), [], 'legacy rules alone: no mixed-firewall');
  const both = view('portwarden-mail-relay');
  addLegacy(both.ruleset!, readFileSync(`${FIXTURES}nft/ufw-iptables.rules`, 'utf8'), 4);
  const mixed = compareExposure(policy, [], { ...both, legacyRules: 19 });
  assert.deepEqual(mixed.map((f) => f.kind), ['mixed-firewall']);
  // Both run: our table accepts 25 from anywhere, the legacy ufw-like INPUT (policy drop) does not.
  assert.equal(exposureOf(L(25, 4, false), both).verdict, 'none');
  assert.deepEqual(exposureOf(L(443, 4, false), both).verdict, 'none', 'ours refuses 443; legacy accepting it does not help');
});

test('iptables-save tokens: quotes, escapes, negation', () => {
  assert.deepEqual(tokenize('-A X -s 10.0.0.0/8 -m comment --comment "a \\"b\\" c" ! -i eth+ -j LOG --log-prefix "x: "'), ['-A', 'X', '-s', '10.0.0.0/8', '-m', 'comment', '--comment', 'a "b" c', '!', '-i', 'eth+', '-j', 'LOG', '--log-prefix', 'x: ']);
  assert.deepEqual(translateRule(['!', '-i', 'eth+', '-p', 'tcp', '-m', 'conntrack', '--ctstate', 'DNAT', '--ctorigdstport', '8000:8080', '-j', 'RETURN'], 4), [
    { match: { op: '!=', left: { meta: { key: 'iifname' } }, right: 'eth*' } },
    { match: { op: '==', left: { meta: { key: 'l4proto' } }, right: 'tcp' } },
    { match: { op: '==', left: { ct: { key: 'status' } }, right: { set: ['dnat'] } } },
    { match: { op: '==', left: { ct: { key: 'proto-dst', dir: 'original' } }, right: { range: [8000, 8080] } } },
    { return: null },
  ]);
});

test('a native dnat statement names the container', () => {
  const rs = parseNftJson(JSON.stringify({ nftables: [
    { chain: { family: 'ip', table: 'nat', name: 'pre', type: 'nat', hook: 'prerouting', prio: -100, policy: 'accept' } },
    { rule: { family: 'ip', table: 'nat', chain: 'pre', handle: 4, expr: [{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: { set: [8080, 8443] } } }, { dnat: { addr: '10.88.0.5', port: 80 } }] } },
  ] }));
  assert.deepEqual(findPublished(rs).map((p) => `${p.proto}/${p.port}→${p.to}`), ['tcp/8080→10.88.0.5:80', 'tcp/8443→10.88.0.5:80']);
});

test('ufw-like iptables-nft rules without their save listing: xt matches are undetermined with the match named, never guessed', () => {
  const e = exposureOf(L(22, 4, false), view('ufw'));
  assert.equal(e.verdict, 'undetermined');
  assert.match(e.reason, /ip filter ufw-before-input handle \d+: cannot decide iptables match -m conntrack/);
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


test('readFirewall asks iptables-legacy-save only where legacy tables exist, iptables-nft-save only for xt rules', async () => {
  const recorded = (name: string) => readFileSync(`${FIXTURES}nft/${name}`, 'utf8');
  const run = async (legacyNames: string, nftJson: string) => {
    const calls: string[] = [];
    const exec: Exec = async (cmd, args) => {
      const argv = cmd === 'nsenter' ? args.slice(2) : [cmd, ...args];
      calls.push(argv.join(' '));
      const out = (stdout: string) => ({ stdout, stderr: '', code: 0 });
      // grep -H -s '' FILE…: each line of each file as "FILE:line".
      if (argv[0] === 'grep') return out(argv.slice(3).flatMap((f) => (f.endsWith('/ip_tables_names') ? legacyNames : f.includes('forwarding') ? '0\n' : '').split('\n').filter(Boolean).map((l) => `${f}:${l}`)).join('\n'));
      if (argv[0] === 'nft') return out(nftJson);
      const addrs = '[{"ifname":"lo","addr_info":[]},{"ifname":"eth0","addr_info":[{"local":"203.0.113.1","prefixlen":24}]}]';
      if (argv[0] === 'ip' && argv.includes('-batch')) return out(`${addrs}\n[{"dst":"default","dev":"eth0"}]\n`);
      if (argv[0] === 'ip') return out(argv.includes('addr') ? addrs : '[]');
      if (argv[0] === 'iptables-nft-save') return out(recorded('docker-iptables-nft.save'));
      if (argv[0] === 'iptables-legacy-save') return out(recorded('ufw-iptables.rules'));
      return out('');
    };
    return { fw: await readFirewall('lab', exec), calls };
  };
  const plain = await run('', recorded('portwarden-mail-relay.json'));
  assert.deepEqual(plain.calls.filter((c) => c.includes('-save')), [], 'no xt, no legacy tables: neither save tool runs');
  assert.deepEqual(plain.fw.addresses, [{ iface: 'eth0', cidr: '203.0.113.1/24' }]);
  assert.deepEqual(plain.fw.interfaces, ['eth0']);
  // One child for ip addr and the IPv4 routes, one for the IPv6 routes, one for the /proc files, one nft.
  assert.equal(plain.calls.length, 4, plain.calls.join('\n'));
  assert.deepEqual(plain.fw.forwarding, { 4: false, 6: false });
  assert.deepEqual(plain.fw.routes, [{ iface: 'eth0', family: 4, dst: '0.0.0.0/0' }]);
  const docker = await run('filter\n', recorded('docker-iptables-nft.json'));
  assert.deepEqual(docker.calls.filter((c) => c.includes('-save')).sort(), ['ip6tables-nft-save', 'iptables-legacy-save', 'iptables-nft-save']);
  assert.equal(docker.fw.legacyRules, 19);
  assert.deepEqual(docker.fw.published.map((p) => p.to), ['172.17.0.2:80'], 'the xt DNAT target was read back');
});

test("the host's answers must get out: output-hook rules count", () => {
  const rs = parseNftJson(JSON.stringify({ nftables: [
    { chain: { family: 'inet', table: 't', name: 'out', type: 'filter', hook: 'output', prio: 0, policy: 'accept' } },
    { rule: { family: 'inet', table: 't', chain: 'out', handle: 2, expr: [
      { match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: { prefix: { addr: '203.0.113.0', len: 24 } } } },
      { match: { op: '==', left: { payload: { protocol: 'tcp', field: 'sport' } }, right: 22 } }, { drop: null }] } },
    { rule: { family: 'inet', table: 't', chain: 'out', handle: 3, expr: [
      { match: { op: '==', left: { meta: { key: 'iifname' } }, right: 'eth0' } }, { drop: null }] } },
  ] }));
  const fw: FirewallView = { ruleset: rs, error: null, interfaces: ['eth0'], legacyRules: 0, published: [] };
  const ssh = exposureOf(L(22, 4, false), fw);
  assert.equal(ssh.verdict, 'restricted');
  assert.ok(!containsCidr(ssh.sources, '203.0.113.7') && containsCidr(ssh.sources, '203.0.112.255') && containsCidr(ssh.sources, '203.0.114.0'), 'answers to 203.0.113.0/24 are dropped, nothing else');
  assert.equal(exposureOf(L(80, 4, false), fw).verdict, 'any', 'iifname never matches a packet this host sends');
});

test('explain shows rules in nft syntax; what it cannot render stays JSON', () => {
  const m = (left: Json, right: Json, op = '==') => ({ match: { op, left, right } });
  assert.equal(exprText(m({ payload: { protocol: 'tcp', field: 'dport' } }, { set: [22, { range: [8000, 8080] }] })), 'tcp dport { 22, 8000-8080 }');
  assert.equal(exprText(m({ payload: { protocol: 'ip', field: 'saddr' } }, { prefix: { addr: '10.0.0.0', len: 8 } }, '!=')), 'ip saddr != 10.0.0.0/8');
  assert.equal(exprText(m({ meta: { key: 'iifname' } }, 'eth0')), 'iifname eth0');
  assert.equal(exprText(m({ meta: { key: 'l4proto' } }, 'tcp')), 'meta l4proto tcp');
  assert.equal(exprText(m({ ct: { key: 'proto-dst', dir: 'original' } }, 8080)), 'ct original proto-dst 8080');
  assert.equal(exprText(m({ fib: { result: 'type', flags: ['daddr'] } }, 'local')), 'fib daddr type local');
  assert.equal(exprText({ vmap: { key: { ct: { key: 'state' } }, data: { set: [['established', { accept: null }], ['invalid', { drop: null }]] } } }), 'ct state vmap { established : accept, invalid : drop }');
  assert.equal(exprText({ reject: { type: 'tcp reset' } }), 'reject with tcp reset');
  assert.equal(exprText({ dnat: { addr: '172.17.0.2', port: 80 } }), 'dnat to 172.17.0.2:80');
  assert.equal(exprText({ queue: { num: 1 } }), '{"queue":{"num":1}}');
});

test('IPv6 needs neighbour discovery: a ruleset that drops it reaches no IPv6 source, on-link or routed', () => {
  const rs = (ndRule: Json[] | null) => parseNftJson(JSON.stringify({ nftables: [
    { chain: { family: 'inet', table: 't', name: 'in', type: 'filter', hook: 'input', prio: 0, policy: 'drop' } },
    ...(ndRule ? [{ rule: { family: 'inet', table: 't', chain: 'in', handle: 2, expr: ndRule } }] : []),
    { rule: { family: 'inet', table: 't', chain: 'in', handle: 3, expr: [{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 22 } }, { accept: null }] } },
  ] }));
  const fw = (ndRule: Json[] | null): FirewallView => ({ ruleset: rs(ndRule), error: null, interfaces: ['eth0'], addresses: [{ iface: 'eth0', cidr: '2001:db8:1::1/64' }], legacyRules: 0, published: [] });
  assert.deepEqual(exposureOf(L(22), fw(null)).sources, ['0.0.0.0/0'], 'no IPv6 without neighbour discovery');
  const nsOnly = translateRule(['-p', 'ipv6-icmp', '-m', 'icmp6', '--icmpv6-type', 'neighbour-solicitation', '-j', 'ACCEPT'], 6);
  assert.deepEqual(exposureOf(L(22), fw(nsOnly)).sources, ['::/0', '0.0.0.0/0']);
  // Solicitations accepted from the link only: on-link sources reach, routed ones need the router's
  // link-local solicitation, which is refused here.
  const linkOnly = translateRule(['-s', '2001:db8:1::/64', '-p', 'ipv6-icmp', '--icmpv6-type', '135', '-j', 'ACCEPT'], 6);
  assert.deepEqual(exposureOf(L(22), fw(linkOnly)).sources, ['2001:db8:1::/64', '0.0.0.0/0']);
});

test('neighbour discovery past `th dport` (its checksum): decided where every way the match can go ends the same', () => {
  const th = (port: number | { set: number[] }): Json => ({ match: { op: '==', left: { payload: { protocol: 'th', field: 'dport' } }, right: port } });
  const tcp22: Json[] = [{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 22 } }, { accept: null }];
  const nd: Json[] = [{ match: { op: '==', left: { payload: { protocol: 'icmpv6', field: 'type' } }, right: { set: ['nd-neighbor-solicit', 'nd-neighbor-advert'] } } }, { accept: null }];
  const fw = (policy: 'accept' | 'drop', rules: Json[][]): FirewallView => ({
    ruleset: parseNftJson(JSON.stringify({ nftables: [
      { chain: { family: 'inet', table: 't', name: 'in', type: 'filter', hook: 'input', prio: 0, policy } },
      ...rules.map((expr, i) => ({ rule: { family: 'inet', table: 't', chain: 'in', handle: i + 2, expr } })),
    ] })),
    error: null, interfaces: ['eth0'], addresses: [{ iface: 'eth0', cidr: '2001:db8:1::1/64' }], legacyRules: 0, published: [],
  });
  // Accepted whether or not the checksum is 7004: by the policy, or by the rule for ND after it.
  assert.equal(exposureOf(L(22), fw('accept', [[th(7004), { accept: null }]])).verdict, 'any');
  assert.deepEqual(exposureOf(L(22), fw('drop', [[th(7004), { accept: null }], tcp22, nd])).sources, ['::/0', '0.0.0.0/0']);
  // Refused whether or not: a drop on the checksum before a drop policy.
  assert.deepEqual(exposureOf(L(22), fw('drop', [[th(7004), { drop: null }], tcp22])).sources, ['0.0.0.0/0']);
  // The checksum decides: only a client whose message's checksum is 7004 gets its ND in.
  const only = exposureOf(L(22), fw('drop', [[th(7004), { accept: null }], tcp22]));
  assert.equal(only.verdict, 'undetermined');
  assert.match(only.reason, /cannot decide th dport of a neighbour-discovery message/);
  // Two rules on it: 7004 dropped, every other non-zero checksum accepted, 0 left to the policy.
  assert.equal(exposureOf(L(22), fw('drop', [[th(7004), { drop: null }], [th({ set: [1, 65535] }), { accept: null }], tcp22])).verdict, 'undetermined');
});

test('concatenations: each element matches part by part; address parts narrow the sources', () => {
  const rs = parseNftJson(JSON.stringify({ nftables: [
    { set: { family: 'inet', table: 't', name: 'allow', type: ['ipv4_addr', 'inet_service'], flags: ['interval'], elem: [{ concat: ['192.0.2.11', 22] }, { concat: [{ prefix: { addr: '198.51.100.0', len: 24 } }, { range: [20, 30] }] }] } },
    { chain: { family: 'inet', table: 't', name: 'in', type: 'filter', hook: 'input', prio: 0, policy: 'drop' } },
    { rule: { family: 'inet', table: 't', chain: 'in', handle: 2, expr: [{ match: { op: '==', left: { concat: [{ payload: { protocol: 'ip', field: 'saddr' } }, { payload: { protocol: 'tcp', field: 'dport' } }] }, right: '@allow' } }, { accept: null }] } },
  ] }));
  const fw: FirewallView = { ruleset: rs, error: null, interfaces: ['eth0'], legacyRules: 0, published: [] };
  assert.deepEqual(exposureOf(L(22, 4, false), fw).sources, ['192.0.2.11/32', '198.51.100.0/24']);
  assert.deepEqual(exposureOf(L(25, 4, false), fw).sources, ['198.51.100.0/24']);
  assert.equal(exposureOf(L(80, 4, false), fw).verdict, 'none');
});

test('readFirewall with a host cache keeps only a complete host read: an ip that failed is asked again at the next call', async () => {
  let ipWorks = false;
  const exec: Exec = async (cmd, args) => {
    if (cmd === 'ip' && !ipWorks) return { stdout: '', stderr: 'ip: timed out', code: 1 };
    if (cmd === 'ip' && args.includes('-batch')) return { stdout: '[{"ifname":"lo","addr_info":[]},{"ifname":"eth0","addr_info":[{"local":"192.0.2.1","prefixlen":24}]}]\n[{"dst":"default","dev":"eth0"}]\n', stderr: '', code: 0 };
    if (cmd === 'ip') return { stdout: '[]', stderr: '', code: 0 };
    if (cmd === 'nft') return { stdout: '{"nftables":[]}', stderr: '', code: 0 };
    throw Object.assign(new Error(`${cmd}: not installed`), { code: 'ENOENT' });
  };
  const cache: RulesCache = { generation: () => 1, kept: null, hostGeneration: () => 7, keptHost: null };
  const first = await readFirewall(undefined, exec, cache);
  assert.deepEqual(first.interfaces, []);
  assert.equal(cache.keptHost, null, 'a failed host read is not kept');
  ipWorks = true;
  const second = await readFirewall(undefined, exec, cache);
  assert.deepEqual(second.interfaces, ['eth0'], 'the same host generation, but the failed read was asked again');
});

// The one packet path (exposure/path.ts): the packets of a real connection decide what a first
// packet alone cannot (TCP flags, protocol numbers, hop limits, marks, the address asked, device
// ingress chains), and explain's single-address walk agrees with exposure's regions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { fillDevices, parseNftJson, type Json } from '../agent/exposure/nft-json.js';
import { exposureOf, publishedTarget, routedVia, routeTo, targetExposure, type FirewallView } from '../agent/exposure/exposure.js';
import { findPublished } from '../agent/exposure/published.js';
import { fromBig, IntervalSet, prefixSet } from '../agent/exposure/intervals.js';
import { portClass } from '../agent/exposure/port-classes.js';
import { verdictOf, walkPath } from '../agent/exposure/path.js';
import { parseRoutes } from '../agent/exposure/read.js';
import { addLegacy, translateRule, tokenize } from '../agent/exposure/iptables-save.js';
import type { Listener } from '../agent/model.js';
import { compareExposure } from '../agent/exposure/compare.js';
import { loadPolicy } from '../agent/policy/load.js';
import { FIXTURES } from './helpers/paths.js';

const L = (port: number, extra: Partial<Listener> = {}): Listener => ({ proto: 'tcp', family: 6, address: '::', port, scope: 'wildcard', dualStack: true, inode: 1, processes: [], ...extra });
/** nft 1.0.6's JSON leaves out an ingress chain's device; `nft list chains` says it. */
const CHAINS_TEXT = 'table netdev edge {\n\tchain ingress {\n\t\ttype filter hook ingress device "eth0" priority -500; policy accept;\n\t}\n}\ntable inet host {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n';
const packetsRuleset = () => {
  const rs = parseNftJson(readFileSync(`${FIXTURES}nft/packets.json`, 'utf8'));
  fillDevices(rs, CHAINS_TEXT);
  return rs;
};
const packets = (): FirewallView => ({
  ruleset: packetsRuleset(),
  error: null,
  interfaces: ['eth0', 'eth1'],
  addresses: [{ iface: 'lo', cidr: '127.0.0.1/8' }, { iface: 'eth0', cidr: '192.0.2.1/24' }, { iface: 'eth0', cidr: '2001:db8:1::1/64' }, { iface: 'eth1', cidr: '198.51.100.1/24' }, { iface: 'eth1', cidr: '2001:db8:2::1/64' }],
  legacyRules: 0,
  published: [],
});

test('path: flags, protocol numbers, hop limits, marks and device ingress are decided', () => {
  const fw = packets();
  // `tcp flags & (fin|syn|rst|ack) != syn ct state new drop` spares the SYN; `ip protocol icmp`
  // and `exthdr rt exists` never match a TCP packet; ingress on eth0 drops 10/8 there only.
  assert.deepEqual(fw.ruleset!.chains.get('netdev edge ingress')!.devices, ['eth0']);
  const e9100 = exposureOf(L(9100), fw);
  assert.equal(e9100.verdict, 'any', e9100.reason);
  assert.deepEqual(e9100.perInterface?.eth0?.includes('0.0.0.0/5'), true);
  assert.ok(!e9100.perInterface!.eth0!.some((c) => c.startsWith('10.')), 'the netdev ingress chain on eth0 drops 10/8');
  assert.deepEqual(e9100.perInterface!.eth1, ['::/0', '0.0.0.0/0']);
  // The prerouting chain marks the lab's prefixes; input accepts port 22 for the mark.
  assert.deepEqual(exposureOf(L(22), fw).sources, ['2001:db8:1::/64', '192.0.2.0/24']);
  // pkttype host: every unicast packet.
  assert.equal(exposureOf(L(25), fw).verdict, 'any');
  // The answer's SYN-ACK is dropped on output: nobody completes a handshake.
  assert.equal(exposureOf(L(8443), fw).verdict, 'none');
  // A connection mark set on the first packet from 192.0.2.11 drops its answers.
  const e9000 = exposureOf(L(9000), fw);
  assert.equal(e9000.verdict, 'restricted');
  assert.ok(e9000.sources.includes('192.0.2.10/32') && e9000.sources.includes('192.0.2.12/30') && !e9000.sources.includes('192.0.2.11/32'), e9000.sources.join());
  // A TTL is the client's choice: undetermined, said in nft syntax.
  const e443 = exposureOf(L(443), fw);
  assert.equal(e443.verdict, 'undetermined');
  assert.match(e443.reason, /ip ttl \(set by the client's system/);
});

test('path: ip daddr on the input path is the address asked — per address when they differ', () => {
  const fw = packets();
  const e = exposureOf(L(80), fw);
  assert.equal(e.verdict, 'restricted', e.reason);
  assert.ok(e.perAddress, JSON.stringify(e));
  assert.deepEqual(e.perAddress!['198.51.100.1'], []);
  assert.deepEqual(e.perAddress!['2001:db8:2::1'], []);
  assert.deepEqual(e.perAddress!['2001:db8:1::1'], ['::/0']);
  assert.ok(e.perAddress!['192.0.2.1']!.includes('0.0.0.0/5'));
  // A listener bound to one address is asked only that one.
  assert.equal(exposureOf(L(80, { family: 4, address: '198.51.100.1', scope: 'address', dualStack: false }), fw).verdict, 'none');
  assert.equal(exposureOf(L(80, { family: 4, address: '192.0.2.1', scope: 'address', dualStack: false }), fw).perAddress, undefined);
});

test('path: routes give each interface its own sources; the default route\'s brings the world', () => {
  const fw: FirewallView = { ...packets(), routes: parseRoutes('[{"dst":"default","gateway":"192.0.2.254","dev":"eth0"},{"dst":"192.0.2.0/24","dev":"eth0"},{"dst":"172.17.0.0/16","dev":"docker0"},{"dst":"172.17.5.0/24","dev":"eth0"}]', 4) };
  assert.deepEqual(routedVia(fw, 4, 'docker0').toCidrs(), ['172.17.0.0/22', '172.17.4.0/24', '172.17.6.0/23', '172.17.8.0/21', '172.17.16.0/20', '172.17.32.0/19', '172.17.64.0/18', '172.17.128.0/17']);
  assert.ok(routedVia(fw, 4, 'eth0').isFull());
  assert.ok(routedVia(fw, 6, 'docker0').isFull(), 'no IPv6 routes read: no restriction');
  assert.equal(routeTo(fw, '172.17.0.9'), 'docker0');
  assert.equal(routeTo(fw, '172.17.5.9'), 'eth0');
  assert.equal(routeTo(fw, '8.8.8.8'), 'eth0');
});

test('iptables options that ufw, Docker and hand-made rules use are translated, not left as xt', () => {
  const t = (line: string, fam: 4 | 6 = 4) => JSON.stringify(translateRule(tokenize(line).slice(2), fam));
  assert.doesNotMatch(t('-A ufw6-before-input -m rt --rt-type 0 -j DROP', 6), /"xt"/);
  assert.doesNotMatch(t('-A INPUT -p tcp --syn -j ACCEPT'), /"xt"/);
  assert.doesNotMatch(t('-A INPUT -p tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j DROP'), /"xt"/);
  assert.doesNotMatch(t('-A INPUT -m pkttype --pkt-type broadcast -j DROP'), /"xt"/);
  assert.doesNotMatch(t('-A INPUT -p ipv6-icmp --icmpv6-type 135 -m hl --hl-eq 255 -j ACCEPT', 6), /"xt"/);
  assert.doesNotMatch(t('-A DOCKER-USER -m iprange --src-range 192.0.2.10-192.0.2.20 -j RETURN'), /"xt"/);
  assert.doesNotMatch(t('-A INPUT -m mark --mark 0x1/0xff -j ACCEPT'), /"xt"/);
  assert.doesNotMatch(t('-A PREROUTING -j CONNMARK --restore-mark'), /"xt"/);
});

// Random rulesets in nft JSON: explain walks one address, exposure a whole region; they must agree.
const p = (protocol: string, field: string) => ({ payload: { protocol, field } });
const m = (left: Json, right: Json, op = '=='): Json => ({ match: { op, left, right } });
const matchArb = fc.constantFrom<Json>(
  m(p('ip', 'saddr'), { prefix: { addr: '192.0.2.0', len: 28 } }),
  m(p('ip', 'saddr'), '192.0.2.7', '!='),
  m(p('ip', 'saddr'), { range: ['10.0.0.5', '10.0.1.9'] }),
  m(p('ip', 'daddr'), '192.0.2.1'),
  m(p('tcp', 'dport'), 22),
  m(p('tcp', 'dport'), { set: [22, { range: [8000, 8100] }] }),
  m({ '&': [p('tcp', 'flags'), ['fin', 'syn', 'rst', 'ack']] }, 'syn'),
  m(p('tcp', 'flags'), 'syn', 'in'),
  m(p('tcp', 'flags'), 'syn', '!'),
  m({ ct: { key: 'state' } }, 'new', 'in'),
  m({ ct: { key: 'state' } }, ['established', 'related'], 'in'),
  m({ ct: { key: 'direction' } }, 'reply'),
  m({ meta: { key: 'mark' } }, 3),
  m({ ct: { key: 'mark' } }, 5),
  m({ meta: { key: 'iifname' } }, 'eth0'),
  m(p('ip', 'protocol'), 'tcp'),
  m(p('ip', 'ttl'), 64),
);
const stmtArb = fc.constantFrom<Json>({ accept: null }, { drop: null }, { reject: null }, { mangle: { key: { meta: { key: 'mark' } }, value: 3 } }, { mangle: { key: { ct: { key: 'mark' } }, value: 5 } }, { jump: { target: 'sub' } });
const rulesArb = fc.array(fc.tuple(fc.array(matchArb, { maxLength: 3 }), stmtArb), { maxLength: 7 });

function rulesetJson(hooks: Record<string, [Json[], Json][]>, sub: [Json[], Json][]): string {
  const items: Json[] = [{ table: { family: 'inet', name: 'r' } }];
  const rule = (chain: string) => ([ms, v]: [Json[], Json]) => ({ rule: { family: 'inet', table: 'r', chain, expr: [...ms, v] } });
  for (const [hook, rules] of Object.entries(hooks)) {
    items.push({ chain: { family: 'inet', table: 'r', name: hook, type: 'filter', hook, prio: 0, policy: 'accept' } });
    items.push(...rules.map(rule(hook)));
  }
  items.push({ chain: { family: 'inet', table: 'r', name: 'sub' } }, ...sub.filter(([, v]) => !JSON.stringify(v).includes('jump')).map(rule('sub')));
  return JSON.stringify({ nftables: items });
}

test('explain\'s single-address walk says accept exactly for the sources exposure accepts (fast-check)', () => {
  const seed = process.env.PW_SEED ? Number(process.env.PW_SEED) : undefined;
  fc.assert(
    fc.property(rulesArb, rulesArb, rulesArb, rulesArb, fc.array(fc.nat(2 ** 32 - 1), { minLength: 4, maxLength: 4 }), (pre, input, output, sub, addrs) => {
      const rs = parseNftJson(rulesetJson({ prerouting: pre, input, output }, sub));
      const host = { ruleset: rs, addresses: [{ iface: 'eth0', cidr: '192.0.2.1/24' }] };
      const q = { family: 4 as const, proto: 'tcp' as const, port: 22, iif: 'eth0', daddr: '192.0.2.1', listening: true };
      const region = walkPath(host, q, IntervalSet.full(4));
      const probes = [...addrs.map((a) => fromBig(BigInt(a), 4)), '192.0.2.3', '192.0.2.7', '10.0.0.9', '10.0.1.9'];
      for (const a of probes) {
        const one = walkPath(host, q, prefixSet(4, a), true);
        if (region.sure.has(a) !== !one.sure.isEmpty() || region.maybe.has(a) !== !one.maybe.isEmpty()) return false;
        // explain's own verdict function says the same.
        if ((verdictOf(one) === 'accept') !== region.sure.has(a) || (verdictOf(one) === 'undetermined') !== region.maybe.has(a)) return false;
      }
      return true;
    }),
    { numRuns: 400, ...(seed !== undefined ? { seed } : {}) },
  );
});

test('path: a redirect (firewalld forward-port) and a DNAT to our own address reach the local listener', () => {
  const rs = parseNftJson(readFileSync(`${FIXTURES}nft/redirect.json`, 'utf8'));
  const fw: FirewallView = { ruleset: rs, error: null, interfaces: ['eth0'], addresses: [{ iface: 'eth0', cidr: '192.0.2.1/24' }], legacyRules: 0, published: findPublished(rs) };
  assert.deepEqual(fw.published.map((p) => `${p.port}→${p.to}`), ['8089→:9090', '8091→192.0.2.1:9090']);
  // Directly, 9090 is open to 192.0.2.11 only; through 8089 everyone gets to it.
  const e = exposureOf(L(9090, { family: 4, address: '0.0.0.0', dualStack: false }), fw);
  assert.equal(e.verdict, 'any', JSON.stringify(e));
  assert.match(e.reason, /also through port 8089/);
  assert.deepEqual(e.perPort?.['9090'], ['192.0.2.11/32'], 'asked directly, 9090 lets in one source');
  assert.deepEqual(e.perPort?.['8089'], ['0.0.0.0/0']);
  // The published row for 8089 says where it leads.
  assert.equal(targetExposure(publishedTarget(fw.published[0]!, [4]), fw).verdict, 'any');
  // explain's walk: port 8089 from anyone gets to port 9090.
  const one = walkPath({ ruleset: rs, addresses: fw.addresses! }, { family: 4, proto: 'tcp', port: 8089, iif: 'eth0', listening: false }, prefixSet(4, '198.51.100.9'), true);
  assert.ok(!one.local.get(9090)!.sure.isEmpty());
  assert.ok(one.trace.some((s) => s.outcome === 'redirect' && s.rule === 'tcp dport 8089 redirect to :9090'), JSON.stringify(one.trace));
  // Without the redirect rule, 198.51.100.9 is refused on 9090.
  assert.ok(walkPath({ ruleset: rs }, { family: 4, proto: 'tcp', port: 9090, iif: 'eth0', listening: true }, prefixSet(4, '198.51.100.9')).sure.isEmpty());
});

// The DOCKER-USER forms Docker's documentation and its users write (docs.docker.com "Docker with
// iptables"; gist.github.com/tkachev-o/333f151b3488874dfbe4a600a401d2d5 for --ctdir ORIGINAL).
test('path: DOCKER-USER with iprange, conntrack --ctorigsrc/--ctorigdst/--ctorigdstport/--ctdir is decided', () => {
  const docker = readFileSync(`${FIXTURES}nft/docker-iptables.rules`, 'utf8').replace(/^-A DOCKER-USER .*\n/gm, '');
  const variants: [string, string[]][] = [
    ['-A DOCKER-USER -i eth0 -s 192.0.2.11/32 -p tcp -m conntrack --ctorigdstport 8080 --ctdir ORIGINAL -j ACCEPT\n-A DOCKER-USER -i eth0 -p tcp -m conntrack --ctorigdstport 8080 --ctdir ORIGINAL -j DROP', ['192.0.2.11/32']],
    ['-A DOCKER-USER -m iprange -i eth0 ! --src-range 192.0.2.10-192.0.2.13 -j DROP', ['192.0.2.10/31', '192.0.2.12/31']],
    ['-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A DOCKER-USER -p tcp -i eth0 -m conntrack --ctorigsrc 192.0.2.12 --ctorigdst 192.0.2.1 --ctorigdstport 8080 -j ACCEPT\n-A DOCKER-USER -i eth0 -j DROP', ['192.0.2.12/32']],
  ];
  for (const [rules, expected] of variants) {
    const rs = parseNftJson('{"nftables":[]}');
    addLegacy(rs, docker.replace('COMMIT\n*filter', 'COMMIT\n*filter').replace(/(:DOCKER-USER - \[0:0\]\n(?:.*\n)*?)COMMIT\n$/m, `$1${rules}\n-A DOCKER-USER -j RETURN\nCOMMIT\n`), 4);
    const fw: FirewallView = { ruleset: rs, error: null, interfaces: ['eth0'], addresses: [{ iface: 'eth0', cidr: '192.0.2.1/24' }, { iface: 'docker0', cidr: '172.17.0.1/16' }], legacyRules: 1, published: findPublished(rs) };
    const e = targetExposure(publishedTarget(fw.published[0]!, [4]), fw);
    assert.deepEqual([e.verdict, e.sources], ['restricted', expected], `${rules}\n${e.reason}`);
  }
});

test('check: exposure that cannot be decided (or read) is reported, never taken to match the policy', () => {
  const { policy } = loadPolicy('p.yaml', { text: 'version: 1\nsources: { admins: [192.0.2.0/24] }\nrules:\n  - { name: ssh, port: 22, from: [admins] }\n  - { name: web, port: 9100 }\n', hostname: 'h' });
  const fw = packets();
  const ls = [L(443), L(22)].map((l, i) => ({ ...l, port: [22, 9100][i]! }));
  // 22 and 9100 are decided here: nothing undetermined.
  assert.deepEqual(compareExposure(policy, ls, fw).filter((f) => f.kind === 'exposure-undetermined'), []);
  const unread: FirewallView = { ruleset: null, error: 'permission denied (you must be root)', interfaces: [], legacyRules: 0, published: [] };
  const found = compareExposure(policy, ls, unread).filter((f) => f.kind === 'exposure-undetermined');
  assert.deepEqual(found.map((f) => [f.port, f.severity]), [[22, 'low'], [9100, 'info']], 'low where the policy restricts sources');
  assert.match(found[0]!.message, /not compared with rule "ssh": cannot read the firewall: permission denied/);
  // An undecidable rule (ip ttl) in front of port 443, which a rule allows from admins.
  const { policy: p443 } = loadPolicy('p.yaml', { text: 'version: 1\nsources: { admins: [192.0.2.0/24] }\nrules:\n  - { name: web, port: 443, from: [admins] }\n', hostname: 'h' });
  const f443 = compareExposure(p443, [L(443)], fw).filter((f) => f.kind === 'exposure-undetermined');
  assert.equal(f443.length, 1);
  assert.match(f443[0]!.message, /ip ttl/);
});

test('path: a rate limit that returns lets the source on (fw4 syn_flood); marks computed with masks; one-endpoint numgen', () => {
  const q = { family: 4 as const, proto: 'tcp' as const, port: 22, iif: 'eth0', daddr: '192.0.2.1', listening: true };
  const run = (input: [Json[], Json][], sub: [Json[], Json][], pre: [Json[], Json][] = []) => walkPath({ ruleset: parseNftJson(rulesetJson({ prerouting: pre, input }, sub)) }, q, IntervalSet.full(4));
  const synFlood: [Json[], Json][] = [[[{ limit: { rate: 25, per: 'second', burst: 50 } }], { return: null }], [[], { drop: null }]];
  assert.ok(run([[[m({ '&': [p('tcp', 'flags'), ['fin', 'syn', 'rst', 'ack']] }, 'syn')], { jump: { target: 'sub' } }]], synFlood).sure.isFull());
  // meta mark set meta mark & 0xffff00ff | 0xab, then a masked match on it.
  const setMark = { mangle: { key: { meta: { key: 'mark' } }, value: { '|': [{ '&': [{ meta: { key: 'mark' } }, 0xffff00ff] }, 0xab] } } };
  const r = run([[[m({ '&': [{ meta: { key: 'mark' } }, 0xff] }, 0xab)], { drop: null }]], [], [[[m(p('ip', 'saddr'), { prefix: { addr: '192.0.2.0', len: 24 } })], setMark]]);
  assert.deepEqual(r.sure.complement().toCidrs(), ['192.0.2.0/24']);
  assert.ok(r.maybe.isEmpty());
  // kube-proxy: numgen random mod 1 vmap { 0 : goto endpoint } — one endpoint, always chosen.
  const ng = run([[[m({ numgen: { mode: 'random', mod: 1, offset: 0 } }, 0)], { drop: null }]], []);
  assert.ok(ng.sure.isEmpty() && ng.maybe.isEmpty());
});

test('path: a DNAT goes nowhere when forwarding is off or no route leads to its target', () => {
  const rs = parseNftJson(rulesetJson({ input: [] }, []));
  rs.chains.set('inet r nat', { family: 'inet', table: 'r', name: 'nat', hook: 'prerouting', type: 'nat', prio: -100, policy: 'accept', devices: null, rules: [{ handle: 1, comment: null, expr: [m(p('tcp', 'dport'), 8080), { dnat: { addr: '172.18.0.2', port: 80 } }] }] });
  const q = { family: 4 as const, proto: 'tcp' as const, port: 8080, iif: 'eth0', listening: false };
  const region = IntervalSet.full(4);
  const ok = walkPath({ ruleset: rs, routes: [{ iface: 'br0', family: 4, dst: '172.18.0.0/16' }], forwarding: { 4: true, 6: false } }, q, region);
  assert.ok(ok.sure.isFull());
  const off = walkPath({ ruleset: rs, routes: [{ iface: 'br0', family: 4, dst: '172.18.0.0/16' }], forwarding: { 4: false, 6: false } }, q, region);
  assert.ok(off.sure.isEmpty() && off.maybe.isEmpty());
  assert.match(off.reasons.join(), /forwarding of IPv4 is off/);
  const noRoute = walkPath({ ruleset: rs, routes: [{ iface: 'eth0', family: 4, dst: '192.0.2.0/24' }], forwarding: { 4: true, 6: true } }, q, region);
  assert.ok(noRoute.sure.isEmpty());
  assert.match(noRoute.reasons.join(), /no route to 172\.18\.0\.2/);
});

test('path: a meter keyed by another family\'s address never matches (nixos router: IPv4 ssh meter, IPv6 refused); fib saddr type local', () => {
  const meter: Json = { meter: { key: p('ip', 'saddr'), stmt: { limit: { rate: 2, per: 'minute' } }, name: 'ssh' } };
  const rs = parseNftJson(rulesetJson({ input: [[[m(p('tcp', 'dport'), 22), meter], { accept: null }], [[], { drop: null }]] }, []));
  const q = (family: 4 | 6) => ({ family, proto: 'tcp' as const, port: 22, iif: 'eth0', listening: true });
  assert.ok(walkPath({ ruleset: rs }, q(4), IntervalSet.full(4)).sure.isFull());
  assert.ok(walkPath({ ruleset: rs }, q(6), IntervalSet.full(6)).sure.isEmpty());
  const local = parseNftJson(rulesetJson({ input: [[[m({ fib: { result: 'type', flags: ['saddr'] } }, 'local')], { drop: null }]] }, []));
  const r = walkPath({ ruleset: local, addresses: [{ iface: 'eth0', cidr: '192.0.2.1/24' }] }, q(4), IntervalSet.full(4));
  assert.deepEqual(r.sure.complement().toCidrs(), ['192.0.2.1/32']);
});

test('path: a port published on one host address (-p 10.77.0.11:8081:80) is decided per address, for the proxy socket too', () => {
  const docker = readFileSync(`${FIXTURES}nft/docker-iptables.rules`, 'utf8').replace('-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80', '-A DOCKER -d 10.77.0.11/32 ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.17.0.2:80');
  const rs = parseNftJson('{"nftables":[]}');
  addLegacy(rs, docker, 4);
  const fw: FirewallView = { ruleset: rs, error: null, interfaces: ['eth0', 'eth1'], addresses: [{ iface: 'eth0', cidr: '10.77.0.11/24' }, { iface: 'eth1', cidr: '198.51.100.1/24' }, { iface: 'docker0', cidr: '172.17.0.1/16' }], legacyRules: 1, published: findPublished(rs) };
  const e = targetExposure(publishedTarget(fw.published[0]!, [4]), fw);
  assert.equal(e.verdict, 'any', e.reason);
  assert.deepEqual(e.perAddress, { '10.77.0.11': ['0.0.0.0/0'], '198.51.100.1': [] });
  // docker-proxy bound to exactly that address: asked only that one, decided.
  const proxy = exposureOf(L(8081, { family: 4, address: '10.77.0.11', scope: 'address', dualStack: false }), fw);
  assert.notEqual(proxy.verdict, 'undetermined', proxy.reason);
  assert.equal(proxy.perAddress, undefined);
});

test('a published row in a family no DNAT covers says nothing answers there, not that rules refuse it', () => {
  const rs = parseNftJson('{"nftables":[]}');
  addLegacy(rs, readFileSync(`${FIXTURES}nft/docker-iptables.rules`, 'utf8'), 4);
  const fw: FirewallView = { ruleset: rs, error: null, interfaces: ['eth0'], addresses: [{ iface: 'docker0', cidr: '172.17.0.1/16' }], legacyRules: 1, published: findPublished(rs) };
  const e = targetExposure(publishedTarget(fw.published[0]!, [6]), fw);
  assert.equal(e.verdict, 'none');
  assert.match(e.reason, /nothing answers there/);
});

test('exposure per class of ports equals exposure per listener on random rulesets (fast-check)', () => {
  const portArb = fc.oneof(fc.constantFrom(22, 23, 7999, 8000, 8050, 8100, 8101, 9000), fc.integer({ min: 1, max: 65535 }));
  const dport = fc.oneof(fc.constantFrom<Json>(22, 8000, { range: [8000, 8100] }, { set: [22, { range: [9000, 9010] }] }), fc.integer({ min: 1, max: 65535 }));
  const ruleArb = fc.tuple(fc.array(fc.oneof(matchArb, dport.map((d) => m(p('tcp', 'dport'), d))), { maxLength: 3 }), stmtArb);
  fc.assert(
    fc.property(fc.array(ruleArb, { maxLength: 8 }), fc.array(ruleArb, { maxLength: 3 }), fc.array(portArb, { minLength: 2, maxLength: 12 }), (input, sub, ports) => {
      const rs = parseNftJson(rulesetJson({ input }, sub));
      const view = (): FirewallView => ({ ruleset: rs, error: null, interfaces: ['eth0'], addresses: [{ iface: 'eth0', cidr: '192.0.2.1/24' }], legacyRules: 0, published: [] });
      const shared = view();
      return ports.every((port) => JSON.stringify(exposureOf(L(port, { family: 4, address: '0.0.0.0', dualStack: false }), shared)) === JSON.stringify(exposureOf(L(port, { family: 4, address: '0.0.0.0', dualStack: false }), view())));
    }),
    { numRuns: 300 },
  );
});

test('exposure per signature class equals exposure per listener: verdict maps to look-alike chains, port sets, DNATs (fast-check)', () => {
  // Ports written only in a verdict map (inline or named), a named port set, a rule, a DNAT: ports
  // whose entries lead to chains with the same rules share a class; every shared answer must be
  // the one the port gets alone.
  const PORTS = [22, 80, 443, 8080, 8081, 9000, 9001, 9002];
  const bodyArb = fc.array(fc.tuple(fc.array(matchArb, { maxLength: 2 }), fc.constantFrom<Json>({ accept: null }, { drop: null }, { reject: null }, { return: null })), { maxLength: 3 });
  fc.assert(
    fc.property(
      fc.array(bodyArb, { minLength: 1, maxLength: 3 }),
      fc.array(fc.tuple(fc.constantFrom(...PORTS), fc.nat(5)), { maxLength: 8 }),
      fc.boolean(),
      fc.subarray(PORTS),
      fc.option(fc.tuple(fc.constantFrom(...PORTS), fc.constantFrom<Json>({ dnat: { addr: '192.0.2.50', port: 80 } }, { redirect: { port: 9000 } }))),
      fc.array(fc.integer({ min: 1, max: 65535 }), { maxLength: 3 }),
      (bodies, entries, named, setPorts, nat, others) => {
        const items: Json[] = [{ table: { family: 'inet', name: 'r' } }];
        const rule = (chain: string, expr: Json[]) => items.push({ rule: { family: 'inet', table: 'r', chain, expr } });
        items.push({ chain: { family: 'inet', table: 'r', name: 'input', type: 'filter', hook: 'input', prio: 0, policy: 'drop' } });
        // Six chains over at most three bodies: look-alikes are the rule, not the exception.
        for (let c = 0; c < 6; c++) {
          items.push({ chain: { family: 'inet', table: 'r', name: `c${c}` } });
          for (const [ms, v] of bodies[c % bodies.length]!) rule(`c${c}`, [...ms, { counter: { packets: c, bytes: c * 60 } }, v]);
        }
        const pairs = [...new Map(entries).entries()].map(([port, c]): Json => [port, { jump: { target: `c${c}` } }]);
        if (named) items.push({ map: { family: 'inet', table: 'r', name: 'm', type: 'inet_service', map: 'verdict', elem: pairs } });
        items.push({ set: { family: 'inet', table: 'r', name: 'ports', type: 'inet_service', elem: setPorts } });
        rule('input', [m(p('ip', 'saddr'), { prefix: { addr: '203.0.113.0', len: 24 } }), { drop: null }]);
        rule('input', [m(p('tcp', 'dport'), '@ports'), m(p('ip', 'saddr'), '192.0.2.0'), { accept: null }]);
        rule('input', [{ vmap: { key: p('tcp', 'dport'), data: named ? '@m' : { set: pairs } } }]);
        rule('input', [m(p('ip', 'saddr'), { prefix: { addr: '198.51.100.0', len: 24 } }), { accept: null }]);
        if (nat) {
          items.push({ chain: { family: 'inet', table: 'r', name: 'pre', type: 'nat', hook: 'prerouting', prio: -100, policy: 'accept' } });
          rule('pre', [m(p('tcp', 'dport'), nat[0]), nat[1]]);
        }
        const rs = parseNftJson(JSON.stringify({ nftables: items }));
        const view = (): FirewallView => ({ ruleset: rs, error: null, interfaces: ['eth0'], addresses: [{ iface: 'eth0', cidr: '192.0.2.1/24' }], legacyRules: 0, published: findPublished(rs) });
        const shared = view();
        const ls = [...PORTS, ...others].map((port) => L(port, { family: 4, address: '0.0.0.0', dualStack: false }));
        for (const l of ls) assert.deepEqual(exposureOf(l, shared), exposureOf(l, view()), `port ${l.port}`);
      },
    ),
    { numRuns: 400 },
  );
});

test('port classes: verdict-map entries to chains with the same rules share a class; a redirect\'s target port has its own', () => {
  const items: Json[] = [{ table: { family: 'inet', name: 'r' } }, { chain: { family: 'inet', table: 'r', name: 'input', type: 'filter', hook: 'input', prio: 0, policy: 'drop' } }];
  const body = (chain: string, src: string, n: number): Json[] => [
    { chain: { family: 'inet', table: 'r', name: chain } },
    { rule: { family: 'inet', table: 'r', chain, expr: [m(p('ip', 'saddr'), { prefix: { addr: src, len: 24 } }), { counter: { packets: n, bytes: n } }, { accept: null }] } },
  ];
  items.push(...body('a', '192.0.2.0', 1), ...body('b', '192.0.2.0', 7), ...body('c', '198.51.100.0', 0));
  items.push({ map: { family: 'inet', table: 'r', name: 'tcp_ports', type: 'inet_service', map: 'verdict', elem: [[1025, { jump: { target: 'a' } }], [1125, { jump: { target: 'b' } }], [1026, { jump: { target: 'c' } }]] } });
  items.push({ rule: { family: 'inet', table: 'r', chain: 'input', expr: [{ vmap: { key: p('tcp', 'dport'), data: '@tcp_ports' } }] } });
  const rs = parseNftJson(JSON.stringify({ nftables: items }));
  assert.equal(portClass(rs, 1025), portClass(rs, 1125), 'a and b hold the same rule (counters aside)');
  assert.notEqual(portClass(rs, 1025), portClass(rs, 1026), 'c accepts other sources');
  const view = (ruleset: typeof rs): FirewallView => ({ ruleset, error: null, interfaces: ['eth0'], addresses: [{ iface: 'eth0', cidr: '192.0.2.1/24' }], legacyRules: 0, published: findPublished(ruleset) });
  const v4 = (port: number) => L(port, { family: 4, address: '0.0.0.0', dualStack: false });
  assert.deepEqual(exposureOf(v4(1125), view(rs)).sources, ['192.0.2.0/24']);
  // Port 22 redirected to 9000: the listener on 9000 is also reached through 22, its neighbour 9001 is not.
  const redirect = parseNftJson(JSON.stringify({ nftables: [
    { table: { family: 'inet', name: 'r' } },
    { chain: { family: 'inet', table: 'r', name: 'pre', type: 'nat', hook: 'prerouting', prio: -100, policy: 'accept' } },
    { rule: { family: 'inet', table: 'r', chain: 'pre', expr: [m(p('tcp', 'dport'), 22), { redirect: { port: 9000 } }] } },
  ] }));
  assert.notEqual(portClass(redirect, 9000), portClass(redirect, 9001));
  const fw = view(redirect);
  assert.equal(exposureOf(v4(9001), fw).perPort, undefined);
  assert.deepEqual(exposureOf(v4(9000), fw).perPort, { 9000: ['0.0.0.0/0'], 22: ['0.0.0.0/0'] });
});

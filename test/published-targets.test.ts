// What a published port's DNAT target is called (issue 19, item 4), and which interfaces and
// sources the exposure walk considers on a Docker host — cases the live Docker test found.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNftJson } from '../agent/exposure/nft-json.js';
import { addLegacy } from '../agent/exposure/iptables-save.js';
import { dnatTargetText, findPublished, publishedFor } from '../agent/exposure/published.js';
import { exposureOf, routedVia, type FirewallView } from '../agent/exposure/exposure.js';
import { compareExposure } from '../agent/exposure/compare.js';
import { readFirewall } from '../agent/exposure/read.js';
import { loadPolicy } from '../agent/policy/load.js';
import type { Listener } from '../agent/model.js';
import { containsCidr } from 'cidr-tools';

/** Docker 20.10's rules for -p 192.0.2.1:8083:80 and -p [2001:db8:1::1]:8083:80 with IPv6 on (as dockerd wrote them in the live test). */
const v4Rules = (extra = '') => `*nat
:PREROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER -i docker0 -j RETURN
-A DOCKER -d 192.0.2.1/32 ! -i docker0 -p tcp -m tcp --dport 8083 -j DNAT --to-destination 172.17.0.3:80
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:DOCKER - [0:0]
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
${extra}-A DOCKER -d 172.17.0.3/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
COMMIT
`;
const v6Rules = (extra = '') => v4Rules(extra)
  .replace('192.0.2.1/32', '2001:db8:1::1/128')
  .replace('--to-destination 172.17.0.3:80', '--to-destination [fd00:d0c::242:ac11:3]:80')
  .replace('-d 172.17.0.3/32', '-d fd00:d0c::242:ac11:3/128');

function dockerView(extraForward = ''): FirewallView {
  const rs = parseNftJson('{"nftables":[]}');
  addLegacy(rs, v4Rules(extraForward), 4);
  addLegacy(rs, v6Rules(extraForward), 6);
  return {
    ruleset: rs, error: null, interfaces: ['eth0', 'docker0'], legacyRules: 2, published: findPublished(rs),
    addresses: [{ iface: 'eth0', cidr: '192.0.2.1/24' }, { iface: 'eth0', cidr: '2001:db8:1::1/64' }, { iface: 'docker0', cidr: '172.17.0.1/16' }, { iface: 'docker0', cidr: 'fd00:d0c::1/64' }],
    routes: [{ iface: 'eth0', family: 4, dst: '192.0.2.0/24' }, { iface: 'docker0', family: 4, dst: '172.17.0.0/16' }, { iface: 'eth0', family: 6, dst: '2001:db8:1::/64' }, { iface: 'docker0', family: 6, dst: 'fd00:d0c::/64' }],
    forwarding: { 4: true, 6: true },
  };
}

const proxy6: Listener = { proto: 'tcp', family: 6, address: '2001:db8:1::1', port: 8083, scope: 'address', dualStack: false, inode: 1, processes: [] };

test('published: one notation for a DNAT target — [v6]:port, v4:port, nothing for a map', () => {
  assert.equal(dnatTargetText('172.17.0.3', 80), '172.17.0.3:80');
  assert.equal(dnatTargetText('fd00::2', 80), '[fd00::2]:80');
  assert.equal(dnatTargetText('fd00::2'), 'fd00::2');
  const fw = dockerView();
  assert.deepEqual(fw.published.map((p) => [p.to, p.family, p.daddr]), [['172.17.0.3:80', 4, '192.0.2.1'], ['[fd00:d0c::242:ac11:3]:80', 6, '2001:db8:1::1']]);
  // A dnat whose address is a map (or a range) names no single target: never "[object Object]".
  const rs = parseNftJson(JSON.stringify({ nftables: [
    { table: { family: 'inet', name: 'nat' } },
    { chain: { family: 'inet', table: 'nat', name: 'pre', type: 'nat', hook: 'prerouting', prio: -100, policy: 'accept' } },
    { rule: { family: 'inet', table: 'nat', chain: 'pre', handle: 4, expr: [
      { match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 8085 } },
      { dnat: { family: 'ip', addr: { map: { key: { payload: { protocol: 'ip', field: 'saddr' } }, data: { set: [['192.0.2.11', '172.17.0.4']] } } }, port: 80 } },
    ] } },
  ] }));
  assert.deepEqual(findPublished(rs).map((p) => [p.port, p.to, p.family]), [[8085, null, 4]]);
  // Which entries a listener of one family and address stands for.
  assert.deepEqual(publishedFor(fw.published, 'tcp', 8083, [6], '2001:db8:1::1').map((p) => p.to), ['[fd00:d0c::242:ac11:3]:80']);
  assert.deepEqual(publishedFor(fw.published, 'tcp', 8083, [4, 6], '2001:db8:1::1').map((p) => p.to), ['[fd00:d0c::242:ac11:3]:80'], 'pinned elsewhere: not this listener');
});

test('published-container-port for the IPv6 pinned listener names the IPv6 target, also when who reaches it is undetermined', () => {
  const { policy } = loadPolicy('p.yaml', { text: 'version: 1\nsources: { c1: [192.0.2.11, "2001:db8:1::11"] }\nrules:\n  - { name: web, port: 8083, from: [c1] }\n', hostname: 'h' });
  const decided = compareExposure(policy, [proxy6], dockerView()).find((f) => f.kind === 'published-container-port');
  assert.ok(decided, 'the forward rules admit everyone: a finding');
  assert.match(decided.message, /→ \[fd00:d0c::242:ac11:3\]:80\)/);
  // A TTL / hop-limit match on the DNAT cannot be decided (the client's system sets it): which
  // target the finding names comes from the published entries of the listener's family and address.
  const rs = parseNftJson('{"nftables":[]}');
  addLegacy(rs, v4Rules().replace('-p tcp -m tcp --dport 8083', '-m ttl --ttl-gt 1 -p tcp -m tcp --dport 8083'), 4);
  addLegacy(rs, v6Rules().replace('-p tcp -m tcp --dport 8083', '-m hl --hl-gt 1 -p tcp -m tcp --dport 8083'), 6);
  const fw = { ...dockerView(), ruleset: rs, published: findPublished(rs) };
  const unsure = compareExposure(policy, [proxy6], fw).find((f) => f.kind === 'published-container-port');
  assert.ok(unsure, JSON.stringify(compareExposure(policy, [proxy6], fw)));
  assert.match(unsure.message, /\[fd00:d0c::242:ac11:3\]:80/);
  assert.doesNotMatch(unsure.message, /172\.17\.0\.3|\[object Object\]|ac11:3:80/);
});

test('without a default route, an interface brings no source routed through another one (a LAN client never arrives on docker0)', () => {
  const fw = dockerView();
  const docker0 = routedVia(fw, 4, 'docker0');
  assert.ok(!docker0.has('192.0.2.12'), 'a LAN client answers through eth0');
  assert.ok(docker0.has('172.17.0.3') && docker0.has('203.0.113.9'), 'its own prefix, and what no route names');
  assert.ok(routedVia(fw, 4, 'eth0').has('192.0.2.12') && !routedVia(fw, 4, 'eth0').has('172.17.0.3'));
  // Docker 20.10 without the userland proxy: DNAT without `! -i docker0`, DOCKER-USER on eth0 only.
  const rs = parseNftJson('{"nftables":[]}');
  addLegacy(rs, v4Rules().replace(' ! -i docker0 -p tcp -m tcp --dport 8083', ' -p tcp -m tcp --dport 8083').replace('-A FORWARD -o docker0 -m', '-A FORWARD -i eth0 ! -s 192.0.2.11/32 -j DROP\n-A FORWARD -o docker0 -m'), 4);
  const l: Listener = { ...proxy6, family: 4, address: '192.0.2.1' };
  const e = exposureOf(l, { ...fw, ruleset: rs, published: findPublished(rs) });
  assert.ok(containsCidr(e.sources, '192.0.2.11') && !containsCidr(e.sources, '192.0.2.12'), JSON.stringify(e));
  assert.deepEqual(e.perInterface?.eth0, ['192.0.2.11/32']);
});

test('read: a bridge port (a container veth on docker0) is not an interface packets arrive on', async () => {
  const links = [
    { ifname: 'lo', addr_info: [] },
    { ifname: 'eth0', addr_info: [{ local: '192.0.2.1', prefixlen: 24 }] },
    { ifname: 'docker0', linkinfo: { info_kind: 'bridge' }, addr_info: [{ local: '172.17.0.1', prefixlen: 16 }] },
    { ifname: 'veth0b7c344', linkinfo: { info_kind: 'veth', info_slave_kind: 'bridge' }, addr_info: [] },
  ];
  const exec = async (cmd: string, args: string[]) => {
    const out = (stdout: string) => ({ code: 0, stdout, stderr: '' });
    if (cmd === 'ip' && args.includes('addr')) return out(JSON.stringify(links));
    if (cmd === 'ip') return out('[]');
    if (cmd === 'nft') return out('{"nftables":[]}');
    return { code: 1, stdout: '', stderr: 'no' };
  };
  const fw = await readFirewall(undefined, exec as Parameters<typeof readFirewall>[1]);
  assert.deepEqual(fw.interfaces, ['eth0', 'docker0']);
});

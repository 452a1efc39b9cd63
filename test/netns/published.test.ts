// Docker-like published port without Docker: a "container" namespace behind the server, reached
// through Docker's own iptables-nft rules (DNAT in nat PREROUTING, DOCKER/DOCKER-USER in FORWARD),
// v4 and v6. `scan --json` predicts who reaches the published port; real connects from each client
// must agree — with Docker's rules alone, with DOCKER-USER restricting it, and after portwarden
// applies a policy (nft and iptables backends), whose forward chain then enforces it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { containsCidr } from 'cidr-tools';
import { needsRootAnd } from '../helpers/env.js';
import { createLab, createNamespace, deleteNamespace, flushConntrack, flushNeighbours, ip, nsRun, probe, recheck, startListeners, type Lab, type Probe } from '../helpers/lab.js';
import { runCli } from '../helpers/cli.js';
import { FIXTURES } from '../helpers/paths.js';

const CONTAINER = { v4: '172.17.0.2', v6: 'fd00:17::2', gw4: '172.17.0.1', gw6: 'fd00:17::1' };

/** Docker's rules for `docker run -p 8080:80` (recorded from Docker 24), for ip6tables too. */
function dockerRules(family: 4 | 6): string {
  const text = readFileSync(`${FIXTURES}nft/docker-iptables.rules`, 'utf8').replace(/^-A DOCKER-USER -s .*\n/m, '');
  if (family === 4) return text;
  return text
    .replace('! -d 127.0.0.0/8 ', '! -d ::1/128 ')
    .replace(/172\.17\.0\.0\/16/g, 'fd00:17::/64')
    .replace(/172\.17\.0\.2\/32/g, `${CONTAINER.v6}/128`)
    .replace('--to-destination 172.17.0.2:80', `--to-destination [${CONTAINER.v6}]:80`);
}

/** A namespace linked to the server by a veth named docker0 on the server's side. */
function addContainer(server: string): string {
  const ctr = createNamespace('ctr');
  ip(['-n', server, 'link', 'add', 'docker0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ctr]);
  ip(['-n', server, 'addr', 'add', `${CONTAINER.gw4}/16`, 'dev', 'docker0']);
  ip(['-n', server, '-6', 'addr', 'add', `${CONTAINER.gw6}/64`, 'dev', 'docker0', 'nodad']);
  ip(['-n', server, 'link', 'set', 'docker0', 'up']);
  ip(['-n', ctr, 'addr', 'add', `${CONTAINER.v4}/16`, 'dev', 'eth0']);
  ip(['-n', ctr, '-6', 'addr', 'add', `${CONTAINER.v6}/64`, 'dev', 'eth0', 'nodad']);
  ip(['-n', ctr, 'link', 'set', 'eth0', 'up']);
  ip(['-n', ctr, 'route', 'add', 'default', 'via', CONTAINER.gw4]);
  ip(['-n', ctr, '-6', 'route', 'add', 'default', 'via', CONTAINER.gw6]);
  // Forwarding is a per-namespace setting: this changes the server namespace only.
  nsRun(server, 'tee', ['/proc/sys/net/ipv4/ip_forward'], '1\n', true);
  nsRun(server, 'tee', ['/proc/sys/net/ipv6/conf/all/forwarding'], '1\n', true);
  return ctr;
}

interface Exposure {
  verdict: string;
  sources: string[];
  reason: string;
}
interface Scan {
  listeners: { port: number; exposure: Exposure }[];
  published: { proto: string; port: number; to: string; exposure: Exposure }[];
}

/** Predictions from scan --json for port 8080 against real connects from each client, v4 and v6. */
async function compare(lab: Lab, label: string, tally: { matched: number }): Promise<Exposure> {
  const ns = lab.server.ns;
  flushConntrack(ns);
  flushNeighbours(ns, ...lab.clients.map((c) => c.ns));
  const scan = await runCli(['scan', '--json', '--netns', ns]);
  assert.equal(scan.code, 0, scan.stderr);
  const parsed = JSON.parse(scan.stdout) as Scan;
  const rows = [...parsed.published, ...parsed.listeners].filter((l) => l.port === 8080);
  assert.ok(rows.length, `${label}: port 8080 is in the scan`);
  // One prediction for the port: the rows (a proxy's listeners, a published row) cover distinct families.
  const e: Exposure = { verdict: rows.map((r) => r.exposure.verdict).join('+'), sources: rows.flatMap((r) => r.exposure.sources), reason: rows.map((r) => r.exposure.reason).join('; ') };
  assert.ok(!e.verdict.includes('undetermined'), `${label}: ${e.reason}`);
  for (const client of lab.clients) {
    const probes: (Probe & { src: string })[] = [
      { proto: 'tcp', host: lab.server.v4, port: 8080, src: client.v4 },
      { proto: 'tcp', host: lab.server.v6, port: 8080, src: client.v6 },
    ];
    const seen = probe(client.ns, probes, { timeoutMs: 500 });
    probes.forEach((p, i) => {
      const predicted = e.sources.length > 0 && containsCidr(e.sources, p.src);
      const got = recheck(client.ns, p, seen[i]!, predicted);
      assert.equal(got === 'open', predicted, `${label}: ${p.src} → ${p.host}:8080 saw ${got}, predicted ${predicted} (${JSON.stringify(e)})`);
      tally.matched++;
    });
  }
  return e;
}

async function checkKinds(ns: string, policyFile: string): Promise<string[]> {
  const r = await runCli(['check', '--json', '--netns', ns, '--policy', policyFile]);
  return (JSON.parse(r.stdout) as { findings: { kind: string; port: number | null }[] }).findings.filter((f) => f.port === 8080).map((f) => f.kind);
}

test('published container port: predictions match real connects through Docker-style DNAT, before and after portwarden apply', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip', 'ss', 'conntrack', 'iptables-nft-restore', 'ip6tables-nft-restore')) return;
  const tally = { matched: 0 };
  for (const backend of ['nft', 'iptables'] as const) {
    const lab = createLab(2);
    const children: ChildProcess[] = [];
    let ctr: string | null = null;
    const dir = mkdtempSync(`${tmpdir()}/pw-pub-`);
    const ns = lab.server.ns;
    const [c1, c2] = lab.clients as [Lab['clients'][0], Lab['clients'][0]];
    try {
      ctr = addContainer(ns);
      children.push(await startListeners(ctr, [{ proto: 'tcp', host: '::', port: 80, ipv6Only: false }]));
      nsRun(ns, 'iptables-nft-restore', [], dockerRules(4));
      nsRun(ns, 'ip6tables-nft-restore', [], dockerRules(6));
      const policyFile = `${dir}/web.yaml`;
      writeFileSync(policyFile, `version: 1\nrefuse: reject\nsources: { c2: [${c2.v4}, "${c2.v6}"] }\nrules:\n  - { name: web, port: 8080, from: [c2] }\n`);

      // 1. Docker's rules alone: published to everyone, past the input chain — but the containers'
      // own prefixes, which arrive on docker0, where no DNAT (! -i docker0) takes them.
      let e = await compare(lab, `${backend}: docker only`, tally);
      assert.equal(e.verdict, 'restricted');
      assert.ok(containsCidr(e.sources, ['203.0.113.9', '2001:db8:9::1']) && !containsCidr(e.sources, CONTAINER.v4) && !containsCidr(e.sources, CONTAINER.v6), e.sources.join());
      assert.deepEqual(await checkKinds(ns, policyFile), ['published-container-port']);

      // 2. DOCKER-USER "! -s c1 -j DROP" also drops the container's answers (their source is the
      // container): nobody gets through, and the prediction must say so.
      const dockerUser = (args: string[]) => {
        nsRun(ns, 'iptables-nft', ['-I', 'DOCKER-USER', '1', ...args, '!', '-s', c1.v4, '-j', 'DROP']);
        nsRun(ns, 'ip6tables-nft', ['-I', 'DOCKER-USER', '1', ...args, '!', '-s', c1.v6, '-j', 'DROP']);
      };
      const dropDockerUser = () => ['iptables-nft', 'ip6tables-nft'].forEach((bin) => nsRun(ns, bin, ['-D', 'DOCKER-USER', '1']));
      dockerUser([]);
      e = await compare(lab, `${backend}: DOCKER-USER without -i`, tally);
      assert.equal(e.verdict, 'none');
      // explain follows the same path: c1's SYN gets through, the container's SYN-ACK does not.
      const ex = JSON.parse((await runCli(['explain', '8080', '--from', c1.v4, '--netns', ns, '--json'])).stdout) as { verdict: string; steps: { packet?: string; outcome: string }[] };
      assert.equal(ex.verdict, 'drop', JSON.stringify(ex));
      assert.ok(ex.steps.some((s) => s.packet === 'SYN-ACK out' && s.outcome === 'drop'), JSON.stringify(ex.steps));
      dropDockerUser();
      // 3. The documented form, restricted to the outside interface: c1 only, v4 and v6.
      dockerUser(['-i', 'eth0']);
      e = await compare(lab, `${backend}: DOCKER-USER -i eth0`, tally);
      assert.deepEqual(e.sources.sort(), [`${c1.v4}/32`, `${c1.v6}/128`].sort());
      dropDockerUser();

      // 4. portwarden applies "8080 from c2 only": its forward chain enforces it on the container.
      const r = await runCli(['apply', '--policy', policyFile, '--netns', ns, '--state-dir', `${dir}/state`, '--backend', backend, '--yes', '--confirm', '0']);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /warning: tcp\/8080/, 'the policy allows 8080 from c2: no warning');
      e = await compare(lab, `${backend}: after apply`, tally);
      assert.deepEqual(e.sources.sort(), [`${c2.v4}/32`, `${c2.v6}/128`].sort());
      assert.deepEqual(probe(c1.ns, [{ proto: 'tcp', host: lab.server.v4, port: 8080 }]), ['refused'], 'refuse: reject answers on the forward path too');
      assert.deepEqual(await checkKinds(ns, policyFile), [], 'the live forward path now matches the policy');

      // 5. A docker-proxy listener on the host port: still one row, the same prediction.
      children.push(await startListeners(ns, [{ proto: 'tcp', host: '0.0.0.0', port: 8080 }], 'docker-proxy'));
      let scan = JSON.parse((await runCli(['scan', '--json', '--netns', ns])).stdout) as Scan;
      assert.deepEqual(scan.listeners.find((l) => l.port === 8080)!.exposure.sources, [`${c2.v4}/32`]);
      assert.deepEqual(scan.published.map((p) => [p.port, p.exposure.sources]), [[8080, [`${c2.v6}/128`]]], 'a v4-only proxy leaves the v6 DNAT its own row');
      children.push(await startListeners(ns, [{ proto: 'tcp', host: '::', port: 8080, ipv6Only: true }], 'docker-proxy'));
      scan = JSON.parse((await runCli(['scan', '--json', '--netns', ns])).stdout) as Scan;
      assert.equal(scan.published.length, 0, 'docker-proxy listening on both families stands for the published port');
      await compare(lab, `${backend}: docker-proxy`, tally);
      await Promise.all(children.splice(1).map((c) => new Promise((done) => c.once('exit', done).kill('SIGKILL'))));

      // 6. A policy that does not mention 8080: apply warns that the container goes dark, and it does.
      const sshOnly = `${dir}/ssh.yaml`;
      writeFileSync(sshOnly, 'version: 1\nrules:\n  - { name: ssh, port: 22 }\n');
      const r2 = await runCli(['apply', '--policy', sshOnly, '--netns', ns, '--state-dir', `${dir}/state`, '--backend', backend, '--yes', '--confirm', '0']);
      assert.equal(r2.code, 0, r2.stderr);
      assert.match(r2.stderr, /warning: tcp\/8080 is published to a container \(→ 172\.17\.0\.2:80, .*\), but the policy \(no rule covers it\) lets no one reach it/);
      e = await compare(lab, `${backend}: policy without 8080`, tally);
      assert.equal(e.verdict, 'none');
    } finally {
      children.forEach((c) => c.kill('SIGKILL'));
      if (ctr) deleteNamespace(ctr);
      lab.destroy();
    }
  }
  t.diagnostic(`published port: ${tally.matched} predictions matched real connects (2 backends × 6 states × 2 clients × v4/v6)`);
  assert.equal(tally.matched, 48);
});

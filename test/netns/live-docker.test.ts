// The real Docker (Debian's docker.io 20.10: dockerd, containerd, runc, docker-proxy, iptables-nft
// and ip6tables rules) inside the lab's server namespace, with a private mount namespace and a
// busybox image imported from this machine: published (-p 8081:80) and pinned (-p ADDR:8082:80,
// -p [ADDR6]:8083:80) ports, the userland proxy on and off, IPv6 on and off, and a DOCKER-USER
// rule of Docker's documented form. Every prediction of `scan --json` and every `explain` verdict
// must equal a real connect from the lab's clients. Skipped (with the reason) where dockerd cannot
// start, unless CI=true: it does start on the project's machines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { needsRootAnd } from '../helpers/env.js';
import { createLab, nsRun, type Host } from '../helpers/lab.js';
import { runCli } from '../helpers/cli.js';
import { judge, newTally, report } from '../helpers/judge.js';
import { client, importBusybox, startDockerd, type DockerOptions, type Manager } from '../helpers/managers.js';

const PORTS = [8081, 8082, 8083];

/** Starts dockerd, or skips the test with dockerd's own error (a failure under CI=true). */
async function dockerdOrSkip(t: { skip(m: string): void }, ns: string, o: DockerOptions): Promise<Manager | null> {
  try {
    return await startDockerd(ns, o);
  } catch (err) {
    const reason = `dockerd does not start here: ${(err as Error).message}`;
    if (process.env.CI === 'true') throw new Error(reason, { cause: err });
    console.log(`# skipped: ${reason}`);
    t.skip(reason);
    return null;
  }
}

const inspect = async (m: Manager, name: string) => {
  const [v4, v6] = (await client(m, 'docker', ['inspect', '-f', '{{.NetworkSettings.IPAddress}} {{.NetworkSettings.GlobalIPv6Address}}', name])).trim().split(' ');
  return { v4: v4!, v6: v6 ?? '' };
};

test('live Docker 20.10: scan and explain match real connects to published and pinned ports, proxy on and off, IPv6 on and off, DOCKER-USER', async (t) => {
  if (!needsRootAnd(t, 'dockerd', 'containerd', 'runc', 'docker', 'unshare', 'nsenter', 'ip', 'ss', 'conntrack', 'iptables-nft', 'ip6tables-nft', 'tar')) return;
  const tally = newTally();
  const dir = mkdtempSync(`${tmpdir()}/pw-live-docker-`);
  const configs: (DockerOptions & { name: string })[] = [
    { name: 'proxy on, IPv6 on', userlandProxy: true, ipv6: true },
    { name: 'proxy off, IPv6 on', userlandProxy: false, ipv6: true },
    { name: 'proxy off, IPv4-only network', userlandProxy: false, ipv6: false },
    { name: 'proxy on, IPv4-only network', userlandProxy: true, ipv6: false },
  ];
  try {
    for (const cfg of configs) {
      const lab = createLab(2);
      const ns = lab.server.ns;
      const [c1] = lab.clients as [Host, Host];
      let docker: Manager | null = null;
      try {
        docker = await dockerdOrSkip(t, ns, cfg);
        if (!docker) return;
        const image = await importBusybox(docker);
        const publish = ['-p', '8081:80', '-p', `${lab.server.v4}:8082:80`, ...(cfg.ipv6 || cfg.userlandProxy ? ['-p', `[${lab.server.v6}]:8083:80`] : [])];
        await client(docker, 'docker', ['run', '-d', '--name', 'web', ...publish, image, '/bin/busybox', 'nc', '-ll', '-p', '80', '-e', '/bin/busybox', 'echo', 'ok']);
        const ctr = await inspect(docker, 'web');
        assert.match(ctr.v4, /^172\.17\./, `${cfg.name}: the container has an address on docker0`);
        if (cfg.ipv6) assert.match(ctr.v6, /^fd00:d0c:/);

        const rows = await judge(lab, cfg.name, PORTS, tally);

        // Item 4: the DNAT target a finding names is the one of the family and address asked.
        const policy = `${dir}/web.yaml`;
        writeFileSync(policy, `version: 1\nsources: { c1: [${c1.v4}, "${c1.v6}"] }\nrules:\n  - { name: web, port: [8081, 8082, 8083], from: [c1] }\n`);
        const check = JSON.parse((await runCli(['check', '--json', '--netns', ns, '--policy', policy])).stdout) as { findings: { kind: string; port: number; address: string | null; message: string }[] };
        const pinned6 = check.findings.find((f) => f.kind === 'published-container-port' && f.port === 8083 && f.address === lab.server.v6);
        if (cfg.ipv6) {
          assert.ok(pinned6, `${cfg.name}: a finding for the IPv6 pinned publish: ${JSON.stringify(check.findings)}`);
          assert.ok(pinned6.message.includes(`→ [${ctr.v6}]:80`), `${cfg.name}: it names the IPv6 target: ${pinned6.message}`);
        }
        for (const f of check.findings) assert.doesNotMatch(f.message, /\[object Object\]|fd00:d0c:[0-9a-f:]*:80\b(?!\])/, `${cfg.name}: one notation for DNAT targets: ${f.message}`);
        if (!cfg.userlandProxy && !cfg.ipv6) {
          // Nothing listens on the IPv6 side and nothing translates there: say that, not "refused".
          const v6 = rows.filter((r) => r.port === 8081 && r.family === undefined && r.exposure.sources.every((s) => s.includes(':')));
          for (const r of v6) assert.doesNotMatch(r.exposure.reason, /refuse every new connection/, `${cfg.name}: ${r.exposure.reason}`);
        }

        // Docker's documented DOCKER-USER form: only c1 reaches the containers from outside (eth0).
        nsRun(ns, 'iptables-nft', ['-I', 'DOCKER-USER', '-i', 'eth0', '!', '-s', c1.v4, '-j', 'DROP']);
        // Docker 20.10 makes no DOCKER-USER chain in ip6tables: the rule restricts IPv4 only.
        await judge(lab, `${cfg.name}, DOCKER-USER -i eth0 ! -s c1 -j DROP`, PORTS, tally);
        // And the conntrack form Docker's documentation gives for the port the client asked for.
        nsRun(ns, 'iptables-nft', ['-I', 'DOCKER-USER', '-i', 'eth0', '-p', 'tcp', '-m', 'conntrack', '--ctorigdstport', '8082', '--ctdir', 'ORIGINAL', '-j', 'DROP']);
        await judge(lab, `${cfg.name}, DOCKER-USER --ctorigdstport 8082 DROP`, [8082], tally);
      } finally {
        if (docker) await docker.stop();
        lab.destroy();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  report('live Docker', tally, (m) => t.diagnostic(m));
});

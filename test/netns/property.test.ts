// Property: for random small policies and probes, what a real connect observes equals the policy's
// own answer, allows(policy, source, proto, port). fast-check prints the seed and the shrunk
// counterexample on failure; PW_SEED=<n> replays a run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { allows } from '../../agent/firewall/oracle.js';
import { loadPolicy } from '../../agent/policy/load.js';
import { needsRootAnd } from '../helpers/env.js';
import { createLab, flushConntrack, probe, recheck, startListeners, type Lab, type Probe } from '../helpers/lab.js';
import { loadRules, type TestBackend } from '../helpers/firewall.js';

const PORTS = [7000, 7001, 7002, 7003, 7004, 7005];
const SOURCES = ['192.0.2.11', '192.0.2.12', '192.0.2.8/29', '198.51.100.0/24', '2001:db8:1::11', '2001:db8:1::12', '2001:db8:1::/120', '2001:db8:99::/48'];

const portItem = fc.oneof(
  fc.constantFrom(...PORTS),
  fc.tuple(fc.constantFrom(...PORTS), fc.integer({ min: 0, max: 3 })).map(([lo, n]) => `${lo}-${lo + n}`),
);
const rule = fc.record({
  port: fc.oneof(portItem, fc.array(portItem, { minLength: 1, maxLength: 3 })),
  proto: fc.constantFrom('tcp', 'udp'),
  from: fc.oneof(fc.constant('any'), fc.constant('localhost'), fc.subarray(SOURCES, { minLength: 1, maxLength: 3 })),
  action: fc.constantFrom('allow', 'allow', 'deny'),
});
const policyDoc = fc.record({
  default: fc.constantFrom('deny', 'allow'),
  refuse: fc.constantFrom('reject', 'drop'),
  rules: fc.array(rule, { maxLength: 4 }),
});

async function property(backend: TestBackend, runs: number): Promise<number> {
  const lab: Lab = createLab(2);
  const children: ChildProcess[] = [];
  let checked = 0;
  try {
    children.push(
      await startListeners(lab.server.ns, PORTS.flatMap((port) => [
        { proto: 'tcp' as const, host: '::', port, ipv6Only: false },
        { proto: 'udp' as const, host: '::', port, ipv6Only: false },
      ])),
    );
    const seed = process.env.PW_SEED ? Number(process.env.PW_SEED) : undefined;
    await fc.assert(
      fc.asyncProperty(policyDoc, async (doc) => {
        const text = stringify({ version: 1, ...doc, rules: doc.rules.map((r, i) => ({ name: `r${i}`, ...r })) });
        const { policy } = loadPolicy('random.yaml', { text, hostname: 'lab' });
        await loadRules(lab.server.ns, backend, policy);
        flushConntrack(lab.server.ns);
        for (const client of lab.clients) {
          const probes: Probe[] = [lab.server.v4, lab.server.v6].flatMap((host) =>
            PORTS.flatMap((port) => [{ proto: 'tcp' as const, host, port }, { proto: 'udp' as const, host, port }]),
          );
          const seen = probe(client.ns, probes, { timeoutMs: 400 });
          probes.forEach((p, i) => {
            const source = p.host.includes(':') ? client.v6 : client.v4;
            const want = allows(policy, source, p.proto, p.port);
            const got = recheck(client.ns, p, seen[i]!, want);
            assert.equal(got === 'open', want, `${backend}: ${p.proto}/${p.port} from ${source} saw ${got}, policy says ${want ? 'accept' : 'refuse'}\n${text}`);
            checked++;
          });
        }
      }),
      { numRuns: runs, ...(seed !== undefined ? { seed } : {}), endOnFailure: true, includeErrorInReport: true },
    );
  } finally {
    children.forEach((c) => c.kill('SIGKILL'));
    lab.destroy();
  }
  return checked;
}

for (const backend of ['nft', 'iptables'] as const) {
  test(`property (${backend}): real connects agree with allows() for random policies`, async (t) => {
    if (!needsRootAnd(t, backend === 'nft' ? 'nft' : 'iptables-restore', 'nsenter', 'ip', 'conntrack')) return;
    const checked = await property(backend, 20);
    t.diagnostic(`${backend}: ${checked} probes matched the oracle`);
    assert.ok(checked >= 20 * 48);
  });
}

// A local redirect (firewalld's forward-port 8089 → 9090, a DNAT to this host's own address) sends
// connections to a listener through the input path: scan's per-port prediction, the published
// row and explain must all agree with real connects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { containsCidr } from 'cidr-tools';
import { needsRootAnd } from '../helpers/env.js';
import { createLab, flushConntrack, nsRun, probe, recheck, startListeners } from '../helpers/lab.js';
import { runCli } from '../helpers/cli.js';
import { FIXTURES } from '../helpers/paths.js';

interface Exposure {
  verdict: string;
  sources: string[];
  perPort?: Record<string, string[]>;
}

test('redirect: a port redirected to a listener reaches it, and scan, explain and connects agree', async (t) => {
  if (!needsRootAnd(t, 'nft', 'nsenter', 'ip', 'ss', 'conntrack')) return;
  const lab = createLab(2);
  const children: ChildProcess[] = [];
  try {
    children.push(await startListeners(lab.server.ns, [{ proto: 'tcp', host: '0.0.0.0', port: 9090 }]));
    nsRun(lab.server.ns, 'nft', ['-f', '-'], readFileSync(`${FIXTURES}nft/redirect.nft`, 'utf8'));
    flushConntrack(lab.server.ns);
    const scan = JSON.parse((await runCli(['scan', '--json', '--netns', lab.server.ns])).stdout) as { listeners: { port: number; exposure: Exposure }[]; published: { port: number; to: string; exposure: Exposure }[] };
    const e = scan.listeners.find((l) => l.port === 9090)!.exposure;
    assert.equal(e.verdict, 'any', JSON.stringify(e));
    assert.deepEqual(scan.published.map((p) => `${p.port}→${p.to}`).sort(), ['8089→:9090', '8091→192.0.2.1:9090']);
    let matched = 0;
    for (const client of lab.clients) {
      for (const port of [9090, 8089, 8091]) {
        const sources = e.perPort?.[String(port)] ?? scan.published.find((p) => p.port === port)!.exposure.sources;
        const predicted = containsCidr(sources, client.v4);
        const p = { proto: 'tcp' as const, host: lab.server.v4, port };
        const got = recheck(client.ns, p, probe(client.ns, [p], { timeoutMs: 500 })[0]!, predicted);
        assert.equal(got === 'open', predicted, `${client.v4} → ${port}: saw ${got}, predicted ${predicted} (${JSON.stringify(e)})`);
        const ex = JSON.parse((await runCli(['explain', String(port), '--from', client.v4, '--to', lab.server.v4, '--netns', lab.server.ns, '--json'])).stdout) as { verdict: string };
        assert.equal(ex.verdict === 'accept', got === 'open', `explain ${port} from ${client.v4}: ${ex.verdict}, a connect saw ${got}`);
        matched++;
      }
    }
    assert.equal(matched, 6);
    t.diagnostic(`redirect: ${matched} predictions and explain verdicts matched real connects`);
  } finally {
    children.forEach((c) => c.kill('SIGKILL'));
    lab.destroy();
  }
});

// A firewall reading that takes seconds (a 10 000-rule ruleset just changed) must not hold the
// daemon's cycle: the cycle goes on with the last view, whose findings stand (nothing resolves
// from a half-read firewall), and a check follows as soon as the new view is there. The agent,
// its state dir and journal are real; the tools answer from here, nft's JSON listing slowly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import pino from 'pino';
import { Agent } from '../agent/daemon/agent.js';
import type { Exec } from '../agent/exec.js';
import { until } from './helpers/wait.js';

const SLOW_MS = 2000;

/** An input chain with policy drop that accepts tcp/3000 from everyone (open) or nobody. */
const ruleset = (open: boolean) => JSON.stringify({ nftables: [
  { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
  { table: { family: 'inet', name: 'f', handle: 1 } },
  { chain: { family: 'inet', table: 'f', name: 'input', handle: 1, type: 'filter', hook: 'input', prio: 0, policy: 'drop' } },
  ...(open ? [{ rule: { family: 'inet', table: 'f', chain: 'input', handle: 2, expr: [{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 3000 } }, { accept: null }] } }] : []),
] });

test('watch: a slow firewall reading does not hold the cycle; its answer is checked as soon as it is there', async () => {
  const dir = mkdtempSync(`${tmpdir()}/pw-slow-fw-`);
  let open = true;
  let slow = false;
  let slowText = false;
  let nftCalls = 0;
  const answer = (cmd: string, args: string[]): string => {
    if (cmd === 'nsenter') return answer(args[args.indexOf('--') + 1]!, args.slice(args.indexOf('--') + 2));
    if (cmd === 'ss') return 'tcp   LISTEN 0      128          0.0.0.0:3000      0.0.0.0:*    ino:0 sk:1 <->\n';
    if (cmd === 'ip') return args.includes('addr') ? '[{"ifname":"eth0","addr_info":[{"local":"192.0.2.10","prefixlen":24}]}]' : args.includes('-4') ? '[{"dst":"default","dev":"eth0"}]' : '[]';
    if (cmd === 'nft') return args[0] === '-j' ? ruleset(open) : `table inet f { # ${open}\n}\n`;
    throw Object.assign(new Error(`${cmd} is not installed`), { code: 'ENOENT' });
  };
  const exec: Exec = async (cmd, args) => {
    const stdout = answer(cmd, args);
    if (cmd === 'nft') nftCalls++;
    if (cmd === 'nft' && ((slow && args[0] === '-j') || slowText)) await new Promise((r) => setTimeout(r, SLOW_MS));
    return { stdout, stderr: '', code: 0 };
  };
  const agent = new Agent(`${dir}/config.yaml`, pino({ level: 'silent' }), false, exec);
  try {
    writeFileSync(`${dir}/policy.yaml`, 'version: 1\nrules:\n  - { name: app, port: 3000, from: [10.0.0.0/8] }\n');
    writeFileSync(`${dir}/config.yaml`, [`policy: ${dir}/policy.yaml`, `state_dir: ${dir}/state`, 'schedule: "0 0 * * * *"', 'settle: 1', 'repeat: 0', 'attempts: false', 'sinks: []', ''].join('\n'));
    await agent.start();
    const events = () => readFileSync(`${dir}/state/events.jsonl`, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; finding: { kind: string } });
    const gap = (event: string) => events().filter((e) => e.event === event && e.finding.kind === 'firewall-gap').length;

    await agent.runCycle(); // the first view is waited for
    assert.equal(gap('opened'), 1, 'everyone may reach tcp/3000, the policy says 10.0.0.0/8');

    open = false;
    slow = true;
    const t0 = performance.now();
    await agent.runCycle();
    const took = performance.now() - t0;
    assert.ok(took < SLOW_MS / 2, `the cycle waited ${took.toFixed(0)} ms for a reading of ${SLOW_MS} ms`);
    assert.equal(gap('resolved'), 0, 'the last view stands meanwhile');
    await until('the new view checked', () => gap('resolved') === 1, SLOW_MS * 3);

    // Nothing watches the ruleset here, so each reading lists it (slowly) to hash it: a reading
    // that finds it unchanged starts no further check, or the daemon would read it in a loop.
    slowText = true;
    await agent.runCycle();
    await new Promise((r) => setTimeout(r, SLOW_MS * 2.5));
    const calls = nftCalls;
    await new Promise((r) => setTimeout(r, SLOW_MS * 2.5));
    assert.equal(nftCalls, calls, 'the firewall is not read again and again while nothing changes');
    assert.equal(gap('opened'), 1);
  } finally {
    await agent.stop(500);
    rmSync(dir, { recursive: true, force: true });
  }
});

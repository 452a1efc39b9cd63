// PW_BENCH_ONLY=fleet: the per-agent figures behind docs/scale.md, measured on this machine.
//  1. CPU per watch cycle (in-process, warm, mean of 30; with the ss/nft it runs), 50 listeners in a lab namespace, exposure off/on.
//  2. Bytes per Alertmanager resend (the POST body) for 1, 3, 10 and 50 open findings.
//  3. A real Alertmanager taking the load of 10 000 agents (3 open findings each, resend 1m, i.e.
//     167 POSTs/s, 500 alerts/s) for 30 s: its CPU, and the alerts it then holds.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { pino } from 'pino';
import { Agent } from '../../agent/daemon/agent.js';
import { alertsBody } from '../../agent/alerts/sinks/alertmanager.js';
import type { JournalEvent } from '../../agent/alerts/journal.js';
import type { Batch } from '../../agent/alerts/sinks/sink.js';
import { createNamespace, deleteNamespace, startListeners } from '../helpers/lab.js';
import { Alertmanager } from '../helpers/alertmanager.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function finding(host: string, n: number): JournalEvent {
  const port = 6000 + n;
  return {
    event: 'opened',
    at: new Date().toISOString(),
    host,
    finding: {
      id: `unexpected-listener:tcp/${port}:wildcard:redis-server`, kind: 'unexpected-listener', severity: 'high', proto: 'tcp', port, address: '0.0.0.0', rule: null,
      processes: [{ pid: 4242, name: 'redis-server', exe: '/usr/bin/redis-server', user: 'redis', cmdline: null }],
      message: `tcp/${port} on 0.0.0.0 (redis-server, user redis) is listening but no rule of the policy covers it (default deny)`,
      remedy: `stop redis-server or bind it to 127.0.0.1; if it should listen, add a rule for tcp/${port} to the policy`,
    },
  };
}

async function cyclesCpu(exposure: boolean, cycles: number): Promise<{ ownMs: number; childMs: number; wallMs: number }> {
  const ns = createNamespace('fleetb');
  const dir = mkdtempSync(`${tmpdir()}/pw-fleet-bench-`);
  const specs = Array.from({ length: 50 }, (_, i) => ({ proto: (i % 5 === 4 ? 'udp' : 'tcp') as 'tcp' | 'udp', host: '0.0.0.0', port: 7000 + i }));
  const child = await startListeners(ns, specs);
  try {
    writeFileSync(`${dir}/policy.yaml`, 'version: 1\nrules:\n' + Array.from({ length: 30 }, (_, i) => `  - { name: r${i}, port: ${7000 + i} }\n`).join(''));
    writeFileSync(`${dir}/config.yaml`, `policy: ${dir}/policy.yaml\nstate_dir: ${dir}/state\nnetns: ${ns}\nexposure: ${exposure}\nsettle: 1\n`);
    const agent = new Agent(`${dir}/config.yaml`, pino({ level: 'silent' }));
    await agent.start();
    try {
      for (let i = 0; i < 3; i++) await agent.runCycle(); // warm: process names cached, findings open
      // The agent's own CPU, and its children's (ss, nft: counted when reaped), over all cycles.
      const wall: number[] = [];
      const c0 = process.cpuUsage();
      const k0 = childTicks();
      for (let i = 0; i < cycles; i++) {
        const t0 = performance.now();
        await agent.runCycle();
        wall.push(performance.now() - t0);
      }
      const c = process.cpuUsage(c0);
      const ownMs = (c.user + c.system) / 1000 / cycles;
      const childMs = ((childTicks() - k0) * 10) / cycles;
      return { ownMs, childMs, wallMs: median(wall) };
    } finally {
      await agent.stop();
    }
  } finally {
    child.kill();
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU of this process's reaped children (cutime + cstime), in clock ticks (100/s). */
function childTicks(): number {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return Number(f[13]) + Number(f[14]);
}

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (100/s)
}

async function alertmanagerLoad(agents: number, findings: number, seconds: number, postsPerSecond: number) {
  const am = await new Alertmanager().start();
  try {
    const bodies = Array.from({ length: agents }, (_, a) => {
      const batch: Batch = { id: `b${a}`, createdAt: new Date().toISOString(), attempts: 0, events: Array.from({ length: findings }, (_, n) => finding(`host-${a}`, n)) };
      return alertsBody(batch, new Date(), 60_000);
    });
    const t0 = cpuTicks(am.pid!);
    const start = performance.now();
    let sent = 0;
    let failed = 0;
    const inflight = new Set<Promise<void>>();
    while (performance.now() - start < seconds * 1000) {
      const due = Math.floor(((performance.now() - start) / 1000) * postsPerSecond);
      while (sent < due) {
        const body = bodies[sent % agents]!;
        sent++;
        const p: Promise<void> = fetch(`${am.url}/api/v2/alerts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
          .then((r) => r.arrayBuffer().then(() => void (r.ok || failed++)), () => void failed++)
          .finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(inflight);
    const elapsed = (performance.now() - start) / 1000;
    const cpuSeconds = (cpuTicks(am.pid!) - t0) / 100;
    const held = (await am.alerts()).length;
    return { sent, failed, elapsed, cpuSeconds, held };
  } finally {
    await am.destroy();
  }
}

export async function fleetBench(): Promise<void> {
  console.log('fleet bench (docs/scale.md): medians on this machine; the load average is printed, figures are noisy under load');
  console.log(`load average: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}, cores: ${(await import('node:os')).cpus().length}\n`);
  console.log('| watch cycle, 50 listeners, 30 rules | agent CPU per cycle | its tools (ss, nft) per cycle | total CPU per cycle | wall per cycle (median) |');
  console.log('|---|---|---|---|---|');
  for (const exposure of [false, true]) {
    const r = await cyclesCpu(exposure, 30);
    console.log(`| exposure: ${exposure} | ${r.ownMs.toFixed(1)} ms | ${r.childMs.toFixed(1)} ms | ${(r.ownMs + r.childMs).toFixed(1)} ms | ${r.wallMs.toFixed(1)} ms |`);
  }
  console.log('\n| open findings | Alertmanager POST body per resend |');
  console.log('|---|---|');
  for (const n of [1, 3, 10, 50]) {
    const batch: Batch = { id: 'b', createdAt: new Date().toISOString(), attempts: 0, events: Array.from({ length: n }, (_, i) => finding('web-0042.example.net', i)) };
    console.log(`| ${n} | ${Buffer.byteLength(alertsBody(batch, new Date(), 60_000))} bytes |`);
  }
  const agents = Number(process.env.PW_BENCH_FLEET_AGENTS ?? 10_000);
  const seconds = Number(process.env.PW_BENCH_FLEET_SECONDS ?? 30);
  const rate = agents / 60; // each agent posts once per resend (1m)
  const r = await alertmanagerLoad(agents, 3, seconds, rate);
  console.log(`\nAlertmanager 0.25 (one instance) under ${agents} agents × 3 open findings, resend 1m: ${rate.toFixed(0)} POSTs/s, ${(rate * 3).toFixed(0)} alerts/s for ${r.elapsed.toFixed(0)} s`);
  console.log('| POSTs sent | failed | Alertmanager CPU | = cores | alerts held after |');
  console.log('|---|---|---|---|---|');
  console.log(`| ${r.sent} | ${r.failed} | ${r.cpuSeconds.toFixed(1)} s | ${(r.cpuSeconds / r.elapsed).toFixed(2)} | ${r.held} |`);
}

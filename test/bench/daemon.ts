// PW_BENCH_ONLY=daemon: the watch daemon's cycle over a 10 000-rule ruleset that does not change
// (process CPU per cycle, with the firewall view kept between cycles and, beside it, read every
// cycle as before), and how long a ruleset change takes to reach a webhook on an hourly schedule.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { Agent } from '../../agent/daemon/agent.js';
import { bigPolicy } from './big-policy.js';
import { createNamespace, deleteNamespace, nsRun, startListeners } from '../helpers/lab.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';
import { CLI } from '../helpers/paths.js';
import { until } from '../helpers/wait.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** CPU (user + system, ms) of the children this process has waited for (nft, ss, ip …): /proc/self/stat, in clock ticks of 10 ms. */
function childrenCpu(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[13]) + Number(fields[14])) * 10; // cutime, cstime (fields 16, 17)
}

/** Process CPU (user + system, ms) of each of n cycles; the tools' CPU (children) per cycle, on average. */
async function cycleCpu(agent: Agent, n: number): Promise<{ cpu: number[]; wall: number[]; children: number }> {
  const cpu: number[] = [];
  const wall: number[] = [];
  const c0 = childrenCpu();
  for (let i = 0; i < n; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await agent.runCycle();
    const c = process.cpuUsage(c0);
    wall.push(performance.now() - t0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { cpu, wall, children: (childrenCpu() - c0) / n };
}

export async function daemonBench(cycles = 15, listeners = 200) {
  const ns = createNamespace('daemon');
  const dir = mkdtempSync(`${tmpdir()}/pw-bench-daemon-`);
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  const receiver = new WebhookReceiver(secret);
  const log = pino({ level: 'silent' });
  const agents: Agent[] = [];
  let server: ChildProcess | null = null;
  try {
    const policy = `${dir}/policy.yaml`;
    writeFileSync(policy, JSON.stringify(bigPolicy(10_000, 100_000)));
    const r = spawnSync(process.execPath, [CLI, 'apply', '--policy', policy, '--netns', ns, '--state-dir', `${dir}/state`, '--yes', '--confirm', '0'], { encoding: 'utf8', maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(`apply exited ${r.status}: ${r.stderr.slice(0, 500)}`);
    server = await startListeners(ns, Array.from({ length: listeners }, (_, i) => ({ proto: 'tcp' as const, host: '0.0.0.0', port: 1024 + i })));
    await receiver.start();
    writeFileSync(`${dir}/secret`, secret, { mode: 0o600 });
    const config = (state: string) => {
      const file = `${dir}/${state}.yaml`;
      writeFileSync(file, [
        `policy: ${policy}`, `state_dir: ${dir}/${state}`, 'schedule: "0 0 * * * *"', 'settle: 2', 'repeat: 0', `netns: ${ns}`,
        'sinks:', '  - type: webhook', `    url: http://127.0.0.1:${receiver.port}/hook`, `    secret_file: ${dir}/secret`, '',
      ].join('\n'));
      return file;
    };

    // The daemon as it runs now: nft monitor, the view kept between cycles.
    const agent = new Agent(config('state'), log);
    agents.push(agent);
    await agent.start();
    agent.schedule();
    await until('nft monitor', () => agent.watchingFirewall, 10_000);
    await agent.runCycle(); // after the monitor subscribed: the one full read
    await agent.runCycle();
    const kept = await cycleCpu(agent, cycles);

    // Change → sink: insert a rule into our table (firewall-drift opens), delete it (it resolves).
    // Timed from when nft returns (the change is in the kernel; nft itself takes about a second
    // to change a 10 000-rule table, and this process, the agent's, waits for it), that time beside.
    const latency: number[] = [];
    const nftMs: number[] = [];
    const change = async (args: string[], event: string, seen: number, input?: string, kind = 'firewall-drift') => {
      const t0 = performance.now();
      const out = nsRun(ns, 'nft', args, input);
      const t1 = performance.now();
      nftMs.push(t1 - t0);
      await until(`${kind} ${event}`, () => receiver.events().slice(seen).some((e) => e.event === event && e.id.includes(kind)), 60_000);
      latency.push(performance.now() - t1);
      return out;
    };
    for (let round = 0; round < 2; round++) {
      const seen = receiver.events().length;
      const echo = await change(['-e', '-a', 'insert', 'rule', 'inet', 'portwarden', 'input', 'tcp', 'dport', '9', 'accept'], 'opened', seen);
      const handle = /# handle (\d+)/.exec(echo)?.[1];
      if (!handle) throw new Error(`no handle in: ${echo}`);
      await change(['delete', 'rule', 'inet', 'portwarden', 'input', 'handle', handle], 'resolved', seen);
    }
    // Another table drops what the policy lets net1 reach (tcp 1025, rule r1): blocked-service opens; its removal resolves it.
    const other = ['table inet pwbench {', '\tchain input {', '\t\ttype filter hook input priority filter - 10; policy accept;', '\t\ttcp dport 1025 drop', '\t}', '}', ''].join('\n');
    let seen = receiver.events().length;
    await change(['-f', '-'], 'opened', seen, other, 'blocked-service');
    await change(['delete', 'table', 'inet', 'pwbench'], 'resolved', seen, undefined, 'blocked-service');
    // Our own table drops that port (its input chain listed again, not the ruleset): blocked-service opens; the rule's removal resolves it.
    seen = receiver.events().length;
    const ours = await change(['-e', '-a', 'insert', 'rule', 'inet', 'portwarden', 'input', 'tcp', 'dport', '1025', 'drop'], 'opened', seen, undefined, 'blocked-service');
    const oursHandle = /# handle (\d+)/.exec(ours)?.[1];
    if (!oursHandle) throw new Error(`no handle in: ${ours}`);
    await change(['delete', 'rule', 'inet', 'portwarden', 'input', 'handle', oursHandle], 'resolved', seen, undefined, 'blocked-service');
    // Our table flushed (every rule gone at once): firewall-drift opens.
    seen = receiver.events().length;
    await change(['flush', 'table', 'inet', 'portwarden'], 'opened', seen);

    // Beside it, the cycle as before: the whole firewall read and parsed every cycle (watch --once's path).
    mkdirSync(`${dir}/state-ref`, { mode: 0o700 });
    copyFileSync(`${dir}/state/applied.json`, `${dir}/state-ref/applied.json`);
    const ref = new Agent(config('state-ref'), log, true);
    agents.push(ref);
    await ref.start();
    const reread = await cycleCpu(ref, 3);
    return { listeners, cycles, kept, reread, latency, nftMs };
  } finally {
    for (const a of agents) await a.stop(500).catch(() => undefined);
    server?.kill('SIGKILL');
    await receiver.stop();
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
}

export function printDaemonBench(r: Awaited<ReturnType<typeof daemonBench>>) {
  const f = (x: number) => `${x.toFixed(1)} ms`;
  console.log(`\ndaemon: watch cycle over the applied 10 000-rule policy (bigPolicy), ${r.listeners} listeners, nothing changed; process CPU per cycle (median)`);
  console.log('| CPU, view kept (nft monitor) | its tools\' CPU (mean) | wall, view kept | CPU, read every cycle (as before) | its tools\' CPU (mean) | wall, read every cycle | kept / read | change → webhook, from when nft exits: our table: rule inserted (drift opened), deleted (resolved), again; another table drops a port (blocked-service opened), removed (resolved); our table drops it (blocked-service opened), removed (resolved); our table flushed (drift opened) | nft insert/delete itself (median) |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  console.log(`| ${f(median(r.kept.cpu))} (of ${r.cycles}) | ${f(r.kept.children)} | ${f(median(r.kept.wall))} | ${f(median(r.reread.cpu))} (of 3) | ${f(r.reread.children)} | ${f(median(r.reread.wall))} | ${(median(r.kept.cpu) / median(r.reread.cpu)).toFixed(3)} | ${r.latency.map(f).join(', ')} | ${f(median(r.nftMs))} |`);
}

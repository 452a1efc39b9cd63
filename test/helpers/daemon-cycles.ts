// Runs the watch daemon's cycle many times in this process (node --expose-gc), as fast as it
// goes, with listeners and a firewall that keep changing, and prints RSS and heap samples (one
// JSON line at the end). The agent, its state dir, journal, drift state, metrics and webhook queue
// are the real ones; only the tools it would run (ss, ip, nft, cat) answer from here, so that
// 10 000 cycles take seconds instead of an hour of process starts.
import pino from 'pino';
import { Agent } from '../../agent/daemon/agent.js';
import type { Exec } from '../../agent/exec.js';

const [config, cyclesArg, sampleEvery] = process.argv.slice(2) as [string, string, string];
const cycles = Number(cyclesArg);
let cycle = 0;

/** 40 listeners, a window of 5 of them moving one port every 10 cycles (one opens, one resolves). */
function ss(): string {
  const lines: string[] = [];
  for (let p = 0; p < 35; p++) lines.push(`tcp   LISTEN 0      128          0.0.0.0:${3000 + p}      0.0.0.0:*    ino:0 sk:${p} <->`);
  for (let k = 0; k < 5; k++) lines.push(`tcp   LISTEN 0      128          0.0.0.0:${20000 + ((Math.floor(cycle / 10) + k) % 500)}      0.0.0.0:*    ino:0 sk:${100 + k} <->`);
  lines.push(`udp   UNCONN 0      0               [::]:${40000 + (Math.floor(cycle / 10) % 300)}         [::]:*    ino:0 sk:200 v6only:1 <->`);
  return lines.join('\n') + '\n';
}

/** A drop-policy input chain that accepts one port, moved every 50 cycles (exposure changes). */
function nftJson(): string {
  const port = 3000 + (Math.floor(cycle / 50) % 35);
  return JSON.stringify({ nftables: [
    { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
    { table: { family: 'inet', name: 'f', handle: 1 } },
    { chain: { family: 'inet', table: 'f', name: 'input', handle: 1, type: 'filter', hook: 'input', prio: 0, policy: 'drop' } },
    { rule: { family: 'inet', table: 'f', chain: 'input', handle: 2, expr: [{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: port } }, { accept: null }] } },
  ] });
}

const answer = (cmd: string, args: string[]): string => {
  if (cmd === 'nsenter') return answer(args[args.indexOf('--') + 1]!, args.slice(args.indexOf('--') + 2));
  if (cmd === 'ss') return ss();
  if (cmd === 'ip') return args.includes('addr') ? '[{"ifname":"lo","addr_info":[{"local":"127.0.0.1","prefixlen":8}]},{"ifname":"eth0","addr_info":[{"local":"192.0.2.10","prefixlen":24}]}]' : args.includes('-4') ? '[{"dst":"default","dev":"eth0"},{"dst":"192.0.2.0/24","dev":"eth0"}]' : '[]';
  if (cmd === 'cat') return args[0]!.includes('forwarding') ? '0\n' : '';
  if (cmd === 'nft') return args[0] === '-j' ? nftJson() : `table inet f { # accepts ${Math.floor(cycle / 50) % 35}\n}\n`;
  throw Object.assign(new Error(`${cmd} is not installed`), { code: 'ENOENT' });
};
const exec: Exec = async (cmd, args) => ({ stdout: answer(cmd, args), stderr: '', code: 0 });

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const agent = new Agent(config, pino({ level: 'silent' }), false, exec);
await agent.start();
const samples: { cycle: number; rss: number; heap: number }[] = [];
const t0 = performance.now();
for (cycle = 0; cycle < cycles; cycle++) {
  await agent.runCycle();
  if (cycle % Number(sampleEvery) === 0) {
    gc();
    const m = process.memoryUsage();
    samples.push({ cycle, rss: m.rss, heap: m.heapUsed });
  }
}
const ms = performance.now() - t0;
await agent.drain(10_000);
await agent.stop();
process.stdout.write(JSON.stringify({ ms, cycleErrors: agent.metrics.cycleErrors, samples }) + '\n');

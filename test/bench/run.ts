// npm run bench: portwarden against the reference tools, measured in the same run, in namespaces
// this script creates and removes. Prints medians and ratios; never fails on absolute times.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { collectSnapshot } from '../../agent/collect/listeners.js';
import { OwnerIndex } from '../../agent/collect/processes.js';
import { compilePolicy } from '../../agent/policy/compile.js';
import { renderRuleset } from '../../agent/firewall/render.js';
import type { Policy } from '../../agent/policy/policy-types.js';
import { parseNftJson } from '../../agent/exposure/nft-json.js';
import { exposureOf } from '../../agent/exposure/exposure.js';
import type { Listener } from '../../agent/model.js';
import { createNamespace, deleteNamespace } from '../helpers/lab.js';
import { CLI, ROOT } from '../helpers/paths.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => `${x.toFixed(1)} ms`;

function timeCmd(cmd: string, args: string[], runs: number): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, LC_ALL: 'C' } });
    times.push(performance.now() - t0);
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`);
  }
  return median(times);
}

/** Two commands in turn (A B A B …): medians of each, and the median of the pairwise ratios A/B, which holds when the machine's speed drifts. */
function timePaired(a: [string, string[]], b: [string, string[]], runs: number): { a: number; b: number; ratio: number } {
  const as: number[] = [];
  const bs: number[] = [];
  for (let i = 0; i < runs; i++) {
    as.push(timeCmd(a[0], a[1], 1));
    bs.push(timeCmd(b[0], b[1], 1));
  }
  return { a: median(as), b: median(bs), ratio: median(as.map((x, i) => x / bs[i]!)) };
}

async function startIn(ns: string, script: string, arg: object): Promise<ChildProcess> {
  const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', process.execPath, `${ROOT}dist/test/bench/${script}`, JSON.stringify(arg)], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (c) => reject(new Error(`load generator exited ${c}`)));
  });
  return child;
}

async function collectorBench(listeners: number, connections: number) {
  const ns = createNamespace('bench');
  const children: ChildProcess[] = [];
  try {
    const perProc = 5000;
    children.push(await startIn(ns, 'load.js', { listeners, base: 20000, connections: 0, connPort: 0 }));
    for (let i = 0; i * perProc < connections; i++) {
      children.push(await startIn(ns, 'load.js', { listeners: 0, base: 0, connections: Math.min(perProc, connections - i * perProc), connPort: 10000 + i }));
    }
    const runs = listeners >= 10000 ? 7 : 9;
    const nsArgs = [`--net=/run/netns/${ns}`, '--'];
    const ssPlain = timeCmd('nsenter', [...nsArgs, 'ss', '-Htuln'], runs);
    const netstat = timeCmd('nsenter', [...nsArgs, 'netstat', '-tulnp'], runs);
    timeCmd(process.execPath, [CLI, 'scan', '--json', '--netns', ns], 1); // warm-up: file cache
    const paired = timePaired([process.execPath, [CLI, 'scan', '--json', '--netns', ns]], ['nsenter', [...nsArgs, 'ss', '-Htulnp']], runs);
    const { a: cold, b: ssP, ratio: coldRatio } = paired;
    // PW_BENCH_CPU_PROF=DIR: one more cold scan under `node --cpu-prof`, its profile written to DIR.
    const profDir = process.env.PW_BENCH_CPU_PROF;
    if (profDir) spawnSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profDir}`, CLI, 'scan', '--json', '--netns', ns], { stdio: 'ignore' });
    const rssRun = spawnSync(process.execPath, [`${ROOT}dist/test/bench/rss.js`, 'scan', '--json', '--netns', ns], { encoding: 'utf8', maxBuffer: 1 << 30 });
    const rssMb = Number(/maxrss_kib=(\d+)/.exec(rssRun.stderr)?.[1] ?? NaN) / 1024;
    const found = (JSON.parse(rssRun.stdout) as { listeners: unknown[] }).listeners.length;
    const owners = new OwnerIndex();
    await collectSnapshot({ netns: ns, owners });
    const warmTimes: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await collectSnapshot({ netns: ns, owners });
      warmTimes.push(performance.now() - t0);
    }
    const warm = median(warmTimes);
    const si = JSON.parse(spawnSync('nsenter', [...nsArgs, process.execPath, `${ROOT}dist/test/bench/si-probe.js`, String(Math.min(runs, 3))], { encoding: 'utf8', maxBuffer: 1 << 30 }).stdout) as { times: number[]; count: number };
    const siMs = median(si.times);
    return { listeners, connections, found, ssPlain, ssP, netstat, cold, coldRatio, warm, warmWalks: owners.walks, siMs, siCount: si.count, rssMb };
  } finally {
    children.forEach((c) => c.kill('SIGKILL'));
    deleteNamespace(ns);
  }
}

function bigPolicy(rules: number, cidrs: number): Policy {
  const perRule = Math.floor(cidrs / 100);
  const groups: Record<string, string[]> = {};
  for (let g = 0; g < 100; g++) {
    groups[`net${g}`] = Array.from({ length: perRule }, (_, i) => {
      const n = g * perRule + i;
      return i % 4 === 3 ? `2001:db8:${(n >> 8).toString(16)}:${(n & 255).toString(16)}::/64` : `${10 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}.0/24`;
    });
  }
  return {
    version: 1,
    sources: groups,
    rules: Array.from({ length: rules }, (_, i) => ({
      name: `r${i}`,
      port: 1024 + i,
      proto: i % 5 === 0 ? 'udp' : 'tcp',
      from: i % 3 === 0 ? 'any' : [`net${i % 100}`],
      ...(i % 50 === 0 ? { rate: '30/minute' } : {}),
    })),
  };
}

async function rulesBench() {
  const doc = bigPolicy(10_000, 100_000);
  let t0 = performance.now();
  const { policy } = compilePolicy(doc, 'bench');
  const compileMs = performance.now() - t0;
  const renderTimes: number[] = [];
  let text = '';
  for (let i = 0; i < 5; i++) {
    t0 = performance.now();
    text = renderRuleset(policy, 'nft');
    renderTimes.push(performance.now() - t0);
  }
  const ns = createNamespace('rules');
  try {
    const loads: number[] = [];
    for (let i = 0; i < 3; i++) {
      t0 = performance.now();
      const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, '--', 'nft', '-f', '-'], { input: text, encoding: 'utf8' });
      loads.push(performance.now() - t0);
      if (r.status !== 0) throw new Error(`nft -f failed: ${r.stderr.slice(0, 500)}`);
    }
    t0 = performance.now();
    const json = spawnSync('nsenter', [`--net=/run/netns/${ns}`, '--', 'nft', '-j', 'list', 'ruleset'], { encoding: 'utf8', maxBuffer: 1 << 30 }).stdout;
    const listMs = performance.now() - t0;
    // Exposure of 1 000 listeners over this 10 000-rule ruleset.
    t0 = performance.now();
    const fw = { ruleset: parseNftJson(json), error: null, interfaces: ['eth0'], legacyRules: 0, published: [] };
    const parseMs = performance.now() - t0;
    const listeners: Listener[] = Array.from({ length: 1000 }, (_, i) => ({
      proto: i % 5 === 0 ? 'udp' : 'tcp', family: 6, address: '::', port: 1024 + i, scope: 'wildcard', dualStack: true, inode: i, processes: [],
    }));
    t0 = performance.now();
    const verdicts = listeners.map((l) => exposureOf(l, fw).verdict);
    const exposureMs = performance.now() - t0; // cold: converts each named set and indexes each chain once
    t0 = performance.now();
    listeners.forEach((l) => exposureOf(l, fw));
    const exposureWarmMs = performance.now() - t0;
    if (verdicts.includes('undetermined')) throw new Error('bench ruleset gave undetermined exposure');
    return { compileMs, renderMs: median(renderTimes), loadMs: median(loads), listMs, bytes: text.length, parseMs, exposureMs, exposureWarmMs };
  } finally {
    deleteNamespace(ns);
  }
}

const sizes = (process.env.PW_BENCH_SIZES ?? '100,2000,10000').split(',').filter(Boolean).map(Number);
// PW_BENCH_ONLY=collector: the collector table alone (with PW_BENCH_SIZES=10000 and
// PW_BENCH_CPU_PROF=DIR: the cold scan's CPU profile in that scenario).
const only = process.env.PW_BENCH_ONLY;
console.log('portwarden bench: medians; ratios are portwarden / reference (lower is better)\n');
console.log('| listeners | conns | ss -Htuln | ss -Htulnp | netstat -tulnp | systeminformation | pw scan --json (cold CLI) | pw collector (warm) | warm/ss -p | cold/ss -p (paired) | si/warm | peak RSS |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const n of sizes) {
  const r = await collectorBench(n, 20_000);
  if (r.found < n) throw new Error(`scan found ${r.found} listeners, expected ≥ ${n}`);
  console.log(
    `| ${n} | ${r.connections} | ${ms(r.ssPlain)} | ${ms(r.ssP)} | ${ms(r.netstat)} | ${ms(r.siMs)} | ${ms(r.cold)} | ${ms(r.warm)} | ${(r.warm / r.ssP).toFixed(2)} | ${r.coldRatio.toFixed(2)} | ${(r.siMs / r.warm).toFixed(1)}× slower | ${r.rssMb.toFixed(0)} MB |`,
  );
}
// Node reads this file of certificates at every start, before any of our code runs (~80 ms for a
// system bundle): the cold-CLI ratio then measures it too.
if (process.env.NODE_EXTRA_CA_CERTS) console.log(`\nnote: NODE_EXTRA_CA_CERTS is set: every cold CLI run above includes Node loading ${process.env.NODE_EXTRA_CA_CERTS}`);
if (only === 'collector') process.exit(0);
const rb = await rulesBench();
console.log(`\nrules: 10 000 rules, 100 000 CIDRs → nft script of ${(rb.bytes / 1e6).toFixed(1)} MB`);
console.log(`| compile policy | render nft | nft -f load (same run) | nft list table | render/load |`);
console.log('|---|---|---|---|---|');
console.log(`| ${ms(rb.compileMs)} | ${ms(rb.renderMs)} | ${ms(rb.loadMs)} | ${ms(rb.listMs)} | ${(rb.renderMs / rb.loadMs).toFixed(2)} |`);
console.log(`\nexposure: 1 000 listeners over the same 10 000-rule ruleset`);
console.log('| nft -j list ruleset | parse JSON | exposure, first pass (sets converted) | exposure, next pass | first pass / nft -j list |');
console.log('|---|---|---|---|---|');
console.log(`| ${ms(rb.listMs)} | ${ms(rb.parseMs)} | ${ms(rb.exposureMs)} | ${ms(rb.exposureWarmMs)} | ${(rb.exposureMs / rb.listMs).toFixed(2)} |`);

// npm run bench: portwarden against the reference tools, measured in the same run, in namespaces
// this script creates and removes. Prints medians and ratios; never fails on absolute times.
// PW_BENCH_ONLY=apply runs only the apply part (PW_BENCH_APPLY_RULES: rule counts, default
// 10000,100000; PW_BENCH_APPLY_ROUNDS: rounds of each, default 3, 2 from 100 000 rules;
// PW_BENCH_APPLY_FORMATS: how the policy file is written, block YAML and/or JSON, default yaml,json);
// PW_BENCH_SIZES: listener counts of the collector part (empty: none).
// PW_BENCH_ONLY=nft-rules runs only the generated-rules part (nft -f load of the 10 000-rule
// policy, and new TCP connections per second through it vs a 10-rule policy, client and server in
// two lab namespaces): `npm run build && PW_BENCH_ONLY=nft-rules node dist/test/bench/run.js`.
// PW_BENCH_ONLY=exposure runs only the exposure rows (1 000 listeners over the 10 000-rule ruleset,
// 10 000 listeners over an empty one).
// PW_BENCH_ONLY=attempts: reading the counters of the 10 000-rule policy with 50 000 tracked sources.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { stringify as stringifyYaml } from 'yaml';
import { collectSnapshot } from '../../agent/collect/listeners.js';
import { OwnerIndex } from '../../agent/collect/processes.js';
import { compilePolicy } from '../../agent/policy/compile.js';
import { renderRuleset } from '../../agent/firewall/render.js';
import { bigPolicy } from './big-policy.js';
import { daemonBench, printDaemonBench } from './daemon.js';
import { parseNftJson } from '../../agent/exposure/nft-json.js';
import { exposureOf, type FirewallView } from '../../agent/exposure/exposure.js';
import type { Listener } from '../../agent/model.js';
import { createLab, createNamespace, deleteNamespace, flushConntrack, nsRun } from '../helpers/lab.js';
import { CLI, ROOT } from '../helpers/paths.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => `${x.toFixed(1)} ms`;

/** cli.js as the `portwarden` command install.sh links: made executable as install.sh does, run through its shebang. */
function asCommand(cli: string): string {
  chmodSync(cli, 0o755);
  return cli;
}

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

/** `nft -f -` of `text` in namespace ns: how long it took (it throws with nft's message when the load fails). */
function timedNftLoad(ns: string, text: string): number {
  const t0 = performance.now();
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, '--', 'nft', '-f', '-'], { input: text, encoding: 'utf8' });
  const took = performance.now() - t0;
  if (r.status !== 0) throw new Error(`nft -f failed: ${r.stderr.slice(0, 500)}`);
  return took;
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
    // As operators run it, the `portwarden` command; beside it, `node cli.js` with this environment.
    const command = asCommand(CLI);
    const scanArgs = ['scan', '--json', '--netns', ns];
    timeCmd(command, scanArgs, 1); // warm-up: file cache
    const { a: cold, b: ssP, ratio: coldRatio } = timePaired([command, scanArgs], ['nsenter', [...nsArgs, 'ss', '-Htulnp']], runs);
    const viaNode = timePaired([process.execPath, [CLI, ...scanArgs]], ['nsenter', [...nsArgs, 'ss', '-Htulnp']], runs);
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
    return { listeners, connections, found, ssPlain, ssP, netstat, cold, coldRatio, nodeRatio: viaNode.ratio, warm, warmWalks: owners.walks, siMs, siCount: si.count, rssMb };
  } finally {
    children.forEach((c) => c.kill('SIGKILL'));
    deleteNamespace(ns);
  }
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
    const loads = [0, 1, 2].map(() => timedNftLoad(ns, text));
    t0 = performance.now();
    const json = spawnSync('nsenter', [`--net=/run/netns/${ns}`, '--', 'nft', '-j', 'list', 'ruleset'], { encoding: 'utf8', maxBuffer: 1 << 30 }).stdout;
    const listMs = performance.now() - t0;
    // Exposure of 1 000 listeners over this 10 000-rule ruleset: each pass on a freshly parsed
    // ruleset (nothing cached), median of 3; the next pass reuses the last one's caches.
    const listeners: Listener[] = Array.from({ length: 1000 }, (_, i) => ({
      proto: i % 5 === 0 ? 'udp' : 'tcp', family: 6, address: '::', port: 1024 + i, scope: 'wildcard', dualStack: true, inode: i, processes: [],
    }));
    const parses: number[] = [];
    const firsts: number[] = [];
    let fw!: FirewallView;
    let verdicts: string[] = [];
    for (let i = 0; i < 3; i++) {
      t0 = performance.now();
      fw = { ruleset: parseNftJson(json), error: null, interfaces: ['eth0'], legacyRules: 0, published: [] };
      parses.push(performance.now() - t0);
      t0 = performance.now();
      verdicts = listeners.map((l) => exposureOf(l, fw).verdict);
      firsts.push(performance.now() - t0); // cold: converts each named set and indexes each chain once
    }
    const parseMs = median(parses);
    const exposureMs = median(firsts);
    t0 = performance.now();
    listeners.forEach((l) => exposureOf(l, fw));
    const exposureWarmMs = performance.now() - t0;
    if (verdicts.includes('undetermined')) throw new Error('bench ruleset gave undetermined exposure');
    return { compileMs, renderMs: median(renderTimes), loadMs: median(loads), listMs, bytes: text.length, parseMs, exposureMs, coldMs: firsts[0]!, exposureWarmMs, emptyMs: exposureOverEmpty() };
  } finally {
    deleteNamespace(ns);
  }
}

/** Exposure of 10 000 wildcard listeners over an empty ruleset, each pass on a fresh view: median of 7. */
function exposureOverEmpty(): number {
  const listeners: Listener[] = Array.from({ length: 10_000 }, (_, i) => ({
    proto: i % 5 === 0 ? 'udp' : 'tcp', family: 6, address: '::', port: 1024 + i, scope: 'wildcard', dualStack: true, inode: i, processes: [],
  }));
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const fw: FirewallView = { ruleset: parseNftJson('{"nftables":[{"metainfo":{"json_schema_version":1}}]}'), error: null, interfaces: ['eth0'], legacyRules: 0, published: [] };
    const t0 = performance.now();
    for (const l of listeners) if (exposureOf(l, fw).verdict !== 'any') throw new Error('an empty ruleset should expose every listener');
    times.push(performance.now() - t0);
  }
  return median(times);
}

/**
 * The reference for the per-packet cost: the same ports as a linear chain, one `tcp dport N accept`
 * rule per port, as the generated rules were before they dispatched through verdict maps.
 */
function linearRuleset(n: number): string {
  const rules = Array.from({ length: n }, (_, i) => `\t\ttcp dport ${1024 + i} accept\n`).join('');
  return `table inet bench_linear {}\ndelete table inet bench_linear\ntable inet bench_linear {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n${rules}\t}\n}\n`;
}

/**
 * The per-packet cost of the generated nft rules: two server namespaces on one bridge, one with a
 * 10-rule and one with a 10 000-rule policy; one client process opens new connections to the last
 * rule's port (tcp, from any, in both policies) of each in turn, in short slices (connect-rate.ts);
 * the ratio is taken within each pair of slices. Halfway the two policies change places, so a
 * difference between the two namespaces (or the bridge ports) cancels out. Loads are followed
 * by a pause so nft's deferred freeing of a replaced table stays out of the measured slices.
 * The same for the linear reference (linearRuleset), which shows what the measurement can see.
 * Also the time `nft -f` takes to load the 10 000-rule policy (first load, then replacements).
 */
async function nftRulesBench(slices = 80, sliceMs = 200) {
  const lab = createLab(3);
  const client = lab.clients[0]!;
  const hosts = [lab.clients[1]!, lab.server] as const;
  const children: ChildProcess[] = [];
  const port = (n: number) => 1024 + n - 1; // the last rule's: a linear chain would walk every rule before it
  const generated = (n: number) => renderRuleset(compilePolicy(bigPolicy(n, 100_000), 'bench').policy, 'nft');
  const loads: number[] = [];
  /**
   * Empties the host's ruleset (the tables of the last placement would also judge each packet),
   * loads `text` (n rules) `times` times and (re)starts the listener on its last rule's port.
   */
  const place = async (text: string, n: number, host: (typeof hosts)[number], times: number, timed: boolean) => {
    nsRun(host.ns, 'nft', ['flush', 'ruleset']);
    for (let i = 0; i < times; i++) {
      const took = timedNftLoad(host.ns, text);
      if (timed) loads.push(took);
    }
    children.push(await startIn(host.ns, 'connect-rate.js', { mode: 'listen', port: port(n) }));
  };
  /** Connections/s through the 10- and the 10 000-rule ruleset, and the median ratio of paired slices. */
  const measure = async (small: string, big: string, timed: boolean) => {
    const conns = [0, 0];
    const msSpent = [0, 0];
    const ratios: number[] = [];
    for (const [a, b] of [[hosts[0], hosts[1]], [hosts[1], hosts[0]]] as const) {
      children.splice(0).forEach((c) => c.kill('SIGKILL'));
      await place(small, 10, a, 1, false);
      await place(big, 10_000, b, 2, timed);
      await new Promise((r) => setTimeout(r, 2000)); // let the replaced tables be freed
      flushConntrack(a.ns);
      flushConntrack(b.ns);
      const targets = [{ host: a.v4, port: port(10) }, { host: b.v4, port: port(10_000) }];
      const out = nsRun(client.ns, process.execPath, [`${ROOT}dist/test/bench/connect-rate.js`, JSON.stringify({ mode: 'connect', targets, slices: slices / 2, sliceMs, parallel: 16 })]);
      const r = JSON.parse(out) as { connections: number[]; ms: number[]; ratios: number[]; errors: number };
      if (r.connections.includes(0) || r.errors > (r.connections[0]! + r.connections[1]!) / 100) throw new Error(`connections through 10 and 10 000 rules: ${out.trim()}`);
      for (const k of [0, 1]) {
        conns[k]! += r.connections[k]!;
        msSpent[k]! += r.ms[k]!;
      }
      ratios.push(...r.ratios);
    }
    return { rate10: (conns[0]! / msSpent[0]!) * 1000, rate10k: (conns[1]! / msSpent[1]!) * 1000, ratio: median(ratios) };
  };
  try {
    const timeoutsBefore = tcpTimeouts(client.ns);
    const big = generated(10_000);
    const ours = await measure(generated(10), big, true);
    const linear = await measure(linearRuleset(10), linearRuleset(10_000), false);
    const timeouts = tcpTimeouts(client.ns) - timeoutsBefore;
    return { loadMs: median(loads), ours, linear, slices, sliceMs, timeouts, bytes: big.length };
  } finally {
    children.forEach((c) => c.kill('SIGKILL'));
    lab.destroy();
  }
}

/** The client's TCP retransmission timeouts so far (a SYN that waited 1 s stalls a round). */
function tcpTimeouts(ns: string): number {
  // Two TcpExt lines: the field names, then their values.
  const [names, values] = nsRun(ns, 'cat', ['/proc/net/netstat']).split('\n').filter((l) => l.startsWith('TcpExt:')).map((l) => l.split(' '));
  return Number(values![names!.indexOf('TCPTimeouts')]);
}

function printExposure(rb: Awaited<ReturnType<typeof rulesBench>>) {
  console.log(`\nexposure: 1 000 listeners over the same 10 000-rule ruleset (first pass: median of 3 freshly parsed rulesets); 10 000 listeners over an empty ruleset (median of 7)`);
  console.log('| nft -j list ruleset | parse JSON | exposure, first pass (sets converted) | of which the process\'s first (its code not yet compiled) | exposure, next pass | first pass / nft -j list | 10 000 listeners, empty ruleset |');
  console.log('|---|---|---|---|---|---|---|');
  console.log(`| ${ms(rb.listMs)} | ${ms(rb.parseMs)} | ${ms(rb.exposureMs)} | ${ms(rb.coldMs)} | ${ms(rb.exposureWarmMs)} | ${(rb.exposureMs / rb.listMs).toFixed(2)} | ${ms(rb.emptyMs)} |`);
}

// PW_BENCH_ONLY=exposure: the exposure rows alone (the 10 000-rule policy loaded in a namespace).
if (process.env.PW_BENCH_ONLY === 'exposure') {
  printExposure(await rulesBench());
  process.exit(0);
}

// PW_BENCH_ONLY=daemon: the watch cycle over 10 000 rules, nothing changed, and change → webhook.
if (process.env.PW_BENCH_ONLY === 'daemon') {
  printDaemonBench(await daemonBench());
  process.exit(0);
}

if (process.env.PW_BENCH_ONLY === 'nft-rules') {
  const r = await nftRulesBench();
  printNftRules(r);
  process.exit(0);
}

function printNftRules(r: Awaited<ReturnType<typeof nftRulesBench>>) {
  console.log(`\ngenerated nft rules: 10 000-rule policy (${(r.bytes / 1e6).toFixed(1)} MB), new TCP connections/s to the last rule's port, client and server namespaces;`);
  console.log(`10 000 / 10 rules: median of ${r.slices} paired ${r.sliceMs} ms slices; reference: the same ports as a linear chain of \`tcp dport N accept\` rules; ${r.timeouts} client retransmit timeouts in all`);
  console.log('| nft -f load, 10 000 rules (median of 4: two over nothing, two replacing itself) | conn/s, 10 rules | conn/s, 10 000 rules | 10 000 / 10 rules | linear chain: 10 000 / 10 rules |');
  console.log('|---|---|---|---|---|');
  console.log(`| ${ms(r.loadMs)} | ${r.ours.rate10.toFixed(0)} | ${r.ours.rate10k.toFixed(0)} | ${r.ours.ratio.toFixed(2)} | ${r.linear.ratio.toFixed(2)} (${r.linear.rate10.toFixed(0)} → ${r.linear.rate10k.toFixed(0)} conn/s) |`);
}

/**
 * portwarden apply of an N-rule policy over 10·N CIDRs (bigPolicy) against `nft -f` of the same
 * rendered file in the same situation, in one namespace: over nothing loaded, and over a table
 * loaded by hand with `nft -f` in which every rule differs (each port moved by one; nft -f of the
 * file then replaces it, as apply does). Each round times the four in turn (reference, apply,
 * reference, apply) and takes the ratio within the pair; fresh state dir for each apply.
 */
async function applyBench(rules: number, rounds: number, format: 'yaml' | 'json') {
  const dir = mkdtempSync(`${tmpdir()}/pw-bench-apply-`);
  const ns = createNamespace('apply');
  try {
    const policyFile = `${dir}/big.${format}`;
    // Block YAML as an operator writes it, or JSON (a generated policy): the parse differs.
    writeFileSync(policyFile, format === 'json' ? JSON.stringify(bigPolicy(rules, rules * 10)) : stringifyYaml(bigPolicy(rules, rules * 10)));
    const text = renderRuleset(compilePolicy(bigPolicy(rules, rules * 10), 'bench').policy, 'nft', policyFile);
    writeFileSync(`${dir}/big.nft`, text);
    writeFileSync(`${dir}/other.nft`, renderRuleset(compilePolicy(bigPolicy(rules, rules * 10, 1), 'bench').policy, 'nft', policyFile));
    const nft = (args: string[]) => {
      const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, '--', 'nft', ...args], { stdio: 'ignore' });
      if (r.status !== 0) throw new Error(`nft ${args.join(' ')} exited ${r.status}`);
    };
    const timed = (fn: () => void) => {
      const t0 = performance.now();
      fn();
      return performance.now() - t0;
    };
    // The `portwarden` command, as the scan is timed.
    const applyOnce = (command: string) => {
      rmSync(`${dir}/state`, { recursive: true, force: true });
      return timed(() => {
        // A loaded machine can take past the default 60 s per tool call for 100 000 rules: this measures speed, not the bound.
        const r = spawnSync(command, ['apply', '--policy', policyFile, '--netns', ns, '--state-dir', `${dir}/state`, '--yes', '--confirm', '0'], { encoding: 'utf8', maxBuffer: 1 << 30, env: { ...process.env, PORTWARDEN_TOOL_TIMEOUT: process.env.PORTWARDEN_TOOL_TIMEOUT ?? '900' } });
        if (r.status !== 0) throw new Error(`apply exited ${r.status}: ${r.stderr.slice(0, 500)}`);
      });
    };
    const cases = { nothing: () => nft(['flush', 'ruleset']), hand: () => (nft(['flush', 'ruleset']), nft(['-f', `${dir}/other.nft`])) };
    // PW_BENCH_APPLY_BEFORE=<another build's dist/agent/cli.js>: that build timed in the same rounds (before/after a change).
    const before = process.env.PW_BENCH_APPLY_BEFORE;
    const now = asCommand(CLI);
    const beforeCommand = before === undefined ? undefined : asCommand(before);
    const empty = () => ({ nft: [] as number[], apply: [] as number[], ratio: [] as number[], list: [] as number[], floor: [] as number[], before: [] as number[], beforeRatio: [] as number[] });
    const out: Record<keyof typeof cases, ReturnType<typeof empty>> = { nothing: empty(), hand: empty() };
    for (let i = 0; i < rounds; i++) {
      for (const [name, setup] of Object.entries(cases) as [keyof typeof cases, () => void][]) {
        setup();
        // The listing apply must make first (the way back), alone: with nft -f, the floor of any apply.
        const list = timed(() => nft(['-s', 'list', 'ruleset']));
        const ref = timed(() => nft(['-f', `${dir}/big.nft`]));
        setup();
        const a = applyOnce(now);
        out[name].nft.push(ref);
        out[name].apply.push(a);
        out[name].ratio.push(a / ref);
        out[name].list.push(list);
        out[name].floor.push((list + ref) / ref);
        if (beforeCommand) {
          setup();
          const b = applyOnce(beforeCommand);
          out[name].before.push(b);
          out[name].beforeRatio.push(b / ref);
        }
      }
    }
    const sum = (c: (typeof out)[keyof typeof out]) => ({
      nft: median(c.nft), apply: median(c.apply), ratio: median(c.ratio), list: median(c.list), floor: median(c.floor), ...(before ? { before: median(c.before), beforeRatio: median(c.beforeRatio) } : {}),
    });
    return { rules, format, rounds, bytes: text.length, nothing: sum(out.nothing), hand: sum(out.hand) };
  } finally {
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
}

function printApplyBench(results: Awaited<ReturnType<typeof applyBench>>[]) {
  console.log(`\napply: the whole \`portwarden apply\` command (read, diff, back up, load, record; --yes --confirm 0) against nft -f of the same file in the same situation (medians; ratio: median of the paired ratios)`);
  console.log('(nft -s list: the listing apply makes before it changes anything, the way back, timed alone; floor: (that listing + nft -f) / nft -f, paired)');
  console.log('| rules | policy file | nft script | rounds | nothing loaded: nft -f | apply | ratio | different table hand-loaded: nft -f (replaces it) | nft -s list | floor | apply | ratio |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    console.log(`| ${r.rules} | ${r.format === 'json' ? 'JSON' : 'block YAML'} | ${(r.bytes / 1e6).toFixed(1)} MB | ${r.rounds} | ${ms(r.nothing.nft)} | ${ms(r.nothing.apply)} | ${r.nothing.ratio.toFixed(2)} | ${ms(r.hand.nft)} | ${ms(r.hand.list)} | ${r.hand.floor.toFixed(2)} | ${ms(r.hand.apply)} | ${r.hand.ratio.toFixed(2)} |`);
  }
  if (results.some((r) => r.nothing.before !== undefined)) {
    console.log(`\nthe same rounds, the build in PW_BENCH_APPLY_BEFORE (${process.env.PW_BENCH_APPLY_BEFORE})`);
    console.log('| rules | policy file | nothing loaded: apply before | ratio | hand-loaded: apply before | ratio |');
    console.log('|---|---|---|---|---|---|');
    for (const r of results) {
      console.log(`| ${r.rules} | ${r.format === 'json' ? 'JSON' : 'block YAML'} | ${ms(r.nothing.before!)} | ${r.nothing.beforeRatio!.toFixed(2)} | ${ms(r.hand.before!)} | ${r.hand.beforeRatio!.toFixed(2)} |`);
    }
  }
}

/**
 * PW_BENCH_ONLY=attempts: reading back what the rules counted. The 10 000-rule policy loaded in a
 * namespace, 50 000 tracked sources in refused_v4 / refused_v6 / limited_v4 (one counted element
 * each), then `portwarden attempts --json` (the whole CLI, its peak RSS) against the
 * `nft -j list table` it runs, paired; and the parsing and report alone, in this process.
 */
async function attemptsBench(sources = 50_000, rounds = 5) {
  const { parseNftCounters } = await import('../../agent/attempts/counters.js');
  const { buildReport, rawOf, sampleOf } = await import('../../agent/attempts/window.js');
  const dir = mkdtempSync(`${tmpdir()}/pw-bench-attempts-`);
  const ns = createNamespace('knock');
  try {
    nsRun(ns, 'nft', ['-f', '-'], renderRuleset(compilePolicy(bigPolicy(10_000, 100_000), 'bench').policy, 'nft'));
    const elements: Record<string, string[]> = { refused_v4: [], refused_v6: [], limited_v4: [] };
    for (let i = 0; i < sources; i++) {
      const port = 1024 + (i % 12_000);
      const proto = i % 5 === 0 ? 'udp' : 'tcp';
      const count = 1 + (i % 7);
      const elem = (addr: string) => `${addr} . ${proto} . ${port} counter packets ${count} bytes ${count * 60}`;
      if (i % 10 === 9) elements.refused_v6!.push(elem(`2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`));
      else if (i % 10 === 8) elements.limited_v4!.push(elem(`198.18.${(i >> 8) & 255}.${i & 255}`));
      else elements.refused_v4!.push(elem(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`));
    }
    for (const [set, list] of Object.entries(elements)) {
      for (let i = 0; i < list.length; i += 5000) nsRun(ns, 'nft', ['-f', '-'], `add element inet portwarden ${set} { ${list.slice(i, i + 5000).join(', ')} }\n`);
    }
    const state = `${dir}/state`;
    const nsArgs = [`--net=/run/netns/${ns}`, '--'];
    const paired = timePaired(
      [process.execPath, [CLI, 'attempts', '--json', '--netns', ns, '--state-dir', state]],
      ['nsenter', [...nsArgs, 'nft', '-j', 'list', 'table', 'inet', 'portwarden']],
      rounds,
    );
    const rss = spawnSync(process.execPath, [`${ROOT}dist/test/bench/rss.js`, 'attempts', '--json', '--netns', ns, '--state-dir', state], { encoding: 'utf8', maxBuffer: 1 << 30 });
    if (rss.status !== 0) throw new Error(`attempts exited ${rss.status}: ${rss.stderr.slice(0, 500)}`);
    const report = JSON.parse(rss.stdout) as { rules: unknown[]; scanners: unknown[] };
    const rssMb = Number(/maxrss_kib=(\d+)/.exec(rss.stderr)?.[1] ?? 0) / 1024;
    const json = nsRun(ns, 'nft', ['-j', 'list', 'table', 'inet', 'portwarden']);
    const parse: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      const reading = parseNftCounters(json);
      const raw = rawOf(reading, new Date());
      buildReport([sampleOf(null, raw, reading)], { window: 'since-load', top: 10, scanPorts: 20 });
      parse.push(performance.now() - t0);
    }
    return { sources, rows: report.rules.length, ...paired, rssMb, parseMs: median(parse), listBytes: json.length };
  } finally {
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env.PW_BENCH_ONLY === 'attempts') {
  const r = await attemptsBench();
  console.log(`attempts: 10 000 rules, ${r.sources} tracked sources (nft -j listing ${(r.listBytes / 1e6).toFixed(1)} MB, ${r.rows} rule/port rows)`);
  console.log('| pw attempts --json (cold CLI) | nft -j list table (same run) | ratio (paired) | parse + report in process | peak RSS |');
  console.log('|---|---|---|---|---|');
  console.log(`| ${ms(r.a)} | ${ms(r.b)} | ${r.ratio.toFixed(2)} | ${ms(r.parseMs)} | ${r.rssMb.toFixed(0)} MB |`);
  process.exit(0);
}

const applySizes = (process.env.PW_BENCH_APPLY_RULES ?? '10000,100000').split(',').filter(Boolean).map(Number);
/** Rounds per size: PW_BENCH_APPLY_ROUNDS, else 3 (2 from 100 000 rules, a minute a round). */
const applyRounds = (n: number) => Number(process.env.PW_BENCH_APPLY_ROUNDS) || (n >= 100_000 ? 2 : 3);
const applyFormats = (process.env.PW_BENCH_APPLY_FORMATS ?? 'yaml,json').split(',').filter((f): f is 'yaml' | 'json' => f === 'yaml' || f === 'json');
// PW_BENCH_ONLY=fleet: CPU per watch cycle, bytes per Alertmanager resend, a real Alertmanager
// under the load of 10 000 agents (docs/scale.md).
if (process.env.PW_BENCH_ONLY === 'fleet') {
  await (await import('./fleet.js')).fleetBench();
  process.exit(0);
}

if (process.env.PW_BENCH_ONLY === 'apply') {
  const results = [];
  for (const n of applySizes) for (const f of applyFormats) results.push(await applyBench(n, applyRounds(n), f));
  printApplyBench(results);
  process.exit(0);
}

const sizes = (process.env.PW_BENCH_SIZES ?? '100,2000,10000').split(',').filter(Boolean).map(Number);
// PW_BENCH_ONLY=collector: the collector table alone (with PW_BENCH_SIZES=10000 and
// PW_BENCH_CPU_PROF=DIR: the cold scan's CPU profile in that scenario).
const only = process.env.PW_BENCH_ONLY;
console.log('portwarden bench: medians; ratios are portwarden / reference (lower is better)\n');
console.log('| listeners | conns | ss -Htuln | ss -Htulnp | netstat -tulnp | systeminformation | pw scan --json (cold, `portwarden` command) | pw collector (warm) | warm/ss -p | cold/ss -p (paired) | the same as `node cli.js` (paired) | si/warm | peak RSS |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const n of sizes) {
  const r = await collectorBench(n, 20_000);
  if (r.found < n) throw new Error(`scan found ${r.found} listeners, expected ≥ ${n}`);
  console.log(
    `| ${n} | ${r.connections} | ${ms(r.ssPlain)} | ${ms(r.ssP)} | ${ms(r.netstat)} | ${ms(r.siMs)} | ${ms(r.cold)} | ${ms(r.warm)} | ${(r.warm / r.ssP).toFixed(2)} | ${r.coldRatio.toFixed(2)} | ${r.nodeRatio.toFixed(2)} | ${(r.siMs / r.warm).toFixed(1)}× slower | ${r.rssMb.toFixed(0)} MB |`,
  );
}
// Node reads this file of certificates at every start, before any of our code runs (~85 ms for
// Debian's bundle); the `portwarden` command starts Node without it (extra-ca.ts), `node cli.js` does not.
if (process.env.NODE_EXTRA_CA_CERTS) console.log(`\nnote: NODE_EXTRA_CA_CERTS is set: the \`node cli.js\` runs include Node loading ${process.env.NODE_EXTRA_CA_CERTS}`);
if (only === 'collector') process.exit(0);
const rb = await rulesBench();
console.log(`\nrules: 10 000 rules, 100 000 CIDRs → nft script of ${(rb.bytes / 1e6).toFixed(1)} MB`);
console.log(`| compile policy | render nft | nft -f load (same run) | nft list table | render/load |`);
console.log('|---|---|---|---|---|');
console.log(`| ${ms(rb.compileMs)} | ${ms(rb.renderMs)} | ${ms(rb.loadMs)} | ${ms(rb.listMs)} | ${(rb.renderMs / rb.loadMs).toFixed(2)} |`);
printExposure(rb);

const applied = [];
for (const n of applySizes) for (const f of applyFormats) applied.push(await applyBench(n, applyRounds(n), f));
printApplyBench(applied);
printNftRules(await nftRulesBench());
printDaemonBench(await daemonBench());

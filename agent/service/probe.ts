// portwarden probe: from another machine, what HOST shows this prober, against what the policy
// says this source should get. The plan, the comparison and the result are pure; the port states
// come from a bounded, polite scanner that only ever contacts HOST.
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { severityRank, type Proto, type Severity } from '../model.js';
import type { CompiledPolicy, CompiledRule } from '../policy/compile.js';
import { policyAllows } from '../exposure/compare.js';
import { familyOf } from '../exposure/intervals.js';
import { buildPortIndex, decidingRule } from '../policy/port-index.js';
import { judge, type Check } from './judge.js';
import { observe } from './observe.js';
import { probeMismatch, type ProbeOutcome } from '../probe-textfile.js';

/** open: allowed from this source. closed: not allowed (closed or filtered is right). any: no rule, and the policy's default is allow. */
export type Expected = 'open' | 'closed' | 'any';
/** open|filtered: UDP without an answer (nothing, or a firewall, swallowed the datagram). */
export type Observed = 'open' | 'closed' | 'filtered' | 'open|filtered';

export interface PlannedPort {
  proto: Proto;
  port: number;
  expected: Expected;
  rule: CompiledRule | null;
}

export interface ProbePort {
  proto: Proto;
  port: number;
  expected: Expected;
  observed: Observed;
  rule: string | null;
  checks: Check[];
}

export interface ProbeResult {
  target: string;
  source: string;
  ports: ProbePort[];
}

/** Every port the policy names (ranges expanded), and with allPorts every TCP port. Pure. */
export function probePlan(policy: CompiledPolicy, source: string, allPorts = false): PlannedPort[] {
  const fam = familyOf(source);
  if (!fam) throw new Error(`not an IP address: ${source}`);
  const index = buildPortIndex(policy.rules);
  const wanted: Record<Proto, Set<number>> = { tcp: new Set(), udp: new Set() };
  for (const name of namedPorts(policy)) {
    const [proto, port] = name.split('/') as [Proto, string];
    wanted[proto].add(Number(port));
  }
  if (allPorts) for (let p = 1; p <= 65535; p++) wanted.tcp.add(p);
  const out: PlannedPort[] = [];
  for (const proto of ['tcp', 'udp'] as const) {
    for (const port of [...wanted[proto]].sort((a, b) => a - b)) {
      const idx = decidingRule(index, proto, port);
      const rule = idx >= 0 ? policy.rules[idx]! : null;
      const expected: Expected = !rule && policy.default === 'allow' ? 'any' : policyAllows(policy, idx, fam).has(source) ? 'open' : 'closed';
      out.push({ proto, port, expected, rule });
    }
  }
  return out;
}

/** A port that contradicts the policy (probeMismatch, the rule probe --textfile shares) or failed a check. */
export function portFailed(p: ProbePort): boolean {
  return probeMismatch(p) || p.checks.some((c) => !c.ok);
}

/** What a result says: a mismatch or a failed check anywhere → exit 1. */
export function probeFailed(r: ProbeResult): boolean {
  return r.ports.some(portFailed);
}

/** The JSON of the contract: {target, source, ports: [{proto, port, expected, observed, rule, checks: [{name, ok, detail}]}]}. */
export function probeJson(r: ProbeResult): ProbeOutcome {
  return {
    target: r.target,
    source: r.source,
    ports: r.ports.map((p) => ({ proto: p.proto, port: p.port, expected: p.expected, observed: p.observed, rule: p.rule, checks: p.checks.map((c) => ({ name: c.name, ok: c.ok, detail: c.detail })) })),
  };
}

/** What was seen of one planned port: its state, and the expect checks when it was open. */
export interface Seen {
  observed: Observed;
  checks: Check[];
}

/**
 * The result: every port the policy names, and of the others (--all-ports) those open — 65 000
 * closed ports would hide the few that matter. Pure.
 */
export function probeResult(target: string, source: string, plan: readonly PlannedPort[], seen: readonly Seen[], named: ReadonlySet<string>): ProbeResult {
  const ports = plan.flatMap((p, i) => {
    const s = seen[i]!;
    if (!named.has(`${p.proto}/${p.port}`) && s.observed !== 'open') return [];
    return [{ proto: p.proto, port: p.port, expected: p.expected, observed: s.observed, rule: p.rule?.name ?? null, checks: s.checks }];
  });
  return { target, source, ports };
}

/** proto/port of every port a rule names. */
export function namedPorts(policy: CompiledPolicy): Set<string> {
  const out = new Set<string>();
  for (const rule of policy.rules) for (const r of rule.ports) for (let p = r.lo; p <= r.hi; p++) out.add(`${rule.proto}/${p}`);
  return out;
}

export function worstFailure(p: ProbePort): Severity | null {
  return p.checks.filter((c) => !c.ok).reduce<Severity | null>((w, c) => (!w || severityRank(c.severity) > severityRank(w) ? c.severity : w), null);
}

// ---- I/O: port states, politely ----

function tcpState(host: string, port: number, timeoutMs: number): Promise<Observed> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (o: Observed) => {
      clearTimeout(timer);
      s.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done('filtered'), timeoutMs);
    s.once('connect', () => done('open'));
    s.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'closed' : 'filtered'));
  });
}

/** An empty datagram: an answer is open, ICMP port unreachable is closed, silence is open|filtered. */
function udpState(host: string, port: number, timeoutMs: number): Promise<Observed> {
  return new Promise((resolve) => {
    const s = createSocket(familyOf(host) === 6 ? 'udp6' : 'udp4');
    let settled = false;
    const done = (o: Observed) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.close();
      resolve(o);
    };
    const timer = setTimeout(() => done('open|filtered'), timeoutMs);
    s.on('message', () => done('open'));
    s.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'closed' : 'filtered'));
    s.connect(port, host, () => s.send(Buffer.alloc(0), (err) => err && done('filtered')));
  });
}

export interface ProbeOptions {
  /** The address to connect to (HOST resolved once). */
  address: string;
  timeoutMs: number;
  concurrency: number;
  /** Least time between two new connections: a polite rate. */
  spacingMs: number;
}

/** Runs the plan against one address: port states, then the expect checks of open ports. */
export async function scan(plan: readonly PlannedPort[], opts: ProbeOptions, now = () => new Date()): Promise<Seen[]> {
  const seen: Seen[] = new Array(plan.length);
  let next = 0;
  let lastStart = 0;
  const turn = async () => {
    const wait = lastStart + opts.spacingMs - Date.now();
    lastStart = Math.max(Date.now(), lastStart + opts.spacingMs);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  };
  const worker = async () => {
    while (next < plan.length) {
      const i = next++;
      const p = plan[i]!;
      await turn();
      const observed = p.proto === 'tcp' ? await tcpState(opts.address, p.port, opts.timeoutMs) : await udpState(opts.address, p.port, opts.timeoutMs);
      let checks: Check[] = [];
      const expect = p.rule?.action === 'allow' ? p.rule.expect : null;
      if (expect && p.proto === 'tcp' && observed === 'open') {
        await turn();
        const relayTest = expect.smtp?.relay === 'refuse' && p.expected === 'open';
        checks = judge(expect, await observe({ host: opts.address, port: p.port, expect, relayTest, timeoutMs: opts.timeoutMs }), now());
      }
      seen[i] = { observed, checks };
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency, plan.length)) }, worker));
  return seen;
}

/** The local address the route to address uses (no packet is sent: a UDP connect only picks the route). */
export function routeSource(address: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createSocket(familyOf(address) === 6 ? 'udp6' : 'udp4');
    s.on('error', (err) => {
      s.close();
      reject(err);
    });
    s.connect(9, address, () => {
      const local = s.address().address;
      s.close();
      resolve(local);
    });
  });
}

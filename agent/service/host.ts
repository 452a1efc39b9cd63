// On the host (check, the agent): connect to every listener a rule with `expect` covers — inside
// the watched network namespace when there is one (a child process entered into it by nsenter) —
// and turn what fails into findings.
import { fileURLToPath } from 'node:url';
import { exec as realExec, inNetns, type Exec } from '../exec.js';
import { RuntimeError } from '../errors.js';
import { listenerPlace, type Finding, type Listener } from '../model.js';
import type { CompiledPolicy, CompiledRule } from '../policy/compile.js';
import { buildPortIndex, decidingRule } from '../policy/port-index.js';
import { judge, serviceFindings } from './judge.js';
import { observe, type Observation, type ServiceTarget } from './observe.js';

/** Per connection; a silent service is a finding after this long. */
export const SERVICE_TIMEOUT_MS = 5000;
/** Services checked at once. */
const PARALLEL = 4;

export interface HostTarget {
  target: ServiceTarget;
  rule: CompiledRule;
  listener: Listener;
}

/** Where to connect to a listener from the same host: wildcards through loopback. */
function localAddress(l: Listener): string {
  if (l.scope === 'wildcard') return l.family === 6 ? '::1' : '127.0.0.1';
  return l.interface && l.family === 6 ? `${l.address}%${l.interface}` : l.address;
}

/** One target per TCP port whose deciding rule allows it and has expect (IPv4 first). Pure. */
export function hostTargets(policy: CompiledPolicy, listeners: readonly Listener[], timeoutMs = SERVICE_TIMEOUT_MS): HostTarget[] {
  const index = buildPortIndex(policy.rules);
  const seen = new Set<number>();
  const out: HostTarget[] = [];
  const ordered = [...listeners].sort((a, b) => a.port - b.port || a.family - b.family);
  for (const l of ordered) {
    if (l.proto !== 'tcp' || seen.has(l.port)) continue;
    const idx = decidingRule(index, 'tcp', l.port);
    const rule = idx >= 0 ? policy.rules[idx]! : null;
    if (!rule?.expect || rule.action === 'deny') continue;
    seen.add(l.port);
    out.push({ target: { host: localAddress(l), port: l.port, expect: rule.expect, relayTest: false, timeoutMs }, rule, listener: l });
  }
  return out;
}

/** Observes targets a few at a time, in order. */
export async function observeAll(targets: readonly ServiceTarget[], parallel = PARALLEL): Promise<Observation[]> {
  const out: Observation[] = new Array(targets.length);
  let next = 0;
  const worker = async () => {
    while (next < targets.length) {
      const i = next++;
      out[i] = await observe(targets[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, targets.length) }, worker));
  return out;
}

const CHILD = fileURLToPath(new URL('./netns-child.js', import.meta.url));

/** The same, from inside a network namespace: sockets belong to the namespace of the process that opens them. */
export async function observeInNetns(netns: string, targets: readonly ServiceTarget[], exec: Exec = realExec): Promise<Observation[]> {
  const [cmd, args] = inNetns(netns, process.execPath, [CHILD]);
  const worst = Math.ceil(targets.length / PARALLEL) * 3 * Math.max(...targets.map((t) => t.timeoutMs)) + 10_000;
  const r = await exec(cmd, args, { input: JSON.stringify(targets), timeoutMs: worst });
  if (r.code !== 0) throw new RuntimeError(`cannot check services in network namespace ${netns}: ${r.stderr.trim().split('\n')[0] ?? `exit ${r.code}`}`);
  return JSON.parse(r.stdout) as Observation[];
}

/** check and the agent: the findings of every service whose rule has expect. */
export async function checkServices(policy: CompiledPolicy, listeners: readonly Listener[], opts: { netns?: string; now?: Date; timeoutMs?: number } = {}): Promise<Finding[]> {
  const targets = hostTargets(policy, listeners, opts.timeoutMs);
  if (!targets.length) return [];
  const list = targets.map((t) => t.target);
  const seen = opts.netns ? await observeInNetns(opts.netns, list) : await observeAll(list);
  const now = opts.now ?? new Date();
  return targets.flatMap((t, i) => serviceFindings(judge(t.rule.expect!, seen[i]!, now), {
    port: t.listener.port, address: t.listener.address, rule: t.rule.name, place: listenerPlace(t.listener), processes: t.listener.processes,
  }));
}

// A namespace lab: a server and N clients on a bridge that lives in its own namespace, with
// TEST-NET/documentation addresses (192.0.2.0/24, 2001:db8:1::/64). Nothing is created in the
// host's own network namespace; destroy() (also run at process exit) removes everything.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { HELPERS } from './paths.js';

let counter = 0;
const live = new Set<string>();
process.on('exit', () => {
  for (const ns of live) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
});
// A bench or test stopped with Ctrl-C or `timeout` exits through the hook above too (a namespace
// left behind with a large table of dynamic sets keeps the kernel's set GC busy).
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) process.once(signal, () => process.exit(code));

export interface Host {
  ns: string;
  v4: string;
  v6: string;
}

export interface Lab {
  server: Host;
  clients: Host[];
  namespaces: string[];
  destroy(): void;
}

export function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

/** Runs a command inside a namespace without `ip netns exec` (which remounts /sys). */
export function nsRun(ns: string, cmd: string, args: string[], input?: string, quiet = false): string {
  return execFileSync('nsenter', [`--net=/run/netns/${ns}`, '--', cmd, ...args], { encoding: 'utf8', input, maxBuffer: 256 * 1024 * 1024, stdio: ['pipe', 'pipe', quiet ? 'ignore' : 'inherit'] });
}

export function uniqueName(role: string): string {
  return `pw${process.pid.toString(36)}${(counter++).toString(36)}${role}`;
}

export function createNamespace(role: string): string {
  const ns = uniqueName(role);
  ip(['netns', 'add', ns]);
  live.add(ns);
  ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  return ns;
}

export function deleteNamespace(ns: string): void {
  try {
    ip(['netns', 'del', ns]);
  } finally {
    live.delete(ns);
  }
}

export function createLab(clients = 2): Lab {
  const made: string[] = [];
  try {
    const br = createNamespace('br');
    made.push(br);
    ip(['-n', br, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', br, 'link', 'set', 'br0', 'up']);
    const attach = (role: string, n: number): Host => {
      const ns = createNamespace(role);
      made.push(ns);
      const port = `p${n}`;
      ip(['-n', br, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      ip(['-n', br, 'link', 'set', port, 'master', 'br0', 'up']);
      const host = { ns, v4: `192.0.2.${n}`, v6: `2001:db8:1::${n}` };
      ip(['-n', ns, 'addr', 'add', `${host.v4}/24`, 'dev', 'eth0']);
      ip(['-n', ns, '-6', 'addr', 'add', `${host.v6}/64`, 'dev', 'eth0', 'nodad']);
      ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      return host;
    };
    const server = attach('s', 1);
    const cs = Array.from({ length: clients }, (_, i) => attach(`c${i + 1}`, 11 + i));
    return {
      server,
      clients: cs,
      namespaces: made,
      destroy: () => made.forEach(deleteNamespace),
    };
  } catch (err) {
    made.forEach(deleteNamespace);
    throw err;
  }
}

/**
 * A client on a link of its own: the server's `eth1` ↔ the client's `eth0`, on 198.51.100.0/24 and
 * 2001:db8:2::/64 (the server is .1 / ::1), so rules that match the input interface differ per
 * client. The namespace is added to the lab and removed with it.
 */
export function addDirectClient(lab: Lab): Host {
  const ns = createNamespace('d');
  lab.namespaces.push(ns); // the list destroy() removes
  ip(['-n', lab.server.ns, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  ip(['-n', lab.server.ns, 'addr', 'add', '198.51.100.1/24', 'dev', 'eth1']);
  ip(['-n', lab.server.ns, '-6', 'addr', 'add', '2001:db8:2::1/64', 'dev', 'eth1', 'nodad']);
  ip(['-n', lab.server.ns, 'link', 'set', 'eth1', 'up']);
  const host = { ns, v4: '198.51.100.13', v6: '2001:db8:2::13' };
  ip(['-n', ns, 'addr', 'add', `${host.v4}/24`, 'dev', 'eth0']);
  ip(['-n', ns, '-6', 'addr', 'add', `${host.v6}/64`, 'dev', 'eth0', 'nodad']);
  ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
  return host;
}

export interface ListenSpec {
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
  /** v6only=false on a "::" socket makes it dual-stack. */
  ipv6Only?: boolean;
}

/** Starts listeners in a namespace (one node process; `title` renames it, as a pre-fork master would). */
export async function startListeners(ns: string, specs: ListenSpec[], title?: string): Promise<ChildProcess> {
  const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', process.execPath, `${HELPERS}listen.js`, JSON.stringify({ specs, title })], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`listener exited early (${code}): ${buf}`)));
  });
  return child;
}

export type ProbeResult = 'open' | 'refused' | 'timeout';

export interface Probe {
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
}

/** Connects from inside a namespace; sequential keeps order (for rate limits). */
export function probe(ns: string, probes: Probe[], opts: { timeoutMs?: number; sequential?: boolean } = {}): ProbeResult[] {
  const out = nsRun(ns, process.execPath, [`${HELPERS}probe.js`, JSON.stringify({ probes, timeoutMs: opts.timeoutMs ?? 600, sequential: opts.sequential ?? false })]);
  return JSON.parse(out) as ProbeResult[];
}

/**
 * A probe expected open that timed out is tried once more with a longer timeout before a test
 * calls it a mismatch: on a loaded 2-core machine a UDP echo can miss a short timeout. A probe
 * that got through when it should not have is never retried.
 */
export function recheck(ns: string, p: Probe, seen: ProbeResult, expectOpen: boolean): ProbeResult {
  if (!expectOpen || seen !== 'timeout') return seen;
  return probe(ns, [p], { timeoutMs: 2000 })[0]!;
}

/**
 * Forgets the namespace's tracked connections. Between two rulesets an old UDP flow whose source
 * port a new probe happens to reuse would be "established" and let through: real, but not what a
 * test of the new ruleset's new connections asks.
 */
export function flushConntrack(ns: string): void {
  nsRun(ns, 'conntrack', ['-F'], undefined, true);
}

/**
 * Forgets what the namespaces learned of their neighbours: a cached entry lets IPv6 through a
 * ruleset that drops neighbour discovery, which a fresh client would never get past.
 */
export function flushNeighbours(...namespaces: string[]): void {
  for (const ns of namespaces) ip(['-n', ns, 'neigh', 'flush', 'all']);
}

/**
 * Empties every firewall of a namespace: the nftables ruleset (which holds iptables-nft's tables
 * too) and, when `legacy` is set, the iptables-legacy/ip6tables-legacy tables and their policies.
 */
export function flushFirewall(ns: string, legacy = false): void {
  nsRun(ns, 'nft', ['flush', 'ruleset']);
  if (!legacy) return;
  const builtins: Record<string, string[]> = {
    filter: ['INPUT', 'FORWARD', 'OUTPUT'],
    nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
    mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
    raw: ['PREROUTING', 'OUTPUT'],
  };
  for (const cmd of ['iptables-legacy', 'ip6tables-legacy']) {
    for (const [table, chains] of Object.entries(builtins)) {
      nsRun(ns, cmd, ['-t', table, '-F'], undefined, true);
      nsRun(ns, cmd, ['-t', table, '-X'], undefined, true);
      if (table !== 'nat') for (const c of chains) nsRun(ns, cmd, ['-t', table, '-P', c, 'ACCEPT'], undefined, true);
    }
  }
}

// The shapes that flow between collectors, evaluation and output (docs/architecture.md, "The model").

export type Proto = 'tcp' | 'udp';
export type Family = 4 | 6;
export type Scope = 'loopback' | 'wildcard' | 'address';
export type Severity = 'critical' | 'high' | 'medium' | 'low' | 'info';

export const SEVERITIES: readonly Severity[] = ['critical', 'high', 'medium', 'low', 'info'];

export interface ProcessInfo {
  pid: number;
  /** /proc/PID/comm, or "unknown" when it cannot be read. */
  name: string;
  /** Absolute path of the executable, or null when it cannot be read. */
  exe: string | null;
  /** User name (or numeric uid when no name is known), or "unknown". */
  user: string;
  /** Arguments joined by spaces; null unless asked for (scan --cmdline: they may hold secrets), or when unreadable. */
  cmdline: string | null;
}

export interface Listener {
  proto: Proto;
  family: Family;
  address: string;
  port: number;
  /** Interface the socket is bound to (SO_BINDTODEVICE / %iface), when any. */
  interface?: string;
  scope: Scope;
  /** An IPv6 wildcard socket with v6only=0 also accepts IPv4. */
  dualStack: boolean;
  /** Socket inode: joins the socket to its owners. */
  inode: number;
  /** Owners; empty when they could not be read (not root, or the process is in another pid namespace). */
  processes: ProcessInfo[];
}

export interface Snapshot {
  host: { hostname: string; netns: string | null; source: 'ss' | 'procfs' | 'systeminformation'; precise: boolean };
  listeners: Listener[];
}

export type FindingKind =
  | 'unexpected-listener'
  | 'forbidden-listener'
  | 'overexposed'
  | 'unexpected-process'
  | 'missing-listener'
  /** Our applied table/chain is missing or differs from what apply loaded. */
  | 'firewall-drift'
  /** The live firewall admits sources the policy does not allow / blocks sources it allows. */
  | 'firewall-gap'
  | 'blocked-service'
  /** iptables-legacy and nftables rules both active. */
  | 'mixed-firewall'
  /** The live exposure could not be decided (or read), so it was not compared with the policy. */
  | 'exposure-undetermined'
  /** A host port DNATed to a container, past the input chain. */
  | 'published-container-port'
  /** The agent itself: a reloaded policy/config was invalid; a sink dropped events. */
  | 'agent-config-invalid'
  | 'alerts-dropped'
  /** The agent itself: its state dir cannot be written (full disk); state.json was unreadable. */
  | 'state-write-failed'
  | 'state-corrupt'
  /** A rule's expect, checked by connecting to the service (agent/service). */
  | 'tls-missing'
  | 'tls-weak'
  | 'cert-expiring'
  | 'cert-name-mismatch'
  | 'smtp-plaintext-auth'
  | 'service-unanswered'
  /** probe only: the SMTP server relays mail for strangers. */
  | 'open-relay'
  /** Refused or rate-limited new connections on one rule above attempts.threshold within the window. */
  | 'attempt-surge'
  /** One source touched more than attempts.scan_ports distinct ports within the window. */
  | 'port-scan';

export interface Finding {
  /** Stable across scans: kind, proto/port, scope, program — never a pid. */
  id: string;
  kind: FindingKind;
  severity: Severity;
  /** null for findings about the host as a whole (firewall drift, the agent itself). */
  proto: Proto | null;
  port: number | null;
  address: string | null;
  rule: string | null;
  processes: ProcessInfo[];
  message: string;
  remedy: string;
}

/** A finding about the host as a whole (the firewall, the agent itself): no listener, no program. */
export function hostFinding(kind: FindingKind, severity: Severity, message: string, remedy: string, id: string = kind): Finding {
  return { id, kind, severity, proto: null, port: null, address: null, rule: null, processes: [], message, remedy };
}

/** What portwarden's own rules counted (agent/attempts), running totals by `rule\0proto\0port`. */
export interface AttemptTotals {
  /** `rule\0proto\0port` → refused new connections */
  refused: Record<string, number>;
  rateLimited: Record<string, number>;
  accepted: Record<string, number>;
}

export function severityRank(s: Severity): number {
  return SEVERITIES.length - SEVERITIES.indexOf(s);
}

/** "tcp/25 on 0.0.0.0", "udp/53 on [::1]%lo": how messages name a listener. */
export function listenerPlace(l: Pick<Listener, 'proto' | 'port' | 'family' | 'address' | 'interface'>): string {
  return `${l.proto}/${l.port} on ${l.family === 6 ? `[${l.address}]` : l.address}${l.interface ? `%${l.interface}` : ''}`;
}

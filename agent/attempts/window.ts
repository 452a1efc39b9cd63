// Counter readings over time → samples (what grew since the last reading), monotonic totals for
// the metrics, the `attempts` report of a window, and the attempt-surge / port-scan findings.
// Pure: the caller passes the clock and does the I/O.
import type { AttemptTotals, Finding, Proto } from '../model.js';
import type { AttemptKind, CounterReading } from './counters.js';

/** Absolute counters of one reading, keyed so the next reading can be compared. */
export interface Raw {
  at: string;
  backend: 'nft' | 'iptables';
  /** rule → [refused, rateLimited, accepted, proto, port] */
  rules: Record<string, [number, number, number, Proto | null, number | null]>;
  /** sourceKey → count */
  sources: Record<string, number>;
}

/** One source's growth within a sample: kind r|l, rule, address, proto, port, how much, when last. */
export type SampleSource = [kind: 'r' | 'l', rule: string, address: string, proto: Proto | null, port: number | null, delta: number, last: string];

/** What the counters grew by between two readings (only what grew is kept). */
export interface Sample {
  at: string;
  backend: 'nft' | 'iptables';
  rules: Record<string, [refused: number, rateLimited: number, accepted: number, proto: Proto | null, port: number | null]>;
  sources: SampleSource[];
}

const sourceKey = (kind: AttemptKind, rule: string, address: string, proto: Proto | null, port: number | null) => `${kind === 'refused' ? 'r' : 'l'}|${rule}|${address}|${proto ?? ''}|${port ?? ''}`;

export function rawOf(reading: CounterReading, at: Date): Raw {
  const raw: Raw = { at: at.toISOString(), backend: reading.backend, rules: {}, sources: {} };
  for (const r of reading.rules) raw.rules[r.rule] = [r.refused, r.rateLimited, r.accepted, r.proto ?? null, r.port ?? null];
  for (const s of reading.sources) {
    const k = sourceKey(s.kind, s.rule, s.address, s.proto, s.port);
    raw.sources[k] = (raw.sources[k] ?? 0) + s.count;
  }
  return raw;
}

/**
 * Growth since prev. A counter lower than before was reset (rules re-applied, the element timed
 * out and came back, a reboot): all of its current value is new, as Prometheus counts a reset.
 * With no prev, everything since the rules were loaded counts.
 */
export function sampleOf(prev: Raw | null, cur: Raw, reading: CounterReading): Sample {
  const grew = (was: number | undefined, now: number) => (was === undefined || now < was ? now : now - was);
  const rules: Sample['rules'] = {};
  for (const [rule, [r, l, a, proto, port]] of Object.entries(cur.rules)) {
    const p = prev?.backend === cur.backend ? prev.rules[rule] : undefined;
    const d: [number, number, number] = [grew(p?.[0], r), grew(p?.[1], l), grew(p?.[2], a)];
    if (d[0] || d[1] || d[2]) rules[rule] = [...d, proto, port];
  }
  const sources: SampleSource[] = [];
  const at = Date.parse(cur.at);
  const seen = new Set<string>();
  for (const s of reading.sources) {
    const k = sourceKey(s.kind, s.rule, s.address, s.proto, s.port);
    if (seen.has(k)) continue;
    seen.add(k);
    const d = grew(prev?.backend === cur.backend ? prev.sources[k] : undefined, cur.sources[k] ?? 0);
    if (!d) continue;
    const last = s.secondsAgo !== null ? new Date(at - s.secondsAgo * 1000).toISOString() : cur.at;
    sources.push([s.kind === 'refused' ? 'r' : 'l', s.rule, s.address, s.proto, s.port, d, last]);
  }
  return { at: cur.at, backend: cur.backend, rules, sources };
}

/** Monotonic totals for the metrics; kept in the state dir so a restart or reboot continues them. */
export const emptyTotals = (): AttemptTotals => ({ refused: {}, rateLimited: {}, accepted: {} });

export const refusedKey = (rule: string, proto: Proto | null, port: number | null) => `${rule}\0${proto ?? ''}\0${port ?? ''}`;

export function addToTotals(t: AttemptTotals, s: Sample): void {
  const add = (m: Record<string, number>, k: string, n: number) => {
    if (n) m[k] = (m[k] ?? 0) + n;
  };
  for (const [rule, [r, l, a, proto, port]] of Object.entries(s.rules)) {
    add(t.rateLimited, rule, l);
    add(t.accepted, rule, a);
    // nft counts the refusals per port with the sources; iptables only per rule.
    if (s.backend === 'iptables') add(t.refused, refusedKey(rule, proto, port), r);
  }
  if (s.backend === 'nft') for (const [kind, rule, , proto, port, d] of s.sources) if (kind === 'r') add(t.refused, refusedKey(rule, proto, port), d);
}

export interface ReportSource {
  address: string;
  count: number;
  firstSeen: string | null;
  lastSeen: string | null;
}

export interface ReportRow {
  rule: string;
  proto: Proto | null;
  port: number | null;
  refused: number;
  rateLimited: number;
  accepted: number;
  sources: ReportSource[];
}

export interface Scanner {
  address: string;
  ports: number;
  count: number;
}

export interface AttemptsReport {
  window: string;
  rules: ReportRow[];
  scanners: Scanner[];
}

export interface ReportOptions {
  /** What the window is called in the output ("5m", or "since-load" without history). */
  window: string;
  top: number;
  port?: number;
  scanPorts: number;
}

/** The samples' sum, per rule and port, with each row's top sources and the scanners. */
export function buildReport(samples: readonly Sample[], opts: ReportOptions): AttemptsReport {
  const rows = new Map<string, ReportRow & { all: Map<string, ReportSource> }>();
  const ruleTotals = new Map<string, [number, number, number, Proto | null, number | null]>();
  const row = (rule: string, proto: Proto | null, port: number | null) => {
    const k = `${rule}\0${proto}\0${port}`;
    let r = rows.get(k);
    if (!r) rows.set(k, (r = { rule, proto, port, refused: 0, rateLimited: 0, accepted: 0, sources: [], all: new Map() }));
    return r;
  };
  const scan = new Map<string, { ports: Set<string>; count: number }>();
  const backend = samples[samples.length - 1]?.backend ?? 'nft';
  // iptables: a rule's port is known from its lines (when it names one), its sources only per rule.
  const ruleMeta = new Map<string, [Proto | null, number | null]>();
  for (const s of samples) for (const [rule, v] of Object.entries(s.rules)) ruleMeta.set(rule, [v[3], v[4]]);
  for (const s of samples) {
    for (const [rule, [r, l, a, proto, port]] of Object.entries(s.rules)) {
      const t = ruleTotals.get(rule) ?? [0, 0, 0, proto, port];
      ruleTotals.set(rule, [t[0] + r, t[1] + l, t[2] + a, proto, port]);
    }
    for (const [kind, rule, address, proto, port, d, last] of s.sources) {
      const rr = s.backend === 'nft' ? row(rule, proto, port) : row(rule, ...(ruleMeta.get(rule) ?? [null, null]));
      if (s.backend === 'nft') {
        if (kind === 'r') rr.refused += d;
        else rr.rateLimited += d;
      }
      const src = rr.all.get(address) ?? { address, count: 0, firstSeen: null, lastSeen: null };
      src.count += d;
      if (!src.firstSeen || last < src.firstSeen) src.firstSeen = last;
      if (!src.lastSeen || last > src.lastSeen) src.lastSeen = last;
      rr.all.set(address, src);
      if (port !== null) {
        const sc = scan.get(address) ?? { ports: new Set(), count: 0 };
        sc.ports.add(`${proto}/${port}`);
        sc.count += d;
        scan.set(address, sc);
      }
    }
  }
  const rowsOf = new Map<string, ReportRow[]>();
  for (const x of rows.values()) {
    const list = rowsOf.get(x.rule);
    if (list) list.push(x);
    else rowsOf.set(x.rule, [x]);
  }
  for (const [rule, [r, l, a, proto, port]] of ruleTotals) {
    const mine = rowsOf.get(rule) ?? [];
    if (backend === 'iptables' || !mine.length) {
      const only = mine[0] ?? row(rule, proto, port);
      if (backend === 'iptables') {
        only.refused += r;
        only.rateLimited += l;
      }
      only.accepted += a;
    } else for (const x of mine) x.accepted += a; // nft counts accepts per rule: each of its rows shows them
  }
  const out = [...rows.values()]
    .filter((r) => opts.port === undefined || r.port === opts.port)
    .filter((r) => r.refused || r.rateLimited || r.accepted || r.all.size)
    .map(({ all, ...r }) => ({ ...r, sources: [...all.values()].sort((a, b) => b.count - a.count || a.address.localeCompare(b.address)).slice(0, opts.top) }))
    .sort((a, b) => b.refused + b.rateLimited - (a.refused + a.rateLimited) || a.rule.localeCompare(b.rule) || (a.port ?? -1) - (b.port ?? -1));
  const scanners = [...scan]
    .filter(([, s]) => s.ports.size > opts.scanPorts)
    .map(([address, s]) => ({ address, ports: s.ports.size, count: s.count }))
    .sort((a, b) => b.ports - a.ports || a.address.localeCompare(b.address));
  return { window: opts.window, rules: out, scanners };
}

export interface EventOptions {
  window: string;
  threshold: number;
  scanPorts: number;
  top: number;
}

/** attempt-surge per rule over the threshold, port-scan per source over scan_ports: findings for the drift machinery. */
export function attemptFindings(report: AttemptsReport, opts: EventOptions): Finding[] {
  const findings: Finding[] = [];
  const byRule = new Map<string, ReportRow[]>();
  for (const r of report.rules) {
    const list = byRule.get(r.rule);
    if (list) list.push(r);
    else byRule.set(r.rule, [r]);
  }
  for (const [rule, rows] of byRule) {
    const n = rows.reduce((s, r) => s + r.refused + r.rateLimited, 0);
    if (n <= opts.threshold) continue;
    const top = new Map<string, number>();
    for (const r of rows) for (const s of r.sources) top.set(s.address, (top.get(s.address) ?? 0) + s.count);
    const list = [...top].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, opts.top).map(([a, c]) => `${a} (${c})`).join(', ');
    const one = rows.length === 1 ? rows[0]! : null;
    findings.push({
      id: `attempt-surge:${rule}`,
      kind: 'attempt-surge',
      severity: 'medium',
      proto: one?.proto ?? null,
      port: one?.port ?? null,
      address: null,
      rule,
      processes: [],
      message: `${n} refused or rate-limited new connections on rule ${rule} within ${opts.window} (threshold ${opts.threshold})${list ? `; top sources: ${list}` : ''}`,
      remedy: 'portwarden attempts --since ' + opts.window + ' shows who; block persistent sources upstream or tighten the rule',
    });
  }
  for (const s of report.scanners) {
    if (s.ports <= opts.scanPorts) continue;
    findings.push({
      id: `port-scan:${s.address}`,
      kind: 'port-scan',
      severity: 'medium',
      proto: null,
      port: null,
      address: s.address,
      rule: null,
      processes: [],
      message: `${s.address} touched ${s.ports} distinct ports (${s.count} refused new connections) within ${opts.window} (scan_ports ${opts.scanPorts})`,
      remedy: `portwarden attempts --since ${opts.window} shows the ports; block ${s.address} upstream if it goes on`,
    });
  }
  return findings;
}

/** Distinct sources per rule in the samples (the metric portwarden_refused_sources). */
export function distinctSources(samples: readonly Sample[]): Record<string, number> {
  const per = new Map<string, Set<string>>();
  for (const s of samples) {
    for (const [, rule, address] of s.sources) {
      let set = per.get(rule);
      if (!set) per.set(rule, (set = new Set()));
      set.add(address);
    }
  }
  return Object.fromEntries([...per].map(([rule, set]) => [rule, set.size]));
}

// The review page's data: header, open findings (with one explain trace per exposure finding),
// the exposure map, the history and the published ports. Pure: the caller reads the snapshot,
// firewall, journal and state; this only joins them. It is also what /report.json serves.
import type { AttemptsReport } from '../attempts/window.js';
import { SEVERITIES, severityRank, type Finding, type Listener, type Proto, type Severity, type Snapshot } from '../model.js';
import type { CompiledPolicy } from '../policy/compile.js';
import { buildPortIndex, decidingRule } from '../policy/port-index.js';
import { policyAllows } from '../exposure/compare.js';
import { hostAddressesOn, listenerTarget, publishedTarget, reach, routedVia, targetExposure, unheardPublished, type FirewallView, type Reach, type Target } from '../exposure/exposure.js';
import { fromBig, IntervalSet, prefixSet, type Fam } from '../exposure/intervals.js';
import { verdictOf, walkPath } from '../exposure/path.js';
import type { JournalEvent } from '../alerts/journal.js';
import type { EventKind } from '../alerts/drift.js';

export interface PageStatus {
  applied: { backend: string; hash: string; at: string; policy: string; live: string } | null;
  pending: { id: string; deadline: string | null } | null;
}

export interface PageInput {
  generatedAt: Date;
  snapshot: Snapshot;
  fw: FirewallView;
  policy: { file: string; sha256: string; compiled: CompiledPolicy };
  /** The findings of this scan. */
  findings: readonly Finding[];
  /** finding id → when it opened (the agent's state), where known. */
  openedAt: ReadonlyMap<string, string>;
  /** Journal events, any order; those before `since` are left out. */
  events: readonly JournalEvent[];
  since: Date;
  /** What `status` says; null: no state dir was read. */
  status: PageStatus | null;
  /** What portwarden's rules counted within `since` (the agent's samples); null: none kept. */
  attempts?: AttemptsReport | null;
}

/** Attempts per rule and port, as `portwarden attempts` shows them (without the sources). */
export interface PageAttempts {
  window: string;
  rows: { rule: string; proto: Proto | null; port: number | null; refused: number; rateLimited: number; accepted: number; topSource: string | null }[];
  scanners: { address: string; ports: number; count: number }[];
}

export type CellState = 'gap' | 'blocked' | 'open' | 'closed' | 'unknown';

export interface MapColumn {
  label: string;
  kind: 'group' | 'loopback' | 'other' | 'interface';
  prefixes: string[];
}

export interface MapCell {
  state: CellState;
  /** Sources the live firewall lets through (within the column). */
  reachable: string[];
  /** Sources the policy allows (within the column). */
  allowed: string[];
  /** reachable − allowed, and allowed − reachable: what firewall-gap and blocked-service name. */
  gap: string[];
  blocked: string[];
}

export interface MapRow {
  proto: Proto;
  port: number;
  /** "0.0.0.0", "[::]", "published": what the row is. */
  address: string;
  program: string;
  rule: string | null;
  cells: MapCell[];
}

export interface ExplainTrace {
  from: string;
  iif: string;
  to: string | null;
  verdict: string;
  steps: { packet: string | null; chain: string; handle: number | null; comment: string | null; rule: string; outcome: string }[];
  reasons: string[];
}

export interface PageFinding {
  id: string;
  kind: string;
  severity: Severity;
  proto: Proto | null;
  port: number | null;
  rule: string | null;
  message: string;
  remedy: string;
  since: string | null;
  explain: ExplainTrace | null;
}

export interface HistoryLane {
  id: string;
  kind: string;
  severity: Severity;
  events: { event: EventKind; at: string }[];
}

export interface PageData {
  version: 1;
  generatedAt: string;
  host: { hostname: string; netns: string | null };
  policy: { file: string; sha256: string };
  status: PageStatus | null;
  worst: Severity | null;
  counts: { listeners: number; findings: number; bySeverity: Record<Severity, number>; events: number; gapCells: number; blockedCells: number; published: number };
  firewallError: string | null;
  findings: PageFinding[];
  map: { columns: MapColumn[]; rows: MapRow[] };
  history: { since: string; until: string; lanes: HistoryLane[] };
  published: { proto: Proto; port: number; to: string | null; where: string; exposure: string; sources: string[] }[];
  attempts: PageAttempts | null;
}

const FAMS: Fam[] = [4, 6];
/** Findings whose page entry carries an explain trace, and at most how many (each is a walk, and ~1 KB of page). */
export const TRACED_KINDS: ReadonlySet<string> = new Set(['firewall-gap', 'blocked-service', 'published-container-port']);
export const MAX_TRACES = 50;
const LOOPBACK: Record<Fam, string> = { 4: '127.0.0.0/8', 6: '::1/128' };
type Region = Record<Fam, IntervalSet>;

const setOf = (prefixes: readonly string[], fam: Fam) => prefixes.filter((p) => p.includes(':') === (fam === 6)).reduce((s, p) => s.union(prefixSet(fam, p)), IntervalSet.empty(fam));
const cidrsOf = (r: Partial<Region>) => FAMS.flatMap((f) => r[f]?.toCidrs() ?? []);

/**
 * The map's columns: one per distinct `from` list of the policy's rules (named as written: its
 * groups and prefixes), loopback, every other source, and each interface (the sources routed
 * through it).
 */
export function mapColumns(policy: CompiledPolicy, fw: FirewallView): { column: MapColumn; region: Region | 'interface' }[] {
  const out: { column: MapColumn; region: Region | 'interface' }[] = [];
  const seen = new Set<string>();
  let named: Region = { 4: IntervalSet.empty(4), 6: IntervalSet.empty(6) };
  for (const r of policy.rules) {
    if (r.from.kind !== 'list') continue;
    const label = r.from.names.join(', ');
    if (seen.has(label)) continue;
    seen.add(label);
    const region = { 4: setOf(r.from.v4, 4), 6: setOf(r.from.v6, 6) };
    named = { 4: named[4].union(region[4]), 6: named[6].union(region[6]) };
    out.push({ column: { label, kind: 'group', prefixes: [...r.from.v4, ...r.from.v6] }, region });
  }
  const loop = { 4: prefixSet(4, LOOPBACK[4]), 6: prefixSet(6, LOOPBACK[6]) };
  out.push({ column: { label: 'loopback', kind: 'loopback', prefixes: [LOOPBACK[4], LOOPBACK[6]] }, region: loop });
  const other = { 4: IntervalSet.full(4).subtract(named[4]).subtract(loop[4]), 6: IntervalSet.full(6).subtract(named[6]).subtract(loop[6]) };
  out.push({ column: { label: 'other', kind: 'other', prefixes: cidrsOf(other) }, region: other });
  for (const iface of fw.interfaces) {
    const region = { 4: routedVia(fw, 4, iface), 6: routedVia(fw, 6, iface) };
    out.push({ column: { label: iface, kind: 'interface', prefixes: cidrsOf(region) }, region: 'interface' });
  }
  return out;
}

/** One cell: the policy's allowed sources and the firewall's accepted ones, within a region. */
export function cellOf(allowed: Partial<Region>, reachable: Partial<Region>, unsure: Partial<Region>, region: Partial<Region>): MapCell {
  const within = (r: Partial<Region>) => Object.fromEntries(FAMS.filter((f) => region[f]).map((f) => [f, (r[f] ?? IntervalSet.empty(f)).intersect(region[f]!)])) as Partial<Region>;
  const a = within(allowed);
  const r = within(reachable);
  const u = within(unsure);
  const fams = FAMS.filter((f) => region[f]);
  const gap = Object.fromEntries(fams.map((f) => [f, r[f]!.subtract(a[f]!)])) as Partial<Region>;
  const blocked = Object.fromEntries(fams.map((f) => [f, a[f]!.subtract(r[f]!).subtract(u[f]!)])) as Partial<Region>;
  const some = (x: Partial<Region>) => fams.some((f) => !x[f]!.isEmpty());
  const state: CellState = some(gap) ? 'gap' : some(blocked) ? 'blocked' : some(u) ? 'unknown' : some(r) ? 'open' : 'closed';
  return { state, reachable: cidrsOf(r), allowed: cidrsOf(a), gap: cidrsOf(gap), blocked: cidrsOf(blocked) };
}

const program = (l: Listener) => [...new Set(l.processes.map((p) => p.name))].sort().join(',') || '-';
const place = (l: Listener) => (l.family === 6 ? `[${l.address}]` : l.address) + (l.interface ? `%${l.interface}` : '');

function mapRows(input: PageInput, columns: ReturnType<typeof mapColumns>): MapRow[] {
  const { policy: { compiled: policy }, fw } = input;
  const index = buildPortIndex(policy.rules);
  const rows: MapRow[] = [];
  const byFam = (fams: readonly Fam[], f: (fam: Fam) => IntervalSet): Partial<Region> => Object.fromEntries(fams.map((fam) => [fam, f(fam)]));
  const targetRow = (t: Target, l: Listener | null): MapRow => {
    const idx = decidingRule(index, t.proto, t.port);
    const r = l?.scope === 'loopback' ? null : reach(t, fw);
    const fams = t.families;
    const allowed = byFam(fams, (f) => policyAllows(policy, idx, f));
    const none = byFam(fams, (f) => IntervalSet.empty(f));
    const all = byFam(fams, (f) => IntervalSet.full(f));
    const cells = columns.map(({ column, region }) => {
      if (column.kind === 'loopback') {
        // Connections from this host itself go over lo, which the generated ruleset accepts before
        // any rule: the policy refuses them only where a rule denies the port.
        const own = byFam(fams, (f) => (region as Region)[f]); // ::1 does not reach an IPv4-only socket
        if (!l) return cellOf(none, none, none, own);
        const ok = idx < 0 || policy.rules[idx]!.action === 'allow';
        return cellOf(ok ? all : none, all, none, own);
      }
      if (l?.scope === 'loopback') return cellOf(none, none, none, byFam(fams, (f) => IntervalSet.full(f)));
      if (!r) return cellOf(none, none, all, column.kind === 'interface' ? all : (region as Region)); // firewall unread
      if (region === 'interface') {
        const per = r.perInterface.get(column.label);
        const reg = byFam(fams, (f) => routedVia(fw, f, column.label));
        return cellOf(allowed, byFam(fams, (f) => per?.get(f) ?? IntervalSet.empty(f)), unsureOf(r, fams), reg);
      }
      return cellOf(allowed, byFam(fams, (f) => r.accepted.get(f) ?? IntervalSet.empty(f)), unsureOf(r, fams), byFam(fams, (f) => region[f]));
    });
    return { proto: t.proto, port: t.port, address: l ? place(l) : 'published', program: l ? program(l) : '-', rule: idx >= 0 ? policy.rules[idx]!.name : null, cells };
  };
  for (const l of input.snapshot.listeners) rows.push(targetRow(listenerTarget(l), l));
  for (const u of unheardPublished(fw, input.snapshot.listeners)) rows.push(targetRow(publishedTarget(u.published, u.families), null));
  return rows.sort((a, b) => a.proto.localeCompare(b.proto) || a.port - b.port || a.address.localeCompare(b.address));
}

const unsureOf = (r: Reach, fams: readonly Fam[]): Partial<Region> => Object.fromEntries(fams.map((f) => [f, r.undetermined.get(f) ?? IntervalSet.empty(f)]));

/**
 * One address of a set, as an example: a documentation address when the set holds one, else the
 * first just past a gap (past what is allowed), else the first after a network's own address.
 */
export function sampleAddress(s: IntervalSet): string | null {
  const doc = s.family === 4 ? '203.0.113.1' : '2001:db8::1';
  if (s.has(doc)) return doc;
  const range = s.ranges.find(([lo]) => lo > 0n) ?? s.ranges[0];
  if (!range) return null;
  const [lo, hi] = range;
  return fromBig(hi > lo ? lo + 1n : lo, s.family);
}

/**
 * explain's trace for one source the finding is about: for firewall-gap and published ports one
 * the firewall lets through against the policy, for blocked-service one the policy allows and the
 * firewall blocks. The same walk explain does (exposure/path.ts).
 */
export function explainFor(f: Finding, input: PageInput): ExplainTrace | null {
  if (!TRACED_KINDS.has(f.kind)) return null;
  const { fw, policy: { compiled: policy } } = input;
  if (!fw.ruleset || f.proto === null || f.port === null) return null;
  const l = input.snapshot.listeners.find((x) => x.proto === f.proto && x.port === f.port && x.scope !== 'loopback' && (f.address === null || x.address === f.address));
  const pub = fw.published.find((p) => p.proto === f.proto && p.port === f.port);
  const t = l ? listenerTarget(l) : pub ? publishedTarget(pub) : null;
  if (!t) return null;
  const r = reach(t, fw);
  if (!r) return null;
  const idx = decidingRule(buildPortIndex(policy.rules), t.proto, t.port);
  for (const fam of t.families) {
    const allowed = policyAllows(policy, idx, fam);
    for (const iif of t.interface ? [t.interface] : fw.interfaces.length ? fw.interfaces : ['eth0']) {
      const acc = r.perInterface.get(iif)?.get(fam) ?? IntervalSet.empty(fam);
      const region = routedVia(fw, fam, iif);
      const who = f.kind === 'blocked-service' ? allowed.intersect(region).subtract(acc).subtract(r.undetermined.get(fam) ?? IntervalSet.empty(fam)) : acc.subtract(allowed);
      const from = sampleAddress(who);
      if (!from) continue;
      const host = { ruleset: fw.ruleset, ...(fw.addresses ? { addresses: fw.addresses } : {}), ...(fw.routes ? { routes: fw.routes } : {}), ...(fw.forwarding ? { forwarding: fw.forwarding } : {}) };
      const q = { family: fam, proto: t.proto, port: t.port, iif, listening: t.listening, ...(t.address ? { daddr: t.address } : {}) };
      let path = walkPath(host, q, prefixSet(fam, from), true);
      let to = t.address ?? null;
      // A rule asked which of our addresses the client connects to: the first of the interface's.
      if (path.askedDaddr && !t.address) {
        to = hostAddressesOn(fw, fam, iif)[0] ?? null;
        if (to) path = walkPath(host, { ...q, daddr: to }, prefixSet(fam, from), true);
      }
      return { from, iif, to, verdict: verdictOf(path), steps: path.trace.map((s) => ({ packet: s.packet ?? null, chain: s.chain, handle: s.handle, comment: s.comment, rule: s.rule, outcome: s.outcome })), reasons: [...path.reasons] };
    }
  }
  return null;
}

function history(events: readonly JournalEvent[], since: Date): HistoryLane[] {
  const lanes = new Map<string, HistoryLane>();
  const from = since.getTime();
  for (const e of [...events].sort((a, b) => Date.parse(a.at) - Date.parse(b.at))) {
    const at = Date.parse(e.at);
    if (!(at >= from)) continue;
    let lane = lanes.get(e.finding.id);
    if (!lane) lanes.set(e.finding.id, (lane = { id: e.finding.id, kind: e.finding.kind, severity: e.finding.severity, events: [] }));
    lane.severity = e.finding.severity;
    lane.events.push({ event: e.event, at: e.at });
  }
  return [...lanes.values()].sort((a, b) => severityRank(b.severity) - severityRank(a.severity) || a.id.localeCompare(b.id));
}

export function buildPage(input: PageInput): PageData {
  const { fw, policy } = input;
  const columns = mapColumns(policy.compiled, fw);
  const rows = mapRows(input, columns);
  const findings = [...input.findings].sort((a, b) => severityRank(b.severity) - severityRank(a.severity) || a.id.localeCompare(b.id));
  const bySeverity = Object.fromEntries(SEVERITIES.map((s) => [s, findings.filter((f) => f.severity === s).length])) as Record<Severity, number>;
  const lanes = history(input.events, input.since);
  const cells = rows.flatMap((r) => r.cells);
  // The worst MAX_TRACES exposure findings get a trace; the page says how to get the others'.
  const traced = new Set(findings.flatMap((f, i) => (TRACED_KINDS.has(f.kind) ? [i] : [])).slice(0, MAX_TRACES));
  const published = fw.published.map((p) => {
    const e = targetExposure(publishedTarget(p), fw);
    return { proto: p.proto, port: p.port, to: p.to, where: p.where, exposure: e.verdict, sources: e.sources };
  });
  return {
    version: 1,
    generatedAt: input.generatedAt.toISOString(),
    host: { hostname: input.snapshot.host.hostname, netns: input.snapshot.host.netns },
    policy: { file: policy.file, sha256: policy.sha256 },
    status: input.status,
    worst: findings[0]?.severity ?? null,
    counts: {
      listeners: input.snapshot.listeners.length,
      findings: findings.length,
      bySeverity,
      events: lanes.reduce((n, l) => n + l.events.length, 0),
      gapCells: cells.filter((c) => c.state === 'gap').length,
      blockedCells: cells.filter((c) => c.state === 'blocked').length,
      published: published.length,
    },
    firewallError: fw.error,
    findings: findings.map((f, i) => ({
      id: f.id, kind: f.kind, severity: f.severity, proto: f.proto, port: f.port, rule: f.rule, message: f.message, remedy: f.remedy,
      since: input.openedAt.get(f.id) ?? null,
      explain: traced.has(i) ? explainFor(f, input) : null,
    })),
    map: { columns: columns.map((c) => c.column), rows },
    history: { since: input.since.toISOString(), until: input.generatedAt.toISOString(), lanes },
    published,
    attempts: input.attempts ? pageAttempts(input.attempts) : null,
  };
}

function pageAttempts(r: AttemptsReport): PageAttempts {
  const rows = r.rules
    .filter((x) => x.refused || x.rateLimited || x.accepted)
    .map((x) => ({ rule: x.rule, proto: x.proto, port: x.port, refused: x.refused, rateLimited: x.rateLimited, accepted: x.accepted, topSource: x.sources[0] ? `${x.sources[0].address} (${x.sources[0].count})` : null }));
  return { window: r.window, rows, scanners: r.scanners.map((s) => ({ address: s.address, ports: s.ports, count: s.count })) };
}

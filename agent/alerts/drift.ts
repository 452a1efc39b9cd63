// Findings over time → events. Pure: the caller passes the clock and persists the state.
// A finding opens after `settle` consecutive scans that see it, resolves after `settle` scans that
// do not, and is reminded about every `repeatMs` while open. Identity is the finding's stable id,
// so a restarted program (new pid) changes nothing.
import type { Finding } from '../model.js';

export type EventKind = 'opened' | 'resolved' | 'reminder';

export interface DriftEvent {
  event: EventKind;
  at: string;
  finding: Finding;
}

export interface Tracked {
  finding: Finding;
  /** pending: seen, not yet opened; open: alerted. */
  status: 'pending' | 'open';
  seen: number;
  missed: number;
  firstSeen: string;
  openedAt: string | null;
  lastNotified: string | null;
}

export interface DriftState {
  version: 1;
  tracked: Record<string, Tracked>;
}

export const emptyState = (): DriftState => ({ version: 1, tracked: {} });

export interface DriftOptions {
  settle: number;
  repeatMs: number;
}

/** Ids of findings that open at once, bypassing settle (the agent's own problems are not flaky). */
const IMMEDIATE = new Set(['agent-config-invalid', 'alerts-dropped', 'state-write-failed', 'state-corrupt']);

export function step(prev: DriftState, findings: readonly Finding[], now: Date, opts: DriftOptions): { state: DriftState; events: DriftEvent[] } {
  const at = now.toISOString();
  const tracked: Record<string, Tracked> = {};
  const events: DriftEvent[] = [];
  const current = new Map(findings.map((f) => [f.id, f]));
  for (const [id, f] of current) {
    const old = prev.tracked[id];
    const need = IMMEDIATE.has(f.kind) ? 1 : opts.settle;
    if (!old || old.status === 'pending') {
      const seen = (old?.seen ?? 0) + 1;
      const t: Tracked = { finding: f, status: 'pending', seen, missed: 0, firstSeen: old?.firstSeen ?? at, openedAt: null, lastNotified: null };
      if (seen >= need) {
        Object.assign(t, { status: 'open', openedAt: at, lastNotified: at });
        events.push({ event: 'opened', at, finding: f });
      }
      tracked[id] = t;
      continue;
    }
    const t: Tracked = { ...old, finding: f, missed: 0 };
    if (opts.repeatMs > 0 && old.lastNotified && now.getTime() - Date.parse(old.lastNotified) >= opts.repeatMs) {
      t.lastNotified = at;
      events.push({ event: 'reminder', at, finding: f });
    }
    tracked[id] = t;
  }
  for (const [id, old] of Object.entries(prev.tracked)) {
    if (current.has(id) || old.status === 'pending') continue; // a pending one that vanished just flapped
    const missed = old.missed + 1;
    if (missed >= (IMMEDIATE.has(old.finding.kind) ? 1 : opts.settle)) events.push({ event: 'resolved', at, finding: old.finding });
    else tracked[id] = { ...old, missed };
  }
  return { state: { version: 1, tracked }, events };
}

/** Findings open now (alerted and not resolved). */
export function openFindings(state: DriftState): Tracked[] {
  return Object.values(state.tracked).filter((t) => t.status === 'open');
}

/** Whether a parsed finding has the fields every reader uses (a hand-edited or foreign file may not). */
export function isFinding(v: unknown): v is Finding {
  const f = v as Finding;
  return (
    typeof f === 'object' && f !== null && typeof f.id === 'string' && typeof f.kind === 'string' && typeof f.severity === 'string' &&
    typeof f.message === 'string' && typeof f.remedy === 'string' && Array.isArray(f.processes) && f.processes.every((p) => typeof p === 'object' && p !== null)
  );
}

/** Whether a parsed state.json has the shape step() needs (anything else is treated as corrupt). */
export function isDriftState(v: unknown): v is DriftState {
  const s = v as DriftState;
  if (typeof s !== 'object' || s === null || s.version !== 1 || typeof s.tracked !== 'object' || s.tracked === null || Array.isArray(s.tracked)) return false;
  return Object.entries(s.tracked).every(
    ([id, t]) => typeof t === 'object' && t !== null && isFinding(t.finding) && t.finding.id === id && (t.status === 'open' || t.status === 'pending') && Number.isInteger(t.seen) && Number.isInteger(t.missed),
  );
}

/**
 * The open findings as the journal tells them (the last event per finding wins): what a lost
 * state.json is rebuilt from, so nothing open is raised again. Pending counts are not journalled;
 * those findings simply start settling again.
 */
export function stateFromEvents(events: readonly DriftEvent[]): DriftState {
  const tracked: Record<string, Tracked> = {};
  for (const e of events) {
    const id = e.finding.id;
    if (e.event === 'resolved') {
      delete tracked[id];
      continue;
    }
    const old = tracked[id];
    tracked[id] = old
      ? { ...old, finding: e.finding, lastNotified: e.at }
      : { finding: e.finding, status: 'open', seen: 1, missed: 0, firstSeen: e.at, openedAt: e.at, lastNotified: e.at };
  }
  return { version: 1, tracked };
}

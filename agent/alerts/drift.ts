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
const IMMEDIATE = new Set(['agent-config-invalid', 'alerts-dropped']);

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

// What the review page reads besides the scan: the policy file's hash, and from the state dir the
// journal, the open findings' opening times and what `status` says. The I/O edge of agent/report.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isDriftState } from '../alerts/drift.js';
import { readJournal, type JournalEvent } from '../alerts/journal.js';
import { liveState, StateDir } from '../firewall/apply.js';
import { driftFinding } from '../firewall/drift.js';
import type { Finding } from '../model.js';
import { STATE_FILE } from '../paths.js';
import { fsError } from '../fs-atomic.js';
import { readJson } from '../state-files.js';
import { KEEP_MS, readSamples } from '../attempts/history.js';
import { buildReport, type AttemptsReport } from '../attempts/window.js';
import type { PageStatus } from './model.js';

export const DEFAULT_SINCE = '7d';

export function fileSha256(path: string): string {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch (err) {
    throw fsError(path, err);
  }
}

export interface StateRead {
  events: JournalEvent[];
  /** Lines of the journal that are not events. */
  unreadable: number;
  openedAt: Map<string, string>;
  status: PageStatus;
  /** firewall-drift from the same reading as the status; null: in place, nothing applied, or unreadable. */
  drift: Finding | null;
}

/** The journal, the open findings' opening times (state.json, when it is one) and the applied rules. */
export async function readStateForPage(dir: string, netns: string | undefined): Promise<StateRead> {
  const journal = readJournal(dir);
  // A state.json that is not one only loses the opening times (the agent keeps such a file aside).
  let saved: unknown;
  try {
    saved = readJson<unknown>(`${dir}/${STATE_FILE}`);
  } catch {
    saved = null;
  }
  const openedAt = new Map<string, string>();
  if (saved !== null && isDriftState(saved)) {
    for (const [id, t] of Object.entries(saved.tracked)) if (t.status === 'open' && t.openedAt) openedAt.set(id, t.openedAt);
  }
  const state = new StateDir(dir);
  const applied = state.readApplied();
  const pending = state.readPending();
  // One reading of our rules for both the status and the drift finding (unreadable: status "unknown").
  const live = applied ? await liveState(applied, netns ?? applied.netns ?? undefined).catch((err: Error) => err) : null;
  return {
    events: journal.events,
    unreadable: journal.unreadable.reduce((n, u) => n + u.lines, 0),
    openedAt,
    status: {
      applied: applied && { backend: applied.backend, hash: applied.hash, at: applied.at, policy: applied.policy, live: live instanceof Error ? `unknown (${live.message})` : (live ?? 'unknown') },
      pending: pending && { id: pending.id, deadline: pending.deadline },
    },
    drift: applied && live && !(live instanceof Error) ? driftFinding(applied, live) : null,
  };
}

/** The attempts the agent sampled within the window (null: it kept none), for the page's table. */
export function readAttemptsForPage(dir: string, since: Date, window: string, now = new Date()): AttemptsReport | null {
  // The agent keeps a day of samples: a longer --since shows that day, and says so.
  const kept = now.getTime() - since.getTime() > KEEP_MS;
  const samples = readSamples(dir, kept ? new Date(now.getTime() - KEEP_MS) : since);
  return samples.length ? buildReport(samples, { window: kept ? '24h (the samples the agent keeps)' : window, top: 1, scanPorts: 20 }) : null;
}

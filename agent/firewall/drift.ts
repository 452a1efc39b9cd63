// firewall-drift: whether the rules portwarden applied (applied.json) are still what is loaded.
// The agent asks every cycle (or when the monitor says the ruleset moved); report --html reads
// the live state once for its status and derives the finding from it.
import { hostFinding, type Finding } from '../model.js';
import type { AppliedRecord, LiveState } from './apply.js';
import type { MonitorChange } from './monitor-events.js';
import { OUR_TABLE_KEY } from './model.js';

/** The finding for what the kernel has now of the rules we applied; null while they are in place. Pure. */
export function driftFinding(applied: AppliedRecord, live: LiveState): Finding | null {
  if (live === 'in place') return null;
  const what = applied.backend === 'nft' ? 'table inet portwarden' : 'the PORTWARDEN-* chains';
  const plural = applied.backend !== 'nft';
  return hostFinding(
    'firewall-drift',
    'high',
    live === 'changed' ? `${what} ${plural ? 'differ' : 'differs'} from what portwarden applied at ${applied.at} (${applied.policy})` : `${what} that portwarden applied at ${applied.at} ${plural ? 'are' : 'is'} missing`,
    'find out who changed the firewall; then run portwarden apply to restore the policy, or portwarden remove if it should go',
    `firewall-drift:${applied.backend}`,
  );
}

/**
 * The monitor's events on our table since the last full comparison, netted by rule handle: a rule
 * someone inserts and deletes again cancels out. What they alone tell of the table against that
 * comparison: 'same' (nothing, or it cancelled out), 'changed' (rules only added, or only
 * removed: a line more or a line less), or null (anything else: compare again).
 */
export class OurTableLedger {
  private added = new Set<number>();
  private removed = new Set<number>();
  private unknown = true;

  /** A full comparison starts now: events from here on are counted against it. */
  reset(): void {
    this.added.clear();
    this.removed.clear();
    this.unknown = false;
  }

  /** Events may have been missed (the monitor restarted): compare again. */
  forget(): void {
    this.unknown = true;
  }

  /** Whether a further event can still tell anything (after one it cannot read, none can until the next comparison). */
  get listening(): boolean {
    return !this.unknown;
  }

  note(c: MonitorChange): void {
    if (c.kind === 'bound' || ('table' in c && c.table !== OUR_TABLE_KEY)) return;
    if (c.kind !== 'rule' || c.op === 'other' || c.handle === null) this.unknown = true;
    else if (c.op === 'add') this.added.add(c.handle);
    else if (!this.added.delete(c.handle)) this.removed.add(c.handle);
  }

  verdict(): 'same' | 'changed' | null {
    if (this.unknown) return null;
    if (!this.added.size && !this.removed.size) return 'same';
    return !this.added.size || !this.removed.size ? 'changed' : null;
  }
}

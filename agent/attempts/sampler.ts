// The agent's side of `attempts`: each cycle reads the counters of the rules portwarden applied,
// saves what grew, keeps the metrics' totals monotonic, and finds surges and scans in the window.
// With nft, a cycle in which the attempt sets did not move reads only those sets (listing the
// table of a large policy costs seconds; see nothingSince).
import { StateDir } from '../firewall/apply.js';
import type { Finding } from '../model.js';
import { readCounterState, readSamples, saveSample, writeCounterState, type CounterState } from './history.js';
import { readCounters, readNftAttemptSets } from './read.js';
import { AppliedMemo } from '../firewall/applied-memo.js';
import { addToTotals, attemptFindings, buildReport, distinctSources, emptyTotals, rawOf, sampleOf, type Sample } from './window.js';
import type { AttemptTotals } from '../model.js';

export interface AttemptsConfig {
  /** The config's text ("5m") and its length. */
  window: string;
  windowMs: number;
  threshold: number;
  scanPorts: number;
  top: number;
}

export interface AttemptsCycle {
  findings: Finding[];
  totals: AttemptTotals;
  /** Distinct sources per rule within the window. */
  sources: Record<string, number>;
  /** A failed write of the samples (the findings and metrics still count). */
  writeError: unknown;
}

export class AttemptSampler {
  /** undefined: not read from the state dir yet. */
  private state: CounterState | null | undefined;
  private recent: Sample[] | null = null;
  /** The last full reading (nft): what a look at the attempt sets alone is compared with. */
  private last: { setsKey: string; applied: string; at: number } | null = null;

  constructor(
    private readonly stateDir: string,
    private readonly netns: string | undefined,
    private readonly config: AttemptsConfig,
    private readonly applied: AppliedMemo = new AppliedMemo(new StateDir(stateDir)),
  ) {}

  /** null when portwarden has no rules applied here (nothing of ours counts). Reading errors are thrown. */
  async cycle(now: Date): Promise<AttemptsCycle | null> {
    const { key: appliedKey, record: applied } = this.applied.read();
    if (!applied) return null;
    const netns = this.netns ?? applied.netns ?? undefined;
    // Before this cycle's sample is saved, which result() adds itself.
    this.recent ??= readSamples(this.stateDir, new Date(now.getTime() - this.config.windowMs));
    if (this.state && (await this.nothingSince(appliedKey, netns, now))) return this.result(now, null, null);
    const reading = await readCounters(applied.backend, netns);
    const raw = rawOf(reading, now);
    if (this.state === undefined) this.state = readCounterState(this.stateDir);
    const prev = this.state;
    const sample = sampleOf(prev?.raw ?? null, raw, reading);
    const totals = prev?.totals ?? emptyTotals();
    addToTotals(totals, sample);
    this.state = { raw, totals };
    this.last = reading.setsKey !== undefined ? { setsKey: reading.setsKey, applied: appliedKey, at: now.getTime() } : null;
    let writeError: unknown = null;
    try {
      if (prev) saveSample(this.stateDir, sample, now);
      writeCounterState(this.stateDir, this.state);
    } catch (err) {
      writeError = err;
    }
    if (writeError) this.last = null; // the next cycle reads in full and writes again
    // The first reading is the baseline: what the rules counted before the agent looked is not "within the window".
    return this.result(now, prev ? sample : null, writeError);
  }

  /**
   * Whether nothing was refused or rate-limited since the last full reading, told from the attempt
   * sets alone (nft): they are as they were and none is full, the applied record is the same (a new
   * apply starts the counters again), and that reading is younger than the window — so the accepted
   * counts, which only the full reading has, are never older than the window. Someone else's
   * change to the ruleset does not matter here: a counter that went down is a reset (sampleOf).
   */
  private async nothingSince(applied: string, netns: string | undefined, now: Date): Promise<boolean> {
    const l = this.last;
    if (!l || l.applied !== applied || now.getTime() - l.at >= this.config.windowMs) return false;
    const sets = await readNftAttemptSets(netns);
    return !sets.full && sets.key === l.setsKey;
  }

  /** The window's samples (with the new one), its findings and the totals. */
  private result(now: Date, sample: Sample | null, writeError: unknown): AttemptsCycle {
    const since = now.getTime() - this.config.windowMs;
    this.recent = [...this.recent!.filter((s) => Date.parse(s.at) >= since), ...(sample ? [sample] : [])];
    const report = buildReport(this.recent, { window: this.config.window, top: this.config.top, scanPorts: this.config.scanPorts });
    return { findings: attemptFindings(report, this.config), totals: this.state!.totals, sources: distinctSources(this.recent), writeError };
  }
}

// The agent's side of `attempts`: each cycle reads the counters of the rules portwarden applied,
// saves what grew, keeps the metrics' totals monotonic, and finds surges and scans in the window.
import { StateDir } from '../firewall/apply.js';
import type { Finding } from '../model.js';
import { readCounterState, readSamples, saveSample, writeCounterState, type CounterState } from './history.js';
import { readCounters } from './read.js';
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

  constructor(
    private readonly stateDir: string,
    private readonly netns: string | undefined,
    private readonly config: AttemptsConfig,
  ) {}

  /** null when portwarden has no rules applied here (nothing of ours counts). Reading errors are thrown. */
  async cycle(now: Date): Promise<AttemptsCycle | null> {
    const applied = new StateDir(this.stateDir).readApplied();
    if (!applied) return null;
    const reading = await readCounters(applied.backend, this.netns ?? applied.netns ?? undefined);
    const raw = rawOf(reading, now);
    if (this.state === undefined) this.state = readCounterState(this.stateDir);
    const prev = this.state;
    const sample = sampleOf(prev?.raw ?? null, raw, reading);
    const totals = prev?.totals ?? emptyTotals();
    addToTotals(totals, sample);
    this.state = { raw, totals };
    const since = now.getTime() - this.config.windowMs;
    this.recent ??= readSamples(this.stateDir, new Date(since));
    // The first reading is the baseline: what the rules counted before the agent looked is not "within the window".
    this.recent = [...this.recent.filter((s) => Date.parse(s.at) >= since), ...(prev ? [sample] : [])];
    const report = buildReport(this.recent, { window: this.config.window, top: this.config.top, scanPorts: this.config.scanPorts });
    let writeError: unknown = null;
    try {
      if (prev) saveSample(this.stateDir, sample, now);
      writeCounterState(this.stateDir, this.state);
    } catch (err) {
      writeError = err;
    }
    return { findings: attemptFindings(report, this.config), totals, sources: distinctSources(this.recent), writeError };
  }
}

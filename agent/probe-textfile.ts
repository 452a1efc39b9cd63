// portwarden probe --textfile FILE: the outside view as node_exporter textfile metrics, so a canary
// host probing its neighbours feeds the same Prometheus as the agents. Pure rendering; the write
// is atomic (temp file, fsync, rename: node_exporter never reads half a file).
import { esc } from './alerts/sinks/prometheus.js';
import { writeFileAtomic } from './fs-atomic.js';

/** The probe result as `probe --json` gives it (the contract of issue 15). */
export interface ProbeOutcome {
  target: string;
  source: string;
  ports: { proto: string; port: number; expected: string; observed: string; rule: string | null; checks: { name: string; ok: boolean; detail: string }[] }[];
}

/** Whether what was seen contradicts what the policy expects for this source: expected any (no
 *  rule, default allow) and UDP's open|filtered (no answer) decide nothing. Same as probe's. */
export function probeMismatch(p: { expected: string; observed: string }): boolean {
  if (p.expected === 'any' || p.observed === 'open|filtered') return false;
  return p.expected === 'open' ? p.observed !== 'open' : p.observed === 'open';
}

/**
 * The textfile for one or more probe runs: portwarden_probe_mismatch (1 or 0) for every probed
 * port, and when each target was last probed. Each family once, samples in a stable order.
 */
export function probeTextfile(results: readonly ProbeOutcome[], at: Date): string {
  const lines = [
    '# HELP portwarden_probe_mismatch 1 when a port probed from outside is not in the state the policy expects for the prober, else 0.',
    '# TYPE portwarden_probe_mismatch gauge',
  ];
  for (const r of results) {
    for (const p of [...r.ports].sort((a, b) => a.proto.localeCompare(b.proto) || a.port - b.port)) {
      lines.push(`portwarden_probe_mismatch{target="${esc(r.target)}",proto="${esc(p.proto)}",port="${p.port}",expected="${esc(p.expected)}",observed="${esc(p.observed)}"} ${probeMismatch(p) ? 1 : 0}`);
    }
  }
  lines.push('# HELP portwarden_probe_last_run_timestamp_seconds Unix time the last probe of the target finished.', '# TYPE portwarden_probe_last_run_timestamp_seconds gauge');
  for (const target of [...new Set(results.map((r) => r.target))]) {
    lines.push(`portwarden_probe_last_run_timestamp_seconds{target="${esc(target)}"} ${at.getTime() / 1000}`);
  }
  return lines.join('\n') + '\n';
}

/** Replaces FILE atomically, mode 0644 (node_exporter reads it); a failure is one line naming it (exit 3). */
export function writeProbeTextfile(file: string, results: readonly ProbeOutcome[], at = new Date()): void {
  writeFileAtomic(file, probeTextfile(results, at), 0o644);
}

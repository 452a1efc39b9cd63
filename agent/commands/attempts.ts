// portwarden attempts [--since DURATION] [--port N] [--top N] [--json] [--netns NAME] [--state-dir DIR]
// Who knocked where: what portwarden's own rules counted, over the agent's samples in the window
// plus what grew since its last one; without the agent's history, since the rules were loaded.
import { RuntimeError, UsageError } from '../errors.js';
import { parseDuration } from '../duration.js';
import { StateDir } from '../firewall/apply.js';
import { DEFAULT_STATE_DIR } from '../paths.js';
import { readCounterState, readSamples } from '../attempts/history.js';
import { nftLoaded, readCounters } from '../attempts/read.js';
import { buildReport, rawOf, sampleOf, type AttemptsReport, type Sample } from '../attempts/window.js';
import { checkNetns } from '../collect/snapshot.js';
import { parse, stateDirReadable } from './args.js';
import { printable, table } from './output.js';
import { SPECS } from './specs.js';

/** Sources that touched more distinct ports than this are listed as scanners (the agent's scan_ports default). */
const SCAN_PORTS = 20;

function positiveInt(text: string | undefined, flag: string, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  if (!/^[0-9]+$/.test(text) || Number(text) < 1 || Number(text) > max) throw new UsageError(`${flag} must be a whole number from 1 to ${max}`);
  return Number(text);
}

export async function runAttempts(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.attempts.options);
  const since = values.since ?? '1h';
  let sinceMs: number;
  try {
    sinceMs = parseDuration(since);
  } catch (err) {
    throw new UsageError(`--since: ${(err as Error).message}`);
  }
  if (!sinceMs) throw new UsageError('--since must be longer than 0 (like 90s, 30m, 24h, 7d)');
  const port = values.port === undefined ? undefined : positiveInt(values.port, '--port', 0, 65535);
  const top = positiveInt(values.top, '--top', 10, 100_000);
  const stateDir = values['state-dir'] ?? DEFAULT_STATE_DIR;
  // A --state-dir that is not there is a typo (exit 2), not "no history".
  if (values['state-dir'] !== undefined) stateDirReadable(stateDir, true);
  const applied = new StateDir(stateDir).readApplied();
  // What apply recorded, when it reads as such (a hand-edited record is ignored, not trusted).
  const recorded = applied && (applied.backend === 'nft' || applied.backend === 'iptables') ? applied : null;
  if (values.netns !== undefined) checkNetns(values.netns);
  const netns = values.netns ?? (typeof recorded?.netns === 'string' ? recorded.netns : undefined);
  const backend = recorded?.backend ?? ((await nftLoaded(netns)) ? 'nft' : 'iptables');
  const reading = await readCounters(backend, netns);
  if (backend === 'iptables' && !reading.rules.length) throw new RuntimeError(`no portwarden rules are loaded${netns ? ` in netns ${netns}` : ''} (neither table inet portwarden nor the PORTWARDEN-INPUT chain): nothing was counted`);
  const now = new Date();
  const cur = rawOf(reading, now);
  // The agent's samples in the window, then what grew since its last reading.
  const last = readCounterState(stateDir);
  let samples: Sample[];
  let window = since;
  if (last) samples = [...readSamples(stateDir, new Date(now.getTime() - sinceMs)), sampleOf(last.raw, cur, reading)];
  else {
    samples = [sampleOf(null, cur, reading)];
    window = 'since-load';
  }
  const report = buildReport(samples, { window, top, port, scanPorts: SCAN_PORTS });
  process.stdout.write(values.json ? JSON.stringify(report) + '\n' : reportText(report, backend));
  return 0;
}

function reportText(r: AttemptsReport, backend: 'nft' | 'iptables'): string {
  const out: string[] = [];
  out.push(r.window === 'since-load' ? `attempts since the rules were loaded (${backend}; no agent history)\n` : `attempts within ${r.window} (${backend})\n`);
  if (!r.rules.length) out.push('nothing refused, rate-limited or accepted\n');
  else {
    const rows = r.rules.map((x) => [
      printable(x.rule),
      x.proto && x.port !== null ? `${x.proto}/${x.port}` : x.proto ?? '-',
      String(x.refused),
      String(x.rateLimited),
      String(x.accepted),
      x.sources.map((s) => `${s.address} (${s.count})`).join(', ') || '-',
    ]);
    out.push(table(['RULE', 'PORT', 'REFUSED', 'RATE-LIMITED', 'ACCEPTED', 'TOP SOURCES'], rows));
  }
  if (backend === 'iptables') out.push('note: iptables keeps sources per rule only (xt_recent: capped hits, no ports), so no scanners are found\n');
  else if (r.scanners.length) {
    out.push(`\nscanners (more than ${SCAN_PORTS} ports)\n`);
    out.push(table(['ADDRESS', 'PORTS', 'COUNT'], r.scanners.map((s) => [s.address, String(s.ports), String(s.count)])));
  }
  return out.join('');
}

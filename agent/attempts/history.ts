// The agent's samples of the counters, in <state_dir>/attempts/: one file per cycle in which
// something grew (written atomically: temp file, fsync, rename; never through a symlink), and
// counters.json with the last reading and the metrics' running totals. Bounded: files older than
// a day, past MAX_FILES or past MAX_BYTES in all are removed, oldest first (only our own names).
import { lstatSync, readdirSync } from 'node:fs';
import { fsError, writeFileAtomic } from '../fs-atomic.js';
import { ensureDir, readStateText, removeFile } from '../state-files.js';
import type { AttemptTotals } from '../model.js';
import type { Raw, Sample } from './window.js';

export const ATTEMPTS_DIR = 'attempts';
const COUNTERS = 'counters.json';
const SAMPLE_RE = /^sample-(\d{8}T\d{9}Z)\.json$/;
export const KEEP_MS = 24 * 3_600_000;
const MAX_FILES = 5000;
const MAX_BYTES = 64 * 1024 * 1024;

export interface CounterState {
  raw: Raw;
  totals: AttemptTotals;
}

const dirOf = (stateDir: string) => `${stateDir}/${ATTEMPTS_DIR}`;
/** 2026-11-28T16:20:01.123Z → 20261128T162001123Z: sortable, no colons. */
const stamp = (iso: string) => iso.replace(/[-:.]/g, '');

function parseOr<T>(text: string | null, ok: (v: unknown) => boolean): T | null {
  if (text === null) return null;
  try {
    const v: unknown = JSON.parse(text);
    return ok(v) ? (v as T) : null;
  } catch {
    return null; // torn or edited: start again from the next reading
  }
}

const isCount = (n: unknown) => typeof n === 'number' && Number.isFinite(n) && n >= 0;
const isPort = (p: unknown) => p === null || (Number.isInteger(p) && (p as number) >= 0 && (p as number) <= 65535);
const isProto = (p: unknown) => p === null || p === 'tcp' || p === 'udp';

/** [refused, rateLimited, accepted, proto, port] */
const isRuleTuple = (r: unknown) => Array.isArray(r) && r.length === 5 && isCount(r[0]) && isCount(r[1]) && isCount(r[2]) && isProto(r[3]) && isPort(r[4]);
const isCountMap = (m: unknown) => typeof m === 'object' && m !== null && !Array.isArray(m) && Object.values(m).every(isCount);

const isCounterState = (v: unknown) => {
  const s = v as CounterState;
  if (typeof s !== 'object' || s === null || typeof s.raw !== 'object' || s.raw === null || typeof s.raw.at !== 'string') return false;
  if (s.raw.backend !== 'nft' && s.raw.backend !== 'iptables') return false;
  const rulesOk = typeof s.raw.rules === 'object' && s.raw.rules !== null && Object.values(s.raw.rules).every(isRuleTuple);
  return rulesOk && isCountMap(s.raw.sources) && typeof s.totals === 'object' && s.totals !== null && isCountMap(s.totals.refused) && isCountMap(s.totals.rateLimited) && isCountMap(s.totals.accepted);
};

/** A sample file as the agent writes it (a hand-edited or foreign one is skipped, not trusted). */
const isSample = (v: unknown) => {
  const s = v as Sample;
  if (typeof s !== 'object' || s === null || typeof s.at !== 'string' || Number.isNaN(Date.parse(s.at)) || (s.backend !== 'nft' && s.backend !== 'iptables')) return false;
  if (typeof s.rules !== 'object' || s.rules === null || !Array.isArray(s.sources)) return false;
  const rulesOk = Object.values(s.rules).every(isRuleTuple);
  return rulesOk && s.sources.every((x) => Array.isArray(x) && x.length === 7 && (x[0] === 'r' || x[0] === 'l') && typeof x[1] === 'string' && typeof x[2] === 'string' && isProto(x[3]) && isPort(x[4]) && isCount(x[5]) && typeof x[6] === 'string');
};

/** The last reading and totals the agent saved, or null (no agent yet, or an unreadable file). */
export function readCounterState(stateDir: string): CounterState | null {
  return parseOr<CounterState>(readStateText(`${dirOf(stateDir)}/${COUNTERS}`), isCounterState);
}

export function writeCounterState(stateDir: string, state: CounterState): void {
  ensureDir(dirOf(stateDir));
  writeFileAtomic(`${dirOf(stateDir)}/${COUNTERS}`, JSON.stringify(state), 0o600);
}

function sampleFiles(stateDir: string): string[] {
  try {
    return readdirSync(dirOf(stateDir)).filter((f) => SAMPLE_RE.test(f)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw fsError(dirOf(stateDir), err);
  }
}

/** Samples taken at or after `since`, oldest first; unreadable files are skipped. */
export function readSamples(stateDir: string, since: Date): Sample[] {
  const from = stamp(since.toISOString());
  const out: Sample[] = [];
  for (const f of sampleFiles(stateDir)) {
    if (SAMPLE_RE.exec(f)![1]! < from) continue;
    const s = parseOr<Sample>(readStateText(`${dirOf(stateDir)}/${f}`), isSample);
    if (s) out.push(s);
  }
  return out;
}

/** Saves one sample (when anything grew) and removes what is past the bounds. */
export function saveSample(stateDir: string, sample: Sample, now: Date): void {
  const dir = dirOf(stateDir);
  ensureDir(dir);
  if (Object.keys(sample.rules).length || sample.sources.length) writeFileAtomic(`${dir}/sample-${stamp(sample.at)}.json`, JSON.stringify(sample), 0o600);
  const files = sampleFiles(stateDir);
  const oldest = stamp(new Date(now.getTime() - KEEP_MS).toISOString());
  let bytes = 0;
  const sizes = files.map((f) => {
    try {
      return lstatSync(`${dir}/${f}`).size;
    } catch {
      return 0;
    }
  });
  for (const s of sizes) bytes += s;
  for (let i = 0; i < files.length; i++) {
    const tooMany = files.length - i > MAX_FILES;
    if (!tooMany && bytes <= MAX_BYTES && SAMPLE_RE.exec(files[i]!)![1]! >= oldest) break;
    removeFile(`${dir}/${files[i]}`);
    bytes -= sizes[i]!;
  }
}

// Safe apply: check with the real tool, back up, load atomically, then confirm-or-rollback.
// The pending confirmation lives on disk, so confirm/status/rollback work from another shell and
// the detached rollback timer survives the SSH session and a SIGKILLed CLI.
import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RuntimeError } from '../errors.js';
import { writeFileAtomic } from '../fs-atomic.js';
import { ensureDir, readJson, removeFile, withLock, writeJson } from '../state-files.js';
import { liveBackend, type LiveBackend, type Texts } from './live.js';

export const DEFAULT_STATE_DIR = '/var/lib/portwarden';
const KEEP_BACKUPS = 10;

export interface AppliedRecord {
  backend: 'nft' | 'iptables';
  netns: string | null;
  policy: string;
  /** sha256 of the rendered rules. */
  hash: string;
  /** sha256 of our part as the tool listed it right after loading: what drift is measured against. */
  liveHash: string;
  at: string;
  id: string;
  backup: string;
  texts: Texts;
}

export interface PendingRecord {
  id: string;
  backend: 'nft' | 'iptables';
  netns: string | null;
  deadline: string;
  backup: string;
  timerPid: number | null;
}

export interface ResultRecord {
  id: string;
  outcome: 'confirmed' | 'rolled-back';
  at: string;
  reason?: string;
}

interface BackupMeta {
  id: string;
  at: string;
  backend: 'nft' | 'iptables';
  netns: string | null;
  ours: Texts | null;
  previousApplied: AppliedRecord | null;
}

export class StateDir {
  constructor(readonly dir: string) {}
  get applied() {
    return `${this.dir}/applied.json`;
  }
  get pending() {
    return `${this.dir}/pending.json`;
  }
  get result() {
    return `${this.dir}/last-result.json`;
  }
  get lock() {
    return `${this.dir}/apply.lock`;
  }
  get backups() {
    return `${this.dir}/backups`;
  }
  readApplied = () => readJson<AppliedRecord>(this.applied);
  readPending = () => readJson<PendingRecord>(this.pending);
  readResult = () => readJson<ResultRecord>(this.result);
}

export type LiveState = 'in place' | 'changed' | 'missing';

/** Is what apply loaded still what the kernel has? Read-only. */
export async function liveState(applied: AppliedRecord, netns?: string): Promise<LiveState> {
  const ours = await liveBackend(applied.backend, netns ?? applied.netns ?? undefined).readOurs();
  return !ours ? 'missing' : hashTexts(ours) === applied.liveHash ? 'in place' : 'changed';
}

export function hashTexts(texts: Texts | null): string {
  if (!texts) return 'none';
  const h = createHash('sha256');
  for (const k of Object.keys(texts).sort()) h.update(`${k}\0${texts[k]}\0`);
  return h.digest('hex');
}

function timestamp(d: Date): string {
  return d.toISOString().replace(/[:.]/g, '-');
}

/** Saves our current part and the whole ruleset, fsync'd, before anything changes; keeps the last 10. */
async function backup(state: StateDir, backend: LiveBackend, netns: string | null, id: string, ours: Texts | null): Promise<string> {
  ensureDir(state.backups);
  const name = `${timestamp(new Date())}-${id.slice(0, 8)}`;
  const dir = `${state.backups}/${name}`;
  ensureDir(dir);
  const all = await backend.readAll();
  for (const [k, text] of Object.entries(all)) writeFileAtomic(`${dir}/full.${k}`, text, 0o600);
  for (const [k, text] of Object.entries(ours ?? {})) writeFileAtomic(`${dir}/ours.${k}`, text, 0o600);
  const meta: BackupMeta = { id, at: new Date().toISOString(), backend: backend.name, netns, ours, previousApplied: state.readApplied() };
  writeJson(`${dir}/meta.json`, meta);
  const all_ = readdirSync(state.backups).sort();
  for (const old of all_.slice(0, Math.max(0, all_.length - KEEP_BACKUPS))) rmSync(`${state.backups}/${old}`, { recursive: true, force: true });
  return name;
}

export interface ApplyPlan {
  backend: LiveBackend;
  texts: Texts;
  hash: string;
  current: Texts | null;
  /** What the diff compares against: the last applied rules when they are still in place. */
  baseline: { label: string; texts: Texts | null };
  unchanged: boolean;
}

/** Renders are done by the caller; this checks with the real tool and reads what is loaded now. */
export async function planApply(state: StateDir, backend: LiveBackend, texts: Texts): Promise<ApplyPlan> {
  await backend.check(texts);
  const current = await backend.readOurs();
  const applied = state.readApplied();
  const hash = hashTexts(texts);
  const inPlace = applied && applied.backend === backend.name && applied.liveHash === hashTexts(current);
  const baseline = inPlace
    ? { label: `applied ${applied.at} from ${applied.policy}`, texts: applied.texts }
    : { label: current ? 'loaded now (not applied by portwarden, or changed since)' : 'nothing loaded', texts: current };
  return { backend, texts, hash, current, baseline, unchanged: Boolean(inPlace && applied.hash === hash) };
}

export interface ApplyResult {
  id: string;
  backup: string;
  deadline: Date | null;
}

export async function executeApply(
  state: StateDir,
  plan: ApplyPlan,
  opts: { policy: string; netns: string | null; confirmSeconds: number; cli: string },
): Promise<ApplyResult> {
  ensureDir(state.dir);
  return withLock(state.lock, 'apply', async () => {
    const pending = state.readPending();
    if (pending) {
      throw new RuntimeError(`an earlier apply (${pending.id}) awaits confirmation until ${pending.deadline}: run portwarden confirm or portwarden rollback first`);
    }
    const id = randomUUID();
    const current = await plan.backend.readOurs(); // again, under the lock
    const backupName = await backup(state, plan.backend, opts.netns, id, current);
    try {
      await plan.backend.load(plan.texts);
    } catch (err) {
      await plan.backend.restore(current).catch(() => undefined);
      throw err;
    }
    const liveHash = hashTexts(await plan.backend.readOurs());
    const record: AppliedRecord = {
      backend: plan.backend.name,
      netns: opts.netns,
      policy: opts.policy,
      hash: plan.hash,
      liveHash,
      at: new Date().toISOString(),
      id,
      backup: backupName,
      texts: plan.texts,
    };
    writeJson(state.applied, record);
    if (opts.confirmSeconds <= 0) return { id, backup: backupName, deadline: null };
    const deadline = new Date(Date.now() + opts.confirmSeconds * 1000);
    const p: PendingRecord = { id, backend: plan.backend.name, netns: opts.netns, deadline: deadline.toISOString(), backup: backupName, timerPid: null };
    writeJson(state.pending, p);
    p.timerPid = startRollbackTimer(opts.cli, state.dir, id);
    writeJson(state.pending, p);
    return { id, backup: backupName, deadline };
  });
}

/** A detached process in its own session: it outlives the SSH session and a killed CLI. */
function startRollbackTimer(cli: string, stateDir: string, id: string): number | null {
  const child = spawn(process.execPath, [cli, '_rollback-timer', '--state-dir', stateDir, '--id', id], {
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
  return child.pid ?? null;
}

/** Restores the backup of the last apply. Caller holds the lock. */
async function restoreBackup(state: StateDir, backupName: string, reason: string, id: string): Promise<BackupMeta> {
  const meta = readJson<BackupMeta>(`${state.backups}/${backupName}/meta.json`);
  if (!meta) throw new RuntimeError(`backup ${backupName} is missing from ${state.backups}`);
  await liveBackend(meta.backend, meta.netns ?? undefined).restore(meta.ours);
  if (meta.previousApplied) writeJson(state.applied, meta.previousApplied);
  else removeFile(state.applied);
  removeFile(state.pending);
  writeJson(state.result, { id, outcome: 'rolled-back', at: new Date().toISOString(), reason } satisfies ResultRecord);
  return meta;
}

export async function rollback(state: StateDir, reason: string): Promise<string> {
  return withLock(state.lock, 'rollback', async () => {
    const pending = state.readPending();
    const applied = state.readApplied();
    const target = pending ?? applied;
    if (!target) throw new RuntimeError('nothing to roll back: no apply is recorded in ' + state.dir);
    if (pending?.timerPid) killQuietly(pending.timerPid);
    await restoreBackup(state, target.backup, reason, target.id);
    return target.backup;
  }, 10_000);
}

export type ConfirmOutcome = { kind: 'confirmed'; id: string } | { kind: 'nothing-pending' } | { kind: 'too-late'; message: string };

export async function confirm(state: StateDir, now = new Date()): Promise<ConfirmOutcome> {
  return withLock(state.lock, 'confirm', async () => {
    const pending = state.readPending();
    if (!pending) {
      const last = state.readResult();
      if (last?.outcome === 'rolled-back') return { kind: 'too-late', message: `too late: apply ${last.id} was rolled back at ${last.at} (${last.reason ?? 'not confirmed in time'})` };
      return { kind: 'nothing-pending' };
    }
    if (now.getTime() > Date.parse(pending.deadline)) {
      // The timer should have acted; do its job now rather than keep unconfirmed rules.
      if (pending.timerPid) killQuietly(pending.timerPid);
      await restoreBackup(state, pending.backup, 'not confirmed in time', pending.id);
      return { kind: 'too-late', message: `too late: the deadline was ${pending.deadline}; the previous rules are back` };
    }
    if (pending.timerPid) killQuietly(pending.timerPid);
    removeFile(state.pending);
    writeJson(state.result, { id: pending.id, outcome: 'confirmed', at: now.toISOString() } satisfies ResultRecord);
    return { kind: 'confirmed', id: pending.id };
  }, 10_000);
}

/** Body of the detached timer: wait for the deadline, then roll back unless confirmed meanwhile. */
export async function rollbackTimer(state: StateDir, id: string): Promise<void> {
  const pending = state.readPending();
  if (!pending || pending.id !== id) return;
  const wait = Date.parse(pending.deadline) - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  await withLock(state.lock, 'rollback', async () => {
    const still = state.readPending();
    if (still?.id === id) await restoreBackup(state, still.backup, 'not confirmed in time', id);
  }, 30_000);
}

export async function removeAll(state: StateDir, netns: string | null): Promise<string[]> {
  ensureDir(state.dir);
  return withLock(state.lock, 'remove', async () => {
    const removed: string[] = [];
    const pending = state.readPending();
    if (pending?.timerPid) killQuietly(pending.timerPid);
    for (const name of ['nft', 'iptables'] as const) {
      const b = liveBackend(name, netns ?? undefined);
      let ours: Texts | null;
      try {
        ours = await b.readOurs();
      } catch (err) {
        if (err instanceof RuntimeError && /not installed/.test(err.message)) continue;
        throw err;
      }
      if (!ours) continue;
      await backup(state, b, netns, randomUUID(), ours);
      await b.remove();
      removed.push(name === 'nft' ? 'table inet portwarden' : 'PORTWARDEN-* chains and their INPUT/FORWARD jumps (iptables, ip6tables)');
    }
    removeFile(state.applied);
    removeFile(state.pending);
    return removed;
  }, 10_000);
}

/** Stops a rollback timer; checks the pid is still ours first, since pids are reused. */
function killQuietly(pid: number): void {
  try {
    if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('_rollback-timer')) return;
    process.kill(pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
}

export const CLI_PATH = fileURLToPath(new URL('../cli.js', import.meta.url));

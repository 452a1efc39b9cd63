// Safe apply: under the lock, read the firewall once (the backup and the diff baseline), check
// with the real tool when the load is not one transaction, back up, record the intent, start the
// rollback timer, load atomically, then confirm-or-rollback. The pending confirmation lives on disk before the load
// starts (a write-ahead intent), so confirm/status/rollback work from another shell and the
// detached rollback timer survives the SSH session and a CLI killed at any point.
import { createHash, randomUUID } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RuntimeError } from '../errors.js';
import { ToolMissingError } from '../exec.js';
import { commitStaged, discardStaged, fsyncDir, stageFiles, type FileToWrite } from '../fs-atomic.js';
import { ensureDir, jsonText, readJson, removeFile, withLock, writeJson } from '../state-files.js';
import { normalHash } from './diff.js';
import { liveBackend, type BaseChains, type LiveBackend, type LiveReading, type Texts } from './live.js';

const KEEP_BACKUPS = 10;
/** The longest --confirm window: a day. */
export const MAX_CONFIRM_SECONDS = 86_400;
/** The timer sleeps in steps (setTimeout overflows past 2^31 ms) and re-reads the deadline after each. */
const TIMER_STEP_MS = 60_000;

export interface AppliedRecord {
  backend: 'nft' | 'iptables';
  netns: string | null;
  policy: string;
  /** sha256 of the rendered rules. */
  hash: string;
  /**
   * What drift is measured against: with liveForm 'normal', normalHash (diff.ts) of our part as
   * loaded, which equals that of the tool's listing of it; in older records (no liveForm), sha256
   * of the listing itself.
   */
  liveHash: string;
  liveForm?: 'normal';
  at: string;
  id: string;
  backup: string;
  texts: Texts;
  /** iptables: the shared filter tables' chains before portwarden's first load (remove/rollback delete only what we created). */
  baseBefore?: BaseChains | null;
}

export interface PendingRecord {
  id: string;
  backend: 'nft' | 'iptables';
  netns: string | null;
  /** When the timer rolls back; null with --confirm 0 (no timer: the record only guards the load). */
  deadline: string | null;
  backup: string;
  timerPid: number | null;
  /** 'loading' from before the load starts until the load is recorded (absent in older records: loaded). */
  phase?: 'loading' | 'loaded';
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
  baseBefore?: BaseChains | null;
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
  return !ours ? 'missing' : isInPlace(applied, ours) ? 'in place' : 'changed';
}

/** Our part as listed now is what that apply left (compared in the record's own form). */
function isInPlace(applied: AppliedRecord, ours: Texts | null): boolean {
  return (applied.liveForm === 'normal' ? normalHash(ours) : hashTexts(ours)) === applied.liveHash;
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

/** Our backup directories: `<timestamp>-<first 8 hex of the apply id>`. */
const BACKUP_NAME = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z-([0-9a-f]{8})$/;
/** The files a backup holds (new.nft: the script nft loaded from there) and the temp files of fs-atomic.ts. */
const BACKUP_FILE = /^(?:meta\.json|new\.nft|(?:full|ours)\.[A-Za-z0-9-]+|\..+\.\d+\.\d+\.tmp)$/;

/** The backups directory, created if missing; a symlink or a non-directory there is refused. */
function backupsDir(state: StateDir): string {
  const dir = state.backups;
  try {
    const st = lstatSync(dir);
    if (st.isSymbolicLink()) throw new RuntimeError(`refusing to use ${dir}: it is a symbolic link; portwarden keeps backups only in a real directory (move the link aside)`);
    if (!st.isDirectory()) throw new RuntimeError(`refusing to use ${dir}: it is not a directory (move it aside)`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(dir, { mode: 0o700 });
  }
  return dir;
}

/** A directory portwarden made: our name, a real directory, and a meta.json with the same id. */
function isOurBackup(dir: string, name: string): boolean {
  const m = BACKUP_NAME.exec(name);
  if (!m) return false;
  try {
    if (!lstatSync(`${dir}/${name}`).isDirectory() || !lstatSync(`${dir}/${name}/meta.json`).isFile()) return false;
    return readJson<BackupMeta>(`${dir}/${name}/meta.json`)?.id?.startsWith(m[1]!) === true;
  } catch {
    return false;
  }
}

/** Deletes the files we write in a backup, then the directory if nothing else is in it. Never follows links. */
function deleteBackup(path: string): void {
  for (const f of readdirSync(path)) {
    const st = BACKUP_FILE.test(f) ? lstatSync(`${path}/${f}`) : null;
    if (st && (st.isFile() || st.isSymbolicLink())) unlinkSync(`${path}/${f}`); // a link itself, never its target
  }
  try {
    rmdirSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOTEMPTY') throw err; // someone put a file there: keep it
  }
}

/** Keeps our last 10 backups and those the state still points to; never touches anything else. */
function pruneBackups(state: StateDir, keep: Set<string>): void {
  const dir = state.backups;
  const ours = readdirSync(dir).filter((n) => isOurBackup(dir, n)).sort();
  for (const old of ours.slice(0, Math.max(0, ours.length - KEEP_BACKUPS))) if (!keep.has(old)) deleteBackup(`${dir}/${old}`);
}

/** A new backup's directory name: when, and whose (the first 8 hex of the apply id). */
const backupNameFor = (id: string) => `${timestamp(new Date())}-${id.slice(0, 8)}`;

/**
 * Saves our current part and the whole ruleset (as just read) as backup `name` before anything
 * changes: the files written and fsync'd side by side, renamed into place (meta.json, what marks
 * a backup as ours, last) and the directories fsync'd; only then the files in `then` (the intent
 * that names this backup), written in the same batch, are renamed into place. Keeps the last 10.
 */
async function backup(state: StateDir, name: string, all: Texts, backend: 'nft' | 'iptables', netns: string | null, id: string, ours: Texts | null, baseBefore: BaseChains | null, then: FileToWrite[] = []): Promise<void> {
  const dir = backupsDir(state);
  const path = `${dir}/${name}`;
  mkdirSync(path, { mode: 0o700 }); // not recursive: an existing entry of that name is an error, not reused
  const previousApplied = state.readApplied();
  const meta: BackupMeta = { id, at: new Date().toISOString(), backend, netns, ours, previousApplied, baseBefore };
  const files: FileToWrite[] = [
    ...Object.entries(all).map(([k, text]) => ({ path: `${path}/full.${k}`, data: text, mode: 0o600 })),
    ...Object.entries(ours ?? {}).map(([k, text]) => ({ path: `${path}/ours.${k}`, data: text, mode: 0o600 })),
    { path: `${path}/meta.json`, data: jsonText(meta), mode: 0o600 },
  ];
  const staged = await stageFiles([...files, ...then]);
  const later = { files: staged.files.slice(files.length) };
  try {
    commitStaged({ files: staged.files.slice(0, files.length) });
    fsyncDir(dir); // the new backup's own entry
  } catch (err) {
    discardStaged(later);
    throw err;
  }
  commitStaged(later);
  const pending = state.readPending();
  pruneBackups(state, new Set([name, previousApplied?.backup ?? '', pending?.backup ?? '']));
}

export interface ApplyPlan {
  backend: LiveBackend;
  texts: Texts;
  hash: string;
  /** The one reading of the live firewall this apply works from: the backup, the baseline, the intent. */
  reading: LiveReading;
  current: Texts | null;
  /** What the diff compares against: the last applied rules when they are still in place. */
  baseline: { label: string; texts: Texts | null };
  unchanged: boolean;
}

/**
 * Reads what is loaded now — one listing, or the reading already under way — and compares it with
 * the rendered texts. With check (the default), the real tool checks the texts first (nft -c,
 * iptables-restore --test), at the same time as the reading.
 */
export async function planApply(state: StateDir, backend: LiveBackend, texts: Texts, opts: { check?: boolean; reading?: Promise<LiveReading> } = {}): Promise<ApplyPlan> {
  const [, reading] = await Promise.all([opts.check === false ? undefined : backend.check(texts), opts.reading ?? backend.readState()]);
  const current = reading.ours;
  const applied = state.readApplied();
  const hash = hashTexts(texts);
  const inPlace = applied && applied.backend === backend.name && isInPlace(applied, current);
  const baseline = inPlace
    ? { label: `applied ${applied.at} from ${applied.policy}`, texts: applied.texts }
    : { label: current ? 'loaded now (not applied by portwarden, or changed since)' : 'nothing loaded', texts: current };
  return { backend, texts, hash, reading, current, baseline, unchanged: Boolean(inPlace && applied.hash === hash) };
}

export interface ApplyResult {
  id: string;
  backup: string;
  deadline: Date | null;
}

/**
 * Holds the apply lock around fn (plan, show, ask, execute: what is shown is what gets backed up
 * and replaced). Refuses at once while an earlier apply awaits confirmation or stopped while loading.
 */
export async function withApplyLock<T>(state: StateDir, fn: () => Promise<T>): Promise<T> {
  ensureDir(state.dir);
  return withLock(state.lock, 'apply', async () => {
    let pending = state.readPending();
    if (pending && pending.deadline === null && state.readApplied()?.id === pending.id) {
      removeFile(state.pending); // a --confirm 0 apply that loaded and recorded, killed before it tidied up
      pending = null;
    }
    if (pending?.phase === 'loading') {
      throw new RuntimeError(`an earlier apply (${pending.id}) stopped while loading its rules: run portwarden rollback first`);
    }
    if (pending) {
      throw new RuntimeError(`an earlier apply (${pending.id}) awaits confirmation until ${pending.deadline}: run portwarden confirm or portwarden rollback first`);
    }
    return fn();
  });
}

/**
 * Backs up, records the intent, starts the timer, loads, records. Call it under withApplyLock with
 * a plan made under the same lock: its reading is the backup. whileLoading runs once the tool is
 * loading (apply --yes shows its diff then: the CPU work of this process beside the tool's).
 */
export async function executeApply(
  state: StateDir,
  plan: ApplyPlan,
  opts: { policy: string; netns: string | null; confirmSeconds: number; cli: string; whileLoading?: () => Promise<void> },
): Promise<ApplyResult> {
  if (!Number.isInteger(opts.confirmSeconds) || opts.confirmSeconds < 0 || opts.confirmSeconds > MAX_CONFIRM_SECONDS) {
    throw new RuntimeError(`confirm window of ${opts.confirmSeconds} s is outside 0..${MAX_CONFIRM_SECONDS} s`);
  }
  const applied = state.readApplied();
  const id = randomUUID();
  const current = plan.current;
  // What existed before portwarden's first load: measured now, or carried from that apply.
  const baseBefore = !current
    ? await plan.backend.readBase()
    : applied?.backend === plan.backend.name && isInPlace(applied, current) ? (applied.baseBefore ?? null) : null;
  const backupName = backupNameFor(id);

  // The write-ahead intent: whoever finds it (the timer, rollback by hand) restores the backup,
  // even if this process dies in the middle of the load. Written with the backup, in place once the backup is durable.
  const windowMs = opts.confirmSeconds * 1000;
  const p: PendingRecord = {
    id,
    backend: plan.backend.name,
    netns: opts.netns,
    deadline: windowMs ? new Date(Date.now() + windowMs).toISOString() : null,
    backup: backupName,
    timerPid: null,
    phase: 'loading',
  };
  await backup(state, backupName, plan.reading.all, plan.backend.name, opts.netns, id, current, baseBefore, [{ path: state.pending, data: jsonText(p), mode: 0o600 }]);
  if (windowMs) {
    p.timerPid = startRollbackTimer(opts.cli, state.dir, id);
    writeJson(state.pending, p);
  }
  const loading = plan.backend.load(plan.texts, `${state.backups}/${backupName}`);
  // Whatever it does, the load is awaited and recorded (or undone) before its error is thrown.
  const side = opts.whileLoading?.().then(() => null, (err: unknown) => ({ err }));
  try {
    await loading;
  } catch (err) {
    await side;
    // Put back what was there; the intent stays (for rollback) only if that fails too.
    await plan.backend.restore(current, baseBefore).then(
      () => {
        if (p.timerPid) killQuietly(p.timerPid);
        removeFile(state.pending);
      },
      () => undefined,
    );
    throw err;
  }
  const record: AppliedRecord = {
    backend: plan.backend.name,
    netns: opts.netns,
    policy: opts.policy,
    hash: plan.hash,
    liveHash: normalHash(await plan.backend.afterLoad(plan.texts)),
    liveForm: 'normal',
    at: new Date().toISOString(),
    id,
    backup: backupName,
    texts: plan.texts,
    baseBefore,
  };
  writeJson(state.applied, record);
  let deadline: Date | null = null;
  if (!windowMs) removeFile(state.pending);
  else {
    // The operator's window starts now that the rules are in; the timer re-reads the deadline.
    deadline = new Date(Date.now() + windowMs);
    writeJson(state.pending, { ...p, deadline: deadline.toISOString(), phase: 'loaded' } satisfies PendingRecord);
  }
  const failed = await side;
  if (failed) throw failed.err;
  return { id, backup: backupName, deadline };
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
  // The state files are ours, but a clumsy edit or a planted file must not send us elsewhere.
  if (typeof backupName !== 'string' || !BACKUP_NAME.test(backupName)) throw new RuntimeError(`${state.pending} or ${state.applied} names a backup that portwarden did not make (${JSON.stringify(backupName)}): refusing to restore from it`);
  const meta = readJson<BackupMeta>(`${state.backups}/${backupName}/meta.json`);
  if (!meta) throw new RuntimeError(`backup ${backupName} is missing from ${state.backups}`);
  const shapeOk = (meta.backend === 'nft' || meta.backend === 'iptables') && (meta.netns === null || meta.netns === undefined || (typeof meta.netns === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(meta.netns) && meta.netns !== '.' && meta.netns !== '..')) && (meta.ours === null || typeof meta.ours === 'object');
  if (!shapeOk) throw new RuntimeError(`${state.backups}/${backupName}/meta.json is not a backup record portwarden wrote (backend, netns or rules malformed): refusing to restore from it`);
  await liveBackend(meta.backend, meta.netns ?? undefined).restore(meta.ours, meta.baseBefore ?? null);
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

export type ConfirmOutcome = { kind: 'confirmed'; id: string } | { kind: 'nothing-pending' } | { kind: 'too-late'; message: string } | { kind: 'interrupted'; message: string };

export async function confirm(state: StateDir, now = new Date()): Promise<ConfirmOutcome> {
  return withLock(state.lock, 'confirm', async () => {
    const pending = state.readPending();
    if (!pending) {
      const last = state.readResult();
      if (last?.outcome === 'rolled-back') return { kind: 'too-late', message: `too late: apply ${last.id} was rolled back at ${last.at} (${last.reason ?? 'not confirmed in time'})` };
      return { kind: 'nothing-pending' };
    }
    if (pending.deadline !== null && now.getTime() > Date.parse(pending.deadline)) {
      // The timer should have acted; do its job now rather than keep unconfirmed rules.
      if (pending.timerPid) killQuietly(pending.timerPid);
      await restoreBackup(state, pending.backup, 'not confirmed in time', pending.id);
      return { kind: 'too-late', message: `too late: the deadline was ${pending.deadline}; the previous rules are back` };
    }
    if (pending.phase === 'loading') {
      // We hold the lock, so the apply that wrote this is gone: what it left loaded is unknown.
      return { kind: 'interrupted', message: `apply ${pending.id} stopped while loading its rules, so there is nothing whole to confirm: run portwarden rollback (or wait for the rollback timer)` };
    }
    if (pending.timerPid) killQuietly(pending.timerPid);
    removeFile(state.pending);
    writeJson(state.result, { id: pending.id, outcome: 'confirmed', at: now.toISOString() } satisfies ResultRecord);
    return { kind: 'confirmed', id: pending.id };
  }, 10_000);
}

/**
 * Body of the detached timer: wait for the deadline (re-read in steps: the apply moves it once its
 * load is done), then roll back unless confirmed meanwhile. An apply still loading holds the lock;
 * one that died did not release it, and withLock takes a dead holder's lock over.
 */
export async function rollbackTimer(state: StateDir, id: string): Promise<void> {
  for (;;) {
    const pending = state.readPending();
    if (!pending || pending.id !== id || pending.deadline === null) return;
    const wait = Date.parse(pending.deadline) - Date.now();
    if (wait > 0) {
      await new Promise((r) => setTimeout(r, Math.min(wait, TIMER_STEP_MS)));
      continue;
    }
    let locked = false;
    try {
      const done = await withLock(state.lock, 'rollback', async () => {
        locked = true;
        const still = state.readPending();
        if (still?.id !== id) return true;
        if (still.deadline !== null && Date.parse(still.deadline) > Date.now()) return false; // moved: wait again
        await restoreBackup(state, still.backup, 'not confirmed in time', id);
        return true;
      }, 30_000);
      if (done) return;
    } catch (err) {
      if (locked || !(err instanceof RuntimeError && /in progress/.test(err.message))) throw err;
      // The lock is busy (a long load still running): try again.
    }
  }
}

export async function removeAll(state: StateDir, netns: string | null): Promise<string[]> {
  ensureDir(state.dir);
  return withLock(state.lock, 'remove', async () => {
    const removed: string[] = [];
    const pending = state.readPending();
    if (pending?.timerPid) killQuietly(pending.timerPid);
    for (const name of ['nft', 'iptables'] as const) {
      const b = liveBackend(name, netns ?? undefined);
      let reading: LiveReading;
      try {
        reading = await b.readState();
      } catch (err) {
        if (err instanceof ToolMissingError) continue;
        throw err;
      }
      const ours = reading.ours;
      if (!ours) continue;
      // What existed before our first load: in applied.json, or in the backup of an apply that stopped while loading.
      const applied = state.readApplied();
      const intent = pending ? readJson<BackupMeta>(`${state.backups}/${pending.backup}/meta.json`) : null;
      const baseBefore = applied?.backend === name ? (applied.baseBefore ?? null) : intent?.backend === name ? (intent.baseBefore ?? null) : null;
      const id = randomUUID();
      await backup(state, backupNameFor(id), reading.all, b.name, netns, id, ours, baseBefore);
      await b.remove(baseBefore);
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

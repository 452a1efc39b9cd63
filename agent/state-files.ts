// Small on-disk state helpers: JSON read/write (atomic, never through a symlink) and an exclusive
// lock with stale-pid recovery (a takeover claimed exclusively and re-checked). System errors
// become one line naming the path (FsError, exit 3).
import { closeSync, constants, fstatSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { RuntimeError } from './errors.js';
import { fsError, writeFileAtomic } from './fs-atomic.js';

/** The text of a state file, or null when it does not exist; a symlink is refused (ELOOP). */
export function readStateText(path: string): string | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw fsError(path, err);
  }
  try {
    if (!fstatSync(fd).isFile()) throw new RuntimeError(`${path}: not a regular file`);
    return readFileSync(fd, 'utf8');
  } catch (err) {
    throw fsError(path, err);
  } finally {
    closeSync(fd);
  }
}

export function readJson<T>(path: string): T | null {
  const text = readStateText(path);
  if (text === null) return null;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new RuntimeError(`${path} is not valid JSON; move it aside to continue`);
  }
}

/** How a state file holds its JSON. */
export const jsonText = (value: unknown) => JSON.stringify(value, null, 2) + '\n';

export function writeJson(path: string, value: unknown): void {
  writeFileAtomic(path, jsonText(value), 0o600);
}

export function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(path, err);
  }
}

/** Room the next cycles need, so that a nearly full disk does not flap between failing and working. */
const ROOM_BYTES = 64 * 1024;

/**
 * Whether dir has room again after writes failed: ROOM_BYTES written to a probe file there
 * (atomically, fsync'd) and removed. Throws the write's error. The name is no state file's and no batch's.
 */
export function probeWrite(dir: string): void {
  const probe = `${dir}/.write-probe`;
  try {
    writeFileAtomic(probe, new Uint8Array(ROOM_BYTES), 0o600);
  } finally {
    try {
      removeFile(probe);
    } catch {
      /* nothing was written */
    }
  }
}

export function ensureDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw fsError(dir, err);
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A lock file whose pid could not be read this long after it was made was left by a crash. */
const UNREADABLE_LOCK_STALE_MS = 10_000;

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** Whether a lock file's text names no live holder: a dead pid, ours, or no pid long after it was made. */
function staleLock(path: string, text: string, holds: (pid: number) => boolean): boolean {
  const holder = Number(text.trim());
  return /^\d+$/.test(text.trim()) && holder > 0 ? holder === process.pid || !holds(holder) : ageMs(path) > UNREADABLE_LOCK_STALE_MS;
}

/** How long a contender waits for another one's takeover to finish (it takes microseconds). */
const TAKEOVER_WAIT_MS = 2000;

/**
 * Removes a stale lock whose text we judged as `judged`. Removing by path after judging is a race:
 * two contenders that judged the same dead holder could each remove the other's fresh lock. So a
 * takeover is claimed first (`PATH.takeover`, created exclusively) and, under the claim, done only
 * if the lock still holds what was judged: a fresh lock has another pid and is left alone. A claim
 * whose maker died (a crash in those microseconds) is removed. Returns whether we may try again now.
 */
function takeOver(path: string, judged: string, holds: (pid: number) => boolean): boolean {
  const claim = `${path}.takeover`;
  let fd: number;
  try {
    fd = openSync(claim, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fsError(claim, err);
    const text = readStateText(claim);
    if (text !== null && staleLock(claim, text, alive)) removeFile(claim);
    return false;
  }
  try {
    try {
      writeSync(fd, String(process.pid));
    } catch {
      /* a full disk: the empty claim still excludes the others, and is old news in seconds */
    } finally {
      closeSync(fd);
    }
    const now = readStateText(path);
    if (now !== null && now === judged && staleLock(path, now, holds)) removeFile(path);
  } finally {
    removeFile(claim);
  }
  return true;
}

/**
 * Tries once to take the lock file (it holds our pid). Returns null when taken, else the live
 * holder's pid (0 when the file says no pid yet). A dead holder's lock is taken over; `holds`
 * can be stricter than "the pid is alive" (a reused pid).
 */
export function tryLock(path: string, holds: (pid: number) => boolean = alive): number | null {
  const waitUntil = Date.now() + TAKEOVER_WAIT_MS;
  for (;;) {
    let fd: number;
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fsError(path, err);
      let text: string | null;
      try {
        text = readStateText(path);
      } catch (e) {
        throw fsError(path, e);
      }
      if (text === null) continue; // released meanwhile
      if (staleLock(path, text, holds)) {
        // The holder died without releasing it. Another contender taking it over: wait for it.
        if (!takeOver(path, text, holds)) {
          if (Date.now() > waitUntil) throw new RuntimeError(`${path}.takeover has been held for ${TAKEOVER_WAIT_MS / 1000} s; if no portwarden is running, remove it`);
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
        }
        continue;
      }
      const holder = Number(text.trim());
      return /^\d+$/.test(text.trim()) && holder > 0 ? holder : 0;
    }
    try {
      // With a full disk the pid may not fit; the empty file still holds the lock.
      writeSync(fd, String(process.pid));
    } catch {
      /* see above */
    } finally {
      closeSync(fd);
    }
    return null;
  }
}

/** Takes an exclusive lock file; waits up to waitMs for another holder, recovers a dead holder's lock. */
export async function withLock<T>(path: string, what: string, fn: () => Promise<T>, waitMs = 0): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const holder = tryLock(path);
    if (holder === null) break;
    if (Date.now() >= deadline) throw new RuntimeError(`another portwarden ${what} is in progress (pid ${holder || 'unknown'}, lock ${path}); try again when it has finished`);
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    return await fn();
  } finally {
    removeFile(path);
  }
}

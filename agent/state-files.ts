// Small on-disk state helpers: JSON read/write (atomic, never through a symlink) and an exclusive
// lock with stale-pid recovery. System errors become one line naming the path (FsError, exit 3).
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

export function writeJson(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n', 0o600);
}

export function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(path, err);
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

/**
 * Tries once to take the lock file (it holds our pid). Returns null when taken, else the live
 * holder's pid (0 when the file says no pid yet). A dead holder's lock is taken over; `holds`
 * can be stricter than "the pid is alive" (a reused pid).
 */
export function tryLock(path: string, holds: (pid: number) => boolean = alive): number | null {
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
      const holder = Number(text.trim());
      const valid = /^\d+$/.test(text.trim()) && holder > 0;
      if (valid ? holder === process.pid || !holds(holder) : ageMs(path) > UNREADABLE_LOCK_STALE_MS) {
        removeFile(path); // the holder died without releasing it
        continue;
      }
      return valid ? holder : 0;
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

// Atomic file replacement: write a temp file beside the target, fsync it, rename it over, fsync the
// directory. The temp file is created with O_EXCL|O_NOFOLLOW, so a planted symlink is never
// followed, and rename replaces a link rather than writing through it.
import { closeSync, constants, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { RuntimeError } from './errors.js';

const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  ELOOP: 'is a symbolic link; refusing to follow it',
  EIO: 'input/output error',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'name too long',
};

/** An error from the system about a path, said in one line: "PATH: no space left on device". */
export class FsError extends RuntimeError {
  constructor(
    readonly path: string,
    readonly code: string,
  ) {
    super(`${path}: ${REASONS[code] ?? code}`);
  }
}

/** Turns a system error (errno code) into an FsError naming path; anything else is rethrown as is. */
export function fsError(path: string, err: unknown): Error {
  if (err instanceof FsError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? new FsError(path, code) : (err as Error);
}

/** The temp file beside path that writeFileAtomic and stageFiles write first (backups match its shape). */
const tempOf = (path: string) => join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
const WRITE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = tempOf(path);
  let fd: number;
  try {
    fd = openSync(tmp, WRITE_NEW, mode);
  } catch (err) {
    throw fsError(path, err);
  }
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
    closeSync(fd);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    unlinkSync(tmp);
    throw fsError(path, err);
  }
  try {
    renameSync(tmp, path);
  } catch (err) {
    unlinkSync(tmp);
    throw fsError(path, err);
  }
  fsyncDir(dirname(path));
}

export function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (err) {
    throw fsError(dir, err);
  }
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface FileToWrite {
  path: string;
  data: string | Uint8Array;
  mode: number;
}

/** Files written and fsync'd under their temp names, not yet in place: commit or discard them. */
export interface Staged {
  files: { path: string; tmp: string }[];
}

/**
 * Several files at once, each as writeFileAtomic writes it: the temp files are written and fsync'd
 * side by side (one journal commit rather than one a file), and stay under their temp names until
 * commitStaged renames them. On any failure the temp files already made are removed.
 */
export async function stageFiles(files: readonly FileToWrite[]): Promise<Staged> {
  const staged: Staged = { files: [] };
  const results = await Promise.allSettled(
    files.map(async (f) => {
      const tmp = tempOf(f.path);
      let handle;
      try {
        handle = await open(tmp, WRITE_NEW, f.mode);
      } catch (err) {
        throw fsError(f.path, err);
      }
      staged.files.push({ path: f.path, tmp });
      try {
        await handle.writeFile(typeof f.data === 'string' ? Buffer.from(f.data) : f.data);
        await handle.sync();
      } catch (err) {
        throw fsError(f.path, err);
      } finally {
        await handle.close();
      }
    }),
  );
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) {
    discardStaged(staged);
    throw failed.reason;
  }
  // In the order given, whatever order the writes finished in.
  staged.files.sort((a, b) => files.findIndex((f) => f.path === a.path) - files.findIndex((f) => f.path === b.path));
  return staged;
}

/**
 * Renames the staged files into place in their order, then fsyncs each directory once: when this
 * returns, all of them are durable. A failed rename removes the temp files not yet in place.
 */
export function commitStaged(staged: Staged): void {
  const dirs: string[] = [];
  for (const [i, f] of staged.files.entries()) {
    try {
      renameSync(f.tmp, f.path);
    } catch (err) {
      discardStaged({ files: staged.files.slice(i) });
      throw fsError(f.path, err);
    }
    if (!dirs.includes(dirname(f.path))) dirs.push(dirname(f.path));
  }
  for (const d of dirs) fsyncDir(d);
}

/** Removes staged temp files that will not be committed. */
export function discardStaged(staged: Staged): void {
  for (const f of staged.files) {
    try {
      unlinkSync(f.tmp);
    } catch {
      /* gone already */
    }
  }
}

// Atomic file replacement: write a temp file beside the target, fsync it, rename it over, fsync the
// directory. The temp file is created with O_EXCL|O_NOFOLLOW, so a planted symlink is never
// followed, and rename replaces a link rather than writing through it.
import { closeSync, constants, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
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

export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
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

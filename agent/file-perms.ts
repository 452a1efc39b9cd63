// sshd-StrictModes-like check: when running as root, a policy or config that someone else could
// change (the file, or a directory on its path that lets others replace it) would let them change
// what root enforces.
import { realpathSync, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { InputError } from './errors.js';

/** "regular file", "directory", "FIFO", "character device", ...: what a stat says the path is. */
export function fileKind(st: Stats): string {
  if (st.isFile()) return 'regular file';
  if (st.isDirectory()) return 'directory';
  if (st.isFIFO()) return 'FIFO';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  if (st.isSocket()) return 'socket';
  return 'special file';
}

export function checkTrustedFile(file: string, uid = process.getuid?.() ?? -1): void {
  checkTrusted(file, 'regular file', uid);
}

/** The same for a directory root keeps its state in (the agent's state_dir). */
export function checkTrustedDir(dir: string, uid = process.getuid?.() ?? -1): void {
  checkTrusted(dir, 'directory', uid);
}

function checkTrusted(file: string, kind: 'regular file' | 'directory', uid: number): void {
  let st;
  try {
    st = statSync(file);
  } catch {
    return; // reading it reports the error with its place
  }
  // Not a question of trust, but asked first: "/dev/zero is writable by others" would mislead.
  if (fileKind(st) !== kind) throw new InputError([`${file}: not a ${kind} (it is a ${fileKind(st)})`]);
  if (uid !== 0) return;
  const problems: string[] = [];
  if (st.uid !== 0) problems.push(`is owned by uid ${st.uid}, not root (fix: chown root: ${file})`);
  if (st.mode & 0o022) problems.push(`is writable by ${st.mode & 0o002 ? 'others' : 'its group'} (fix: chmod go-w ${file})`);
  problems.push(...replaceableBy(file));
  if (problems.length) throw new InputError(problems.map((p) => `${file}: refusing to use it as root: it ${p}`));
}

/** Directories on the file's real path whose group or others could rename the file away and put their own in its place. */
function replaceableBy(file: string): string[] {
  let dir: string;
  try {
    dir = dirname(realpathSync(file));
  } catch {
    return [];
  }
  const problems: string[] = [];
  for (;;) {
    let st;
    try {
      st = statSync(dir);
    } catch {
      break;
    }
    // The sticky bit (/tmp) stops others from renaming or removing root's entries.
    if (st.mode & 0o022 && !(st.mode & 0o1000)) {
      problems.push(`is in ${dir}, which is writable by ${st.mode & 0o002 ? 'others' : 'its group'} (fix: chmod go-w ${dir})`);
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return problems;
}

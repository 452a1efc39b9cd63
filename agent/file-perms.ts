// sshd-StrictModes-like check: when running as root, a policy or config that someone else could
// change would let them change what root enforces.
import { statSync } from 'node:fs';
import { InputError } from './errors.js';

export function checkTrustedFile(file: string, uid = process.getuid?.() ?? -1): void {
  if (uid !== 0) return;
  let st;
  try {
    st = statSync(file);
  } catch {
    return; // reading it reports the error with its place
  }
  const problems: string[] = [];
  if (st.uid !== 0) problems.push(`is owned by uid ${st.uid}, not root (fix: chown root: ${file})`);
  if (st.mode & 0o022) problems.push(`is writable by ${st.mode & 0o002 ? 'others' : 'its group'} (fix: chmod go-w ${file})`);
  if (problems.length) throw new InputError(problems.map((p) => `${file}: refusing to use it as root: it ${p}`));
}

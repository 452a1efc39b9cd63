// applied.json read again only when the file changed: apply replaces it (a new inode), so its
// lstat tells. The daemon asks every cycle (drift, attempts); a 10 000-rule record is megabytes.
import { lstatSync } from 'node:fs';
import type { AppliedRecord, StateDir } from './apply.js';

export interface AppliedReading {
  /** Changes whenever the file does; 'none' while there is none. */
  key: string;
  record: AppliedRecord | null;
}

export class AppliedMemo {
  private last: AppliedReading | null = null;

  constructor(private readonly state: StateDir) {}

  /** The record (null: none yet); a corrupt file throws, as StateDir.readApplied does, every time. */
  read(): AppliedReading {
    let key = 'none';
    try {
      const st = lstatSync(this.state.applied);
      key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      /* none yet: readApplied says so, or names the problem */
    }
    if (this.last?.key !== key) this.last = { key, record: this.state.readApplied() };
    return this.last;
  }
}

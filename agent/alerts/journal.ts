// The event journal: every event is appended (and fsync'd) to <state_dir>/events.jsonl before
// any sink sees it; rotated by size, keeping one older file. Never opened through a symlink. A
// torn last line (a crash mid-write) is terminated before the next append, so it cannot swallow
// the next event; readers skip and count lines they cannot parse.
import { closeSync, constants, fstatSync, fsyncSync, lstatSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { fsError } from '../fs-atomic.js';
import { JOURNAL } from '../paths.js';
import { readStateText } from '../state-files.js';
import { isFinding, type DriftEvent } from './drift.js';

export interface JournalEvent extends DriftEvent {
  host: string;
}

const ROTATE_BYTES = 10 * 1024 * 1024;

export function appendEvents(stateDir: string, events: readonly JournalEvent[], rotateBytes = ROTATE_BYTES): void {
  if (!events.length) return;
  const path = `${stateDir}/${JOURNAL}`;
  try {
    const st = lstatSync(path);
    if (st.isFile() && st.size >= rotateBytes) renameSync(path, `${path}.1`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(path, err);
  }
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw fsError(path, err);
  }
  try {
    const text = events.map((e) => JSON.stringify(e)).join('\n') + '\n';
    writeSync(fd, tornTail(fd) ? '\n' + text : text);
    fsyncSync(fd);
  } catch (err) {
    throw fsError(path, err);
  } finally {
    closeSync(fd);
  }
}

/** True when the file does not end with a newline (its last line was cut short). */
function tornTail(fd: number): boolean {
  const size = fstatSync(fd).size;
  if (size === 0) return false;
  const last = Buffer.alloc(1);
  readSync(fd, last, 0, 1, size - 1);
  return last[0] !== 0x0a;
}

export interface Journal {
  events: JournalEvent[];
  /** Lines that are not an event (torn, edited), per file that has any. */
  unreadable: { file: string; lines: number }[];
}

function isEvent(v: unknown): v is JournalEvent {
  const e = v as JournalEvent;
  return typeof e === 'object' && e !== null && typeof e.event === 'string' && typeof e.at === 'string' && isFinding(e.finding);
}

/** Both journal files, oldest first. A missing file is empty; any other error is an FsError. */
export function readJournal(stateDir: string): Journal {
  const out: Journal = { events: [], unreadable: [] };
  for (const file of [`${stateDir}/${JOURNAL}.1`, `${stateDir}/${JOURNAL}`]) {
    const text = readStateText(file);
    if (text === null) continue;
    let bad = 0;
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let e: unknown;
      try {
        e = JSON.parse(line);
      } catch {
        e = null;
      }
      if (isEvent(e)) out.events.push(e);
      else bad++;
    }
    if (bad) out.unreadable.push({ file, lines: bad });
  }
  return out;
}

/** The events alone (unreadable lines skipped). */
export function readEvents(stateDir: string): JournalEvent[] {
  return readJournal(stateDir).events;
}

// The event journal: every event is appended (and fsync'd) to <state_dir>/events.jsonl before
// any sink sees it; rotated by size, keeping one older file.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import type { DriftEvent } from './drift.js';

export interface JournalEvent extends DriftEvent {
  host: string;
}

export const JOURNAL = 'events.jsonl';
const ROTATE_BYTES = 10 * 1024 * 1024;

export function appendEvents(stateDir: string, events: readonly JournalEvent[], rotateBytes = ROTATE_BYTES): void {
  if (!events.length) return;
  const path = `${stateDir}/${JOURNAL}`;
  try {
    if (statSync(path).size >= rotateBytes) renameSync(path, `${path}.1`);
  } catch {
    /* no journal yet */
  }
  const fd = openSync(path, 'a', 0o600);
  try {
    writeSync(fd, events.map((e) => JSON.stringify(e)).join('\n') + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function readEvents(stateDir: string): JournalEvent[] {
  const out: JournalEvent[] = [];
  for (const file of [`${stateDir}/${JOURNAL}.1`, `${stateDir}/${JOURNAL}`]) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as JournalEvent);
      } catch {
        /* a torn last line after a crash: skip it */
      }
    }
  }
  return out;
}

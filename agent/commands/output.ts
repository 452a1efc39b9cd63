// Terminal output primitives: aligned tables, colour (only on a TTY, never with NO_COLOR), safe
// text, warnings, and --output files.
import { lstatSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { RuntimeError, UsageError } from '../errors.js';
import { fileKind } from '../file-perms.js';
import { writeFileAtomic } from '../fs-atomic.js';
import type { Severity } from '../model.js';

export function useColor(stream: NodeJS.WriteStream = process.stdout): boolean {
  return Boolean(stream.isTTY) && !('NO_COLOR' in process.env && process.env.NO_COLOR !== '');
}

const CODES: Record<Severity, string> = { critical: '1;31', high: '31', medium: '33', low: '36', info: '2' };

export function paintSeverity(s: Severity, text: string, color: boolean): string {
  return color ? `\x1b[${CODES[s]}m${text}\x1b[0m` : text;
}

// Control characters (C0, DEL, C1), line/paragraph separators and bidi overrides: what lets a
// string move the cursor, retitle or clear the terminal, or reorder what the operator reads.
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNPRINTABLE = /[\\\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text from the system (process names, paths, command lines, users, interface names: anyone can
 * set their own process name with prctl) made safe for a terminal: each such character becomes a
 * visible escape (\x1b, \u202e), and a backslash becomes \\ so the escapes stay unambiguous.
 * For human output only: JSON carries the exact text.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    if (c === '\\') return '\\\\';
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

export function table(header: string[], rows: string[][]): string {
  // A loop, not Math.max(...rows): a spread of 200 000 rows overflows the call stack.
  const widths = header.map((h, i) => rows.reduce((w, r) => Math.max(w, (r[i] ?? '').length), h.length));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/**
 * Refuses an --output path we cannot or must not replace, naming it (exit 2): a parent that is
 * missing or not a directory, or a target that is a directory, a device or a symbolic link (the
 * rename would replace /dev/null, or the /dev/stdout link, instead of writing into it).
 */
export function checkOutputPath(path: string): void {
  const dir = dirname(path);
  let parent;
  try {
    parent = statSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot write ${path}: ${code === 'ENOENT' ? `the directory ${dir} does not exist` : `${dir}: ${code ?? (err as Error).message}`}`);
  }
  if (!parent.isDirectory()) throw new UsageError(`cannot write ${path}: ${dir} is not a directory`);
  let target;
  try {
    target = lstatSync(path);
  } catch {
    return; // a new file
  }
  // Renaming over a link replaces the link, not what it points to (/dev/stdout -> /proc/self/fd/1).
  if (target.isSymbolicLink()) throw new UsageError(`cannot write ${path}: it is a symbolic link; name the file itself (to print, leave out --output)`);
  if (!target.isFile()) throw new UsageError(`cannot write ${path}: it is a ${fileKind(target)}, not a regular file (to print, leave out --output)`);
}

/** Writes an --output file atomically; what the system refuses is one line naming the path. */
export function writeOutput(path: string, text: string, mode?: number): void {
  checkOutputPath(path);
  try {
    writeFileAtomic(path, text, mode);
  } catch (err) {
    throw new RuntimeError(`cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function printWarnings(warnings: readonly string[]): void {
  for (const w of warnings) process.stderr.write(w + '\n');
}

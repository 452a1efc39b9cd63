// Human output helpers: aligned tables and colour (only on a TTY, never with NO_COLOR).
import type { Severity } from '../model.js';

export function useColor(stream: NodeJS.WriteStream = process.stdout): boolean {
  return Boolean(stream.isTTY) && !('NO_COLOR' in process.env && process.env.NO_COLOR !== '');
}

const CODES: Record<Severity, string> = { critical: '1;31', high: '31', medium: '33', low: '36', info: '2' };

export function paintSeverity(s: Severity, text: string, color: boolean): string {
  return color ? `\x1b[${CODES[s]}m${text}\x1b[0m` : text;
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

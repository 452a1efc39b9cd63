// Durations as the config and the commands write them: 90s, 30m, 24h, 7d.

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** "24h" → ms; "0" or 0 → 0. Throws on anything else. */
export function parseDuration(text: string | number): number {
  if (text === 0 || text === '0') return 0;
  const m = /^([1-9][0-9]*)(s|m|h|d)$/.exec(String(text));
  if (!m) throw new Error(`invalid duration ${JSON.stringify(text)} (like 90s, 30m, 24h, 7d)`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

// What one `nft -j monitor` line changed: the table, and within it the chain whose rules or the
// set whose elements moved, so that the daemon lists only those again. Pure.

/** A rule added (add, insert), deleted, or otherwise changed (replace), by handle. */
export interface RuleChange {
  kind: 'rule';
  table: string;
  chain: string;
  op: 'add' | 'delete' | 'other';
  handle: number | null;
}

export type MonitorChange =
  | RuleChange
  /** Elements of a named set or map added or deleted. */
  | { kind: 'elements'; table: string; set: string }
  /** Anything else of a table (a chain, a set, the table itself …): the table is read whole. */
  | { kind: 'table'; table: string }
  /** An anonymous set (`{ 80, 443 }` in a rule): it lives and dies with its rule, whose own line says what changed. */
  | { kind: 'bound' }
  /** Names no table (`flush ruleset`), or a line that cannot be read: anything may have changed. */
  | { kind: 'unknown' };

/**
 * nft prints each object's scalar fields first (`{"add": {"rule": {"family": "inet", "table": "t",
 * "chain": "c", "handle": 4, "expr": […]}}}`): only that head is read, a line of thousands of
 * elements is not parsed.
 */
const HEAD = /^\{"(\w+)": \{"(\w+)": \{((?:"\w+": (?:"(?:[^"\\]|\\.)*"|[-\w.]+)(?:, )?)*)/;
const FIELD = /"(\w+)": ("(?:[^"\\]|\\.)*"|[-\w.]+)/g;
/** nft's names for anonymous sets and maps. */
const ANONYMOUS = /^__(set|map)\d+$/;

function headFields(run: string): Map<string, unknown> {
  const fields = new Map<string, unknown>();
  for (const [, key, value] of run.matchAll(FIELD)) {
    try {
      fields.set(key!, JSON.parse(value!));
    } catch {
      /* not a JSON scalar: left out, the line is then read as naming less */
    }
  }
  return fields;
}

export function monitorChange(line: string): MonitorChange {
  const m = HEAD.exec(line);
  if (!m) return { kind: 'unknown' };
  const [, op, kind, run] = m as unknown as [string, string, string, string];
  const f = headFields(run);
  const family = f.get('family');
  const name = f.get(kind === 'table' ? 'name' : 'table'); // a table object names itself by name
  if (typeof family !== 'string' || typeof name !== 'string') return { kind: 'unknown' };
  const table = `${family} ${name}`;
  const own = f.get('name');
  if ((kind === 'set' || kind === 'map' || kind === 'element') && typeof own === 'string' && ANONYMOUS.test(own)) return { kind: 'bound' };
  if (kind === 'element' && typeof own === 'string') return { kind: 'elements', table, set: own };
  const chain = f.get('chain');
  if (kind === 'rule' && typeof chain === 'string') {
    const handle = f.get('handle');
    return { kind: 'rule', table, chain, op: op === 'add' || op === 'insert' ? 'add' : op === 'delete' ? 'delete' : 'other', handle: typeof handle === 'number' ? handle : null };
  }
  return { kind: 'table', table };
}

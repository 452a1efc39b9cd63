// What apply shows before it loads: the old and new rules compared like with like. Both sides
// (our rendered script, or the kernel's listing of a table loaded by hand) are parsed into one
// normalised form — chains of rule lines, named sets of elements — so formatting, counters,
// handles and the kernel's own spelling do not count as changes. Pure functions, near-linear:
// maps and multisets keyed by normalised text, never an O(n·m) comparison.
import { createHash } from 'node:crypto';
import { structuredPatch, formatPatch } from 'diff';
import type { Texts } from './live.js';

/** One backend text in normal form: each chain's header and rules, each set's declaration and elements. */
export interface NormalRuleset {
  chains: Map<string, { head: string[]; rules: string[] }>;
  sets: Map<string, { decl: string[]; elements: string[] }>;
}

/** Above this many normalised lines on either side, `--diff auto` prints a summary, not the text diff. */
export const FULL_DIFF_LINE_LIMIT = 2000;
/** A text diff prints at most this many lines; the rest is counted in a note. */
export const MAX_DIFF_LINES = 20_000;
/** Edit distance beyond which the line diff gives up (its cost is (n+m)·d): listed per chain instead. */
const MAX_EDIT_LENGTH = 2000;
/** And beyond this time, whatever the distance. */
const DIFF_TIMEOUT_MS = 5000;

export type DiffMode = 'auto' | 'full' | 'summary' | 'none';

/** Whitespace runs as one space; a line with none to fold (most) is not copied. */
const ws = (s: string) => (/[^\S ]| {2}/.test(s) ? s.replace(/\s+/g, ' ') : s).trim();

/** The kernel prints /32 and /128 as bare addresses, and IPv6 in its shortest form. */
function normalAddress(tok: string): string {
  if (!tok.includes(':') && !tok.endsWith('/32')) return tok; // an IPv4 prefix, as most are: nothing to do
  const v4 = /^(\d+\.\d+\.\d+\.\d+)\/32$/.exec(tok);
  if (v4) return v4[1]!;
  const m = /^([0-9a-fA-F.]*:[0-9a-fA-F.]*:[0-9a-fA-F:.]*)(\/\d+)?$/.exec(tok);
  if (!m) return tok;
  let addr: string;
  try {
    addr = new URL(`http://[${m[1]}]/`).hostname.slice(1, -1);
  } catch {
    return tok;
  }
  return !m[2] || m[2] === '/128' ? addr : addr + m[2];
}

function normalElements(list: string): string[] {
  const out: string[] = [];
  for (const e of list.split(',')) {
    const t = ws(e); // copies only an element with whitespace to fold
    if (t) out.push(normalAddress(t));
  }
  return out.sort();
}

/** One nft rule line in the form both the renderer and `nft list` agree on. */
export function normalNftRule(line: string): string {
  // Each rewrite only where its text can occur (includes() first: this runs on every line of a
  // listing, 10^5 of them, while nft loads beside it).
  let r = ws(line.includes('# handle') ? line.replace(/\s*# handle \d+\s*$/, '') : line);
  if (r.includes('counter packets')) r = r.replace(/\bcounter packets \d+ bytes \d+/g, 'counter');
  if (r.includes('meta l4proto')) {
    // The kernel drops the protocol dependency it can infer.
    r = r.replace(/\bmeta l4proto (?:ipv6-icmp|58) icmpv6 /g, 'icmpv6 ').replace(/\bmeta l4proto (?:icmp|1) icmp /g, 'icmp ');
    r = r.replace(/\bmeta l4proto (tcp|udp) \1 /g, '$1 ');
  }
  if (r.includes(' reject with icmpx')) r = r.replace(/ reject with icmpx port-unreachable\b/g, ' reject'); // inet's default reject
  if (r.includes(' burst 5 ')) r = r.replace(/ burst 5 packets\b/g, ''); // nft's default burst is not printed
  if (r.includes('meta nfproto') && /\bip6? [sd]addr\b/.test(r)) r = r.replace(/\bmeta nfproto ipv[46] /g, ''); // implied by the address match
  if (r.includes('[invalid type]')) r = r.replace(/\b0x([0-9a-f]+) \[invalid type\]/g, (_, hex: string) => String(parseInt(hex, 16))); // ct original proto-dst sets
  // Anonymous sets: order-free. `{ ip saddr limit … }` (no comma) is left as it is.
  if (r.includes('{ ')) r = r.replace(/\{ ([^{}]*,[^{}]*) \}/g, (_, list: string) => `{ ${normalElements(list).join(', ')} }`);
  if (!r.includes(':') && !r.includes('/')) return r;
  return r
    .split(' ')
    .map((t) => (/[:/]/.test(t) && !t.startsWith('"') ? normalAddress(t) : t))
    .join(' ');
}

/**
 * Parses an nft script or an `nft list table` listing of one table: linear in its size. Sets with
 * `flags dynamic` or `timeout` keep no elements (those the kernel adds at run time are not policy).
 */
export function parseNft(text: string): NormalRuleset {
  const out: NormalRuleset = { chains: new Map(), sets: new Map() };
  const lines = text.split('\n');
  let depth = 0;
  let block: { kind: 'chain' | 'set'; name: string } | null = null;
  let elements: string[] | null = null; // inside `elements = { …` spanning lines
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const line = (raw.includes('# handle') ? raw.replace(/\s*# handle \d+\s*$/, '') : raw).trim(); // `nft -a` prints handles
    if (!line || line.startsWith('#')) continue;
    if (elements) {
      elements.push(line);
      if (line.includes('}')) {
        const set = out.sets.get(block!.name)!;
        for (const e of normalElements(elements.join(' ').replace(/^.*?\{/, '').replace(/\}.*$/, ''))) set.elements.push(e); // no spread: sets reach 10^5 elements
        elements = null;
      }
      continue;
    }
    if (depth === 0) {
      if (/^table\s.*\{\s*\}$/.test(line)) continue; // `table inet portwarden {}` (the replace header)
      if (/^table\s.*\{$/.test(line)) depth = 1;
      continue; // `delete table …` and anything else outside the table
    }
    if (depth === 1) {
      const m = /^(chain|set|map)\s+(\S+)\s*\{$/.exec(line);
      if (m) {
        depth = 2;
        block = { kind: m[1] === 'chain' ? 'chain' : 'set', name: m[2]! };
        if (block.kind === 'chain') out.chains.set(block.name, { head: [], rules: [] });
        else out.sets.set(block.name, { decl: [], elements: [] });
      } else if (line === '}') depth = 0;
      continue;
    }
    if (line === '}') {
      depth = 1;
      block = null;
      continue;
    }
    if (block!.kind === 'chain') {
      const chain = out.chains.get(block!.name)!;
      if (/^type\s+\S+\s+hook\s/.test(line) || /^policy\s/.test(line)) chain.head.push(ws(line));
      else chain.rules.push(normalNftRule(line));
    } else {
      const set = out.sets.get(block!.name)!;
      if (line.startsWith('elements')) {
        if (line.includes('}')) for (const e of normalElements(line.replace(/^.*?\{/, '').replace(/\}.*$/, ''))) set.elements.push(e);
        else elements = [line];
      } else set.decl.push(ws(line));
    }
  }
  for (const set of out.sets.values()) {
    set.decl.sort();
    if (set.decl.some((d) => /^flags .*\b(dynamic|timeout)\b/.test(d) || /^timeout /.test(d))) set.elements = [];
  }
  return out;
}

/** ICMP type names as iptables-save prints them (numbers). */
const ICMP_TYPES: Record<string, Record<string, string>> = {
  '--icmp-type': { 'echo-reply': '0', 'destination-unreachable': '3', 'source-quench': '4', redirect: '5', 'echo-request': '8', 'time-exceeded': '11', 'parameter-problem': '12' },
  '--icmpv6-type': {
    'destination-unreachable': '1', 'packet-too-big': '2', 'time-exceeded': '3', 'parameter-problem': '4', 'echo-request': '128', 'echo-reply': '129',
    'router-solicitation': '133', 'router-advertisement': '134', 'neighbour-solicitation': '135', 'neighbor-solicitation': '135', 'neighbour-advertisement': '136', 'neighbor-advertisement': '136',
  },
};
const LOG_LEVELS: Record<string, string> = { emerg: '0', alert: '1', crit: '2', err: '3', error: '3', warning: '4', warn: '4', notice: '5', info: '6', debug: '7' };
/** The match module iptables-save names after `-p PROTO` for that protocol's own options. */
const PROTO_MATCH: Record<string, string> = { tcp: 'tcp', udp: 'udp', icmp: 'icmp', 'ipv6-icmp': 'icmp6', icmpv6: 'icmp6' };

/**
 * One iptables rule (after `-A CHAIN`) as iptables-save prints it: the implicit `-m tcp` spelled
 * out, ICMP types as numbers, quotes only around what has a space, and each match's options in
 * one order (iptables-save uses the module's order, not the one they were given in).
 */
export function normalIptablesRule(body: string): string {
  const tokens = (body.replace(/ -c \d+ \d+/, '').match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []).map((t) => (/^"[^"\s\\]*"$/.test(t) ? t.slice(1, -1) : normalAddress(t)));
  // Segments: the leading options, then one per `-m NAME` / `-j TARGET`; within a match, its options sorted.
  const segments: string[][] = [[]];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '-m' || t === '-j' || t === '-g') segments.push([]);
    const seg = segments[segments.length - 1]!;
    seg.push(t);
    if (t === '-p' && PROTO_MATCH[tokens[i + 1] ?? ''] && /^--/.test(tokens[i + 2] ?? '')) {
      seg.push(tokens[++i]!);
      segments.push(['-m', PROTO_MATCH[tokens[i]!]!]);
    }
  }
  return segments
    .map((seg) => {
      if (seg[0] !== '-m') return seg.join(' ').replace(/--log-level ([a-z]+)/, (m, l: string) => (LOG_LEVELS[l] ? `--log-level ${LOG_LEVELS[l]}` : m));
      const opts: string[] = []; // `[!] --option [values…]`, one entry each
      for (const t of seg.slice(2)) {
        const last = opts.at(-1);
        if (last === '!') opts[opts.length - 1] = `! ${t}`;
        else if (t.startsWith('--') || t === '!' || last === undefined) opts.push(t);
        else opts[opts.length - 1] = `${last} ${t}`;
      }
      const named = opts
        .filter((o) => !(seg[1] === 'limit' && o === '--limit-burst 5')) // the default, not printed
        .map((o) => {
          const [opt, value] = o.replace(/^! /, '').split(' ');
          const num = ICMP_TYPES[opt!]?.[value ?? ''];
          if (num) return o.replace(` ${value}`, ` ${num}`);
          return opt === '--ctstate' ? o.replace(value!, value!.split(',').sort().join(',')) : o;
        });
      return `-m ${seg[1]} ${named.sort().join(' ')}`.trim();
    })
    .join(' ');
}

/** Parses iptables-save/-restore text of our chains: `-A CHAIN …` lines; counters dropped. */
export function parseIptables(text: string): NormalRuleset {
  const out: NormalRuleset = { chains: new Map(), sets: new Map() };
  for (const raw of text.split('\n')) {
    const line = ws(raw.replace(/^\[\d+:\d+\]\s*/, ''));
    const decl = /^:(\S+)/.exec(line);
    if (decl && !out.chains.has(decl[1]!)) out.chains.set(decl[1]!, { head: [], rules: [] });
    const rule = /^-A (\S+) (.*)$/.exec(line);
    if (!rule) continue;
    if (!out.chains.has(rule[1]!)) out.chains.set(rule[1]!, { head: [], rules: [] });
    out.chains.get(rule[1]!)!.rules.push(normalIptablesRule(rule[2]!));
  }
  return out;
}

/** Parses one text of a backend's Texts (`nft`; `v4`/`v6`; the `*-jump` flags are one line each). */
export function parseText(key: string, text: string): NormalRuleset {
  if (key === 'nft') return parseNft(text);
  if (key.endsWith('-jump')) return { chains: new Map([['jump from INPUT/FORWARD', { head: [], rules: [text.trim()] }]]), sets: new Map() };
  return parseIptables(text);
}

/** out.push(...xs) without the argument spread, which overflows the stack at ~10^5 items. */
function append(out: string[], prefix: string, xs: string[]): void {
  for (const x of xs) out.push(prefix + x);
}

/** The normal form as text, one line each: what the full diff compares. */
export function normalText(r: NormalRuleset): string {
  let text = textOf.get(r);
  if (text === undefined) textOf.set(r, (text = printNormal(r)));
  return text;
}
const textOf = new WeakMap<NormalRuleset, string>();

function printNormal(r: NormalRuleset): string {
  const out: string[] = [];
  const byName = <T>(m: Map<string, T>) => [...m].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)); // order of declaration does not matter
  for (const [name, s] of byName(r.sets)) {
    out.push(`set ${name}`);
    append(out, '  ', s.decl);
    append(out, '  element ', s.elements);
  }
  for (const [name, c] of byName(r.chains)) {
    out.push(`chain ${name}`);
    append(out, '  ', c.head);
    append(out, '  ', c.rules);
  }
  return out.length ? out.join('\n') + '\n' : '';
}

/** Each text of a backend in normal form. */
export type NormalTexts = Record<string, NormalRuleset>;
const normalOf = new WeakMap<Texts, NormalTexts>();

/** Each text parsed into normal form, once per Texts object (apply hashes and diffs the same listing). */
export function normalise(texts: Texts): NormalTexts {
  let n = normalOf.get(texts);
  if (!n) normalOf.set(texts, (n = Object.fromEntries(Object.entries(texts).map(([k, v]) => [k, parseText(k, v)]))));
  return n;
}

/** sha256 of the normal form: the same for a script and the kernel's listing of it once loaded. */
export function normalHash(texts: Texts | null): string {
  if (!texts) return 'none';
  const n = normalise(texts);
  const h = createHash('sha256');
  for (const k of Object.keys(n).sort()) h.update(`${k}\0${normalText(n[k]!)}\0`);
  return h.digest('hex');
}

export const lineCount = (r: NormalRuleset) => {
  let n = 0;
  for (const s of r.sets.values()) n += 1 + s.decl.length + s.elements.length;
  for (const c of r.chains.values()) n += 1 + c.head.length + c.rules.length;
  return n;
};

export interface ChainChange {
  chain: string;
  added: number;
  removed: number;
  /** A removed and an added rule with the same comment (the policy rule's name): edited in place. */
  changed: number;
  /** Same rules, other order. */
  reordered: boolean;
  headChanged: boolean;
  status: 'new' | 'gone' | 'changed';
}

export interface SetChange {
  set: string;
  before: number | null;
  after: number | null;
  declChanged: boolean;
  added: number;
  removed: number;
}

export interface Summary {
  chains: ChainChange[];
  sets: SetChange[];
}

function countMap(xs: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

/** Multiset difference a − b, in a's order. */
function minus(a: string[], b: string[]): string[] {
  if (!a.length) return []; // no count of b for nothing (the removed rules of a first apply)
  if (!b.length) return a.slice(); // against nothing (a first apply): all of a
  const left = countMap(b);
  const out: string[] = [];
  for (const x of a) {
    const n = left.get(x) ?? 0;
    if (n > 0) left.set(x, n - 1);
    else out.push(x);
  }
  return out;
}

const commentOf = (rule: string) => / comment ("(?:[^"\\]|\\.)*")$/.exec(rule)?.[1] ?? /--comment ("(?:[^"\\]|\\.)*"|\S+)/.exec(rule)?.[1] ?? null;

/** Per chain and per set, what changes; linear in the sizes. Empty when both are the same. */
export function summarize(before: NormalRuleset, after: NormalRuleset): Summary {
  const chains: ChainChange[] = [];
  for (const name of new Set([...before.chains.keys(), ...after.chains.keys()])) {
    const b = before.chains.get(name);
    const a = after.chains.get(name);
    const removedRules = minus(b?.rules ?? [], a?.rules ?? []);
    const addedRules = minus(a?.rules ?? [], b?.rules ?? []);
    let changed = 0;
    if (removedRules.length && addedRules.length) {
      const removedBy = countMap(removedRules.map(commentOf).filter((c): c is string => c !== null));
      for (const c of addedRules.map(commentOf)) {
        const n = c === null ? 0 : (removedBy.get(c) ?? 0);
        if (n > 0) {
          removedBy.set(c!, n - 1);
          changed++;
        }
      }
    }
    const headChanged = (b?.head ?? []).join('\n') !== (a?.head ?? []).join('\n');
    const reordered = !removedRules.length && !addedRules.length && b !== undefined && a !== undefined && b.rules.some((r, i) => r !== a.rules[i]);
    if (!b || !a || removedRules.length || addedRules.length || headChanged || reordered) {
      chains.push({ chain: name, added: addedRules.length - changed, removed: removedRules.length - changed, changed, reordered, headChanged, status: !b ? 'new' : !a ? 'gone' : 'changed' });
    }
  }
  const sets: SetChange[] = [];
  for (const name of new Set([...before.sets.keys(), ...after.sets.keys()])) {
    const b = before.sets.get(name);
    const a = after.sets.get(name);
    const added = minus(a?.elements ?? [], b?.elements ?? []).length;
    const removed = minus(b?.elements ?? [], a?.elements ?? []).length;
    const declChanged = Boolean(a && b && a.decl.join('\n') !== b.decl.join('\n'));
    if (!a || !b || added || removed || declChanged) {
      sets.push({ set: name, before: b ? b.elements.length : null, after: a ? a.elements.length : null, declChanged, added, removed });
    }
  }
  return { chains, sets };
}

export function formatSummary(key: string, s: Summary): string {
  if (!s.chains.length && !s.sets.length) return `${key}: no change\n`;
  const out = [`${key}: summary of changes (per chain; rules compared after normalising both sides)`];
  for (const c of s.chains) {
    const what = c.status === 'new' ? 'new chain' : c.status === 'gone' ? 'chain removed' : 'chain';
    const parts = [`+${c.added} added`, `-${c.removed} removed`, `~${c.changed} changed`];
    if (c.reordered) parts.push('reordered');
    if (c.headChanged && c.status === 'changed') parts.push('type/hook/policy changed');
    out.push(`  ${what} ${c.chain}: ${parts.join(', ')}`);
  }
  for (const st of s.sets) {
    const count = (n: number | null) => (n === null ? '-' : String(n));
    const extra = st.before !== null && st.after !== null ? ` (+${st.added} -${st.removed}${st.declChanged ? ', declaration changed' : ''})` : st.before === null ? ' (new set)' : ' (set removed)';
    out.push(`  set ${st.set}: ${count(st.before)} → ${count(st.after)} elements${extra}`);
  }
  return out.join('\n') + '\n';
}

/** Caps a diff's text at MAX_DIFF_LINES lines, saying how many were left out. */
function capLines(text: string, limit: number): string {
  let idx = -1;
  for (let n = 0; n < limit; n++) {
    idx = text.indexOf('\n', idx + 1);
    if (idx === -1) return text;
  }
  const rest = text.slice(idx + 1);
  if (!rest) return text;
  const more = rest.split('\n').length - (rest.endsWith('\n') ? 1 : 0);
  return `${text.slice(0, idx + 1)}… ${more} more diff lines not shown (at most ${limit} are printed; --diff summary gives the counts)\n`;
}

/**
 * The text diff of the normal forms. When the two are too different for the line diff to stay
 * cheap, each chain's and set's removed and added lines are listed instead (multiset difference).
 */
export function fullDiff(key: string, labelBefore: string, labelAfter: string, before: NormalRuleset, after: NormalRuleset): string {
  const a = normalText(before);
  const b = normalText(after);
  if (a === b) return `${key}: no change\n`;
  // The edit distance is at least the multiset difference (linear to count): far beyond the bound, do not try.
  const al = a.split('\n');
  const bl = b.split('\n');
  const distance = minus(al, bl).length + minus(bl, al).length;
  const patch = distance > MAX_EDIT_LENGTH ? undefined : structuredPatch(`${key} (${labelBefore})`, `${key} (${labelAfter})`, a, b, undefined, undefined, { context: 2, maxEditLength: MAX_EDIT_LENGTH, timeout: DIFF_TIMEOUT_MS });
  if (patch) return capLines(formatPatch(patch).replace(/^=+\n/, ''), MAX_DIFF_LINES); // no banner line
  const out = [`--- ${key} (${labelBefore})`, `+++ ${key} (${labelAfter})`, `# too different for a line diff: removed and added lines per chain and set, order not compared`];
  for (const name of new Set([...before.sets.keys(), ...after.sets.keys()])) {
    const x = before.sets.get(name);
    const y = after.sets.get(name);
    const rm = [...minus(x?.decl ?? [], y?.decl ?? []), ...minus(x?.elements ?? [], y?.elements ?? []).map((e) => `element ${e}`)];
    const add = [...minus(y?.decl ?? [], x?.decl ?? []), ...minus(y?.elements ?? [], x?.elements ?? []).map((e) => `element ${e}`)];
    if (rm.length || add.length) {
      out.push(`@@ set ${name} @@`);
      append(out, '-  ', rm);
      append(out, '+  ', add);
    }
  }
  for (const name of new Set([...before.chains.keys(), ...after.chains.keys()])) {
    const x = before.chains.get(name);
    const y = after.chains.get(name);
    const rm = [...minus(x?.head ?? [], y?.head ?? []), ...minus(x?.rules ?? [], y?.rules ?? [])];
    const add = [...minus(y?.head ?? [], x?.head ?? []), ...minus(y?.rules ?? [], x?.rules ?? [])];
    if (rm.length || add.length) {
      out.push(`@@ chain ${name} @@`);
      append(out, '-  ', rm);
      append(out, '+  ', add);
    }
  }
  return capLines(out.join('\n') + '\n', MAX_DIFF_LINES);
}

/** What apply prints for one backend text, by --diff mode (auto: full below FULL_DIFF_LINE_LIMIT lines), and whether it differs. */
export function describeChange(mode: DiffMode, key: string, labelBefore: string, labelAfter: string, before: NormalRuleset | undefined, after: NormalRuleset): { same: boolean; text: string } {
  const same = before !== undefined && normalText(before) === normalText(after);
  if (mode === 'none') return { same, text: '' };
  if (same) return { same, text: `${key}: no change\n` };
  const old = before ?? parseText(key, '');
  const big = Math.max(lineCount(old), lineCount(after)) > FULL_DIFF_LINE_LIMIT;
  if (mode === 'full' || (mode === 'auto' && !big)) return { same, text: fullDiff(key, labelBefore, labelAfter, old, after) };
  const note = mode === 'auto' ? `  (over ${FULL_DIFF_LINE_LIMIT} lines, so a summary: --diff full prints the text diff)\n` : '';
  return { same, text: formatSummary(key, summarize(old, after)) + note };
}

/** describeChange for each text of a backend; same when every text is unchanged. */
export function describeAll(mode: DiffMode, labelBefore: string, labelAfter: string, before: Texts | null, after: Texts): { same: boolean; text: string } {
  const old = before && normalise(before);
  const now = normalise(after);
  const parts = Object.keys(after).map((k) => describeChange(mode, k, labelBefore, labelAfter, old?.[k], now[k]!));
  // iptables: our chains loaded without the jumps to them (e.g. by hand): the load adds the jumps.
  for (const k of Object.keys(after)) {
    if (before?.[`${k}-jump`] === 'false') parts.push({ same: false, text: mode === 'none' ? '' : `${k}: the jumps from INPUT and FORWARD to our chains are missing; loading adds them\n` });
  }
  return { same: parts.every((p) => p.same), text: parts.map((p) => p.text).join('') };
}

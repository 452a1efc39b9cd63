// Turns a schema-valid policy document into the normalized policy the evaluator and renderers use,
// and reports the semantic problems the schema cannot express. Pure: problems carry a path into the
// document; load.ts turns paths into file:line:col.
import { isIP } from 'node:net';
import { normalizeCidr } from 'cidr-tools';
import { fromBig, mergePrefixes, v4Number, v6Big, v6Network } from '../exposure/intervals.js';
import type { Policy as PolicyDoc, Rule as RuleDoc, PortItem } from './policy-types.js';
import type { Proto } from '../model.js';
import { PortFill } from './port-fill.js';
import { expectProblems, type Expect } from '../service/expect.js';

import type { DocPath } from '../validated-yaml.js';

/** A file named by the policy's include: a policy with only version, sources, rules and hosts. */
export type FragmentDoc = Partial<Pick<PolicyDoc, 'version' | 'sources' | 'rules' | 'hosts'>>;

export interface Problem {
  path: DocPath;
  message: string;
  level: 'error' | 'warning';
  /** Point at the key of the last path element rather than its value. */
  atKey?: boolean;
  /** The file the path is in: 0 (or absent) the main file, k the k-th fragment. */
  source?: number;
}

export interface PortRange {
  lo: number;
  hi: number;
}

export type RateUnit = 'second' | 'minute' | 'hour' | 'day';

export type Sources =
  | { kind: 'any' }
  | { kind: 'localhost' }
  /** v4/v6: merged, normalized prefixes; names: what the policy wrote, for messages and set names. */
  | { kind: 'list'; v4: string[]; v6: string[]; names: string[] };

export interface CompiledRule {
  name: string;
  /** Where the rule sits in the document (for messages). */
  path: DocPath;
  /** The file it is in: 0 (or absent) the main file, k the k-th included fragment. */
  source?: number;
  proto: Proto;
  ports: PortRange[];
  from: Sources;
  process: string[] | null;
  required: boolean;
  rate: { count: number; unit: RateUnit } | null;
  log: boolean;
  action: 'allow' | 'deny';
  /** What the service must offer (TLS, certificate, SMTP), checked by connecting to it. */
  expect: Expect | null;
}

export interface CompiledPolicy {
  default: 'deny' | 'allow';
  loopback: 'allow' | 'audit';
  refuse: 'drop' | 'reject';
  /** Effective rules in decision order: matching host overlays first (the main file's, then each
   *  fragment's), then the main file's rules, then each fragment's rules. */
  rules: CompiledRule[];
}

const GROUP_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;

/** Parses "addr" or "addr/len"; returns the normalized prefix or an error text. */
export function parsePrefix(text: string): { prefix: string; family: 4 | 6 } | { error: string } {
  return plainPrefix(text) ?? parseAnyPrefix(text);
}

/**
 * The bulk of a large policy, read by arithmetic: a dotted quad without leading zeros, or IPv6 as
 * hex groups (no embedded IPv4, zone or mapped address), with a length of at most three digits
 * and no leading zero. Null for anything else, and for every error: parseAnyPrefix words those.
 * (Its answers equal parseAnyPrefix's: test/policy-prefix.test.ts.)
 */
function plainPrefix(text: string): { prefix: string; family: 4 | 6 } | null {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const lenText = slash < 0 ? '' : text.slice(slash + 1);
  if (slash >= 0 && !/^(?:0|[1-9][0-9]{0,2})$/.test(lenText)) return null;
  const n = v4Number(addr);
  if (n >= 0) {
    if (/(?:^|\.)0[0-9]/.test(addr)) return null;
    const len = slash < 0 ? 32 : Number(lenText);
    if (len > 32 || n % 2 ** (32 - len) !== 0) return null;
    return { prefix: `${addr}/${len}`, family: 4 };
  }
  const v = v6Big(addr);
  if (v === null || v >> 32n === 0xffffn) return null;
  const len = slash < 0 ? 128 : Number(lenText);
  if (len > 128 || v6Network(v, len) !== v) return null;
  return { prefix: `${fromBig(v, 6)}/${len}`, family: 6 };
}

/** Every form and every error: the reference plainPrefix agrees with. */
export function parseAnyPrefix(text: string): { prefix: string; family: 4 | 6 } | { error: string } {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const lenPart = slash < 0 ? '' : text.slice(slash);
  const quoted = () => JSON.stringify(text); // for a message only: most prefixes are valid
  const pct = addr.indexOf('%');
  if (pct >= 0 && isIP(addr) === 6) {
    return { error: `${quoted()}: zone ids (${addr.slice(pct)}) are not allowed in a policy: a source is matched by its address alone (write ${addr.slice(0, pct)}${lenPart})` };
  }
  const octets = /^([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)$/.exec(addr)?.slice(1);
  const inRange = octets?.every((o) => Number(o) <= 255) === true;
  const leadingZero = inRange && octets!.some((o) => o.length > 1 && o[0] === '0');
  if (leadingZero) {
    return { error: `${quoted()}: leading zeros are ambiguous (some tools read them as octal): write ${octets!.map(Number).join('.')}${lenPart} if you mean decimal` };
  }
  // Four decimal octets of at most 255 without leading zeros are what isIP calls IPv4 (its regex is the cost).
  const family = inRange ? 4 : isIP(addr);
  if (family !== 4 && family !== 6) return { error: `${quoted()} is not an IP address or CIDR` };
  const max = family === 4 ? 32 : 128;
  const lenText = slash < 0 ? String(max) : text.slice(slash + 1);
  if (/^0[0-9]+$/.test(lenText) && Number(lenText) <= max) {
    return { error: `${quoted()}: a leading zero in the prefix length is ambiguous: write ${addr}/${Number(lenText)}` };
  }
  if (!/^[0-9]{1,3}$/.test(lenText) || Number(lenText) > max) {
    return { error: `${quoted()}: prefix length must be 0-${max}` };
  }
  if (octets) {
    // Dotted-quad IPv4: the network address by arithmetic (normalizeCidr's result: the address with its host bits cleared).
    const len = Number(lenText);
    const n = octets.reduce((acc, o) => acc * 256 + Number(o), 0);
    const size = 2 ** (32 - len);
    const net = n - (n % size);
    if (net === n) return { prefix: `${addr}/${len}`, family };
    return { error: `${quoted()} has host bits set (did you mean ${[24, 16, 8, 0].map((s) => Math.floor(net / 2 ** s) % 256).join('.')}/${len}?)` };
  }
  const mapped = family === 6 ? ipv4Mapped(addr) : null;
  if (mapped !== null) {
    const len = Number(lenText);
    const write = len >= 96 ? `write ${mapped}${len === 128 ? '' : `/${len - 96}`}` : 'write IPv4 sources as IPv4 addresses';
    return { error: `${quoted()} is an IPv4-mapped IPv6 address: IPv4 clients are matched by their IPv4 address (${write})` };
  }
  const prefix = normalizeCidr(`${addr}/${lenText}`);
  const given = `${normalizeCidr(addr)}/${lenText}`;
  if (prefix !== given) return { error: `${quoted()} has host bits set (did you mean ${prefix}?)` };
  return { prefix, family };
}

/** "10.0.0.1" for ::ffff:10.0.0.1 (in any spelling), null for any other IPv6 address. */
function ipv4Mapped(addr: string): string | null {
  // The WHATWG URL parser writes IPv6 in its one canonical (RFC 5952) form.
  const m = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/.exec(new URL(`http://[${addr}]/`).hostname);
  if (!m) return null;
  const hi = parseInt(m[1]!, 16);
  const lo = parseInt(m[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/**
 * Hostname glob (case-insensitive) and include's file-name glob (case-sensitive): * any run of
 * characters, ? exactly one. Greedy with one
 * backtrack point (the last *), so O(glob × name) at worst: a regex of many ".*" backtracks
 * exponentially.
 */
export function globMatches(glob: string, name: string, caseSensitive = false): boolean {
  const g = caseSensitive ? glob : glob.toLowerCase();
  const s = caseSensitive ? name : name.toLowerCase();
  let gi = 0;
  let si = 0;
  let star = -1;
  let resume = 0;
  while (si < s.length) {
    if (gi < g.length && g[gi] === '*') {
      star = gi++;
      resume = si;
    } else if (gi < g.length && (g[gi] === '?' || g[gi] === s[si])) {
      gi++;
      si++;
    } else if (star >= 0) {
      gi = star + 1;
      si = ++resume;
    } else {
      return false;
    }
  }
  while (g[gi] === '*') gi++;
  return gi === g.length;
}

export function parsePortItem(item: PortItem): PortRange | string {
  const [loText, hiText = loText] = String(item).split('-');
  const lo = Number(loText);
  const hi = Number(hiText);
  if (lo < 1 || lo > 65535 || hi < 1 || hi > 65535) return 'must be a port from 1 to 65535';
  if (lo > hi) return `range ${item} is reversed (write ${hi}-${lo})`;
  return { lo, hi };
}

/**
 * Most addresses and prefixes one `from` list (or one group) may expand to, and all distinct
 * `from` lists together (README "Limits"): beyond them the firewall sets and the merge get slow,
 * and nested groups could otherwise multiply without bound.
 */
export const MAX_SOURCES_PER_LIST = 250_000;
export const MAX_SOURCES_TOTAL = 1_000_000;

type Prefixes = { v4: string[]; v6: string[] };

/** One group as written: its own prefixes and the groups it names. */
interface Group extends Prefixes {
  subgroups: string[];
  /** Entries it expands to, counting repeats; saturates just above the limit. */
  size: number;
}

const saturate = (n: number) => Math.min(n, MAX_SOURCES_PER_LIST + 1);

/**
 * Parses every named group and counts what it expands to, reporting unknown names, bad prefixes,
 * cycles and groups over the limit. Iterative (an explicit stack): a long chain of groups must not
 * overflow the call stack.
 */
function resolveGroups(groups: Record<string, string[]>, origin: Map<string, number>, problems: Problem[]): Map<string, Group> {
  const done = new Map<string, Group>();
  const visiting = new Set<string>();
  for (const root of Object.keys(groups)) {
    if (done.has(root)) continue;
    const stack: { name: string; i: number; group: Group }[] = [];
    const enter = (name: string) => {
      visiting.add(name);
      stack.push({ name, i: 0, group: { v4: [], v6: [], subgroups: [], size: 0 } });
    };
    enter(root);
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const items = groups[top.name] ?? [];
      if (top.i === items.length) {
        stack.pop();
        visiting.delete(top.name);
        done.set(top.name, top.group);
        if (top.group.size > MAX_SOURCES_PER_LIST) {
          problems.push({ path: ['sources', top.name], message: `expands to more than ${MAX_SOURCES_PER_LIST} addresses and prefixes, the most a group may have: use wider prefixes`, level: 'error', atKey: true, source: origin.get(top.name) });
        }
        const parent = stack[stack.length - 1];
        if (parent) parent.group.size = saturate(parent.group.size + top.group.size);
        continue;
      }
      const i = top.i++;
      const item = items[i]!;
      const path = ['sources', top.name, i];
      const source = origin.get(top.name);
      if (looksLikeAddress(item)) {
        const p = parsePrefix(item);
        if ('error' in p) problems.push({ path, message: p.error, level: 'error', source });
        else {
          (p.family === 4 ? top.group.v4 : top.group.v6).push(p.prefix);
          top.group.size = saturate(top.group.size + 1);
        }
      } else if (!Object.hasOwn(groups, item)) {
        problems.push({ path, message: `unknown source group ${JSON.stringify(item)}`, level: 'error', source });
      } else if (visiting.has(item)) {
        problems.push({ path: ['sources', item], message: `group cycle: ${[...stack.map((f) => f.name), item].join(' → ')}`, level: 'error', atKey: true, source: origin.get(item) });
      } else {
        top.group.subgroups.push(item);
        const sub = done.get(item);
        if (sub) top.group.size = saturate(top.group.size + sub.size);
        else enter(item);
      }
    }
  }
  return done;
}

/** Appends every prefix the groups expand to; each group once (a merge drops repeats anyway). */
function expandGroups(names: string[], groups: Map<string, Group>, out: Prefixes): void {
  const work = [...names];
  const seen = new Set<string>();
  for (let name = work.pop(); name !== undefined; name = work.pop()) {
    const g = groups.get(name);
    if (!g || seen.has(name)) continue;
    seen.add(name);
    for (const p of g.v4) out.v4.push(p);
    for (const p of g.v6) out.v6.push(p);
    for (const s of g.subgroups) work.push(s);
  }
}

function looksLikeAddress(item: string): boolean {
  return item.includes('/') || item.includes(':') || !GROUP_NAME.test(item);
}

/** Per compile: the merged prefixes of each distinct `from` list, and how much expanding them cost. */
interface MergeCache {
  lists: Map<string, Prefixes>;
  expanded: number;
}

function compileSources(
  from: RuleDoc['from'],
  path: DocPath,
  groups: Map<string, Group>,
  problems: Problem[],
  mergeCache: MergeCache,
): Sources {
  const items = from === undefined ? ['any'] : typeof from === 'string' ? [from] : from;
  const fromPath = typeof from === 'string' ? [...path, 'from'] : null;
  if (items.length === 1 && (items[0] === 'any' || items[0] === 'localhost')) return { kind: items[0] };
  const own: Prefixes = { v4: [], v6: [] };
  const named: string[] = [];
  let size = 0;
  items.forEach((item, i) => {
    const at = fromPath ?? [...path, 'from', i];
    if (item === 'any' || item === 'localhost') {
      problems.push({ path: at, message: `${item} must stand alone (from: ${item})`, level: 'error' });
    } else if (looksLikeAddress(item)) {
      const p = parsePrefix(item);
      if ('error' in p) problems.push({ path: at, message: p.error, level: 'error' });
      else {
        (p.family === 4 ? own.v4 : own.v6).push(p.prefix);
        size++;
      }
    } else {
      const g = groups.get(item);
      if (!g) problems.push({ path: at, message: `unknown source group ${JSON.stringify(item)}`, level: 'error' });
      else {
        named.push(item);
        size = Math.min(size + g.size, Number.MAX_SAFE_INTEGER);
      }
    }
  });
  const none = { kind: 'list' as const, v4: [], v6: [], names: items };
  if (size > MAX_SOURCES_PER_LIST) {
    problems.push({ path: [...path, 'from'], message: `expands to more than ${MAX_SOURCES_PER_LIST} addresses and prefixes, the most a rule may have (after expanding groups): use wider prefixes`, level: 'error' });
    return none;
  }
  const key = items.join('\0');
  let merged = mergeCache.lists.get(key);
  if (!merged) {
    // Many rules name the same group: expand and merge each distinct source list once.
    mergeCache.expanded += size;
    if (mergeCache.expanded > MAX_SOURCES_TOTAL) {
      problems.push({ path: [...path, 'from'], message: `the policy's distinct source lists expand to more than ${MAX_SOURCES_TOTAL} addresses and prefixes in all: use wider prefixes, or the same group in more rules`, level: 'error' });
      return none;
    }
    expandGroups(named, groups, own);
    merged = { v4: mergePrefixes(4, own.v4), v6: mergePrefixes(6, own.v6) };
    mergeCache.lists.set(key, merged);
  }
  return { kind: 'list', ...merged, names: items };
}

function compileRule(doc: RuleDoc, path: DocPath, source: number, groups: Map<string, Group>, problems: Problem[], mergeCache: MergeCache): CompiledRule {
  if (!source) return compileRuleIn(doc, path, groups, problems, mergeCache); // the main file: the usual case, nothing to tag
  const from = problems.length;
  const rule = compileRuleIn(doc, path, groups, problems, mergeCache);
  for (let i = from; i < problems.length; i++) problems[i]!.source = source;
  return { ...rule, source };
}

function compileRuleIn(doc: RuleDoc, path: DocPath, groups: Map<string, Group>, problems: Problem[], mergeCache: MergeCache): CompiledRule {
  const items = Array.isArray(doc.port) ? doc.port : [doc.port];
  const ports: PortRange[] = [];
  items.forEach((item, i) => {
    const r = parsePortItem(item);
    const at = Array.isArray(doc.port) ? [...path, 'port', i] : [...path, 'port'];
    if (typeof r === 'string') problems.push({ path: at, message: r, level: 'error' });
    else ports.push(r);
  });
  let rate: CompiledRule['rate'] = null;
  if (doc.rate) {
    const [count, unit] = doc.rate.split('/');
    rate = { count: Number(count), unit: unit as RateUnit };
  }
  if (doc.expect) problems.push(...expectProblems(doc.expect, doc.proto ?? 'tcp', ports, path));
  return {
    name: doc.name,
    path,
    proto: doc.proto ?? 'tcp',
    ports,
    from: compileSources(doc.from, path, groups, problems, mergeCache),
    process: doc.process ?? null,
    required: doc.required ?? false,
    rate,
    log: doc.log ?? false,
    action: doc.action ?? 'allow',
    expect: doc.expect ?? null,
  };
}

/** Names identify rules in findings and firewall comments, so they are unique within a rule list. */
function checkUniqueNames(rules: CompiledRule[], problems: Problem[]): void {
  const seen = new Set<string>();
  for (const rule of rules) {
    if (seen.has(rule.name)) problems.push({ path: [...rule.path, 'name'], message: `duplicate rule name "${rule.name}"`, level: 'error', source: rule.source });
    seen.add(rule.name);
  }
}

/** Warns about rules that can never decide anything because earlier rules cover all their ports. */
function findShadowed(rules: CompiledRule[], problems: Problem[]): void {
  const filled: Record<Proto, PortFill> = { tcp: new PortFill(), udp: new PortFill() };
  for (const rule of rules) {
    const fill = filled[rule.proto];
    if (rule.ports.length && rule.ports.every((r) => fill.covered(r.lo, r.hi))) {
      problems.push({ path: [...rule.path, 'name'], message: `rule "${rule.name}" is shadowed: earlier rules already decide all its ports`, level: 'warning', source: rule.source });
    }
    for (const r of rule.ports) fill.fill(r.lo, r.hi);
  }
}

/** The source groups of the main file and its fragments, and the file each is in; a name defined
 *  twice is an error at the later definition. */
function collectGroups(files: readonly FragmentDoc[], names: readonly string[], problems: Problem[]): { groups: Record<string, string[]>; origin: Map<string, number> } {
  const origin = new Map<string, number>();
  if (files.length === 1) return { groups: files[0]!.sources ?? {}, origin }; // no fragments: all in the main file
  const groups: Record<string, string[]> = {};
  files.forEach((f, source) => {
    for (const [name, items] of Object.entries(f.sources ?? {})) {
      if (origin.has(name)) {
        const where = names[origin.get(name)!] ?? 'the policy file';
        problems.push({ path: ['sources', name], message: `source group "${name}" is already defined in ${where}: each name once across the policy and its fragments`, level: 'error', atKey: true, source });
        continue;
      }
      groups[name] = items;
      origin.set(name, source);
    }
  });
  return { groups, origin };
}

/**
 * The effective policy for a host. `fragments` are the included files in include order (they are
 * sources 1..n in problems and rules). Overlays of every file first, then the main rules, then each
 * fragment's rules: the first match decides. Rule names are unique across the main file and its
 * fragments (they name rules in findings and firewall comments).
 */
export function compilePolicy(doc: PolicyDoc, hostname: string, fragments: readonly { file: string; doc: FragmentDoc }[] = []): { policy: CompiledPolicy; problems: Problem[] } {
  const problems: Problem[] = [];
  const files: FragmentDoc[] = [doc, ...fragments.map((f) => f.doc)];
  const { groups: groupDocs, origin } = collectGroups(files, ['the policy file', ...fragments.map((f) => f.file)], problems);
  const groups = resolveGroups(groupDocs, origin, problems);
  const mergeCache: MergeCache = { lists: new Map(), expanded: 0 };
  const overlayRules: CompiledRule[] = [];
  files.forEach((f, source) =>
    (f.hosts ?? []).forEach((overlay, h) => {
      const rules = overlay.rules.map((r, i) => compileRule(r, ['hosts', h, 'rules', i], source, groups, problems, mergeCache));
      checkUniqueNames(rules, problems);
      if (globMatches(overlay.match, hostname)) for (const r of rules) overlayRules.push(r);
    }),
  );
  const baseRules = files.flatMap((f, source) => (f.rules ?? []).map((r, i) => compileRule(r, ['rules', i], source, groups, problems, mergeCache)));
  checkUniqueNames(baseRules, problems);
  const rules = [...overlayRules, ...baseRules];
  for (const rule of rules) {
    if (rule.action === 'deny' && (rule.rate || rule.process)) {
      problems.push({ path: rule.path, message: `rule "${rule.name}" denies its ports: rate and process have no effect`, level: 'warning', source: rule.source });
    }
  }
  findShadowed(rules, problems);
  return {
    policy: { default: doc.default ?? 'deny', loopback: doc.loopback ?? 'allow', refuse: doc.refuse ?? 'drop', rules },
    problems,
  };
}

// Turns a schema-valid policy document into the normalized policy the evaluator and renderers use,
// and reports the semantic problems the schema cannot express. Pure: problems carry a path into the
// document; load.ts turns paths into file:line:col.
import { isIP } from 'node:net';
import { mergeCidr, normalizeCidr } from 'cidr-tools';
import type { Policy as PolicyDoc, Rule as RuleDoc, PortItem } from './policy-types.js';
import type { Proto } from '../model.js';
import { PortFill } from './port-index.js';

import type { DocPath } from '../validated-yaml.js';

export interface Problem {
  path: DocPath;
  message: string;
  level: 'error' | 'warning';
  /** Point at the key of the last path element rather than its value. */
  atKey?: boolean;
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
  proto: Proto;
  ports: PortRange[];
  from: Sources;
  process: string[] | null;
  required: boolean;
  rate: { count: number; unit: RateUnit } | null;
  log: boolean;
  action: 'allow' | 'deny';
}

export interface CompiledPolicy {
  default: 'deny' | 'allow';
  loopback: 'allow' | 'audit';
  refuse: 'drop' | 'reject';
  /** Effective rules in decision order: matching host overlays first, then the base rules. */
  rules: CompiledRule[];
}

const GROUP_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;

/** Parses "addr" or "addr/len"; returns the normalized prefix or an error text. */
export function parsePrefix(text: string): { prefix: string; family: 4 | 6 } | { error: string } {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(addr);
  if (family !== 4 && family !== 6) return { error: `${JSON.stringify(text)} is not an IP address or CIDR` };
  const max = family === 4 ? 32 : 128;
  const lenText = slash < 0 ? String(max) : text.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(lenText) || Number(lenText) > max) {
    return { error: `${JSON.stringify(text)}: prefix length must be 0-${max}` };
  }
  const prefix = normalizeCidr(`${addr}/${lenText}`);
  const given = `${normalizeCidr(addr)}/${lenText}`;
  if (prefix !== given) return { error: `${JSON.stringify(text)} has host bits set (did you mean ${prefix}?)` };
  return { prefix, family };
}

/** Hostname glob: * any run of characters, ? exactly one. */
export function globMatches(glob: string, name: string): boolean {
  const re = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 'i').test(name);
}

export function parsePortItem(item: PortItem): PortRange | string {
  const [loText, hiText = loText] = String(item).split('-');
  const lo = Number(loText);
  const hi = Number(hiText);
  if (lo < 1 || lo > 65535 || hi < 1 || hi > 65535) return 'must be a port from 1 to 65535';
  if (lo > hi) return `range ${item} is reversed (write ${hi}-${lo})`;
  return { lo, hi };
}

/** Resolves every named group to its flat prefix list, reporting unknown names, bad prefixes and cycles. */
function resolveGroups(doc: PolicyDoc, problems: Problem[]): Map<string, Prefixes> {
  const groups = doc.sources ?? {};
  const done = new Map<string, { v4: string[]; v6: string[] }>();
  const visiting = new Set<string>();
  const visit = (name: string, stack: string[]): { v4: string[]; v6: string[] } => {
    const cached = done.get(name);
    if (cached) return cached;
    const out = { v4: [] as string[], v6: [] as string[] };
    if (visiting.has(name)) {
      problems.push({ path: ['sources', name], message: `group cycle: ${[...stack, name].join(' → ')}`, level: 'error', atKey: true });
      return out;
    }
    visiting.add(name);
    (groups[name] ?? []).forEach((item, i) => {
      const path = ['sources', name, i];
      if (looksLikeAddress(item)) {
        const p = parsePrefix(item);
        if ('error' in p) problems.push({ path, message: p.error, level: 'error' });
        else (p.family === 4 ? out.v4 : out.v6).push(p.prefix);
      } else if (!Object.hasOwn(groups, item)) {
        problems.push({ path, message: `unknown source group ${JSON.stringify(item)}`, level: 'error' });
      } else {
        const sub = visit(item, [...stack, name]);
        out.v4.push(...sub.v4);
        out.v6.push(...sub.v6);
      }
    });
    visiting.delete(name);
    done.set(name, out);
    return out;
  };
  for (const name of Object.keys(groups)) visit(name, []);
  return done;
}

function looksLikeAddress(item: string): boolean {
  return item.includes('/') || item.includes(':') || !GROUP_NAME.test(item);
}

type Prefixes = { v4: string[]; v6: string[] };

/** Per compile: the merged prefixes of each distinct `from` list. */
type MergeCache = Map<string, Prefixes>;

function compileSources(
  from: RuleDoc['from'],
  path: DocPath,
  groups: Map<string, Prefixes>,
  problems: Problem[],
  mergeCache: MergeCache,
): Sources {
  const items = from === undefined ? ['any'] : typeof from === 'string' ? [from] : from;
  const fromPath = typeof from === 'string' ? [...path, 'from'] : null;
  if (items.length === 1 && (items[0] === 'any' || items[0] === 'localhost')) return { kind: items[0] };
  const v4: string[] = [];
  const v6: string[] = [];
  items.forEach((item, i) => {
    const at = fromPath ?? [...path, 'from', i];
    if (item === 'any' || item === 'localhost') {
      problems.push({ path: at, message: `${item} must stand alone (from: ${item})`, level: 'error' });
    } else if (looksLikeAddress(item)) {
      const p = parsePrefix(item);
      if ('error' in p) problems.push({ path: at, message: p.error, level: 'error' });
      else (p.family === 4 ? v4 : v6).push(p.prefix);
    } else {
      const g = groups.get(item);
      if (!g) problems.push({ path: at, message: `unknown source group ${JSON.stringify(item)}`, level: 'error' });
      else {
        v4.push(...g.v4);
        v6.push(...g.v6);
      }
    }
  });
  const key = items.join('\0');
  let merged = mergeCache.get(key);
  if (!merged) {
    // Many rules name the same group: merge each distinct source list once.
    merged = { v4: v4.length ? mergeCidr(v4) : [], v6: v6.length ? mergeCidr(v6) : [] };
    mergeCache.set(key, merged);
  }
  return { kind: 'list', ...merged, names: items };
}

function compileRule(doc: RuleDoc, path: DocPath, groups: Map<string, Prefixes>, problems: Problem[], mergeCache: MergeCache): CompiledRule {
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
  };
}

/** Names identify rules in findings and firewall comments, so they are unique within a rule list. */
function checkUniqueNames(rules: CompiledRule[], problems: Problem[]): void {
  const seen = new Set<string>();
  for (const rule of rules) {
    if (seen.has(rule.name)) problems.push({ path: [...rule.path, 'name'], message: `duplicate rule name "${rule.name}"`, level: 'error' });
    seen.add(rule.name);
  }
}

/** Warns about rules that can never decide anything because earlier rules cover all their ports. */
function findShadowed(rules: CompiledRule[], problems: Problem[]): void {
  const filled: Record<Proto, PortFill> = { tcp: new PortFill(), udp: new PortFill() };
  for (const rule of rules) {
    const fill = filled[rule.proto];
    if (rule.ports.length && rule.ports.every((r) => fill.covered(r.lo, r.hi))) {
      problems.push({ path: [...rule.path, 'name'], message: `rule "${rule.name}" is shadowed: earlier rules already decide all its ports`, level: 'warning' });
    }
    for (const r of rule.ports) fill.fill(r.lo, r.hi);
  }
}

export function compilePolicy(doc: PolicyDoc, hostname: string): { policy: CompiledPolicy; problems: Problem[] } {
  const problems: Problem[] = [];
  const groups = resolveGroups(doc, problems);
  const mergeCache: MergeCache = new Map();
  const overlayRules: CompiledRule[] = [];
  (doc.hosts ?? []).forEach((overlay, h) => {
    const rules = overlay.rules.map((r, i) => compileRule(r, ['hosts', h, 'rules', i], groups, problems, mergeCache));
    checkUniqueNames(rules, problems);
    if (globMatches(overlay.match, hostname)) overlayRules.push(...rules);
  });
  const baseRules = doc.rules.map((r, i) => compileRule(r, ['rules', i], groups, problems, mergeCache));
  checkUniqueNames(baseRules, problems);
  const rules = [...overlayRules, ...baseRules];
  for (const rule of rules) {
    if (rule.action === 'deny' && (rule.rate || rule.process)) {
      problems.push({ path: rule.path, message: `rule "${rule.name}" denies its ports: rate and process have no effect`, level: 'warning' });
    }
  }
  findShadowed(rules, problems);
  return {
    policy: { default: doc.default ?? 'deny', loopback: doc.loopback ?? 'allow', refuse: doc.refuse ?? 'drop', rules },
    problems,
  };
}

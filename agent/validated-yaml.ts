// Reads a YAML file, validates it against a JSON schema, and reports every problem as
// "file:line:col: path: what is wrong". Shared by the policy and the agent config.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { createRequire } from 'node:module';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import type { Alias, Document, LineCounter, Node } from 'yaml';
import { EVENT_ID, NOT_RESOLVED, Schema, constructFromEvents, defineMappingTag, defineScalarTag, parseEvents, seqTag, strTag, type Event } from 'js-yaml';
import { InputError } from './errors.js';
import { redact } from './alerts/sinks/redact.js'; // a URL that fails a pattern may hold a token
import { fileKind } from './file-perms.js';
import { PRECOMPILED } from './schema-validators.generated.js';

// ajv and yaml load when first needed, not with this module (~60 ms each): a valid policy or
// config is checked by the validator generated from its schema at build time and read by the
// js-yaml fast path. ajv compiles only what was not generated (a fragment's schema, the
// all-errors validator of an invalid file: ~80 ms for the policy's); yaml reads what the fast
// path declines and works out positions.
const require = createRequire(import.meta.url);
let yamlModule: typeof import('yaml') | undefined;
const yaml = (): typeof import('yaml') => (yamlModule ??= require('yaml') as typeof import('yaml'));

/** Largest policy or config file we read (README "Limits"): /dev/zero or a runaway generator must not eat the memory. */
export const MAX_SOURCE_BYTES = 64 * 1024 * 1024;

export type DocPath = (string | number)[];

export interface Located {
  file: string;
  doc: Document;
  lines: LineCounter;
}

// Two validators: one that stops at the first error (linear, the usual case: a valid file), and
// one that lists them all, run only on an invalid file, and only on its first PRUNE_AT items of
// each list and map: ajv joins the errors of every $ref'd item with concat, which is quadratic in
// the number of errors (100 000 bad rules took minutes).
/** The options of every validator, the generated ones too (test/tools/gen-types.mjs reads them here). */
export const AJV_OPTIONS = { strict: true, verbose: true, discriminator: true } as const;
let ajvs: { first: Ajv; all: Ajv } | undefined;
function ajv(): { first: Ajv; all: Ajv } {
  if (!ajvs) {
    const { Ajv } = require('ajv') as typeof import('ajv');
    ajvs = { first: new Ajv({ ...AJV_OPTIONS, allErrors: false }), all: new Ajv({ ...AJV_OPTIONS, allErrors: true }) };
  }
  return ajvs;
}
const validators = new Map<object, { first: ValidateFunction; all: ValidateFunction }>();
const PRUNE_AT = 1000;

function validatorFor(schema: object): { first: ValidateFunction; all: ValidateFunction } {
  let v = validators.get(schema);
  if (!v) {
    const id = (schema as { $id?: unknown }).$id;
    const generated = typeof id === 'string' && Object.hasOwn(PRECOMPILED, id) ? PRECOMPILED[id] : undefined;
    // The all-errors one only for an invalid file: compiling it costs as much as the first.
    let all: ValidateFunction | undefined;
    v = { first: generated ?? ajv().first.compile(schema), get all() { return (all ??= ajv().all.compile(schema)); } };
    validators.set(schema, v);
  }
  return v;
}

/** The value with every array and object cut to its first PRUNE_AT entries (paths to them unchanged). */
function pruned(value: unknown, depth = 0): { value: unknown; cut: boolean } {
  if (value === null || typeof value !== 'object' || depth > 64) return { value, cut: false };
  let cut = false;
  const take = (v: unknown) => {
    const r = pruned(v, depth + 1);
    cut ||= r.cut;
    return r.value;
  };
  if (Array.isArray(value)) {
    cut = value.length > PRUNE_AT;
    return { value: value.slice(0, PRUNE_AT).map(take), cut };
  }
  const entries = Object.entries(value);
  cut = entries.length > PRUNE_AT;
  return { value: Object.fromEntries(entries.slice(0, PRUNE_AT).map(([k, v]) => [k, take(v)])), cut };
}

/** Every schema error of an invalid value (of its pruned part, or the first one when that part is valid); partial when pruned. */
function schemaErrors(v: { first: ValidateFunction; all: ValidateFunction }, value: unknown): { errors: ErrorObject[]; partial: boolean } {
  const part = pruned(value);
  if (!part.cut) return { errors: v.all(value) ? [] : (v.all.errors ?? []), partial: false };
  return { errors: v.all(part.value) ? (v.first.errors ?? []) : (v.all.errors ?? []), partial: true };
}

/** "rules[1].port" for ["rules", 1, "port"]. */
export function formatPath(path: DocPath): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(p) ? (i ? `.${p}` : p) : `[${JSON.stringify(p)}]`))
    .join('');
}

/** file:line:col of the node at path (or of its key), falling back to the nearest ancestor that exists. */
export function locate(src: Located, path: DocPath, atKey = false): string {
  let offset = 0;
  for (let n = path.length; n >= 0; n--) {
    const here = path.slice(0, n);
    if (atKey && n === path.length && n > 0) {
      const parent = src.doc.getIn(here.slice(0, -1), true);
      if (yaml().isMap(parent)) {
        const pair = parent.items.find((p) => yaml().isScalar(p.key) && String(p.key.value) === String(here[n - 1]));
        const keyRange = (pair?.key as Node | undefined)?.range;
        if (keyRange) {
          offset = keyRange[0];
          break;
        }
      }
    }
    const node = (n === 0 ? src.doc.contents : src.doc.getIn(here, true)) as Node | null | undefined;
    if (node?.range) {
      offset = node.range[0];
      break;
    }
  }
  return placeOf(src, offset);
}

function placeOf(src: Located, offset: number): string {
  const { line, col } = src.lines.linePos(offset);
  return `${src.file}:${line}:${col}`;
}

/** One readable line per ajv error; keeps the most specific errors for each place. */
export function describeSchemaErrors(errors: ErrorObject[]): { path: DocPath; message: string; atKey: boolean }[] {
  const toPath = (p: string): DocPath =>
    p === '' ? [] : p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')).map((s) => (/^[0-9]+$/.test(s) ? Number(s) : s));
  const specific = errors.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'oneOf' && e.keyword !== 'if');
  const byPlace = new Map<string, ErrorObject[]>();
  for (const e of specific) {
    const list = byPlace.get(e.instancePath) ?? [];
    list.push(e);
    byPlace.set(e.instancePath, list);
  }
  // Places with an error below them, found once: asking each place of 100 000 is quadratic.
  const hasDeeper = new Set<string>();
  for (const place of byPlace.keys()) {
    for (let cut = place.lastIndexOf('/'); cut >= 0; cut = place.lastIndexOf('/', cut - 1)) {
      const above = place.slice(0, cut);
      if (hasDeeper.has(above)) break; // and so are its ancestors
      hasDeeper.add(above);
      if (cut === 0) break;
    }
  }
  const out: { path: DocPath; message: string; atKey: boolean }[] = [];
  for (const [place, list] of byPlace) {
    // A deeper error explains an anyOf better than "must be array" at its parent.
    const deeper = hasDeeper.has(place);
    const nonType = list.filter((e) => e.keyword !== 'type');
    if (deeper && nonType.length === 0) continue;
    const chosen = nonType.length ? nonType : list;
    const types = chosen.filter((e) => e.keyword === 'type').map((e) => String(e.params.type));
    if (types.length) out.push({ path: toPath(place), message: `must be ${orList(types)}`, atKey: false });
    for (const e of chosen.filter((x) => x.keyword !== 'type')) {
      const path = toPath(place);
      switch (e.keyword) {
        case 'required':
          out.push({ path, message: `missing required property "${e.params.missingProperty}"`, atKey: false });
          break;
        case 'additionalProperties':
          out.push({ path: [...path, e.params.additionalProperty], message: `unknown property "${e.params.additionalProperty}"`, atKey: true });
          break;
        case 'propertyNames':
          out.push({ path: [...path, e.params.propertyName], message: `invalid name "${e.params.propertyName}"`, atKey: true });
          break;
        case 'enum':
          out.push({ path, message: `must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}`, atKey: false });
          break;
        case 'const':
          out.push({ path, message: `must be ${JSON.stringify(e.params.allowedValue)}`, atKey: false });
          break;
        case 'maximum':
          out.push({ path, message: `must be ≤ ${e.params.limit}`, atKey: false });
          break;
        case 'minimum':
          out.push({ path, message: `must be ≥ ${e.params.limit}`, atKey: false });
          break;
        case 'minItems':
          out.push({ path, message: `must have at least ${e.params.limit} item(s)`, atKey: false });
          break;
        case 'minLength':
          out.push({ path, message: 'must not be empty', atKey: false });
          break;
        case 'pattern': {
          const desc = (e.parentSchema as { description?: string } | undefined)?.description;
          out.push({ path, message: `${redact(JSON.stringify(e.data))} is not valid${desc ? `: ${desc}` : ` (must match ${e.params.pattern})`}`, atKey: false });
          break;
        }
        default:
          out.push({ path, message: e.message ?? e.keyword, atKey: false });
      }
    }
  }
  return out;
}

function orList(items: string[]): string {
  const u = [...new Set(items)];
  return u.length <= 1 ? (u[0] ?? '') : `${u.slice(0, -1).join(', ')} or ${u.at(-1)}`;
}

/**
 * The file's text: a regular file of at most MAX_SOURCE_BYTES, valid UTF-8. Opened non-blocking so
 * a FIFO cannot hang us, and checked on the open descriptor, so what is checked is what is read.
 */
export function readSourceText(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new InputError([`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  try {
    const st = fstatSync(fd);
    const kind = fileKind(st);
    if (kind !== 'regular file') throw new InputError([`${file}: not a regular file (it is a ${kind})`]);
    if (st.size > MAX_SOURCE_BYTES) throw new InputError([`${file}: ${st.size} bytes is more than the 64 MiB a policy or config file may have`]);
    // Read to EOF but never past the limit: the size can change under us (or lie, as in /proc).
    let buf = Buffer.allocUnsafe(Math.min(st.size, MAX_SOURCE_BYTES) + 1);
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        if (n > MAX_SOURCE_BYTES) throw new InputError([`${file}: more than the 64 MiB a policy or config file may have`]);
        const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, MAX_SOURCE_BYTES + 1));
        buf.copy(bigger, 0, 0, n);
        buf = bigger;
      }
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
    }
    return decodeUtf8(file, buf.subarray(0, n));
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError([`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  } finally {
    closeSync(fd);
  }
}
/** Most problems one file reports: the first hundred say what is wrong; a million would flood the terminal. */
export const MAX_PROBLEMS = 100;

/** The first MAX_PROBLEMS problems, rendered (placing them is the costly part), and a line counting the rest. */
export function capProblems<T>(file: string, problems: readonly T[], render: (p: T) => string, partial = false): string[] {
  const shown = problems.slice(0, MAX_PROBLEMS).map(render);
  const more = problems.length - MAX_PROBLEMS;
  if (more > 0) shown.push(`${file}: ${partial ? 'at least ' : ''}${more} more problems not shown`);
  else if (partial) shown.push(`${file}: there may be more problems past the first ${PRUNE_AT} entries of a list or map`);
  return shown;
}

/** yaml's alias budget (its default, stated): how many nodes aliases may copy in all. */
const MAX_ALIAS_COUNT = 100;

function yamlErrorText(code: string, message: string): string {
  if (code === 'MULTIPLE_DOCS') return 'a second YAML document starts here: a policy or config file holds one document (remove this "---" and what follows it)';
  const first = message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? message;
  return /Maximum call stack size exceeded/.test(first) ? 'nested too deeply' : first;
}

/** The first alias whose anchor itself holds aliases (where copies multiply), else the first alias. */
function amplifyingAlias(doc: Document): Node | null {
  const anchored = new Map<string, Node>();
  const holdsAlias = new Map<Node, boolean>();
  let first: Node | null = null;
  let amplifying: Node | null = null;
  const { visit, isAlias } = yaml();
  visit(doc, (_key, node) => {
    if (isAlias(node)) {
      first ??= node;
      const target = anchored.get((node as Alias).source);
      if (target && !holdsAlias.has(target)) {
        let found = false;
        visit(target, (_k, n) => (isAlias(n) ? ((found = true), visit.BREAK) : undefined));
        holdsAlias.set(target, found);
      }
      if (target && holdsAlias.get(target)) {
        amplifying = node;
        return visit.BREAK;
      }
    } else if ((node as Node | null)?.anchor) {
      anchored.set((node as Node).anchor!, node as Node);
    }
    return undefined;
  });
  return amplifying ?? first;
}

/** The text, or "file:line:col: invalid UTF-8" at the first byte that is not (no silent U+FFFD). */
function decodeUtf8(file: string, bytes: Buffer): string {
  const text = bytes.toString('utf8');
  if (isUtf8(bytes)) return text;
  // Walk the decoded text beside the bytes: the first U+FFFD that the bytes do not spell is the error.
  let offset = 0;
  let index = 0;
  for (const ch of text) {
    if (ch === '\uFFFD' && !(bytes[offset] === 0xef && bytes[offset + 1] === 0xbf && bytes[offset + 2] === 0xbd)) break;
    offset += Buffer.byteLength(ch);
    index += ch.length;
  }
  const before = text.slice(0, index);
  const line = before.split('\n').length;
  const col = index - before.lastIndexOf('\n');
  const byte = bytes[offset]?.toString(16).padStart(2, '0') ?? '??';
  throw new InputError([`${file}:${line}:${col}: invalid UTF-8 (byte 0x${byte}): the file must be UTF-8 text`]);
}

/**
 * The value of a file that is plain JSON with no key twice in one object, else undefined. JSON is
 * YAML (1.2), so this is the value yaml would give, in a fraction of the time (a generated policy
 * of 10 000 rules: ~0.1 s with the key count, against 1.5–2 s). yaml reports repeated keys as errors where JSON.parse
 * keeps the last: the key tokens of the text (a string followed by ":") are counted against the
 * keys of the parsed objects, and any difference leaves the file to yaml.
 */
function plainJson(source: string): unknown {
  if (!/^\s*[[{]/.test(source)) return undefined; // YAML, the usual case: not worth a try
  let value: unknown;
  try {
    value = JSON.parse(source);
  } catch {
    return undefined;
  }
  let keyTokens = 0;
  for (const m of source.matchAll(/"[^"\\]*(?:\\.[^"\\]*)*"([ \t\r\n]*:)?/g)) if (m[1] !== undefined) keyTokens++;
  let keys = 0;
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) for (const x of v) stack.push(x);
    else for (const k of Object.keys(v)) {
      keys++;
      stack.push((v as Record<string, unknown>)[k]);
    }
  }
  return keys === keyTokens ? value : undefined;
}

// js-yaml resolving plain scalars as yaml's YAML 1.2 core schema does: the regexes and the
// conversions are those of node_modules/yaml/dist/schema/common/null.js and core/{bool,int,float}.js,
// in yaml's order (null, bool, int: oct, dec, hex; float: nan/inf, exponent, plain). No timestamp,
// merge, binary, omap, pairs or set: yaml's core schema has none of them.
// Each tag is tried only on a scalar whose first character its regexes can start with ('' for
// the empty scalar): a CIDR or a name is not run through eight regexes to stay a string.
const coreScalar = <T>(tagName: string, firstChars: string[], resolve: (s: string) => T | typeof NOT_RESOLVED) =>
  defineScalarTag(`tag:yaml.org,2002:${tagName}`, { implicit: true, implicitFirstChars: firstChars, resolve, identify: () => false });
const DIGITS = [...'0123456789'];
const NULL = /^(?:~|[Nn]ull|NULL)?$/; // common/null.js
const BOOL = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/; // core/bool.js
const INT_OCT = /^0o[0-7]+$/; // core/int.js intOct
const INT = /^[-+]?[0-9]+$/; // core/int.js int
const INT_HEX = /^0x[0-9a-fA-F]+$/; // core/int.js intHex
const FLOAT_NAN = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/; // core/float.js floatNaN
const FLOAT_EXP = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/; // core/float.js floatExp
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/; // core/float.js float
/** yaml's object map (nodes/addPairToJSMap.js): a null key is "", another scalar String(key); a collection key declines. */
const objectMap = defineMappingTag('tag:yaml.org,2002:map', {
  create: (): Record<string, unknown> => ({}),
  addPair: (map, key, value) => {
    if (key !== null && typeof key === 'object') return 'a collection as a key';
    const k = key === null ? '' : String(key);
    if (k === '__proto__') Object.defineProperty(map, k, { value, writable: true, enumerable: true, configurable: true });
    else map[k] = value;
    return '';
  },
  // A repeated key is an error to yaml (uniqueKeys) and to js-yaml (which then declines): 1 and
  // "1" are two keys to yaml, one here, so such a file goes to yaml, which decides.
  has: (map, key) => (key === null || typeof key !== 'object') && Object.hasOwn(map, key === null ? '' : String(key)),
  keys: (map) => Object.keys(map),
  get: (map, key) => map[String(key)],
  identify: () => false,
});
const CORE_LIKE_YAML = new Schema([
  strTag,
  seqTag,
  objectMap,
  coreScalar('null', ['', '~', 'n', 'N'], (s) => (NULL.test(s) ? null : NOT_RESOLVED)),
  coreScalar('bool', ['t', 'T', 'f', 'F'], (s) => (BOOL.test(s) ? s[0] === 't' || s[0] === 'T' : NOT_RESOLVED)),
  coreScalar('int', ['-', '+', ...DIGITS], (s) => (INT_OCT.test(s) ? parseInt(s.substring(2), 8) : INT.test(s) ? parseInt(s, 10) : INT_HEX.test(s) ? parseInt(s.substring(2), 16) : NOT_RESOLVED)),
  coreScalar('float', ['-', '+', '.', ...DIGITS], (s) =>
    FLOAT_NAN.test(s) ? (s.slice(-3).toLowerCase() === 'nan' ? NaN : s[0] === '-' ? -Infinity : Infinity) : FLOAT_EXP.test(s) || FLOAT.test(s) ? parseFloat(s) : NOT_RESOLVED,
  ),
]);

/**
 * The value of a YAML file read by js-yaml (~10× faster than yaml on a big policy), only where it
 * must be yaml's; else undefined, and yaml reads it as before (with its messages and positions).
 * Declines: anything js-yaml refuses, a tab or a lone CR, more than one document, a %YAML/%TAG directive, an
 * explicit tag, an anchor on a collection or a key (an alias of a collection would be a shared object; yaml counts copies
 * against alias bombs), more than MAX_ALIAS_COUNT aliases, a collection, an alias or an empty
 * scalar or one of more than 1000 characters as a key, a repeated key.
 */
export function plainYaml(source: string): unknown {
  // Where the two parsers part (found by test/yaml-fast-path.test.ts): tabs near indentation, a
  // lone CR (a line break to js-yaml, not to yaml), a BOM past the start, an indented "---"/"...",
  // an escaped line break in a double-quoted string (then empty lines fold differently).
  if (/\t|\r(?!\n)|[^]\ufeff|^ +(?:---|\.\.\.)|\\\r?\n/m.test(source)) return undefined;
  let events: Event[];
  try {
    events = parseEvents(source, {});
  } catch {
    return undefined;
  }
  const scalarAnchors = new Set<string>();
  // Per open collection: -1 a sequence or the document, else the nodes seen so far in a mapping (even: a key comes next).
  const open: number[] = [];
  let documents = 0;
  let aliases = 0;
  for (const e of events) {
    if (e.type === EVENT_ID.POP) {
      open.pop();
      continue;
    }
    if (e.type === EVENT_ID.DOCUMENT) {
      if (++documents > 1 || e.directives.length) return undefined;
      open.push(-1);
      continue;
    }
    const inMap = open.length > 0 && open[open.length - 1]! >= 0;
    const isKey = inMap && open[open.length - 1]! % 2 === 0;
    if (inMap) open[open.length - 1]!++;
    if (e.type === EVENT_ID.ALIAS) {
      // An alias key, or of a collection, or past the budget: yaml's own rules decide.
      if (isKey || ++aliases > MAX_ALIAS_COUNT || !scalarAnchors.has(source.slice(e.anchorStart, e.anchorEnd))) return undefined;
      continue;
    }
    if (e.tagStart !== -1) return undefined;
    if (e.anchorStart !== -1) {
      // Only a scalar value may be aliased here; js-yaml takes "a: &x b: c", yaml does not.
      if (e.type !== EVENT_ID.SCALAR || isKey) return undefined;
      scalarAnchors.add(source.slice(e.anchorStart, e.anchorEnd));
    }
    // An empty key (": a") or a long one: yaml refuses some forms of the first, and implicit keys
    // past 1024 characters, which js-yaml takes.
    if (isKey && e.type === EVENT_ID.SCALAR && (e.valueStart === e.valueEnd || e.valueEnd - e.valueStart > 1000)) return undefined;
    if (e.type !== EVENT_ID.SCALAR) open.push(e.type === EVENT_ID.MAPPING ? 0 : -1);
  }
  let value: unknown;
  try {
    value = constructFromEvents(events, { source, schema: CORE_LIKE_YAML })[0];
  } catch {
    return undefined;
  }
  // A policy or config is a mapping: anything else (an empty file too) goes to yaml, which says what is wrong.
  return value !== null && typeof value === 'object' ? value : undefined;
}

/** The YAML document with node positions, as every place in an error is worked out from. */
function parseWithPositions(source: string): { doc: Document; lines: LineCounter } {
  const lines = new (yaml().LineCounter)();
  return { doc: yaml().parseDocument(source, { lineCounter: lines, prettyErrors: false, uniqueKeys: true }), lines };
}

/** A Located whose YAML document (with node positions) is parsed only when a place is asked for. */
function lazyLocated(file: string, source: string): Located {
  let parsed: { doc: Document; lines: LineCounter } | undefined;
  const get = () => (parsed ??= parseWithPositions(source));
  return {
    file,
    get doc() {
      return get().doc;
    },
    get lines() {
      return get().lines;
    },
  };
}

/** Parses and validates; throws InputError listing every problem with its place. */
export function readValidatedYaml<T>(file: string, schema: object, text?: string): { value: T; src: Located } {
  const source = text ?? readSourceText(file);
  const validators = validatorFor(schema);
  // A valid JSON file needs no positions unless a later check finds a problem: they are worked out then.
  const fast = plainJson(source) ?? plainYaml(source);
  if (fast !== undefined && validators.first(fast)) return { value: fast as T, src: lazyLocated(file, source) };
  const { doc, lines } = parseWithPositions(source);
  const src: Located = { file, doc, lines };
  if (doc.errors.length) {
    throw new InputError(
      capProblems(file, doc.errors, (e) => {
        const { line, col } = lines.linePos(e.pos[0]);
        return `${file}:${line}:${col}: ${yamlErrorText(e.code, e.message)}`;
      }),
    );
  }
  if (doc.contents === null) throw new InputError([`${file}:1:1: the file is empty`]);
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // yaml throws a bare ReferenceError for an alias bomb ("billion laughs"): give it a place.
    const at = amplifyingAlias(doc);
    throw new InputError([`${at?.range ? placeOf(src, at.range[0]) : `${file}:1:1`}: aliases here expand to too much data (more than ${MAX_ALIAS_COUNT} copies; ${(err as Error).message.toLowerCase()}): write the values out`]);
  }
  if (!validators.first(value)) {
    const { errors, partial } = schemaErrors(validators, value);
    const problems = describeSchemaErrors(errors);
    throw new InputError(capProblems(file, problems, (p) => `${locate(src, p.path, p.atKey)}: ${p.path.length ? formatPath(p.path) + ': ' : ''}${p.message}`, partial));
  }
  return { value: value as T, src };
}

// The js-yaml fast path (plainYaml in agent/validated-yaml.ts) against yaml, the reference: for
// any text it either declines or gives exactly the value yaml gives (parseDocument with
// uniqueKeys, toJS with the alias budget); wherever yaml reports an error it must decline.
// Texts come from yaml.stringify of random values in random styles, and from a generator of
// hand-written-looking YAML (every core-schema number form, strings that look like numbers,
// bools, nulls and dates, anchors and aliases, tags, comments, repeated keys, several documents,
// directives), each then possibly cut up with tabs, CRLF, comments, "---", anchors or aliases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import fc from 'fast-check';
import { parseDocument, stringify, type ToStringOptions } from 'yaml';
import { plainYaml } from '../agent/validated-yaml.js';
import { ROOT } from './helpers/paths.js';

/** yaml's reading as readValidatedYaml takes it: the value, or 'error' (errors, empty, alias budget). */
function reference(text: string): { value: unknown } | 'error' {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length || doc.contents === null) return 'error';
  try {
    return { value: doc.toJS({ maxAliasCount: 100 }) };
  } catch {
    return 'error';
  }
}

/** Checks one text; true when the fast path took it. */
function agrees(text: string): boolean {
  const fast = plainYaml(text);
  if (fast === undefined) return false;
  const ref = reference(text);
  assert.notEqual(ref, 'error', `fast path accepted a text yaml refuses: ${JSON.stringify(text)}`);
  assert.deepStrictEqual(fast, (ref as { value: unknown }).value, `different values for ${JSON.stringify(text)}`);
  return true;
}

// Plain scalars of every core-schema form, near misses, and strings that only look like them.
const PLAIN = [
  '0', '-0', '+1', '12', '007', '-12', '0o17', '0o8', '0O17', '0x1F', '0xff', '0X1F', '0xg', '0b101', '1_000', '1.5', '1.', '.5', '-.5', '+.5', '1.50',
  '1e3', '1E-3', '.1e+2', '1.e5', '1e', 'e3', '.inf', '-.Inf', '+.INF', '.nan', '.NaN', '.NAN', '-.nan', 'nan', 'inf', 'Infinity', '~', 'null', 'Null', 'NULL',
  'nULL', 'true', 'True', 'TRUE', 'tRUE', 'false', 'False', 'FALSE', 'yes', 'no', 'on', 'off', 'y', 'n', '2001-01-01', '2001-12-14t21:59:43.10-05:00',
  '2002-12-14 21:59:43', '12:30:00', '1:20', '190:20:30', '0.0.0.0/0', '10.0.0.0/8', '::1', 'fe80::/10', 'tcp', 'a b', 'a#b', 'a #b', '<<', '=', '@x',
  '%x', 'ä', 'héllo wörld', '0x', '1__0', '+', '-', '.', '..', '12e', '0o', '1,2', 'a:b', '99999999999999999999', '0.1e999', '-0.0', '0000',
];
// Tokens that are not valid plain scalars everywhere (yaml or js-yaml may refuse them).
const ODD = ['-', '?', ':', '!', '&', '*', '`x', '"x', "'x", '\ta', 'a\t', '[a]', '{a}', 'x: y', '...', '---', '|', '>', '#', '| x', 'a\\b'];
// Quoted scalars with escapes and line breaks inside.
const QUOTED = ['"\\x41\\u00e9\\N\\_\\L\\P\\/\\e\\0"', '"a\\\n  b"', "'a\n\n  b'", '"a\n  b"', "'it''s'", '"\\""', '"\\t"', '"\\r\\n"', '"\\ud83d\\ude00"', '"\\q"'];
const KEYS = ['a', 'b', 'port', 'ports', 'from', 'to', 'rules', '1', '01', '1.0', '~', 'null', '', 'true', 'True', '0x1', '<<', '__proto__', 'x y', 'toString', 'k'.repeat(1000), 'k'.repeat(1030)];

type Y =
  | { k: 'scalar'; text: string; props: string }
  | { k: 'block'; lines: string[]; literal: boolean; props: string }
  | { k: 'alias'; name: string }
  | { k: 'map'; flow: boolean; pairs: [Y, Y, string][]; props: string }
  | { k: 'seq'; flow: boolean; items: [Y, string][]; props: string };

const quote = (s: string, how: number) => (how === 0 ? s : how === 1 ? `'${s.replace(/'/g, "''")}'` : JSON.stringify(s));
const anchor = fc.constantFrom('a', 'b', 'c');
const props = fc.oneof(
  { weight: 8, arbitrary: fc.constant('') },
  { weight: 2, arbitrary: anchor.map((a) => `&${a} `) },
  { weight: 1, arbitrary: fc.constantFrom('!!str ', '!!int ', '!!float ', '!!null ', '!!bool ', '!!map ', '!!seq ', '! ', '!foo ', '!!binary ', '!!timestamp ', '&a !!str ') },
);
const comment = fc.oneof({ weight: 6, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom(' # note', ' #', '  # a: b', '#x') });
const scalarText = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...PLAIN) },
  { weight: 1, arbitrary: fc.constantFrom(...ODD) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...PLAIN, ...ODD), fc.integer({ min: 1, max: 2 })).map(([s, h]) => quote(s, h)) },
  { weight: 1, arbitrary: fc.tuple(fc.string({ maxLength: 8 }), fc.integer({ min: 0, max: 2 })).map(([s, h]) => quote(s, h)) },
  { weight: 1, arbitrary: fc.constantFrom(...QUOTED) },
);
const key = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...KEYS), fc.integer({ min: 0, max: 2 })).map(([s, h]) => ({ k: 'scalar', text: quote(s, h), props: '' }) as Y) },
  { weight: 1, arbitrary: fc.tuple(scalarText, props).map(([text, p]) => ({ k: 'scalar', text, props: p }) as Y) },
  { weight: 1, arbitrary: anchor.map((name) => ({ k: 'alias', name }) as Y) },
);

const tree = fc.letrec<{ node: Y }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 4, depthIdentifier: 'y' },
    { weight: 5, arbitrary: fc.tuple(scalarText, props).map(([text, p]) => ({ k: 'scalar', text, props: p }) as Y) },
    { weight: 1, arbitrary: fc.tuple(fc.array(fc.constantFrom('x', '12', '', ' y', '# c', 'a: b'), { maxLength: 3 }), fc.boolean(), props).map(([lines, literal, p]) => ({ k: 'block', lines, literal, props: p }) as Y) },
    { weight: 1, arbitrary: anchor.map((name) => ({ k: 'alias', name }) as Y) },
    { weight: 3, arbitrary: fc.tuple(fc.boolean(), fc.array(fc.tuple(key, tie('node'), comment), { maxLength: 4 }), props).map(([flow, pairs, p]) => ({ k: 'map', flow, pairs, props: p }) as Y) },
    { weight: 2, arbitrary: fc.tuple(fc.boolean(), fc.array(fc.tuple(tie('node'), comment), { maxLength: 4 }), props).map(([flow, items, p]) => ({ k: 'seq', flow, items, props: p }) as Y) },
  ),
}));

/** Flow form of a node (inside [] or {}). */
function flow(n: Y): string {
  switch (n.k) {
    case 'scalar':
      return n.props + n.text;
    case 'block':
      return JSON.stringify(n.lines.join('\n'));
    case 'alias':
      return `*${n.name}`;
    case 'map':
      return `${n.props}{${n.pairs.map(([k, v]) => `${flow(k)}: ${flow(v)}`).join(', ')}}`;
    case 'seq':
      return `${n.props}[${n.items.map(([v]) => flow(v)).join(', ')}]`;
  }
}

/** The node after "key:" or "- " at this indent: inline text, or a newline and indented lines. */
function block(n: Y, indent: number): string {
  const pad = ' '.repeat(indent);
  if (n.k === 'block') return ` ${n.props}${n.literal ? '|' : '>'}\n${n.lines.map((l) => `${pad}  ${l}\n`).join('')}`;
  if ((n.k !== 'map' && n.k !== 'seq') || n.flow || (n.k === 'map' ? n.pairs.length : n.items.length) === 0) return ` ${flow(n)}\n`;
  const body =
    n.k === 'map'
      ? n.pairs.map(([k, v, c]) => `${pad}${flow(k)}:${block(v, indent + 2).replace(/\n/, `${c}\n`)}`).join('')
      : n.items.map(([v, c]) => `${pad}-${block(v, indent + 2).replace(/\n/, `${c}\n`)}`).join('');
  return `${n.props ? ` ${n.props.trimEnd()}` : ''}\n${body}`;
}

const top = fc.tuple(fc.array(fc.tuple(key, tree.node, comment), { minLength: 1, maxLength: 5 }), props).map(([pairs, p]) => block({ k: 'map', flow: false, pairs, props: p }, 0).replace(/^ ?\n/, ''));

const framed = fc
  .tuple(
    top,
    fc.constantFrom('', '---\n', '--- # c\n', '%YAML 1.2\n---\n', '%TAG !e! tag:example.com,2000:\n---\n', '# head\n', '\ufeff'),
    fc.constantFrom('', '...\n', '---\nb: 1\n', '--- 2\n', '...\n# end\n', '# tail'),
  )
  .map(([body, head, tail]) => head + body + tail);

// yaml.stringify of random values, in random styles (it throws on a simple key past 1024 characters).
const SHORT_KEYS = KEYS.filter((k) => k.length < 100);
const value = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { maxDepth: 4, depthIdentifier: 'v' },
    fc.constantFrom(...PLAIN, ...SHORT_KEYS),
    fc.string({ maxLength: 10 }),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.constantFrom(...SHORT_KEYS), fc.string({ maxLength: 6 })), tie('v'), { maxKeys: 4 }),
  ),
}));
const stringified = fc
  .tuple(
    fc.dictionary(fc.constantFrom(...SHORT_KEYS, 'rules', 'defaults', 'sets'), value.v, { minKeys: 1, maxKeys: 5 }),
    fc.record({
      defaultStringType: fc.constantFrom('PLAIN', 'QUOTE_DOUBLE', 'QUOTE_SINGLE', 'BLOCK_LITERAL', 'BLOCK_FOLDED'),
      defaultKeyType: fc.constantFrom(null, 'PLAIN', 'QUOTE_DOUBLE', 'QUOTE_SINGLE'),
      collectionStyle: fc.constantFrom('any', 'block', 'flow'),
      indent: fc.integer({ min: 1, max: 4 }),
      indentSeq: fc.boolean(),
      lineWidth: fc.constantFrom(0, 20, 80),
      minContentWidth: fc.constantFrom(0, 20),
      doubleQuotedAsJSON: fc.boolean(),
      simpleKeys: fc.boolean(),
    }),
  )
  .map(([v, options]) => stringify(v, options as ToStringOptions));

// Cuts that make a valid text doubtful: yaml may refuse it, and then so must the fast path.
const MUTATIONS = ['\t', '  ', '\r\n', '\n', '\r', '\ufeff', '\u0085', '\u2028', ' # c', '\n---\n', '&a ', '*a', '\n- ', ': ', '? ', '!!str ', '\\', "'", '"', '[', '}', ','];
const mutated = (texts: fc.Arbitrary<string>) =>
  fc
    .tuple(texts, fc.array(fc.tuple(fc.nat(), fc.constantFrom(...MUTATIONS, '')), { maxLength: 2 }), fc.boolean())
    .map(([text, cuts, crlf]) => {
      let t = text;
      for (const [at, ins] of cuts) {
        const i = at % (t.length + 1);
        t = ins === '' ? t.slice(0, i) + t.slice(i + 1) : t.slice(0, i) + ins + t.slice(i);
      }
      return crlf ? t.replace(/\r?\n/g, '\r\n') : t;
    });

test('fast YAML path: declines or equals yaml on generated policy-like texts', () => {
  let accepted = 0;
  let runs = 0;
  fc.assert(
    fc.property(fc.oneof(framed, stringified, mutated(framed), mutated(stringified)), (text) => {
      runs++;
      if (agrees(text)) accepted++;
    }),
    { numRuns: Number(process.env.PW_FAST_YAML_RUNS) || 6000 },
  );
  // Not vacuous: the fast path must take a fair share (a decline-everything path would pass the property).
  assert.ok(accepted > runs * 0.2, `the fast path took only ${accepted} of ${runs} texts`);
  if (process.env.PW_FAST_YAML_RUNS) console.log(`fast path took ${accepted} of ${runs} texts`);
});

test('fast YAML path: each core-schema plain scalar resolves as yaml resolves it', () => {
  for (const s of PLAIN) {
    for (const text of [`v: ${s}\n`, `v: [${s}]\n`, `${s}: 1\n`]) agrees(text);
    assert.ok(agrees(`v: '${s}'\n`), s);
  }
});

test('fast YAML path: declines what only yaml can answer (tags, directives, collection aliases, repeated keys, several documents)', () => {
  for (const text of [
    'a: !!str 1\n',
    '%YAML 1.2\n---\na: 1\n',
    'a: &x [1]\nb: *x\n',
    'a: &x {b: 1}\nc: *x\n',
    'a: 1\na: 2\n',
    '1: a\n"1": b\n',
    '? [1]\n: 2\n',
    'a: 1\n---\nb: 2\n',
    `a: &x 1\nb: [${Array(101).fill('*x').join(', ')}]\n`,
    'a: *x\n',
    '',
    '# only a comment\n',
    '12\n',
  ]) {
    assert.equal(plainYaml(text), undefined, JSON.stringify(text));
  }
  // ... and takes the common cases, a scalar alias included.
  assert.deepStrictEqual(plainYaml('a: &x 1\nb: *x\n'), { a: 1, b: 1 });
});

test('fast YAML path: every YAML file of the repo reads the same through both', () => {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
      const path = `${dir}/${name}`;
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.ya?ml$/.test(name)) files.push(path);
    }
  };
  walk(ROOT.replace(/\/$/, ''));
  assert.ok(files.length >= 20, `found only ${files.length} YAML files`);
  let taken = 0;
  for (const f of files) if (agrees(readFileSync(f, 'utf8'))) taken++;
  // rules/default.yaml and the examples at least: a valid policy takes the fast path.
  for (const f of files.filter((p) => p.includes('/rules/') && !p.includes('/prometheus/'))) assert.notEqual(plainYaml(readFileSync(f, 'utf8')), undefined, f);
  assert.ok(taken > 0);
});

// apply's own cost on large policies (issue 18): the fast paths give what the general ones give.
import { test } from 'node:test';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { normalizeCidr } from 'cidr-tools';
import { stringify } from 'yaml';
import { InputError } from '../agent/errors.js';
import { buildFirewallModel } from '../agent/firewall/model.js';
import { parsePrefix, type CompiledPolicy, type CompiledRule } from '../agent/policy/compile.js';
import { loadPolicy, policySchema } from '../agent/policy/load.js';
import { readValidatedYaml } from '../agent/validated-yaml.js';
import { bigPolicy } from './bench/big-policy.js';

/** What loadPolicy says of a text: the policy, warnings and origins, or the problems. */
function outcome(text: string): unknown {
  try {
    const l = loadPolicy('p.json', { text, hostname: 'test' });
    return { policy: l.policy, warnings: l.warnings, origins: l.policy.rules.map((r) => l.origin(r)) };
  } catch (err) {
    assert.ok(err instanceof InputError, String(err));
    return { problems: err.problems };
  }
}

// A trailing YAML comment makes the text YAML that is not JSON: the same document through yaml, every place unchanged.
const JSON_CASES: Record<string, string> = {
  'valid, with a shadowed rule (a warning at its place)':
    '{"version": 1, "sources": {"office": ["10.1.0.0/16", "2001:db8::/48"]},\n "rules": [\n  {"name": "ssh", "port": 22, "from": ["office"]},\n  {"name": "ssh2", "port": 22}\n ]}',
  'a key twice in one object (yaml: an error)': '{"version": 1,\n "rules": [{"name": "a", "port": 22}],\n "rules": [{"name": "b", "port": 23}]}',
  'a key twice inside a rule': '{"version": 1, "rules": [{"name": "a",\n  "port": 22, "port": 23}]}',
  'quotes, colons and backslashes inside strings': '{"version": 1, "hosts": [{"match": "w\\"e\\\\\\":b", "rules": []}], "rules": [{"name": "a", "port": 22, "process": ["x\\": ", "\\\\", "{\\"k\\": 1}"]}]}',
  'a semantic error (host bits set)': '{"version": 1, "rules": [\n  {"name": "a", "port": 22, "from": ["10.0.0.1/8"]}]}',
  'a schema error (unknown property)': '{"version": 1, "rules": [\n  {"name": "a", "port": 22, "colour": "red"}]}',
  'an unknown group': '{"version": 1, "rules": [{"name": "a", "port": 22,\n    "from": ["nope"]}]}',
};

for (const [name, text] of Object.entries(JSON_CASES)) {
  test(`a JSON policy gives what yaml gives: ${name}`, () => {
    assert.deepEqual(outcome(text), outcome(`${text}\n# the same document, read by yaml`));
  });
}

test('a repeated key in a JSON policy is still the error yaml reports, at its place', () => {
  const r = outcome(JSON_CASES['a key twice in one object (yaml: an error)']!) as { problems: string[] };
  assert.deepEqual(r.problems, ['p.json:3:2: Map keys must be unique']);
});

test('a large policy written as JSON is read without building a YAML document', (t) => {
  const doc = bigPolicy(2000, 10_000);
  const json = JSON.stringify(doc);
  const yamlText = stringify(doc);
  // The yaml module validated-yaml loads (the same CJS instance) and JSON.parse, counted.
  const yaml = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  const documents = t.mock.method(yaml, 'parseDocument');
  const parses = t.mock.method(JSON, 'parse');
  const read = (text: string) => readValidatedYaml<{ rules: unknown[] }>('big', policySchema, text).value;
  const fromJson = read(json);
  assert.equal(documents.mock.callCount(), 0, 'no YAML document for a JSON file');
  assert.ok(parses.mock.calls.some((c) => c.arguments[0] === json), 'read with JSON.parse');
  assert.equal(fromJson.rules.length, 2000);
  assert.deepEqual(fromJson, read(yamlText));
  // Its speed against block YAML is the bench's (`PW_BENCH_ONLY=apply`), not a test's.
});

test('IPv4 prefixes are checked as cidr-tools would (normalised, host bits refused)', () => {
  let seed = 1;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const octet = () => [0, 1, 127, 128, 255][rand(6)] ?? rand(256);
  for (let i = 0; i < 20_000; i++) {
    const addr = `${octet()}.${octet()}.${octet()}.${octet()}`;
    const len = rand(33);
    const text = rand(5) ? `${addr}/${len}` : addr;
    const given = `${normalizeCidr(addr)}/${text.includes('/') ? len : 32}`;
    const want = normalizeCidr(given);
    const got = parsePrefix(text);
    if (want === given) assert.deepEqual(got, { prefix: want, family: 4 }, text);
    else assert.deepEqual(got, { error: `${JSON.stringify(text)} has host bits set (did you mean ${want}?)` }, text);
  }
});

function rule(name: string, port: number, v4: string[]): CompiledRule {
  return { name, path: ['rules', port], proto: 'tcp', ports: [{ lo: port, hi: port }], from: { kind: 'list', v4, v6: [], names: ['g'] }, process: null, required: false, rate: null, log: false, action: 'allow', expect: null };
}

test('many rules naming one large group share one set, built without re-reading its prefixes per rule', () => {
  const prefixes = Array.from({ length: 100_000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
  const policy: CompiledPolicy = { default: 'deny', loopback: 'allow', refuse: 'drop', rules: Array.from({ length: 1000 }, (_, i) => rule(`r${i}`, 1024 + i, prefixes)) };
  const t0 = performance.now();
  const model = buildFirewallModel(policy);
  const ms = performance.now() - t0;
  assert.equal(model.sets.length, 1);
  // Joining the 100 000 prefixes for each of 1 000 rules took seconds (16 s here); once per list is milliseconds.
  assert.ok(ms < 1500, `${ms.toFixed(0)} ms`);
});

test('rules whose source lists are separate arrays with the same prefixes still share one set', () => {
  const policy: CompiledPolicy = { default: 'deny', loopback: 'allow', refuse: 'drop', rules: [rule('a', 22, ['10.0.0.0/8']), rule('b', 23, ['10.0.0.0/8']), rule('c', 24, ['10.1.0.0/16'])] };
  const model = buildFirewallModel(policy);
  assert.deepEqual(model.sets.map((s) => s.elements), [['10.0.0.0/8'], ['10.1.0.0/16']]);
  const sets = model.steps.filter((s) => s.kind === 'accept').map((s) => s.match.set);
  assert.deepEqual(sets, [model.sets[0]!.name, model.sets[0]!.name, model.sets[1]!.name]);
});

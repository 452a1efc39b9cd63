import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { checkTrustedFile } from '../agent/file-perms.js';
import { execFileSync } from 'node:child_process';
import { loadPolicy } from '../agent/policy/load.js';
import { InputError } from '../agent/errors.js';
import { globMatches, parsePrefix } from '../agent/policy/compile.js';
import { FIXTURES, ROOT } from './helpers/paths.js';
import { runCli } from './helpers/cli.js';

const BAD = `${FIXTURES}bad-policies/`;

for (const name of readdirSync(BAD).sort()) {
  test(`bad policy ${name}: reports its place`, () => {
    const text = readFileSync(BAD + name, 'utf8');
    const expect = /^# expect: (.*)$/m.exec(text)?.[1];
    assert.ok(expect, 'each corpus file names its expected error');
    const file = `bad-policies/${name}`;
    assert.throws(
      () => loadPolicy(file, { text, hostname: 'test' }),
      (err: unknown) => {
        assert.ok(err instanceof InputError, String(err));
        assert.ok(err.problems.some((p) => p.startsWith(`${file}:${expect}`)), `want "${file}:${expect}", got:\n${err.problems.join('\n')}`);
        return true;
      },
    );
  });
}

test('every policy in rules/ is valid', () => {
  const files = ['rules/default.yaml', ...readdirSync(`${ROOT}rules/examples`).map((f) => `rules/examples/${f}`)];
  assert.ok(files.length >= 5);
  for (const f of files) assert.ok(loadPolicy(`${ROOT}${f}`).policy.rules.length > 0, f);
});

test('the CLI prints file:line:col and exits 2 on a broken policy, with no stack trace', async () => {
  const r = await runCli(['validate', '--policy', `${BAD}port-too-big.yaml`]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim(), `${BAD}port-too-big.yaml:5:11: rules[0].port: must be ≤ 65535`);
  assert.doesNotMatch(r.stderr, /\bat .*\.js:\d+/);
  const missing = await runCli(['check', '--policy', '/nonexistent/policy.yaml']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /\/nonexistent\/policy.yaml: cannot read: ENOENT/);
});

test('shadowed rules are warnings, not errors', () => {
  const text = 'version: 1\nrules:\n  - name: all\n    port: 1-1024\n  - name: ssh\n    port: 22\n';
  const loaded = loadPolicy('p.yaml', { text, hostname: 'h' });
  assert.deepEqual(loaded.warnings, ['p.yaml:5:11: warning: rules[1].name: rule "ssh" is shadowed: earlier rules already decide all its ports']);
});

test('host overlays apply only on matching hostnames, before the base rules', () => {
  const file = `${ROOT}rules/examples/bastion.yaml`;
  assert.deepEqual(loadPolicy(file, { hostname: 'bastion-eu-1' }).policy.rules.map((r) => r.name), ['ssh-eu-office', 'ssh', 'wireguard']);
  assert.deepEqual(loadPolicy(file, { hostname: 'bastion-us-1' }).policy.rules.map((r) => r.name), ['ssh', 'wireguard']);
  assert.ok(globMatches('mx-*', 'MX-01'));
  assert.ok(!globMatches('mx-?', 'mx-01'));
});

test('groups nest and merge; v4 and v6 are kept apart', () => {
  const { policy } = loadPolicy(`${ROOT}rules/examples/bastion.yaml`, { hostname: 'x' });
  const from = policy.rules[0]!.from;
  assert.equal(from.kind, 'list');
  if (from.kind !== 'list') return;
  assert.deepEqual(from.v4, ['10.8.0.0/16', '203.0.113.0/24']);
  assert.deepEqual(from.v6, ['2001:db8:10::/48', 'fd00:8::/64']);
});

test('prefix parsing', () => {
  assert.deepEqual(parsePrefix('2001:DB8::/32'), { prefix: '2001:db8::/32', family: 6 });
  assert.deepEqual(parsePrefix('192.0.2.7'), { prefix: '192.0.2.7/32', family: 4 });
  assert.ok('error' in parsePrefix('192.0.2.0/33'));
  assert.ok('error' in parsePrefix('192.0.2.0/'));
});

test('the TypeScript policy types are generated from the schema and not stale', () => {
  execFileSync(process.execPath, [`${ROOT}test/tools/gen-types.mjs`, '--check'], { cwd: ROOT, stdio: 'pipe' });
  const schema = JSON.parse(readFileSync(`${ROOT}rules/policy.schema.json`, 'utf8')) as { definitions: { rule: { properties: Record<string, { description?: string }> } } };
  for (const [k, v] of Object.entries(schema.definitions.rule.properties)) assert.ok(v.description, `rule.${k} has a description`);
});

test('as root, a policy others can write (or not owned by root) is refused, saying how to fix it', () => {
  const dir = mkdtempSync(`${tmpdir()}/pw-perm-`);
  try {
    const file = `${dir}/p.yaml`;
    writeFileSync(file, 'version: 1\nrules: []\n');
    chmodSync(file, 0o666);
    assert.throws(() => checkTrustedFile(file, 0), /refusing to use it as root: it is writable by others \(fix: chmod go-w/);
    assert.doesNotThrow(() => checkTrustedFile(file, 1000), 'only root is strict');
    chmodSync(file, 0o644);
    assert.doesNotThrow(() => checkTrustedFile(file, 0));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Policy fragments (include:) and validate --hostname: real files in a temp dir, the real CLI.
// Order: matching overlays (main file's, then each fragment's), main rules, fragment rules in
// name order; first match decides; every problem names its own file:line:col.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { loadPolicy } from '../agent/policy/load.js';
import { evaluate } from '../agent/policy/evaluate.js';
import { InputError } from '../agent/errors.js';
import { runCli } from './helpers/cli.js';

const MAIN = `version: 1
default: deny
include: [policy.d/*.yaml]
sources:
  office: [192.0.2.0/24]
rules:
  - { name: ssh, port: 22, from: [office] }
hosts:
  - match: "db-*"
    rules:
      - { name: pg-admin, port: 5432, from: [office] }
`;

/** A policy dir: policy.yaml and policy.d/ with the given fragments (file name → text). */
function policyDir(t: TestContext, fragments: Record<string, string>, main = MAIN): string {
  const dir = mkdtempSync(`${tmpdir()}/pw-frag-`);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(`${dir}/policy.d`);
  writeFileSync(`${dir}/policy.yaml`, main);
  for (const [name, text] of Object.entries(fragments)) writeFileSync(`${dir}/policy.d/${name}`, text);
  return dir;
}

const TWO = {
  // written in this order on purpose: name order, not creation order, decides
  '20-web.yaml': 'rules:\n  - { name: http, port: [80, 443], from: any }\n  - { name: ssh-any, port: 2222, from: any }\n',
  '10-db.yaml': 'sources:\n  apps: [198.51.100.0/24, office]\nrules:\n  - { name: pg, port: 5432, from: [apps] }\nhosts:\n  - match: "db-1"\n    rules:\n      - { name: pg-replica, port: 5433, from: [apps] }\n',
  'README': 'not a fragment: does not match *.yaml',
};

test('fragments: two fragments and host overlays compile per --hostname in the documented order, each rule with its file:line:col', async (t) => {
  const dir = policyDir(t, TWO);
  const r = await runCli(['validate', '--policy', `${dir}/policy.yaml`, '--hostname', 'db-1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { hostname: string; fragments: string[]; rules: { name: string; origin: string; from: string[] | string }[] };
  assert.equal(j.hostname, 'db-1');
  assert.deepEqual(j.fragments, [`${dir}/policy.d/10-db.yaml`, `${dir}/policy.d/20-web.yaml`]);
  assert.deepEqual(j.rules.map((x) => `${x.name} ${x.origin}`), [
    `pg-admin ${dir}/policy.yaml:11:17`, // the main file's overlay
    `pg-replica ${dir}/policy.d/10-db.yaml:8:17`, // then the fragments' overlays
    `ssh ${dir}/policy.yaml:7:13`, // then the main rules
    `pg ${dir}/policy.d/10-db.yaml:4:13`, // then fragment rules in name order
    `http ${dir}/policy.d/20-web.yaml:2:13`,
    `ssh-any ${dir}/policy.d/20-web.yaml:3:13`,
  ]);
  const web = await runCli(['validate', '--policy', `${dir}/policy.yaml`, '--hostname', 'web-1']);
  assert.equal(web.code, 0, web.stderr);
  assert.match(web.stdout, /^.*policy\.yaml: ok for host web-1: 4 rules \(with 2 fragments\), default deny, loopback allow, refuse drop\n#\s+RULE/);
  assert.doesNotMatch(web.stdout, /pg-admin|pg-replica/, 'overlays for db hosts stay out');
  assert.match(web.stdout, /\n1\s+ssh\s+allow\s+tcp\/22\s+office\s+-\s+\S+policy\.yaml:7:13\n/);
});

test('fragments: first match decides across files; a fragment group is usable in the main file and the other way round', (t) => {
  const dir = policyDir(t, {
    '10-a.yaml': 'rules:\n  - { name: pg-deny, port: 5432, action: deny }\n',
    '20-b.yaml': 'sources:\n  vpn: [203.0.113.0/24]\nrules:\n  - { name: pg-open, port: 5432, from: [office] }\n',
  }, MAIN.replace('from: [office] }\nhosts', 'from: [vpn] }\nhosts'));
  const p = loadPolicy(`${dir}/policy.yaml`, { hostname: 'web-1' });
  assert.deepEqual(p.policy.rules.map((r) => r.name), ['ssh', 'pg-deny', 'pg-open']);
  const ssh = p.policy.rules[0]!;
  assert.deepEqual(ssh.from.kind === 'list' && ssh.from.v4, ['203.0.113.0/24']);
  const listener = { proto: 'tcp' as const, family: 4 as const, address: '0.0.0.0', port: 5432, scope: 'wildcard' as const, dualStack: false, inode: 1, processes: [] };
  const findings = evaluate(p.policy, [listener]);
  assert.equal(findings[0]?.rule, 'pg-deny', 'the earlier fragment decides');
  assert.equal(p.warnings.length, 1);
  assert.match(p.warnings[0]!, new RegExp(`^${dir}/policy\\.d/20-b\\.yaml:4:13: warning: .*"pg-open" is shadowed`));
});

test("fragments: each fragment's error names that fragment's file:line:col (schema, addresses, names, groups)", async (t) => {
  const dir = policyDir(t, {
    '10-ok.yaml': 'rules:\n  - { name: web, port: 80 }\n',
    '20-bad.yaml': 'default: allow\nrules:\n  - { name: x, port: 99999 }\n',
    '30-bad.yaml': 'sources:\n  office: [10.0.0.0/8]\nrules:\n  - { name: ssh, port: 23 }\n  - { name: y, port: 9, from: [10.0.0.1/8] }\n',
  });
  const r = await runCli(['validate', '--policy', `${dir}/policy.yaml`]);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
  const f20 = `${dir}/policy.d/20-bad.yaml`;
  assert.match(r.stderr, new RegExp(`^${f20}:1:1: default: unknown property "default"$`, 'm'));
  assert.match(r.stderr, new RegExp(`^${f20}:3:22: rules\\[0\\]\\.port: must be ≤ 65535$`, 'm'));
  // schema problems stop before compiling; fix 20 and the semantic ones of 30 show
  writeFileSync(f20, 'rules:\n  - { name: x, port: 9999 }\n');
  const r2 = await runCli(['validate', '--policy', `${dir}/policy.yaml`]);
  assert.equal(r2.code, 2);
  const f30 = `${dir}/policy.d/30-bad.yaml`;
  assert.match(r2.stderr, new RegExp(`^${f30}:2:3: sources\\.office: source group "office" is already defined in the policy file`, 'm'));
  assert.match(r2.stderr, new RegExp(`^${f30}:4:13: rules\\[0\\]\\.name: duplicate rule name "ssh"$`, 'm'));
  assert.match(r2.stderr, new RegExp(`^${f30}:5:32: rules\\[1\\]\\.from\\[0\\]: "10\\.0\\.0\\.1/8" has host bits set`, 'm'));
});

test('include: a plain path must exist; wildcards only in the file name; a glob with no match is fine; each file once', (t) => {
  const dir = policyDir(t, { 'a.yaml': 'rules:\n  - { name: a, port: 1000 }\n' });
  const main = (include: string) => MAIN.replace('include: [policy.d/*.yaml]', `include: ${include}`);
  const load = (include: string) => loadPolicy(`${dir}/policy.yaml`, { text: main(include), hostname: 'h' });
  assert.throws(() => load('[policy.d/a.yaml, policy.d/missing.yaml]'), (e: unknown) => e instanceof InputError && new RegExp(`^${dir}/policy\\.yaml:3:28: include\\[1\\]: cannot read ${dir}/policy\\.d/missing\\.yaml: ENOENT$`).test(e.message));
  assert.throws(() => load('["*.d/a.yaml"]'), (e: unknown) => e instanceof InputError && /policy\.yaml:3:11: include\[0\]: "\*\.d\/a\.yaml": wildcards are allowed in the file name only/.test(e.message));
  assert.deepEqual(load('[empty.d/*.yaml, policy.d/*.yml]').fragments, []);
  const twice = load('[policy.d/a.yaml, policy.d/*.yaml, "*.yaml"]');
  assert.deepEqual(twice.fragments, [`${dir}/policy.d/a.yaml`], 'a file matched twice is read once; the policy never includes itself');
});

// One source for options and help: the README's command table, `--help` and what each command
// parses all come from agent/commands/specs.ts. A flag added to a command and not documented, or
// documented and not parsed, fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SPECS, synopsis, type CommandSpec } from '../agent/commands/specs.js';
import { runCli } from './helpers/cli.js';
import { ROOT } from './helpers/paths.js';

const README = readFileSync(`${ROOT}README.md`, 'utf8');
const visible = (Object.entries(SPECS) as [string, CommandSpec][]).filter(([, s]) => !s.hidden);

/** The README's command table: command name → the synopsis written in its row. */
function readmeTable(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const m of README.matchAll(/^\| `portwarden ([a-z-]+)((?: [^`]*)?)` \|/gm)) rows.set(m[1]!, m[2]!.trim().replaceAll('\\|', '|'));
  return rows;
}

test('the README command table lists every command with exactly the options it parses', () => {
  const rows = readmeTable();
  assert.deepEqual([...rows.keys()].sort(), visible.map(([n]) => n).sort(), 'commands in the README table vs. the commands portwarden has');
  for (const [name, spec] of visible) assert.equal(rows.get(name), synopsis(spec), `README row of ${name}`);
});

test('every "portwarden COMMAND --flag" written anywhere in the README is a flag that command takes', () => {
  const wrong: string[] = [];
  for (const m of README.matchAll(/portwarden ([a-z][a-z-]*)([^\n`|;&>]*)/g)) {
    const spec = (SPECS as Record<string, CommandSpec>)[m[1]!];
    if (!spec) continue; // prose: "portwarden enters", "portwarden runs"
    for (const f of m[2]!.matchAll(/(?:^|\s)--([a-z][a-z-]*)/g)) if (!(f[1]! in spec.options)) wrong.push(`portwarden ${m[1]} --${f[1]}`);
  }
  assert.deepEqual(wrong, []);
});

test('portwarden --help lists every command; COMMAND --help prints its options and exits 0', async () => {
  const all = await runCli(['--help']);
  assert.equal(all.code, 0);
  for (const [name, spec] of visible) assert.match(all.stdout, new RegExp(`^  ${name} +${synopsis(spec).replace(/[[\]|/.*+?()]/g, '\\$&')}`, 'm'), name);
  assert.doesNotMatch(all.stdout, /_rollback-timer/);
  const one = await runCli(['explain', '--help']);
  assert.equal(one.code, 0);
  for (const flag of Object.keys(SPECS.explain.options)) assert.match(one.stdout, new RegExp(`^  --${flag}\\b`, 'm'));
  assert.match(one.stdout, /^usage: portwarden explain PORT\[\/PROTO\] --from ADDR/);
});

test('a flag the command does not take is a usage error naming it (exit 2)', async () => {
  const r = await runCli(['status', '--policy', 'x.yaml']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--policy/);
});

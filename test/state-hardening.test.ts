// `alerts` on a state dir it cannot use says why instead of "no events": a mistyped --state-dir
// (exit 2), one the user may not read (exit 3), a journal line it cannot parse (counted). And the
// pure part of recovering a corrupt state.json: the open set rebuilt from the journal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { needsRootAnd } from './helpers/env.js';
import { runCli, type CliResult } from './helpers/cli.js';
import { CLI } from './helpers/paths.js';
import { isDriftState, stateFromEvents, type DriftEvent } from '../agent/alerts/drift.js';

const event = (id: string, at: string) =>
  JSON.stringify({ event: 'opened', at, host: 'h', finding: { id, kind: 'unexpected-listener', severity: 'high', proto: 'tcp', port: 1, address: '0.0.0.0', rule: null, processes: [], message: 'm', remedy: 'r' } });

function runAs(uid: number, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { uid, gid: uid, cwd: '/', timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 99) : 0, stdout, stderr });
    });
  });
}

test('alerts --state-dir that does not exist: exit 2 naming it', async () => {
  const dir = mkdtempSync(`${tmpdir()}/pw-alerts-`);
  try {
    for (const args of [['alerts'], ['alerts', '--open'], ['alerts', '--json']]) {
      const res = await runCli([...args, '--state-dir', `${dir}/typo`]);
      assert.equal(res.code, 2, `${args.join(' ')}: ${res.stdout}${res.stderr}`);
      assert.equal(res.stdout, '');
      assert.match(res.stderr, new RegExp(`^portwarden: ${dir}/typo: no such directory`));
      assert.equal(res.stderr.trim().split('\n').length, 1);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('alerts as a user who cannot read the state dir: exit 3 naming it', async (t) => {
  if (!needsRootAnd(t)) return;
  const dir = mkdtempSync(`${tmpdir()}/pw-alerts-`);
  try {
    const state = `${dir}/state`;
    mkdirSync(state, { mode: 0o700 });
    writeFileSync(`${state}/events.jsonl`, event('a', new Date().toISOString()) + '\n');
    writeFileSync(`${state}/state.json`, '{"version":1,"tracked":{}}\n');
    for (const args of [['alerts'], ['alerts', '--open'], ['alerts', '--json']]) {
      const res = await runAs(65534, [...args, '--state-dir', state]);
      assert.equal(res.code, 3, `${args.join(' ')}: ${res.stdout}${res.stderr}`);
      assert.equal(res.stdout, '');
      assert.match(res.stderr, new RegExp(`^portwarden: ${state}(/\\S+)?: permission denied`));
      assert.doesNotMatch(res.stderr, /unexpected failure/);
    }
    // Readable now: the events, and still the plain output.
    const ok = await runCli(['alerts', '--state-dir', state]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /opened\s+high\s+unexpected-listener/);
    assert.equal(ok.stderr, '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('alerts skips and counts unreadable journal lines; the JSON keeps its shape', async () => {
  const dir = mkdtempSync(`${tmpdir()}/pw-alerts-`);
  try {
    const now = Date.now();
    writeFileSync(`${dir}/events.jsonl.1`, `${event('a', new Date(now - 2000).toISOString())}\nnot json\n`);
    writeFileSync(`${dir}/events.jsonl`, `${event('b', new Date(now - 1000).toISOString())}\n{"torn":\n${event('c', new Date(now).toISOString())}\n`);
    const res = await runCli(['alerts', '--json', '--state-dir', dir]);
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout) as { events: { finding: { id: string } }[]; unreadable: number };
    assert.deepEqual(Object.keys(out), ['events', 'unreadable']);
    assert.deepEqual(out.events.map((e) => e.finding.id), ['a', 'b', 'c']);
    assert.equal(out.unreadable, 2);
    assert.equal(res.stderr, `portwarden: skipped 2 unreadable lines in ${dir}/events.jsonl.1, ${dir}/events.jsonl\n`);
    const empty = mkdtempSync(`${tmpdir()}/pw-alerts-`);
    try {
      const none = await runCli(['alerts', '--state-dir', empty]);
      assert.equal(none.code, 0);
      assert.equal(none.stdout, 'no events\n');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the open set rebuilt from the journal: last event per finding wins; state.json shape check', () => {
  const ev = (kind: DriftEvent['event'], id: string, at: string): DriftEvent => ({ ...(JSON.parse(event(id, at)) as DriftEvent), event: kind });
  const st = stateFromEvents([ev('opened', 'a', 't1'), ev('opened', 'b', 't2'), ev('reminder', 'a', 't3'), ev('resolved', 'b', 't4'), ev('opened', 'c', 't5')]);
  assert.deepEqual(Object.keys(st.tracked).sort(), ['a', 'c']);
  assert.deepEqual({ ...st.tracked.a, finding: undefined }, { finding: undefined, status: 'open', seen: 1, missed: 0, firstSeen: 't1', openedAt: 't1', lastNotified: 't3' });
  assert.ok(isDriftState(st));
  assert.ok(isDriftState(JSON.parse(JSON.stringify(st))));
  for (const bad of [null, [], 42, { version: 2, tracked: {} }, { version: 1 }, { version: 1, tracked: [] }, { version: 1, tracked: { a: { finding: { id: 'b' }, status: 'open', seen: 1, missed: 0 } } }]) {
    assert.equal(isDriftState(bad), false, JSON.stringify(bad));
  }
});

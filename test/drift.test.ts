import { test } from 'node:test';
import assert from 'node:assert/strict';
import { emptyState, openFindings, step, type DriftState } from '../agent/alerts/drift.js';
import type { Finding } from '../agent/model.js';

const f = (id: string, pid = 1, kind: Finding['kind'] = 'unexpected-listener'): Finding => ({
  id, kind, severity: 'high', proto: 'tcp', port: 8080, address: '0.0.0.0', rule: null,
  processes: [{ pid, name: 'node', exe: '/usr/bin/node', user: 'root', cmdline: null }], message: 'm', remedy: 'r',
});

function run(scans: Finding[][], opts = { settle: 2, repeatMs: 0 }, start = 0, state: DriftState = emptyState()) {
  const out: string[] = [];
  scans.forEach((fs, i) => {
    const r = step(state, fs, new Date(start + i * 30_000), opts);
    state = r.state;
    out.push(r.events.map((e) => `${e.event}:${e.finding.id}`).join(',') || '-');
  });
  return { out, state };
}

test('settle: opens after 2 scans, resolves after 2 misses', () => {
  const a = f('a');
  assert.deepEqual(run([[a], [a], [a], [], []]).out, ['-', 'opened:a', '-', '-', 'resolved:a']);
});

test('settle: a port that flaps within a scan or two raises nothing', () => {
  const a = f('a');
  assert.deepEqual(run([[a], [], [a], [], [], []]).out, ['-', '-', '-', '-', '-', '-']);
  // Open, then gone for one scan only: stays open, no resolve, no re-open.
  assert.deepEqual(run([[a], [a], [], [a], [a]]).out, ['-', 'opened:a', '-', '-', '-']);
});

test('settle 1 opens and resolves at once', () => {
  const a = f('a');
  assert.deepEqual(run([[a], []], { settle: 1, repeatMs: 0 }).out, ['opened:a', 'resolved:a']);
});

test('a restart with a new pid is the same finding', () => {
  assert.deepEqual(run([[f('a', 1)], [f('a', 2)], [f('a', 3)]]).out, ['-', 'opened:a', '-']);
});

test('reminders every repeat while open', () => {
  const a = f('a');
  const r = run([[a], [a], [a], [a], [a], [a]], { settle: 2, repeatMs: 60_000 });
  assert.deepEqual(r.out, ['-', 'opened:a', '-', 'reminder:a', '-', 'reminder:a']);
  assert.equal(openFindings(r.state).length, 1);
});

test('state survives a restart: a saved and reloaded state raises nothing new', () => {
  const a = f('a');
  const first = run([[a], [a]]);
  const reloaded = JSON.parse(JSON.stringify(first.state)) as DriftState;
  assert.deepEqual(run([[a], [a]], undefined, 60_000, reloaded).out, ['-', '-']);
  assert.deepEqual(run([[], []], undefined, 60_000, reloaded).out, ['-', 'resolved:a']);
});

test("the agent's own problems open and resolve without settle", () => {
  const c = f('agent-config-invalid', 0, 'agent-config-invalid');
  assert.deepEqual(run([[c], []]).out, ['opened:agent-config-invalid', 'resolved:agent-config-invalid']);
});

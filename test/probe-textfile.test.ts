// probe --textfile: the node_exporter text of a probe result (exact text, checked by the real
// promtool), and its atomic write (mode, replace, symlinks, a missing directory).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { probeMismatch, probeTextfile, writeProbeTextfile, type ProbeOutcome } from '../agent/probe-textfile.js';
import { RuntimeError } from '../agent/errors.js';
import { hasCommand } from './helpers/env.js';

const port = (proto: string, p: number, expected: string, observed: string, rule: string | null = null) => ({ proto, port: p, expected, observed, rule, checks: [] });

const RESULT: ProbeOutcome = {
  target: 'web-1.example',
  source: '192.0.2.10',
  ports: [
    port('udp', 53, 'closed', 'open|filtered'),
    port('tcp', 6379, 'closed', 'open', 'no-redis'),
    port('tcp', 22, 'open', 'open', 'ssh'),
    port('tcp', 443, 'open', 'filtered', 'https'),
    port('tcp', 8080, 'any', 'open'),
  ],
};
const AT = new Date('2026-01-02T03:04:05.500Z');

test('probe textfile: one mismatch sample per probed port (1 when the state contradicts the policy), and the last run time', () => {
  assert.equal(probeTextfile([RESULT], AT), [
    '# HELP portwarden_probe_mismatch 1 when a port probed from outside is not in the state the policy expects for the prober, else 0.',
    '# TYPE portwarden_probe_mismatch gauge',
    'portwarden_probe_mismatch{target="web-1.example",proto="tcp",port="22",expected="open",observed="open"} 0',
    'portwarden_probe_mismatch{target="web-1.example",proto="tcp",port="443",expected="open",observed="filtered"} 1',
    'portwarden_probe_mismatch{target="web-1.example",proto="tcp",port="6379",expected="closed",observed="open"} 1',
    'portwarden_probe_mismatch{target="web-1.example",proto="tcp",port="8080",expected="any",observed="open"} 0',
    'portwarden_probe_mismatch{target="web-1.example",proto="udp",port="53",expected="closed",observed="open|filtered"} 0',
    '# HELP portwarden_probe_last_run_timestamp_seconds Unix time the last probe of the target finished.',
    '# TYPE portwarden_probe_last_run_timestamp_seconds gauge',
    'portwarden_probe_last_run_timestamp_seconds{target="web-1.example"} 1767323045.5',
    '',
  ].join('\n'));
  assert.equal(probeMismatch({ expected: 'closed', observed: 'closed' }), false);
  assert.equal(probeMismatch({ expected: 'closed', observed: 'filtered' }), false);
});

test('probe textfile: several targets share each family once; label values are escaped', () => {
  const odd: ProbeOutcome = { target: 'we"ird\\host\nx', source: '192.0.2.10', ports: [port('tcp', 1, 'open', 'closed')] };
  const text = probeTextfile([RESULT, odd], AT);
  assert.equal(text.match(/# TYPE portwarden_probe_mismatch /g)?.length, 1);
  assert.equal(text.match(/# TYPE portwarden_probe_last_run_timestamp_seconds /g)?.length, 1);
  assert.match(text, /portwarden_probe_mismatch\{target="we\\"ird\\\\host\\nx",proto="tcp",port="1",expected="open",observed="closed"\} 1\n/);
  assert.match(text, /portwarden_probe_last_run_timestamp_seconds\{target="we\\"ird\\\\host\\nx"\} 1767323045.5\n/);
  if (hasCommand('promtool')) {
    // The real parser: exit 0 and no lint complaint.
    const out = execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(out.trim(), '', out);
  }
});

test('probe textfile: written atomically with mode 0644, replacing the file and a planted symlink (never writing through it)', (t) => {
  const dir = mkdtempSync(`${tmpdir()}/pw-probe-tf-`);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = `${dir}/portwarden_probe.prom`;
  writeFileSync(file, 'old\n');
  writeProbeTextfile(file, [RESULT], AT);
  assert.equal(readFileSync(file, 'utf8'), probeTextfile([RESULT], AT));
  assert.equal(statSync(file).mode & 0o777, 0o644);
  const victim = `${dir}/victim`;
  writeFileSync(victim, 'keep me\n');
  rmSync(file);
  symlinkSync(victim, file);
  writeProbeTextfile(file, [RESULT], AT);
  assert.equal(readFileSync(victim, 'utf8'), 'keep me\n', 'the link target is untouched');
  assert.ok(lstatSync(file).isFile(), 'the link was replaced by the file');
  assert.deepEqual(readdirSync(dir).sort(), ['portwarden_probe.prom', 'victim'], 'no temp file left');
  assert.throws(() => writeProbeTextfile(`${dir}/missing/x.prom`, [RESULT], AT), (e: unknown) => e instanceof RuntimeError && e.exitCode === 3 && e.message === `${dir}/missing/x.prom: no such file or directory`);
});

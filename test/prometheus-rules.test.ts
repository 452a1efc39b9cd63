// The shipped Prometheus rules (rules/prometheus/) through the real promtool: they load, their unit
// tests pass, and a broken threshold makes those tests fail (so they can fail).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { hasCommand } from './helpers/env.js';
import { ROOT } from './helpers/paths.js';

const DIR = `${ROOT}rules/prometheus`;
const RULES = 'portwarden.rules.yml';
const TESTS = 'portwarden.rules.test.yml';

function promtool(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('promtool', args, { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr });
    });
  });
}

function needsPromtool(t: TestContext): boolean {
  if (hasCommand('promtool')) return true;
  if (process.env.CI === 'true') throw new Error('needs promtool (Debian package prometheus), and CI=true requires this test to run');
  t.skip('needs promtool');
  return false;
}

test('promtool check rules: the shipped rules load', async (t) => {
  if (!needsPromtool(t)) return;
  const r = await promtool(['check', 'rules', RULES], DIR);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS: 9 rules found/);
});

test('promtool test rules: series in, alerts out, for every shipped alert', async (t) => {
  if (!needsPromtool(t)) return;
  const r = await promtool(['test', 'rules', TESTS], DIR);
  assert.equal(r.code, 0, r.out);
  const rules = readFileSync(`${DIR}/${RULES}`, 'utf8');
  const tests = readFileSync(`${DIR}/${TESTS}`, 'utf8');
  for (const [, name] of rules.matchAll(/- alert: (\w+)/g)) assert.match(tests, new RegExp(`alertname: ${name}\\n`), `${name} has a unit test`);
});

// Each mutation breaks one threshold or selector; the unit tests must notice every one.
const BROKEN: [string, string, string][] = [
  ['PortwardenSevereFinding', 'severity=~"high|critical"', 'severity=~"critical"'],
  ['PortwardenScanStale', 'portwarden_last_scan_timestamp_seconds > 90', 'portwarden_last_scan_timestamp_seconds > 900'],
  ['PortwardenAlertDeliveryFailing', 'unless on (instance, sink)', 'and on (instance, sink)'],
  ['PortwardenRefusedConnectionSurge', '(rate(portwarden_refused_connections_total[5m])) > 5', '(rate(portwarden_refused_connections_total[5m])) > 0.5'],
  ['PortwardenRateLimitSurge', '(rate(portwarden_rate_limited_total[5m])) > 1', '(rate(portwarden_rate_limited_total[5m])) > 3'],
  ['PortwardenProbeMismatch', '(portwarden_probe_mismatch) == 1', '(portwarden_probe_mismatch) >= 0'],
];

test('promtool test rules fails when a rule threshold is broken', async (t) => {
  if (!needsPromtool(t)) return;
  const rules = readFileSync(`${DIR}/${RULES}`, 'utf8');
  const dir = mkdtempSync(`${tmpdir()}/pw-promrules-`);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(`${dir}/${TESTS}`, readFileSync(`${DIR}/${TESTS}`));
  for (const [alert, from, to] of BROKEN) {
    assert.ok(rules.includes(from), `the rules still contain ${from}`);
    writeFileSync(`${dir}/${RULES}`, rules.replace(from, to));
    const r = await promtool(['test', 'rules', TESTS], dir);
    assert.notEqual(r.code, 0, `${alert} broken (${to}) but the tests passed:\n${r.out}`);
    assert.match(r.out, new RegExp(`alertname: ${alert}`), r.out);
  }
});

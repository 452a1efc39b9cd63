// What the operator sees, end to end: `scan`, `check` and `explain` run as processes against a lab
// namespace with known listeners and the mail-relay example's rules loaded by the real nft. Their
// output is compared with files in test/fixtures/golden/e2e/, so any change in what is printed is
// a visible diff (UPDATE_GOLDEN=1 rewrites them; review the diff before committing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { loadPolicy } from '../../agent/policy/load.js';
import { needsRootAnd } from '../helpers/env.js';
import { addDirectClient, createLab, startListeners } from '../helpers/lab.js';
import { loadRules } from '../helpers/firewall.js';
import { runCli } from '../helpers/cli.js';
import { FIXTURES, ROOT } from '../helpers/paths.js';

const GOLDEN = `${FIXTURES}golden/e2e/`;
const POLICY = `${ROOT}rules/examples/mail-relay.yaml`;

/** What differs between runs and machines: pids, the namespace's name, the host name, node's path. */
function normalise(text: string, ns: string): string {
  return text
    .replaceAll(ns, 'NS')
    .replaceAll(realpathSync(process.execPath), '/usr/bin/node')
    .replace(/"hostname": "[^"]*"/g, `"hostname": "HOST"`)
    .replace(/\((\d+),/g, '(PID,')
    .replace(/\bpid \d+/g, 'pid PID')
    .replace(/"pid": \d+/g, '"pid": 0')
    .replace(/"inode": \d+/g, '"inode": 0');
}

function compareGolden(name: string, text: string): void {
  const file = `${GOLDEN}${name}`;
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) {
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(file, text);
  }
  assert.equal(text, readFileSync(file, 'utf8'), `${name} differs from ${file} (UPDATE_GOLDEN=1 rewrites it)`);
}

test('scan, check and explain print what the golden files say', async (t) => {
  if (!needsRootAnd(t, 'nft', 'ip', 'nsenter')) return;
  const lab = createLab(1);
  const children: ChildProcess[] = [];
  try {
    addDirectClient(lab);
    const ns = lab.server.ns;
    children.push(await startListeners(ns, [
      { proto: 'tcp', host: '0.0.0.0', port: 25 },
      { proto: 'tcp', host: '::', port: 587 },
      { proto: 'tcp', host: '0.0.0.0', port: 9100 },
      { proto: 'tcp', host: '127.0.0.1', port: 5432 },
      { proto: 'udp', host: '127.0.0.1', port: 53 },
    ], 'master'));
    children.push(await startListeners(ns, [
      { proto: 'tcp', host: '0.0.0.0', port: 22 },
      { proto: 'tcp', host: '192.0.2.1', port: 8080 },
    ], 'sshd'));
    await loadRules(ns, 'nft', loadPolicy(POLICY).policy);

    const cases: [string, string[], number][] = [
      ['scan.txt', ['scan', '--netns', ns], 0],
      ['scan.json', ['scan', '--json', '--netns', ns], 0],
      ['check.txt', ['check', '--policy', POLICY, '--netns', ns], 1],
      ['check.json', ['check', '--json', '--policy', POLICY, '--netns', ns], 1],
      ['explain-smtp.txt', ['explain', '25', '--from', '192.0.2.11', '--netns', ns], 0],
      ['explain-ssh-refused.txt', ['explain', '22/tcp', '--from', '192.0.2.11', '--netns', ns], 0],
      ['explain-ssh-admin.txt', ['explain', '22/tcp', '--from', '203.0.113.9', '--iif', 'eth1', '--netns', ns], 0],
      ['explain-exporter.json', ['explain', '9100', '--from', '198.51.100.7', '--json', '--netns', ns], 0],
      ['explain-resolver-v6.txt', ['explain', '53/udp', '--from', '2001:db8:1::11', '--to', '2001:db8:1::1', '--netns', ns], 0],
    ];
    for (const [name, args, code] of cases) {
      const r = await runCli(args);
      assert.equal(r.code, code, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
      compareGolden(name, normalise(r.stdout, ns));
    }
  } finally {
    for (const c of children) c.kill();
    lab.destroy();
  }
});

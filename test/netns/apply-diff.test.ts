// What apply shows over a table loaded by hand (`nft -f` of `portwarden rules`), with the real CLI
// and nft in a namespace this test creates: no change for the same policy, a per-chain summary or
// a text diff of the normalised rules for a changed one, and a bounded time over a large table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { needsRootAnd } from '../helpers/env.js';
import { createNamespace, deleteNamespace, nsRun } from '../helpers/lab.js';
import { runCli } from '../helpers/cli.js';
import { bigPolicy } from '../bench/big-policy.js';

const BEFORE = `
version: 1
sources: { admin: ["192.0.2.0/24", "2001:db8::/64"] }
rules:
  - { name: web, port: 8080, from: any }
  - { name: admin, port: 2222, from: [admin], rate: 10/minute }
`;
// web moves to 8081 (changed), dns is new (added), admin gains a source (set 1 → 2 elements).
const AFTER = `
version: 1
sources: { admin: ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/64"] }
rules:
  - { name: web, port: 8081, from: any }
  - { name: admin, port: 2222, from: [admin], rate: 10/minute }
  - { name: dns, port: 53, proto: udp, from: any }
`;

/** A namespace and a scratch directory, removed even on failure. */
async function withBox(fn: (b: { ns: string; dir: string; file: (name: string, text: string) => string; handLoad: (policyFile: string) => Promise<void>; apply: (policyFile: string, ...extra: string[]) => ReturnType<typeof runCli> }) => Promise<void>): Promise<void> {
  const ns = createNamespace('diff');
  const dir = mkdtempSync(`${tmpdir()}/pw-diff-`);
  const file = (name: string, text: string) => {
    writeFileSync(`${dir}/${name}`, text);
    return `${dir}/${name}`;
  };
  // As an operator would: render the rules, then load them with nft by hand (no portwarden state).
  const handLoad = async (policyFile: string) => {
    const r = await runCli(['rules', '--policy', policyFile, '--output', `${dir}/hand.nft`]);
    assert.equal(r.code, 0, r.stderr);
    nsRun(ns, 'nft', ['-f', `${dir}/hand.nft`]);
  };
  const apply = (policyFile: string, ...extra: string[]) => runCli(['apply', '--policy', policyFile, '--netns', ns, '--state-dir', `${dir}/state`, '--yes', '--confirm', '0', ...extra]);
  try {
    await fn({ ns, dir, file, handLoad, apply });
  } finally {
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the same policy over a table loaded by hand: apply says no change, in every --diff mode but none', async (t) => {
  if (!needsRootAnd(t, 'nft', 'ip', 'nsenter')) return;
  await withBox(async ({ dir, file, handLoad, apply }) => {
    const p = file('before.yaml', BEFORE);
    for (const mode of ['auto', 'full', 'summary']) {
      rmSync(`${dir}/state`, { recursive: true, force: true }); // no record: the baseline is the live listing
      await handLoad(p);
      const r = await apply(p, '--diff', mode);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^nft: no change$/m, `--diff ${mode}:\n${r.stdout}`);
      assert.match(r.stdout, /^no change in the rules: loading them records this apply/m);
      assert.doesNotMatch(r.stdout, /^[-+]\s/m, `--diff ${mode} printed diff lines:\n${r.stdout}`);
    }
  });
});

test('a changed policy over a table loaded by hand: the summary counts per chain and per set, the full diff shows only the changed rules', async (t) => {
  if (!needsRootAnd(t, 'nft', 'ip', 'nsenter')) return;
  await withBox(async ({ ns, file, handLoad, apply }) => {
    const before = file('before.yaml', BEFORE);
    const after = file('after.yaml', AFTER);
    await handLoad(before);
    const s = await apply(after, '--diff', 'summary');
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /^nft: summary of changes/m);
    // Input and published gain the UDP dispatch, dns its own chain; web's port moves in the map.
    assert.match(s.stdout, /^ {2}chain input: \+1 added, -0 removed, ~0 changed$/m, s.stdout);
    assert.match(s.stdout, /^ {2}chain published: \+1 added, -0 removed, ~0 changed$/m, s.stdout);
    assert.match(s.stdout, /^ {2}new chain rule_dns: \+1 added, -0 removed, ~0 changed$/m, s.stdout);
    assert.match(s.stdout, /^ {2}set src_admin_v4: 1 → 2 elements \(\+1 -0\)$/m, s.stdout);
    assert.match(s.stdout, /^ {2}set tcp_ports: 2 → 2 elements \(\+1 -1\)$/m, s.stdout);
    assert.match(s.stdout, /^ {2}set udp_ports: - → 1 elements \(new set\)$/m, s.stdout);
    assert.doesNotMatch(s.stdout, /src_admin_v6|chain forward|log_|rule_web|rule_admin/, 'unchanged chains and sets are not listed');
    assert.match(nsRun(ns, 'nft', ['list', 'map', 'inet', 'portwarden', 'udp_ports']), /53 : jump rule_dns/, 'the new rules were loaded');

    await handLoad(before);
    const f = await apply(after, '--diff', 'full');
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stdout, /^--- nft \(loaded now \(not applied by portwarden, or changed since\)\)\n\+\+\+ nft \(.*after\.yaml\)\n@@ /, f.stdout);
    const changed = f.stdout.split('\n').filter((l) => /^[-+] /.test(l));
    assert.deepEqual(changed.sort(), [
      '+  element 198.51.100.0/24',
      '+  element 8081 : jump rule_web',
      '+  element 53 : jump rule_dns',
      '+  flags interval',
      '+  type inet_service : verdict',
      '+  udp dport vmap @udp_ports',
      '+  meta l4proto udp ct original proto-dst vmap @udp_ports',
      '+  counter accept comment "dns"',
      '-  element 8080 : jump rule_web',
    ].sort(), f.stdout);

    await handLoad(before);
    const n = await apply(after, '--diff', 'none');
    assert.equal(n.code, 0, n.stderr);
    assert.doesNotMatch(n.stdout, /^[-+@]|summary|no change/m, n.stdout);
    assert.match(n.stdout, /^applied nft rules /m);
  });
});

test('iptables: the same policy loaded by hand with iptables-restore is no change; without the jumps, the jumps are the change', async (t) => {
  if (!needsRootAnd(t, 'iptables-restore', 'ip6tables-restore', 'ip', 'nsenter')) return;
  await withBox(async ({ ns, dir, file, apply }) => {
    const p = file('before.yaml', BEFORE);
    const handLoad = async (jumps: boolean) => {
      for (const [backend, bin] of [['iptables', 'iptables'], ['ip6tables', 'ip6tables']] as const) {
        const r = await runCli(['rules', '--policy', p, '--backend', backend]);
        assert.equal(r.code, 0, r.stderr);
        nsRun(ns, `${bin}-restore`, ['--noflush'], r.stdout);
        if (jumps) for (const [from, to] of [['INPUT', 'PORTWARDEN-INPUT'], ['FORWARD', 'PORTWARDEN-FORWARD']] as const) nsRun(ns, bin, ['-I', from, '1', '-j', to]);
      }
    };
    await handLoad(true);
    const r = await apply(p, '--backend', 'iptables');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^v4: no change\nv6: no change\nno change in the rules/m, r.stdout);

    nsRun(ns, 'iptables', ['-D', 'INPUT', '-j', 'PORTWARDEN-INPUT']);
    nsRun(ns, 'iptables', ['-D', 'FORWARD', '-j', 'PORTWARDEN-FORWARD']);
    rmSync(`${dir}/state`, { recursive: true, force: true });
    const j = await apply(p, '--backend', 'iptables');
    assert.equal(j.code, 0, j.stderr);
    assert.match(j.stdout, /^v4: the jumps from INPUT and FORWARD to our chains are missing; loading adds them$/m, j.stdout);
    assert.doesNotMatch(j.stdout, /no change in the rules/);
    assert.match(nsRun(ns, 'iptables', ['-S', 'INPUT']), /-j PORTWARDEN-INPUT/);
  });
});

test('--diff takes full, summary, none or auto: anything else is exit 2 and nothing is loaded', async (t) => {
  if (!needsRootAnd(t, 'nft', 'ip', 'nsenter')) return;
  await withBox(async ({ ns, file, apply }) => {
    const r = await apply(file('after.yaml', AFTER), '--diff', 'everything');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--diff takes full, summary, none or auto, not "everything"/);
    assert.doesNotMatch(nsRun(ns, 'nft', ['list', 'tables']), /portwarden/);
  });
});

test('apply over a very different 10 000-rule table loaded by hand finishes within 60 s and prints a summary', async (t) => {
  if (!needsRootAnd(t, 'nft', 'ip', 'nsenter')) return;
  await withBox(async ({ ns, file, handLoad, apply }) => {
    // Every rule's port moves by one: no rule line is the same on both sides.
    await handLoad(file('loaded.yaml', JSON.stringify(bigPolicy(10_000, 5_000, 1))));
    const p = file('big.yaml', JSON.stringify(bigPolicy(10_000, 5_000)));
    const t0 = performance.now();
    const r = await apply(p);
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(seconds < 60, `apply took ${seconds.toFixed(1)} s`);
    assert.match(r.stdout, /^nft: summary of changes/m);
    // The rules' own chains do not name ports (the port maps dispatch to them): only the maps change.
    assert.match(r.stdout, /^ {2}set tcp_ports: 8000 → 8000 elements \(\+8000 -8000\)$/m, r.stdout);
    assert.match(r.stdout, /^ {2}set udp_ports: 2000 → 2000 elements \(\+2000 -2000\)$/m, r.stdout);
    assert.doesNotMatch(r.stdout, /chain /, r.stdout);
    assert.match(r.stdout, /over 2000 lines, so a summary: --diff full prints the text diff/);
    assert.ok(r.stdout.split('\n').length < 20, `a summary, not a diff: ${r.stdout.length} bytes`);
    assert.match(nsRun(ns, 'nft', ['list', 'map', 'inet', 'portwarden', 'tcp_ports']), /\b1025 : jump rule_r1\b/, 'the new rules were loaded');
    console.log(`# apply over a very different hand-loaded 10 000-rule table: ${seconds.toFixed(1)} s`);
  });
});

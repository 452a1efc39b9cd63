import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { loadPolicy } from '../agent/policy/load.js';
import { BACKENDS, renderRuleset } from '../agent/firewall/render.js';
import { lockoutWarning } from '../agent/firewall/oracle.js';
import { FIXTURES, ROOT } from './helpers/paths.js';
import { needsRootAnd } from './helpers/env.js';
import { createNamespace, deleteNamespace, nsRun } from './helpers/lab.js';
import { runCli } from './helpers/cli.js';
import { bigPolicy } from './bench/big-policy.js';

const EXAMPLES = ['rules/default.yaml', ...readdirSync(`${ROOT}rules/examples`).sort().map((f) => `rules/examples/${f}`)];
const GOLDEN = `${FIXTURES}golden/`;
const EXT = { nft: 'nft', iptables: 'rules.v4', ip6tables: 'rules.v6' } as const;

function rendered(file: string, backend: (typeof BACKENDS)[number]): string {
  return renderRuleset(loadPolicy(`${ROOT}${file}`, { hostname: 'golden-host' }).policy, backend, file);
}

for (const file of EXAMPLES) {
  for (const backend of BACKENDS) {
    test(`golden: ${file} → ${backend}`, () => {
      const golden = `${GOLDEN}${file.replace(/^rules\//, '').replace(/\//g, '_').replace(/\.yaml$/, '')}.${EXT[backend]}`;
      const text = rendered(file, backend);
      if (process.env.UPDATE_GOLDEN === '1' || !existsSync(golden)) writeFileSync(golden, text);
      assert.equal(text, readFileSync(golden, 'utf8'));
      assert.equal(rendered(file, backend), text, 'deterministic');
    });
  }
}

test('every rendered ruleset is accepted by nft -c, iptables-restore --test and ip6tables-restore --test', (t) => {
  if (!needsRootAnd(t, 'nft', 'iptables-restore', 'ip6tables-restore', 'nsenter')) return;
  const ns = createNamespace('chk');
  try {
    for (const file of EXAMPLES) {
      nsRun(ns, 'nft', ['-c', '-f', '-'], rendered(file, 'nft'));
      nsRun(ns, 'iptables-restore', ['--test', '--noflush'], rendered(file, 'iptables'));
      nsRun(ns, 'ip6tables-restore', ['--test', '--noflush'], rendered(file, 'ip6tables'));
    }
    // Loading the same nft file twice must work (create-if-missing, delete, define).
    const text = rendered('rules/examples/mail-relay.yaml', 'nft');
    nsRun(ns, 'nft', ['-f', '-'], text);
    nsRun(ns, 'nft', ['-f', '-'], text);
    assert.match(nsRun(ns, 'nft', ['list', 'tables']), /table inet portwarden/);
  } finally {
    deleteNamespace(ns);
  }
});

test('a rule that would cut off the SSH session is named in a warning', async () => {
  const { policy } = loadPolicy(`${ROOT}rules/examples/mail-relay.yaml`, { hostname: 'h' });
  assert.equal(lockoutWarning(policy, { SSH_CONNECTION: '203.0.113.5 50000 192.0.2.1 22' }), null);
  assert.equal(
    lockoutWarning(policy, { SSH_CONNECTION: '198.51.100.9 50000 192.0.2.1 22' }),
    'rule "ssh" would cut off your SSH session from 198.51.100.9 to port 22',
  );
  const r = await runCli(['rules', '--policy', `${ROOT}rules/examples/mail-relay.yaml`], { SSH_CONNECTION: '198.51.100.9 50000 192.0.2.1 22' });
  assert.equal(r.code, 0);
  assert.match(r.stderr, /warning: rule "ssh" would cut off your SSH session/);
  assert.match(r.stdout, /table inet portwarden/);
});

test('rules: bad backend is a usage error', async () => {
  const r = await runCli(['rules', '--policy', `${ROOT}rules/default.yaml`, '--backend', 'pf']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--backend must be one of: nft, iptables, ip6tables/);
});

test('rules --backend iptables: a policy too large for iptables is exit 2 naming the limit and nft, not "unexpected failure"', async () => {
  const dir = mkdtempSync(`${tmpdir()}/pw-ipt-big-`);
  try {
    // 2 000 rules over 100 groups of 500 prefixes (375 IPv4): 2/3 of the rules name a group, so ~500 000 IPv4 rules without sets.
    writeFileSync(`${dir}/big.json`, JSON.stringify(bigPolicy(2000, 50_000)));
    const r = await runCli(['rules', '--policy', `${dir}/big.json`, '--backend', 'iptables']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^portwarden: the iptables backend would need more than 250000 rules for IPv4 .*use --backend nft\n$/);
    const nft = await runCli(['rules', '--policy', `${dir}/big.json`, '--backend', 'nft']);
    assert.equal(nft.code, 0, nft.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

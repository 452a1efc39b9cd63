// What apply asks the firewall tool, and what it records for drift: one listing before the load
// and the load itself (counted through a logging nft wrapper on PATH), the published-port warning
// still given where a nat prerouting chain exists, and a drift hash that holds for the kernel's
// listing of every golden script and for a rate limit's set filling at run time. Real nft in
// namespaces this test creates; the pure cutting of our table out of a listing without root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { needsRootAnd } from '../helpers/env.js';
import { createNamespace, deleteNamespace, nsRun } from '../helpers/lab.js';
import { runCli } from '../helpers/cli.js';
import { FIXTURES } from '../helpers/paths.js';
import { cutNftTable, filterSection, hasForeignNatPrerouting, nftBackend } from '../../agent/firewall/live.js';
import { normalHash } from '../../agent/firewall/diff.js';
import { hashTexts } from '../../agent/firewall/apply.js';

const POLICY = `
version: 1
rules:
  - { name: web, port: 8080, from: any }
  - { name: ssh, port: 22, from: ["192.0.2.0/24"], rate: 6/minute }
`;
const OTHER = POLICY.replace('8080', '8081');

const DOCKER_NAT = `table ip nat {
	chain PREROUTING { type nat hook prerouting priority dstnat; policy accept; fib daddr type local counter jump DOCKER; }
	chain DOCKER { iifname != "docker0" tcp dport 9090 counter dnat to 172.17.0.2:80; }
}
`;

/** A namespace, a scratch dir and an nft on PATH that logs its arguments, one line a call; removed even on failure. */
async function withBox(fn: (b: { ns: string; dir: string; calls: () => string[]; apply: (policy: string, ...extra: string[]) => ReturnType<typeof runCli> }) => Promise<void>): Promise<void> {
  const ns = createNamespace('reads');
  const dir = mkdtempSync(`${tmpdir()}/pw-reads-`);
  try {
    mkdirSync(`${dir}/bin`);
    const real = ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].find((p) => {
      try {
        return readFileSync(p).length > 0;
      } catch {
        return false;
      }
    })!;
    writeFileSync(`${dir}/bin/nft`, `#!/bin/sh\nprintf '%s\\n' "$*" >> ${dir}/calls\nexec ${real} "$@"\n`);
    chmodSync(`${dir}/bin/nft`, 0o755);
    const calls = () => {
      try {
        // The script is loaded from the new backup's directory: `-f …/new.nft` is written `-f FILE`.
        const lines = readFileSync(`${dir}/calls`, 'utf8').split('\n').filter(Boolean).map((l) => l.replace(/^-f \/\S+\/backups\/[^/]+\/new\.nft$/, '-f FILE'));
        rmSync(`${dir}/calls`);
        return lines;
      } catch {
        return [];
      }
    };
    const apply = (policy: string, ...extra: string[]) =>
      runCli(['apply', '--policy', policy, '--netns', ns, '--state-dir', `${dir}/state`, '--yes', '--confirm', '0', ...extra], { PATH: `${dir}/bin:${process.env.PATH}` });
    await fn({ ns, dir, calls, apply });
  } finally {
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
}

test('our table is cut out of a ruleset listing byte for byte; a nat prerouting chain is looked for outside it', () => {
  const ours = 'table inet portwarden {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tcomment "type nat hook prerouting"\n\t}\n}\n';
  const foreign = 'table inet zzz {\n\tchain c {\n\t\tcomment "table inet portwarden {"\n\t}\n}\ntable ip portwarden {\n\tchain c {\n\t}\n}\n';
  assert.equal(cutNftTable(foreign + ours + foreign), ours);
  assert.equal(cutNftTable(ours), ours);
  assert.equal(cutNftTable(foreign), null);
  assert.equal(cutNftTable(''), null);
  assert.equal(hasForeignNatPrerouting(ours + foreign), false, 'the words inside our own table do not count');
  assert.equal(hasForeignNatPrerouting(ours + DOCKER_NAT.replace(/ \{ /g, ' {\n').replace(/; \}/g, ';\n}')), true);
  const save = '*nat\n:INPUT ACCEPT [0:0]\n-A INPUT -j PORTWARDEN-INPUT\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:PORTWARDEN-INPUT - [0:0]\n-A INPUT -j PORTWARDEN-INPUT\nCOMMIT\n';
  assert.equal(filterSection(save), '*filter\n:INPUT ACCEPT [0:0]\n:PORTWARDEN-INPUT - [0:0]\n-A INPUT -j PORTWARDEN-INPUT\nCOMMIT\n');
});

test('apply --yes asks nft twice: one listing before (backup, baseline, drift check) and the load; status still sees it in place', async (t) => {
  if (!needsRootAnd(t, 'nft', 'ip', 'nsenter')) return;
  await withBox(async ({ ns, dir, calls, apply }) => {
    writeFileSync(`${dir}/p.yaml`, POLICY);
    writeFileSync(`${dir}/o.yaml`, OTHER);
    let r = await apply(`${dir}/p.yaml`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(calls(), ['-s list ruleset', '-f FILE'], 'over nothing');
    r = await apply(`${dir}/o.yaml`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(calls(), ['-s list ruleset', '-f FILE'], 'over our own earlier apply');
    r = await apply(`${dir}/o.yaml`);
    assert.match(r.stdout, /^already applied/m);
    assert.deepEqual(calls(), ['-s list ruleset'], 'unchanged');
    // The backup holds the ruleset and our table as they were before the last load.
    const backups = readdirSync(`${dir}/state/backups`).sort();
    const last = `${dir}/state/backups/${backups.at(-1)}`;
    assert.match(readFileSync(`${last}/ours.nft`, 'utf8'), /^table inet portwarden \{\n/);
    assert.equal(readFileSync(`${last}/ours.nft`, 'utf8'), cutNftTable(readFileSync(`${last}/full.nft`, 'utf8')));
    assert.match(readFileSync(`${last}/new.nft`, 'utf8'), /^table inet portwarden \{\}\ndelete table inet portwarden\n/m, 'the script loaded');
    const status = JSON.parse((await runCli(['status', '--json', '--netns', ns, '--state-dir', `${dir}/state`])).stdout) as { live: string };
    assert.equal(status.live, 'in place');
    // A hand edit of our table is still drift.
    nsRun(ns, 'nft', ['add', 'rule', 'inet', 'portwarden', 'input', 'tcp', 'dport', '7', 'accept']);
    const changed = JSON.parse((await runCli(['status', '--json', '--netns', ns, '--state-dir', `${dir}/state`])).stdout) as { live: string };
    assert.equal(changed.live, 'changed');
  });
});

test('with a nat prerouting chain in another table the published port the policy refuses is still warned about', async (t) => {
  if (!needsRootAnd(t, 'nft', 'ip', 'nsenter')) return;
  await withBox(async ({ ns, dir, calls, apply }) => {
    writeFileSync(`${dir}/p.yaml`, POLICY);
    nsRun(ns, 'nft', ['-f', '-'], DOCKER_NAT);
    calls();
    const r = await apply(`${dir}/p.yaml`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^warning: tcp\/9090 is published to a container \(→ 172\.17\.0\.2:80, ip nat DOCKER handle \d+\), but the policy \(no rule covers it\) lets no one reach it/m, r.stderr);
    assert.deepEqual(calls().sort(), ['-f FILE', '-j list ruleset', '-s list ruleset'], 'the JSON listing for the warning runs beside the others');
  });
});

test("the drift hash of a script is that of the kernel's listing of it, for every golden nft script", async (t) => {
  if (!needsRootAnd(t, 'nft', 'ip', 'nsenter')) return;
  const ns = createNamespace('hash');
  try {
    const scripts = readdirSync(`${FIXTURES}golden`).filter((f) => f.endsWith('.nft'));
    assert.ok(scripts.length >= 5);
    for (const f of scripts) {
      const script = readFileSync(`${FIXTURES}golden/${f}`, 'utf8');
      nsRun(ns, 'nft', ['-f', '-'], script);
      const listed = await nftBackend(ns).readOurs();
      assert.ok(listed);
      assert.notEqual(listed.nft, script);
      assert.equal(normalHash(listed), normalHash({ nft: script }), f);
    }
  } finally {
    deleteNamespace(ns);
  }
});

test('a rate limit filling its set at run time is not drift', async (t) => {
  if (!needsRootAnd(t, 'nft', 'ip', 'nsenter')) return;
  await withBox(async ({ ns, dir, apply }) => {
    writeFileSync(`${dir}/p.yaml`, POLICY);
    const r = await apply(`${dir}/p.yaml`);
    assert.equal(r.code, 0, r.stderr);
    // What `update @rate_…` does for each new SSH source.
    const set = /set (rate_\S+_v4) \{/.exec(nsRun(ns, 'nft', ['list', 'table', 'inet', 'portwarden']))![1]!;
    nsRun(ns, 'nft', ['add', 'element', 'inet', 'portwarden', set, '{ 192.0.2.7 timeout 2m }']);
    assert.match(nsRun(ns, 'nft', ['-s', 'list', 'set', 'inet', 'portwarden', set]), /192\.0\.2\.7/, 'the element is listed');
    const status = JSON.parse((await runCli(['status', '--json', '--netns', ns, '--state-dir', `${dir}/state`])).stdout) as { live: string };
    assert.equal(status.live, 'in place');
  });
});

test('a record from before the normal form (hash of the listing, no liveForm) is still compared as it was', async (t) => {
  if (!needsRootAnd(t, 'nft', 'ip', 'nsenter')) return;
  await withBox(async ({ ns, dir, apply }) => {
    writeFileSync(`${dir}/p.yaml`, POLICY);
    assert.equal((await apply(`${dir}/p.yaml`)).code, 0);
    const record = JSON.parse(readFileSync(`${dir}/state/applied.json`, 'utf8')) as Record<string, unknown>;
    assert.equal(record.liveForm, 'normal');
    delete record.liveForm;
    record.liveHash = hashTexts(await nftBackend(ns).readOurs());
    writeFileSync(`${dir}/state/applied.json`, JSON.stringify(record));
    const live = async () => (JSON.parse((await runCli(['status', '--json', '--netns', ns, '--state-dir', `${dir}/state`])).stdout) as { live: string }).live;
    assert.equal(await live(), 'in place');
    nsRun(ns, 'nft', ['add', 'rule', 'inet', 'portwarden', 'input', 'tcp', 'dport', '7', 'accept']);
    assert.equal(await live(), 'changed');
    // The next apply over it sees its own rules in place: the diff is against the recorded texts.
    nsRun(ns, 'nft', ['delete', 'rule', 'inet', 'portwarden', 'input', 'handle', /tcp dport 7 accept # handle (\d+)/.exec(nsRun(ns, 'nft', ['-a', 'list', 'chain', 'inet', 'portwarden', 'input']))![1]!]);
    const again = await apply(`${dir}/p.yaml`);
    assert.match(again.stdout, /^already applied/m, again.stdout);
  });
});

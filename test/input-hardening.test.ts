// Hostile input against the built CLI, with real files (and real namespaces where a listener is
// needed): each test here once failed (a hang, a crash, raw escapes, a leaked secret, a misleading
// message) and pins the fix.
/* eslint-disable no-control-regex -- these tests look for control characters on purpose */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { needsRootAnd } from './helpers/env.js';
import { createNamespace, deleteNamespace, startListeners, type ListenSpec } from './helpers/lab.js';
import { contractProblems, runBounded } from './helpers/bounded.js';
import { globMatches } from '../agent/policy/compile.js';
import { printable } from '../agent/commands/output.js';
import { listenersTable } from '../agent/commands/present.js';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(`${tmpdir()}/pw-hard-`);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** n IPv4 addresses that no merge can combine (every other one). */
function spreadAddresses(n: number): string[] {
  const out: string[] = [];
  for (let j = 0; j < n; j++) {
    const i = j * 2;
    out.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  }
  return out;
}

function assertContract(r: Awaited<ReturnType<typeof runBounded>>, what: string): void {
  assert.deepEqual(contractProblems(r), [], `${what}: ${r.stderr.slice(0, 500)}`);
}

// 13 ──────────────────────────────────────────────────────────────────────────────────────────
test('a hostname glob of many stars against a long hostname is decided at once, and still matches as before', async (t) => {
  if (!needsRootAnd(t, 'unshare')) return;
  const dir = tempDir(t);
  const file = `${dir}/p.yaml`;
  writeFileSync(
    file,
    'version: 1\nhosts:\n  - match: "************************zz"\n    rules: [{name: never, port: 1}]\n' +
      '  - match: "A*a?A"\n    rules: [{name: yes, port: 2}]\nrules:\n  - name: base\n    port: 3\n',
  );
  const host = 'a'.repeat(64);
  const r = await runBounded(['validate', '--policy', file], { wrap: ['unshare', '--uts', '--', 'sh', '-c', 'hostname "$0" && exec "$@"', host] });
  assert.equal(r.timedOut, false, `validate hung on the glob (${r.ms} ms)`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${file}: ok (2 rules in effect on this host)\n`);
  assert.ok(r.ms < 5000, `${r.ms} ms`);
});

test('globMatches: * any run, ? one character, case-insensitive', () => {
  const cases: [string, string, boolean][] = [
    ['*', '', true], ['?', '', false], ['mx-*', 'MX-01', true], ['mx-?', 'mx-01', false], ['mx-??', 'mx-01', true],
    ['*-eu-*', 'bastion-eu-1', true], ['*-eu-*', 'bastion-us-1', false], ['a*b*c', 'abxbxc', true], ['a*b*c', 'abxbx', false],
    ['*.example.com', 'www.example.com', true], ['*.example.com', 'wwwXexample.com', false], ['**a**', 'bab', true],
  ];
  for (const [glob, name, want] of cases) assert.equal(globMatches(glob, name), want, `${glob} vs ${name}`);
  const started = Date.now();
  assert.equal(globMatches('*'.repeat(200) + 'zz', 'a'.repeat(253)), false);
  assert.ok(Date.now() - started < 500);
});

// 14 ──────────────────────────────────────────────────────────────────────────────────────────
test('a source group of 200 000 addresses validates and renders (no call-stack overflow)', async (t) => {
  const dir = tempDir(t);
  const file = `${dir}/p.yaml`;
  writeFileSync(file, `version: 1\nsources:\n  big: [${spreadAddresses(200_000).join(', ')}]\nrules:\n  - name: a\n    port: 22\n    from: [big]\n`);
  const v = await runBounded(['validate', '--policy', file], { timeoutMs: 30_000 });
  assertContract(v, 'validate');
  assert.equal(v.code, 0, v.stderr);
  const r = await runBounded(['rules', '--policy', file], { timeoutMs: 30_000 });
  assertContract(r, 'rules');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /10\.6\.26\.126/); // the last address (199 999 × 2 = 0x061a7e)
});

test('more addresses in one from: than the documented limit: file:line:col and exit 2', async (t) => {
  const dir = tempDir(t);
  const file = `${dir}/p.yaml`;
  writeFileSync(file, `version: 1\nrules:\n  - name: a\n    port: 22\n    from: [${spreadAddresses(250_001).join(', ')}]\n`);
  const r = await runBounded(['rules', '--policy', file], { timeoutMs: 30_000 });
  assertContract(r, 'rules');
  assert.equal(r.code, 2, r.stderr.slice(0, 300));
  assert.equal(r.stderr, `${file}:5:11: rules[0].from: expands to more than 250000 addresses and prefixes, the most a rule may have (after expanding groups): use wider prefixes\n`);
});

test('groups that double at every level, or nest 20 000 deep, neither blow up nor recurse', async (t) => {
  const dir = tempDir(t);
  const doubling = `${dir}/doubling.yaml`;
  const lines = ['version: 1', 'sources:', '  g0: [10.0.0.1, 10.0.0.2]'];
  for (let i = 1; i <= 40; i++) lines.push(`  g${i}: [g${i - 1}, g${i - 1}]`);
  lines.push('rules:', '  - name: a', '    port: 22', '    from: [g40]');
  writeFileSync(doubling, lines.join('\n') + '\n');
  // A small heap: the old code expanded 2^41 entries and must fail here fast, not eat the machine.
  const r = await runBounded(['validate', '--policy', doubling], { env: { NODE_OPTIONS: '--max-old-space-size=256' } });
  assertContract(r, 'doubling groups');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^.*doubling\.yaml:20:3: sources\.g17: expands to more than 250000 addresses and prefixes, the most a group may have/m);

  const chain = `${dir}/chain.yaml`;
  const c = ['version: 1', 'sources:', '  g0: [10.0.0.1]'];
  for (let i = 1; i <= 20_000; i++) c.push(`  g${i}: [g${i - 1}]`);
  c.push('rules:', '  - name: a', '    port: 22', '    from: [g20000]');
  writeFileSync(chain, c.join('\n') + '\n');
  const r2 = await runBounded(['rules', '--policy', chain], { timeoutMs: 20_000 });
  assertContract(r2, 'group chain');
  assert.equal(r2.code, 0, r2.stderr);
  assert.match(r2.stdout, /10\.0\.0\.1/);
});

test('100 000 schema errors, or 200 000 bad addresses, answer within seconds with the first 100 and a count', async (t) => {
  const dir = tempDir(t);
  const rules = `${dir}/rules.yaml`;
  writeFileSync(rules, `version: 1\nrules: [${Array(100_000).fill('1').join(',')}]\n`);
  const r = await runBounded(['validate', '--policy', rules]);
  assertContract(r, 'bad rules');
  assert.equal(r.code, 2);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 101);
  assert.equal(lines[0], `${rules}:2:9: rules[0]: must be object`);
  assert.equal(lines[100], `${rules}: at least 900 more problems not shown`);
  const addrs = `${dir}/addrs.yaml`;
  writeFileSync(addrs, `version: 1\nrules:\n  - name: a\n    port: 22\n    from: [${Array(200_000).fill('300.1.1.1').join(',')}]\n`);
  const a = await runBounded(['validate', '--policy', addrs]);
  assertContract(a, 'bad addresses');
  assert.equal(a.code, 2);
  assert.equal(a.stderr.trim().split('\n').at(-1), `${addrs}: 199900 more problems not shown`);
});

// 15 ──────────────────────────────────────────────────────────────────────────────────────────
const ESCAPES = '\x1b]0;pwn\x07\x1b[2J'; // retitle the terminal, clear the screen: 12 bytes, fits comm

test('process names with terminal escapes are escaped in scan/check output, exact in JSON', async (t) => {
  if (!needsRootAnd(t, 'ss', 'nsenter', 'ip')) return;
  const ns = createNamespace('esc');
  const dir = tempDir(t);
  const children: ChildProcess[] = [];
  t.after(() => {
    for (const c of children) c.kill();
    deleteNamespace(ns);
  });
  children.push(await startListeners(ns, [{ proto: 'tcp', host: '0.0.0.0', port: 8080 }], ESCAPES));
  const scan = await runBounded(['scan', '--netns', ns]);
  assert.equal(scan.code, 0, scan.stderr);
  assert.doesNotMatch(scan.stdout + scan.stderr, /[\x00-\x08\x0b-\x1f\x7f]/, 'no control character reaches the terminal');
  assert.ok(scan.stdout.includes('\\x1b]0;pwn\\x07\\x1b[2J('), scan.stdout);
  const json = await runBounded(['scan', '--json', '--netns', ns]);
  const names = (JSON.parse(json.stdout) as { listeners: { processes: { name: string }[] }[] }).listeners.flatMap((l) => l.processes.map((p) => p.name));
  assert.deepEqual(names, [ESCAPES], 'JSON keeps the exact name');
  const policy = `${dir}/p.yaml`;
  writeFileSync(policy, 'version: 1\nrules:\n  - name: web\n    port: 8080\n    process: [nginx]\n');
  const check = await runBounded(['check', '--policy', policy, '--netns', ns]);
  assert.equal(check.code, 1, check.stderr);
  assert.doesNotMatch(check.stdout + check.stderr, /[\x00-\x08\x0b-\x1f\x7f]/);
  assert.match(check.stdout, /held by \\x1b\]0;pwn\\x07\\x1b\[2J \(pid \d+/);
});

test('printable escapes controls, C1, bidi overrides and backslashes; interface names in the table too', () => {
  assert.equal(printable('nginx: worker'), 'nginx: worker');
  assert.equal(printable('a\x1b[2J\tb\\c\x9b\u202ed\u00e9'), 'a\\x1b[2J\\x09b\\\\c\\x9b\\u202ed\u00e9');
  const table = listenersTable([
    { proto: 'tcp', family: 6, address: 'fe80::1', port: 80, interface: 'e\x1b[2J', scope: 'address', dualStack: false, inode: 1, processes: [{ pid: 1, name: 'n', exe: null, user: 'u\x07', cmdline: null }] },
  ]);
  assert.doesNotMatch(table, /[\x00-\x09\x0b-\x1f]/);
  assert.match(table, /\[fe80::1\]%e\\x1b\[2J:80 .* n\(1,u\\x07\)/);
});

// 18 ──────────────────────────────────────────────────────────────────────────────────────────
test('--output into a missing directory, a directory, a FIFO or a symbolic link: one line naming the path, exit 2, nothing replaced', async (t) => {
  const dir = tempDir(t);
  const policy = `${dir}/p.yaml`;
  writeFileSync(policy, 'version: 1\nrules:\n  - name: ssh\n    port: 22\n');
  const checkOne = (r: Awaited<ReturnType<typeof runBounded>>, path: string, what: RegExp) => {
    assertContract(r, path);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(r.stderr.includes(path) && !r.stderr.includes('.tmp'), r.stderr);
    assert.match(r.stderr, what);
  };
  // init refuses before it scans; the scan would only read this host's sockets.
  const missing = `${dir}/nodir/policy.yaml`;
  checkOne(await runBounded(['init', '--output', missing]), missing, /the directory .*nodir does not exist/);
  const sub = `${dir}/out`;
  mkdirSync(sub);
  checkOne(await runBounded(['rules', '--policy', policy, '--output', sub]), sub, /is a directory/);
  checkOne(await runBounded(['init', '--output', sub, '--force']), sub, /is a directory/);
  const fifo = `${dir}/fifo`;
  execFileSync('mkfifo', [fifo]);
  checkOne(await runBounded(['rules', '--policy', policy, '--output', fifo]), fifo, /is a FIFO/);
  assert.ok(lstatSync(fifo).isFIFO(), 'the FIFO is still there');
  const link = `${dir}/stdout`;
  symlinkSync('/proc/self/fd/1', link);
  checkOne(await runBounded(['rules', '--policy', policy, '--output', link]), link, /symbolic link/);
  assert.ok(lstatSync(link).isSymbolicLink(), 'the link is still a link');
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temp file left behind');
  const ok = await runBounded(['rules', '--policy', policy, '--output', `${dir}/rules.nft`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(existsSync(`${dir}/rules.nft`));
});

// 20 ──────────────────────────────────────────────────────────────────────────────────────────
test('a YAML alias bomb is bad input with its place: exit 2, file:line:col', async (t) => {
  const dir = tempDir(t);
  const file = `${dir}/bomb.yaml`;
  const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < 8; i++) {
    const [prev, cur] = [String.fromCharCode(96 + i), String.fromCharCode(97 + i)];
    levels.push(`${cur}: &${cur} [${Array(9).fill(`*${prev}`).join(',')}]`);
  }
  writeFileSync(file, `version: 1\n${levels.join('\n')}\nrules: []\n`);
  const r = await runBounded(['validate', '--policy', file]);
  assertContract(r, 'alias bomb');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^${file}:4:8: aliases here expand to too much data`));
});

// 21 ──────────────────────────────────────────────────────────────────────────────────────────
test('a policy that is not a regular file, or is larger than 64 MiB, is refused at once (exit 2)', async (t) => {
  const dir = tempDir(t);
  const fifo = `${dir}/fifo.yaml`;
  execFileSync('mkfifo', ['-m', '600', fifo]);
  const big = `${dir}/big.yaml`;
  writeFileSync(big, '');
  truncateSync(big, 64 * 1024 * 1024 + 1);
  const cases: [string, string][] = [
    ['/dev/zero', '/dev/zero: not a regular file (it is a character device)'],
    [fifo, `${fifo}: not a regular file (it is a FIFO)`],
    [dir, `${dir}: not a regular file (it is a directory)`],
    [big, `${big}: 67108865 bytes is more than the 64 MiB a policy or config file may have`],
  ];
  for (const [path, message] of cases) {
    const r = await runBounded(['validate', '--policy', path], { env: { NODE_OPTIONS: '--max-old-space-size=256' } });
    assertContract(r, path);
    assert.equal(r.code, 2, `${path}: ${r.stderr}`);
    assert.equal(r.stderr, `${message}\n`);
  }
});

// 22 ──────────────────────────────────────────────────────────────────────────────────────────
test('IPv4-mapped addresses, zone ids and leading zeros are named for what they are', async (t) => {
  const dir = tempDir(t);
  const file = `${dir}/p.yaml`;
  writeFileSync(file, 'version: 1\nrules:\n  - name: a\n    port: 22\n    from: ["::ffff:10.0.0.1", "fe80::1%eth0", "10.0.0.0/08", "010.0.0.1", "::ffff:10.0.0.0/104"]\n');
  const r = await runBounded(['validate', '--policy', file]);
  assert.equal(r.code, 2);
  assert.deepEqual(r.stderr.trim().split('\n'), [
    `${file}:5:12: rules[0].from[0]: "::ffff:10.0.0.1" is an IPv4-mapped IPv6 address: IPv4 clients are matched by their IPv4 address (write 10.0.0.1)`,
    `${file}:5:31: rules[0].from[1]: "fe80::1%eth0": zone ids (%eth0) are not allowed in a policy: a source is matched by its address alone (write fe80::1)`,
    `${file}:5:47: rules[0].from[2]: "10.0.0.0/08": a leading zero in the prefix length is ambiguous: write 10.0.0.0/8`,
    `${file}:5:62: rules[0].from[3]: "010.0.0.1": leading zeros are ambiguous (some tools read them as octal): write 10.0.0.1 if you mean decimal`,
    `${file}:5:75: rules[0].from[4]: "::ffff:10.0.0.0/104" is an IPv4-mapped IPv6 address: IPv4 clients are matched by their IPv4 address (write 10.0.0.0/8)`,
  ]);
});

// 26 ──────────────────────────────────────────────────────────────────────────────────────────
test('invalid UTF-8 is an error at its line:col; a second YAML document gets our own message', async (t) => {
  const dir = tempDir(t);
  const bad = `${dir}/bad.yaml`;
  writeFileSync(bad, Buffer.concat([Buffer.from('version: 1\nrules:\n  - name: a\n    port: 22\n    process: ["ss'), Buffer.from([0xff]), Buffer.from('hd"]\n')]));
  const r = await runBounded(['validate', '--policy', bad]);
  assert.equal(r.code, 2, r.stdout);
  assert.equal(r.stderr, `${bad}:5:18: invalid UTF-8 (byte 0xff): the file must be UTF-8 text\n`);
  const multi = `${dir}/multi.yaml`;
  writeFileSync(multi, 'version: 1\nrules: []\n---\nversion: 1\nrules: []\n');
  const m = await runBounded(['validate', '--policy', multi]);
  assert.equal(m.code, 2);
  assert.equal(m.stderr, `${multi}:3:1: a second YAML document starts here: a policy or config file holds one document (remove this "---" and what follows it)\n`);
});

test('as root, a policy in a directory others can write (without the sticky bit) is refused', async (t) => {
  if (!needsRootAnd(t)) return;
  const dir = tempDir(t);
  const sub = `${dir}/open`;
  mkdirSync(sub);
  const file = `${sub}/p.yaml`;
  writeFileSync(file, 'version: 1\nrules: []\n');
  chmodSync(file, 0o644);
  chmodSync(sub, 0o777);
  const r = await runBounded(['validate', '--policy', file]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `${file}: refusing to use it as root: it is in ${sub}, which is writable by others (fix: chmod go-w ${sub})\n`);
  chmodSync(sub, 0o1777); // like /tmp: others cannot rename root's file away
  const sticky = await runBounded(['validate', '--policy', file]);
  assert.equal(sticky.code, 0, sticky.stderr);
});

test('process command lines (which may hold passwords) are read only with scan --cmdline', async (t) => {
  if (!needsRootAnd(t, 'ss', 'nsenter', 'ip')) return;
  const ns = createNamespace('cmd');
  const children: ChildProcess[] = [];
  t.after(() => {
    for (const c of children) c.kill();
    deleteNamespace(ns);
  });
  // The spec (with its extra field) is the listener's argv: a secret on its command line.
  children.push(await startListeners(ns, [{ proto: 'tcp', host: '0.0.0.0', port: 8081, password: 'hunter2' } as ListenSpec]));
  const plain = await runBounded(['scan', '--json', '--netns', ns]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.doesNotMatch(plain.stdout, /hunter2/);
  const procs = (JSON.parse(plain.stdout) as { listeners: { processes: { cmdline: string | null }[] }[] }).listeners[0]!.processes;
  assert.deepEqual(procs.map((p) => p.cmdline), [null]);
  const dir = tempDir(t);
  writeFileSync(`${dir}/p.yaml`, 'version: 1\nrules: []\n');
  const check = await runBounded(['check', '--json', '--policy', `${dir}/p.yaml`, '--netns', ns]);
  assert.doesNotMatch(check.stdout, /hunter2/);
  const opted = await runBounded(['scan', '--json', '--cmdline', '--netns', ns]);
  assert.equal(opted.code, 0, opted.stderr);
  assert.match(opted.stdout, /hunter2/);
});

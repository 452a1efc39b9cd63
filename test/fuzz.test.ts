// Fuzz: every command of the built CLI against hostile arguments, policies and state files (fixed
// cases from the hardening issue, then fast-check mutations). Each run is traced with strace, so
// a write anywhere outside the test's temp dir is caught, and must: exit 0-3, print no stack
// trace and no "unexpected failure", and finish within 10 s. Everything that could touch a
// firewall runs with --netns of a namespace made here (and apply/remove are not run at all).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import fc from 'fast-check';
import { needsRootAnd } from './helpers/env.js';
import { createNamespace, deleteNamespace } from './helpers/lab.js';
import { CLI, ROOT } from './helpers/paths.js';

const TIME_LIMIT_MS = 10_000;

interface Run {
  args: string[];
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  writes: string[];
}

/** Syscalls that change the file system (x86_64 names); for open(at), only with a writing flag. */
const CALLS = ['openat', 'open', 'creat', 'mkdir', 'mkdirat', 'rename', 'renameat', 'renameat2', 'unlink', 'unlinkat', 'rmdir', 'symlink', 'symlinkat', 'link', 'linkat', 'chmod', 'fchmodat', 'truncate', 'utimensat', 'chown', 'fchownat', 'lchown', 'mknod', 'mknodat'];
const MODIFYING = new RegExp(`^(${CALLS.join('|')})\\((.*)\\) = `);

/** Paths the traced process tree created, changed or removed (from strace -ff logs). */
function writtenPaths(logPrefix: string, logDir: string, cwd: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(logDir).filter((n) => n.startsWith(logPrefix + '.'))) {
    for (const line of readFileSync(`${logDir}/${f}`, 'utf8').split('\n')) {
      const m = MODIFYING.exec(line);
      if (!m) continue;
      const [, call, args] = m as unknown as [string, string, string];
      if ((call === 'open' || call === 'openat') && !/O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(args)) continue;
      let strings = [...args.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((s) => s[1]!);
      if (call === 'symlink' || call === 'symlinkat') strings = strings.slice(1); // the first is the link's text
      for (const p of strings) out.push(isAbsolute(p) ? resolve(p) : `${resolve(cwd, p)}${args.startsWith('AT_FDCWD') || !call.endsWith('at') ? '' : ' (relative to a dirfd)'}`);
    }
  }
  return out;
}

function outsideWrites(run: Run, allowed: string): string[] {
  return run.writes.filter((p) => !(p === allowed || p.startsWith(allowed + '/') || p === '/dev/null' || p === '/dev/tty'));
}

function violations(run: Run, allowed: string): string[] {
  const v: string[] = [];
  if (run.timedOut) v.push(`still running after ${TIME_LIMIT_MS} ms`);
  else if (![0, 1, 2, 3].includes(run.code)) v.push(`exit code ${run.code}`);
  if (/^ {4}at /m.test(run.stderr)) v.push('stack trace on stderr');
  if (/unexpected failure/.test(run.stderr)) v.push(`"unexpected failure": ${run.stderr.trim().split('\n')[0]}`);
  for (const p of outsideWrites(run, allowed)) v.push(`wrote outside the temp dir: ${p}`);
  return v;
}

/**
 * Contract breaks this fuzz found in code other helpers own, reported to them rather than fixed
 * here: listed so the test pins everything else. FUZZ_STRICT=1 fails on these too; delete an
 * entry when its owner has fixed it.
 */
const KNOWN: { owner: string; command: RegExp; problem: RegExp }[] = [];

test('fuzz: every command, hostile arguments and files: exit 0-3, no stack trace, no hang, no write outside its temp dir', async (t) => {
  if (!needsRootAnd(t, 'ss', 'nsenter', 'ip', 'nft', 'strace', 'mkfifo')) return;
  const started = Date.now();
  const ns = createNamespace('fz');
  const dir = mkdtempSync(`${tmpdir()}/pw-fuzz-`);
  const logs = mkdtempSync(`${tmpdir()}/pw-fuzz-trace-`);
  t.after(() => {
    deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
    rmSync(logs, { recursive: true, force: true });
  });

  let n = 0;
  const run = (args: string[]): Promise<Run> =>
    new Promise((done) => {
      const prefix = `r${n++}`;
      const child = spawn(
        'strace',
        ['-f', '-ff', '-qq', '-s', '4096', '-e', 'status=successful', '-e', `trace=${CALLS.join(',')}`, '-o', `${logs}/${prefix}`, process.execPath, CLI, ...args],
        { cwd: dir, detached: true, env: { ...process.env, HOME: dir, TMPDIR: dir, NO_COLOR: '1', PORTWARDEN_DEBUG: '', SSH_CONNECTION: '', SSH_CLIENT: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      let timedOut = false;
      // The whole process group: killing strace alone would leave the traced CLI running.
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* gone meanwhile */
        }
      }, TIME_LIMIT_MS);
      child.on('close', (code) => {
        clearTimeout(timer);
        done({ args, code: code ?? 99, stdout, stderr, timedOut, writes: writtenPaths(prefix, logs, dir) });
      });
    });

  const failures: string[] = [];
  const known: string[] = [];
  const judge = (r: Run) => {
    const line = r.args.join(' ');
    const v = violations(r, dir);
    const mine = v.filter((x) => process.env.FUZZ_STRICT === '1' || !KNOWN.some((k) => k.command.test(line + ' ') && k.problem.test(x)));
    const report = (list: string[]) => `portwarden ${r.args.map((a) => JSON.stringify(a)).join(' ')}\n    ${list.join('\n    ')}`;
    if (mine.length) failures.push(report(mine));
    if (v.length > mine.length) known.push(report(v.filter((x) => !mine.includes(x))));
  };
  const runAll = async (cases: string[][], width = 4) => {
    const queue = [...cases];
    await Promise.all(Array.from({ length: width }, async () => {
      for (let c = queue.shift(); c; c = queue.shift()) judge(await run(c));
    }));
  };

  // ── hostile files ───────────────────────────────────────────────────────────────────────────
  const file = (name: string, data: string | Buffer) => {
    writeFileSync(`${dir}/${name}`, data);
    return `${dir}/${name}`;
  };
  const good = readFileSync(`${ROOT}rules/examples/bastion.yaml`, 'utf8');
  const bomb = ['version: 1', 'a: &a ["x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < 8; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
  const policies = [
    file('good.yaml', good),
    file('bomb.yaml', bomb.join('\n') + '\nrules: []\n'),
    file('multi.yaml', 'version: 1\nrules: []\n---\nversion: 1\nrules: []\n'),
    file('utf8.yaml', Buffer.concat([Buffer.from('version: 1\nrules:\n  - name: a\n    port: 22\n    process: ["\x1b]0;x\x07'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"]\n')])),
    file('addr.yaml', 'version: 1\nrules:\n  - {name: a, port: 22, from: ["::ffff:10.0.0.1", "fe80::1%eth0", "10.0.0.0/08", "010.0.0.1", "1.2.3.4/", "::/-1"]}\n'),
    file('glob.yaml', `version: 1\nhosts:\n  - match: "${'*'.repeat(40)}zz"\n    rules: []\nrules: []\n`),
    file('deep.yaml', `version: 1\nrules: []\nx: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`),
    file('nul.yaml', 'version: 1\0\nrules: []\n'),
    file('tags.yaml', 'version: !!binary AAAA\nrules: !!set {a, b}\nx: !custom 1\n'),
    file('keys.yaml', 'version: 1\nrules: []\n? [a, b]\n: c\n<<: {x: 1}\n__proto__: {polluted: true}\nconstructor: 1\n'),
    file('types.yaml', 'version: 1\nrules:\n  - {name: a, port: 1e400, from: 12, process: [{}], rate: "0/second"}\n  - {name: "\u202e", port: "-1--5"}\n  - {name: b, port: [99999, "3-2", "0x10"]}\n'),
    file('groups.yaml', 'version: 1\nsources:\n  a: [b, "::", "0.0.0.0/0"]\n  b: [a, c]\n  c: [constructor, __proto__, hasOwnProperty]\nrules:\n  - {name: x, port: 22, from: [a, any]}\n  - {name: y, port: 22, from: [toString]}\n'),
    file('empty.yaml', ''),
    file('comment.yaml', '# nothing\n'),
    file('scalar.yaml', '42\n'),
    file('long.yaml', `version: 1\nrules: []\nx: "${'a'.repeat(1_000_000)}"\n`),
    file('bom.yaml', '\ufeffversion: 1\nrules: []\n'),
    file('crlf.yaml', 'version: 1\r\nrules:\r\n  - name: a\r\n    port: 22\r\n'),
  ];
  const fifo = `${dir}/fifo.yaml`;
  execFileSync('mkfifo', ['-m', '600', fifo]);
  const sparse = file('sparse.yaml', '');
  truncateSync(sparse, 64 * 1024 * 1024 + 4096);
  symlinkSync('/proc/self/fd/1', `${dir}/stdout-link`);
  mkdirSync(`${dir}/adir`);
  policies.push(fifo, sparse, '/dev/zero', '/dev/null', `${dir}/adir`, `${dir}/missing.yaml`, '', `${dir}/stdout-link`);

  // ── hostile state dirs (no file here ever names a namespace but ours: a rollback stays in it) ──
  const stateDir = (name: string, files: Record<string, string>) => {
    const d = `${dir}/${name}`;
    mkdirSync(d, { recursive: true });
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(resolve(d, f, '..'), { recursive: true });
      writeFileSync(`${d}/${f}`, text);
    }
    return d;
  };
  const past = new Date(Date.now() - 3_600_000).toISOString();
  const meta = JSON.stringify({ id: 'm', at: past, backend: 'nft', netns: ns, ours: null, previousApplied: null });
  const pending = (backup: string) => JSON.stringify({ id: 'p', backend: 'nft', netns: ns, deadline: past, backup, timerPid: null });
  const states = [
    stateDir('st-empty', {}),
    stateDir('st-garbage', { 'applied.json': '{', 'pending.json': '[]', 'last-result.json': '\xff\x00', 'state.json': '{"version":1,"tracked":{"x":{}}}', 'events.jsonl': 'garbage\n{"event":"opened"}\n{"at":1}\n' }),
    stateDir('st-types', { 'applied.json': '{"backend":"x","netns":5,"hash":null,"texts":[]}', 'pending.json': '{"deadline":"soon","backup":7,"timerPid":"x"}', 'state.json': '{"version":1,"tracked":{"a":{"finding":null,"status":"open"}}}', 'events.jsonl': '{"event":"opened","at":"2026-01-01T00:00:00Z","finding":{}}\n',
      'attempts/counters.json': '{"raw":{"at":"x","backend":"nft","rules":{"a":[1]},"sources":{}},"totals":{}}', 'attempts/sample-29990101T000000000Z.json': '{"at":"2999-01-01T00:00:00Z","backend":"nft","rules":{},"sources":[[1,2]]}' }),
    stateDir('st-traversal', { 'pending.json': pending('../../evil'), 'backups/.keep': '' }), // restores ../../evil/meta.json (ours)
    stateDir('st-missing-backup', { 'pending.json': pending('nope'), 'applied.json': pending('nope') }),
    stateDir('st-bad-meta', { 'pending.json': pending('b1'), 'backups/b1/meta.json': meta.replace(`"netns":"${ns}"`, '"netns":"../../etc"') }),
    stateDir('st-good-meta', { 'pending.json': pending('b1'), 'backups/b1/meta.json': meta }),
  ];
  stateDir('evil', { 'meta.json': meta });
  writeFileSync(`${dir}/state-file`, 'x');
  states.push(`${dir}/state-file`, fifo, `${dir}/no-such-state`, '');

  // ── fixed cases: every command ──────────────────────────────────────────────────────────────
  const N = ['--netns', ns];
  const cases: string[][] = [];
  // Each policy through one command (the loading is shared); the commands take turns.
  const policyCommands = [
    (p: string) => ['validate', '--policy', p],
    (p: string) => ['rules', '--policy', p, '--backend', 'iptables'],
    (p: string) => ['check', '--policy', p, ...N],
    (p: string) => ['report', '--policy', p, ...N],
    (p: string) => ['rules', '--policy', p, '--backend', 'ip6tables', '--output', `${dir}/out.txt`],
  ];
  policies.forEach((p, i) => cases.push(policyCommands[i % policyCommands.length]!(p), policyCommands[(i + 2) % policyCommands.length]!(p)));
  for (const s of states) {
    cases.push(['status', '--json', '--state-dir', s, ...N], ['alerts', '--open', '--json', '--state-dir', s], ['alerts', '--since', '1h', '--state-dir', s], ['attempts', '--json', '--state-dir', s, ...N]);
    // An empty --state-dir is the root directory to confirm/rollback (they would lock /apply.lock): reported, not run.
    if (s !== '') cases.push(['confirm', '--state-dir', s, ...N], ['rollback', '--state-dir', s, ...N]);
  }
  cases.push(
    ['scan', ...N], ['scan', '--json', '--cmdline', ...N], ['scan', '--netns', ''], ['scan', '--netns', '../../etc/passwd'], ['scan', '--netns', 'x'.repeat(300)], ['scan', '--netns', 'no-such-ns-pw'],
    ['scan', '--bogus'], ['scan', 'extra', 'positional'], ['scan', '--json=1'], ['check', '--fail-on', 'everything', ...N], ['check', '--policy'],
    ['init', ...N], ['init', '--output', `${dir}/init.yaml`, ...N], ['init', '--output', `${dir}/init.yaml`, ...N], ['init', '--output', `${dir}/nodir/p.yaml`, ...N], ['init', '--output', `${dir}/adir`, '--force', ...N],
    ['init', '--output', `${dir}/stdout-link`, '--force', ...N], ['init', '--output', fifo, '--force', ...N], ['init', '--output', '', ...N],
    ['rules', '--policy', policies[0]!, '--backend', 'pf'], ['rules', '--policy', policies[0]!, '--output', `${dir}/adir`], ['rules', '--policy', policies[0]!, '--output', fifo],
    ['rules', '--policy', policies[0]!, '--output', `${dir}/stdout-link`], ['rules', '--policy', policies[0]!, '--output', `${dir}/good.yaml/x`],
    ['explain', '22', '--from', '192.0.2.1', ...N], ['explain', '22/tcp', '--from', '::ffff:10.0.0.1', '--json', ...N], ['explain', '99999/tcp', '--from', '192.0.2.1', ...N],
    ['explain', '22/sctp', '--from', '192.0.2.1', ...N], ['explain', '22', '--from', '300.1.2.3', ...N], ['explain', '22', '--from', '', ...N], ['explain', '22', ...N], ['explain', '--from', '1.2.3.4', ...N],
    ['explain', '-1', '--from', '1.2.3.4', ...N], ['explain', '22', '--from', 'fe80::1%eth0', '--iif', '\x1b[2J', ...N], ['explain', '0x16', '--from', '1.2.3.4/24', ...N],
    ['alerts', '--since', 'forever'], ['alerts', '--since', '-5m', '--state-dir', states[0]!], ['alerts', '--since', '99999999999999999999d', '--state-dir', states[0]!],
    ['status', '--state-dir', states[0]!, '--netns', '../x'], ['confirm', '--netns', 'no-such-ns-pw', '--state-dir', states[0]!],
    ['attempts', '--since', 'forever', ...N], ['attempts', '--since', '0', ...N], ['attempts', '--port', '99999', ...N], ['attempts', '--top', '-1', ...N], ['attempts', '--port', '\x1b[2J', ...N],
    ['attempts', '--netns', '../x'], ['attempts', '--state-dir', states[0]!, '--netns', 'no-such-ns-pw'],
    ['nonsense'], [], ['--help'], ['help'], ['\x1b[2J'], ['scan', '--\x1b[2J'],
  );
  await runAll(cases);
  const fixedMs = Date.now() - started;

  // ── random: mutated policies against the policy commands, mutated state against the state ones ──
  const tokens = ['&a ', '*a', '---\n', '...\n', '!!binary ', '? ', ': ', '[', ']', '{', '}', '%YAML 1.1\n', '\0', '\xff', '\u202e', '\x1b[2J', '#', '\t', '\n  - ', '"', "'", '|', '>', '-', '*', '::ffff:', '%eth0', '/08', '0', '99999'];
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.constantFrom(...tokens), fc.string({ maxLength: 8 })) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
    fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 60 }), times: fc.integer({ min: 2, max: 50 }) }),
  );
  const mutate = (text: string, ms: { kind: string; at: number; text?: string; len?: number; times?: number }[]): string => {
    let s = text;
    for (const m of ms) {
      const at = s.length ? m.at % s.length : 0;
      if (m.kind === 'insert') s = s.slice(0, at) + m.text + s.slice(at);
      else if (m.kind === 'delete') s = s.slice(0, at) + s.slice(at + m.len!);
      else s = s.slice(0, at) + s.slice(at, at + m.len!).repeat(m.times!) + s.slice(at);
    }
    return s;
  };
  const examples = ['default.yaml', 'examples/bastion.yaml', 'examples/mail-relay.yaml', 'examples/web-server.yaml', 'examples/database.yaml'].map((f) => readFileSync(`${ROOT}rules/${f}`, 'utf8'));
  // Sampled (seeded: FUZZ_SEED reproduces a run) and run through the same pool as the fixed cases.
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`FUZZ_SEED=${seed}`);
  let k = 0;
  const random: string[][] = [];
  const policySamples = fc.sample(fc.tuple(fc.constantFrom(...examples), fc.array(mutation, { minLength: 1, maxLength: 6 }), fc.constantFrom('validate', 'rules', 'check', 'report')), { numRuns: 22, seed });
  for (const [base, ms, command] of policySamples) {
    const p = file(`m${k++}.yaml`, mutate(base, ms));
    random.push(command === 'validate' ? [command, '--policy', p] : command === 'rules' ? [command, '--policy', p, '--backend', 'iptables'] : [command, '--policy', p, ...N]);
  }
  const jsonish = fc.oneof(fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), fc.string({ maxLength: 40 }), fc.constantFrom('{', 'null', '[]', '{"version":1,"tracked":null}'));
  const record = fc.record({
    id: fc.oneof(fc.string({ maxLength: 8 }), fc.integer()),
    backend: fc.constantFrom('nft', 'iptables', 'pf', 7, null),
    netns: fc.constantFrom(ns, ns, null, 5),
    deadline: fc.constantFrom(past, new Date(Date.now() + 3_600_000).toISOString(), 'soon', 0),
    // Never a backup that could name a real one: missing, traversing into our own temp dir, or ours.
    backup: fc.constantFrom('b1', 'nope', '../../evil', '', '../b1', 7),
    timerPid: fc.constantFrom(null, 0, 4_194_305, 'x'),
  });
  const stateSamples = fc.sample(fc.tuple(record, jsonish, jsonish, fc.constantFrom('status', 'confirm', 'rollback', 'alerts')), { numRuns: 14, seed });
  for (const [rec, stateJson, eventsLine, command] of stateSamples) {
    {
      // Whatever the records say, the only backups that exist name our namespace.
      const safeMeta = JSON.stringify({ id: 'm', at: past, backend: rec.backend === 'iptables' ? 'iptables' : 'nft', netns: ns, ours: null, previousApplied: null });
      const d = stateDir(`sr${k++}`, { 'pending.json': JSON.stringify(rec), 'applied.json': JSON.stringify({ ...rec, hash: 'h', liveHash: 'h', texts: {} }), 'backups/b1/meta.json': safeMeta, 'state.json': stateJson, 'events.jsonl': `${eventsLine}\n` });
      random.push(command === 'alerts' ? [command, '--open', '--state-dir', d] : [command, '--state-dir', d, ...N]);
    }
  }
  await runAll(random);
  t.diagnostic(`${n} runs (${cases.length} fixed in ${fixedMs} ms), ${Date.now() - started} ms in all`);
  for (const k of known) t.diagnostic(`known, in another helper's code: ${k.replace(/\n\s*/g, ' | ')}`);
  assert.deepEqual(failures, [], `${failures.length} run(s) broke the contract:\n${failures.join('\n')}`);
});

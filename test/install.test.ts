// install.sh into a temporary --root: files, modes, the link, a working installed CLI with only
// production dependencies, idempotence, --uninstall by manifest (other software's files under the
// prefix survive), --dry-run changes nothing, the bundled starter policy, the unit's state_dir, and
// the unit's systemd-analyze verify / security ratings.
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname } from 'node:path';
import { ROOT } from './helpers/paths.js';
import { hasCommand } from './helpers/env.js';
import { loadConfig } from '../agent/daemon/config.js';

const install = (args: string[]) => spawnSync('bash', [`${ROOT}install.sh`, ...args], { encoding: 'utf8' });
const UNIT = 'etc/systemd/system/portwarden.service';
const BUNDLED_POLICY = readFileSync(`${ROOT}rules/default.yaml`, 'utf8');

function withRoot(fn: (root: string) => void): void {
  const root = mkdtempSync(`${tmpdir()}/pw-install-`);
  try {
    fn(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** One default install into a --root, shared by the tests that only read it. */
let shared: string | undefined;
function defaultInstall(): string {
  if (shared) return shared;
  const root = mkdtempSync(`${tmpdir()}/pw-install-`);
  shared = root;
  const r = install(['--root', root, '--no-start']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  writeFileSync(`${root}/install.out`, r.stdout);
  return root;
}
after(() => {
  if (shared) rmSync(shared, { recursive: true, force: true });
});

function put(root: string, rel: string, text: string, mode = 0o644): void {
  mkdirSync(dirname(`${root}/${rel}`), { recursive: true });
  writeFileSync(`${root}/${rel}`, text, { mode });
}

/** Every entry under dir: path, type, mode, owner, mtime, and the content's hash (or link target). */
function listing(dir: string): string {
  if (!existsSync(dir)) return '<absent>';
  const out: string[] = [];
  const walk = (rel: string) => {
    const p = rel ? `${dir}/${rel}` : dir;
    const st = lstatSync(p);
    let what = '';
    if (st.isSymbolicLink()) what = `-> ${readlinkSync(p)}`;
    else if (st.isFile()) what = createHash('sha256').update(readFileSync(p)).digest('hex');
    out.push(`${rel || '.'} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.mtimeMs} ${what}`);
    if (st.isDirectory()) for (const e of readdirSync(p).sort()) walk(rel ? `${rel}/${e}` : e);
  };
  walk('');
  return out.join('\n');
}

/** systemd-analyze is there, or the test is skipped with a printed reason (a failure under CI). */
function needsSystemdAnalyze(t: TestContext): boolean {
  if (hasCommand('systemd-analyze')) return true;
  if (process.env.CI === 'true') assert.fail('systemd-analyze missing, and CI=true requires this test to run');
  console.log('# skipped: needs systemd-analyze');
  t.skip('needs systemd-analyze');
  return false;
}

function verifyUnit(path: string): void {
  const v = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stderr);
}

test('install.sh --root installs a working agent, is idempotent, and uninstalls', () => {
  withRoot((root) => {
    const r = install(['--root', root, '--no-start']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const lib = `${root}/usr/local/lib/portwarden`;
    assert.equal(readlinkSync(`${root}/usr/local/bin/portwarden`), '/usr/local/lib/portwarden/dist/agent/cli.js');
    assert.equal(statSync(`${root}/etc/portwarden/policy.yaml`).mode & 0o777, 0o644);
    assert.equal(statSync(`${root}/etc/portwarden/config.yaml`).mode & 0o777, 0o600);
    assert.equal(statSync(`${root}/var/lib/portwarden`).mode & 0o777, 0o700);
    assert.ok(!existsSync(`${lib}/node_modules/typescript`), 'no dev dependencies');
    assert.ok(existsSync(`${lib}/node_modules/yaml/package.json`), 'production dependencies are real files');
    // The installed CLI runs with what was installed, and its files are valid.
    execFileSync(process.execPath, [`${lib}/dist/agent/cli.js`, 'validate', '--policy', `${root}/etc/portwarden/policy.yaml`]);
    // ... and as the portwarden command: cli.js run through its shebang (/usr/bin/env -S).
    assert.match(execFileSync(`${lib}/dist/agent/cli.js`, ['validate', '--policy', `${root}/etc/portwarden/policy.yaml`], { encoding: 'utf8' }), /\S/);
    const cfg = loadConfig(`${root}/etc/portwarden/config.yaml`);
    assert.equal(cfg.policy, '/etc/portwarden/policy.yaml');
    assert.equal(cfg.stateDir, '/var/lib/portwarden');
    const unit = readFileSync(`${root}/${UNIT}`, 'utf8');
    for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/portwarden', 'RestrictNamespaces=yes']) {
      assert.ok(unit.includes(line), line);
    }
    assert.match(unit, /^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_PTRACE CAP_DAC_READ_SEARCH$/m);
    assert.doesNotMatch(unit, /CAP_SYS_ADMIN$/m, 'no CAP_SYS_ADMIN without config.netns');
    assert.match(readFileSync(`${lib}/.install-manifest`, 'utf8'), /^l [0-9a-f]{64} \/usr\/local\/bin\/portwarden$/m);

    // Again: nothing breaks, the operator's files are kept (an edited unit is set aside, not lost).
    execFileSync('sh', ['-c', 'echo "# edited" >> "$1"; echo "# edited" >> "$2"', 'sh', `${root}/etc/portwarden/policy.yaml`, `${root}/${UNIT}`]);
    const again = install(['--root', root, '--no-start']);
    assert.equal(again.status, 0, again.stderr);
    assert.match(readFileSync(`${root}/etc/portwarden/policy.yaml`, 'utf8'), /# edited\n$/);
    assert.match(again.stdout, /keeping .*policy\.yaml/);
    const aside = readdirSync(`${root}/etc/systemd/system`).filter((f) => f.startsWith('portwarden.service.orig.'));
    assert.equal(aside.length, 1, 'the edited unit is kept aside');
    assert.match(readFileSync(`${root}/etc/systemd/system/${aside[0]}`, 'utf8'), /# edited\n$/);
    assert.doesNotMatch(readFileSync(`${root}/${UNIT}`, 'utf8'), /# edited/);
    assert.deepEqual(readdirSync(`${root}/usr/local/lib`), ['portwarden'], 'no leftovers beside the agent');

    const un = install(['--root', root, '--uninstall']);
    assert.equal(un.status, 0, un.stderr);
    assert.ok(!existsSync(lib));
    assert.throws(() => lstatSync(`${root}/usr/local/bin/portwarden`));
    assert.ok(!existsSync(`${root}/${UNIT}`));
    assert.ok(existsSync(`${root}/etc/portwarden/config.yaml`), 'configuration is kept');
    assert.ok(existsSync(`${root}/var/lib/portwarden`), 'state is kept without --purge');
    const twice = install(['--root', root, '--uninstall']);
    assert.equal(twice.status, 0, twice.stderr);
    assert.match(twice.stdout, /nothing to remove/);
  });
});

test('install and uninstall with --prefix /usr/local or /opt leave other software\'s files alone', () => {
  withRoot((root) => {
    const foreign: Record<string, string> = {
      'usr/local/bin/other': '#!/bin/sh\necho other\n',
      'usr/local/lib/x/y': 'y\n',
      'usr/local/lib/node_modules/z/index.js': 'module.exports = 1;\n',
      'usr/local/share/man/man1/other.1': '.TH OTHER 1\n',
      'opt/foo': 'foo\n',
      'opt/bin/tool': '#!/bin/sh\n',
      'opt/lib/bar/baz': 'baz\n',
    };
    for (const [rel, text] of Object.entries(foreign)) put(root, rel, text);
    const intact = (when: string) => {
      for (const [rel, text] of Object.entries(foreign)) assert.equal(readFileSync(`${root}/${rel}`, 'utf8'), text, `${rel} ${when}`);
    };

    const a = install(['--root', root, '--prefix', '/usr/local', '--no-start']);
    assert.equal(a.status, 0, a.stdout + a.stderr);
    intact('after install --prefix /usr/local');
    const b = install(['--root', root, '--prefix', '/usr/local', '--uninstall']);
    assert.equal(b.status, 0, b.stdout + b.stderr);
    intact('after uninstall --prefix /usr/local');
    assert.ok(!existsSync(`${root}/usr/local/lib/portwarden`));
    assert.throws(() => lstatSync(`${root}/usr/local/bin/portwarden`));

    const c = install(['--root', root, '--prefix', '/opt', '--no-start']);
    assert.equal(c.status, 0, c.stdout + c.stderr);
    intact('after install --prefix /opt');
    assert.equal(readlinkSync(`${root}/opt/bin/portwarden`), '/opt/lib/portwarden/dist/agent/cli.js');
    // The operator edits the policy, the agent keeps state, someone changes and adds a file.
    execFileSync('sh', ['-c', 'echo "# edited" >> "$1"', 'sh', `${root}/etc/portwarden/policy.yaml`]);
    put(root, 'var/lib/portwarden/state.json', '{}\n', 0o600);
    put(root, 'opt/lib/portwarden/README.md', 'changed\n');
    put(root, 'opt/lib/portwarden/notes.txt', 'mine\n');

    const d = install(['--root', root, '--prefix', '/opt', '--uninstall', '--purge']);
    assert.equal(d.status, 0, d.stdout + d.stderr);
    intact('after uninstall --prefix /opt --purge');
    assert.match(readFileSync(`${root}/etc/portwarden/policy.yaml`, 'utf8'), /# edited\n$/, 'an edited policy is never removed');
    assert.match(d.stdout, /keeping .*etc\/portwarden\/policy\.yaml: changed since install/);
    assert.ok(!existsSync(`${root}/etc/portwarden/config.yaml`), '--purge removes the unedited config');
    assert.ok(!existsSync(`${root}/var/lib/portwarden`), '--purge removes the state directory');
    assert.equal(readFileSync(`${root}/opt/lib/portwarden/README.md`, 'utf8'), 'changed\n');
    assert.match(d.stdout, /keeping .*opt\/lib\/portwarden\/README\.md: changed since install/);
    assert.equal(readFileSync(`${root}/opt/lib/portwarden/notes.txt`, 'utf8'), 'mine\n');
    assert.ok(!existsSync(`${root}/opt/lib/portwarden/dist`));
    assert.throws(() => lstatSync(`${root}/opt/bin/portwarden`));

    // What is left there is not ours: a new install refuses it instead of replacing it.
    const e = install(['--root', root, '--prefix', '/opt', '--no-start']);
    assert.equal(e.status, 3, e.stdout + e.stderr);
    assert.match(e.stderr, /opt\/lib\/portwarden .*no install manifest/);
    assert.equal(readFileSync(`${root}/opt/lib/portwarden/notes.txt`, 'utf8'), 'mine\n');
    intact('after a refused install');
  });
});

test('install.sh --dry-run creates, changes and removes nothing, and prints every step', () => {
  withRoot((base) => {
    const root = `${base}/never-created`;
    const dry = install(['--root', root, '--dry-run', '--no-start']);
    assert.equal(dry.status, 0, dry.stdout + dry.stderr);
    assert.ok(!existsSync(root), '--dry-run does not create the root');
    for (const step of [
      `+ cp -R ${ROOT}dist/agent`,
      `+ ln -sfn /usr/local/lib/portwarden/dist/agent/cli.js ${root}/usr/local/bin/portwarden`,
      `+ cp ${ROOT}rules/default.yaml ${root}/etc/portwarden/policy.yaml`,
      `+ write ${root}/etc/portwarden/config.yaml`,
      `+ mkdir -p ${root}/var/lib/portwarden`,
      `+ write ${root}/${UNIT}`,
      `+ write ${root}/usr/local/lib/portwarden/.install-manifest`,
    ]) assert.ok(dry.stdout.includes(step), `prints: ${step}\n${dry.stdout}`);

    const installed = `${base}/installed`;
    const r = install(['--root', installed, '--no-start']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const before = listing(base);
    for (const args of [['--no-start'], ['--uninstall'], ['--uninstall', '--purge'], ['--prefix', '/opt', '--no-start']]) {
      const d = install(['--root', installed, '--dry-run', ...args]);
      assert.equal(d.status, 0, d.stdout + d.stderr);
      assert.equal(listing(base), before, `--dry-run ${args.join(' ')} left the tree as it was`);
      if (args[0] === '--uninstall') assert.ok(d.stdout.includes(`+ rm -f ${installed}/usr/local/lib/portwarden/dist/agent/cli.js`), d.stdout);
    }
  });
});

test('install.sh --root starts from the bundled default policy, not this machine\'s listeners', () => {
  const root = defaultInstall();
  assert.equal(readFileSync(`${root}/etc/portwarden/policy.yaml`, 'utf8'), BUNDLED_POLICY);
  assert.match(readFileSync(`${root}/install.out`, 'utf8'), /bundled default policy/);
});

test('the unit\'s ReadWritePaths follows state_dir (--state-dir, or the config in the root)', (t) => {
  withRoot((root) => {
    const r = install(['--root', root, '--state-dir', '/srv/portwarden', '--no-start']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const unit = readFileSync(`${root}/${UNIT}`, 'utf8');
    assert.match(unit, /^ReadWritePaths=\/srv\/portwarden$/m);
    assert.doesNotMatch(unit, /\/var\/lib\/portwarden/);
    assert.equal(statSync(`${root}/srv/portwarden`).mode & 0o777, 0o700);
    assert.ok(!existsSync(`${root}/var/lib/portwarden`));
    assert.equal(loadConfig(`${root}/etc/portwarden/config.yaml`).stateDir, '/srv/portwarden');
    // The config now says /srv/portwarden: a different --state-dir is a contradiction.
    const clash = install(['--root', root, '--state-dir', '/data/other', '--no-start']);
    assert.equal(clash.status, 2, clash.stdout + clash.stderr);
    assert.match(clash.stderr, /--state-dir \/data\/other .*state_dir \/srv\/portwarden/);
  });
  withRoot((root) => {
    put(root, 'etc/portwarden/config.yaml', 'state_dir: /data/pw\nnetns: blue\n', 0o600);
    const r = install(['--root', root, '--no-start']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const unit = readFileSync(`${root}/${UNIT}`, 'utf8');
    assert.match(unit, /^ReadWritePaths=\/data\/pw$/m);
    assert.ok(existsSync(`${root}/data/pw`));
    // config.netns: nsenter needs CAP_SYS_ADMIN and a network namespace.
    assert.match(unit, /^CapabilityBoundingSet=.*CAP_SYS_ADMIN$/m);
    assert.match(unit, /^RestrictNamespaces=net$/m);
    if (needsSystemdAnalyze(t)) verifyUnit(`${root}/${UNIT}`);
  });
  const bad = install(['--root', '/nonexistent-pw', '--dry-run', '--state-dir', 'relative']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--state-dir must be an absolute path/);
});

test('the unit passes systemd-analyze verify and rates below 2.5 on systemd-analyze security', (t) => {
  if (!needsSystemdAnalyze(t)) return;
  const unit = `${defaultInstall()}/${UNIT}`;
  verifyUnit(unit);
  const s = spawnSync('systemd-analyze', ['security', '--offline=yes', unit], { encoding: 'utf8' });
  const m = /Overall exposure level for portwarden\.service: ([0-9.]+)/.exec(s.stdout);
  assert.ok(m, `no exposure level in: ${s.stdout.slice(-300)}${s.stderr}`);
  t.diagnostic(`systemd-analyze security: ${m[0]}`);
  assert.ok(Number(m[1]) < 2.5, m[0]);
});

test('install.sh refuses to replace a PREFIX/bin/portwarden that is not its link', () => {
  withRoot((root) => {
    put(root, 'usr/local/bin/portwarden', '#!/bin/sh\necho someone else\n', 0o755);
    const r = install(['--root', root, '--no-start']);
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stderr, /usr\/local\/bin\/portwarden exists and is not portwarden's link/);
    assert.equal(readFileSync(`${root}/usr/local/bin/portwarden`, 'utf8'), '#!/bin/sh\necho someone else\n');
    assert.ok(!existsSync(`${root}/usr/local/lib`), 'refused before changing anything');
  });
});

test('install.sh rejects unknown options with exit 2', () => {
  const r = install(['--frobnicate']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown option: --frobnicate/);
});

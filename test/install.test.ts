// install.sh into a temporary --root: files, modes, the link, a working installed CLI with only
// production dependencies, a unit that systemd-analyze accepts, idempotence and --uninstall.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ROOT } from './helpers/paths.js';
import { hasCommand } from './helpers/env.js';
import { loadConfig } from '../agent/daemon/config.js';

const install = (args: string[]) => spawnSync('bash', [`${ROOT}install.sh`, ...args], { encoding: 'utf8' });

test('install.sh --root installs a working agent, is idempotent, and uninstalls', (t) => {
  const root = mkdtempSync(`${tmpdir()}/pw-install-`);
  try {
    const dry = install(['--root', root, '--dry-run', '--no-start']);
    assert.equal(dry.status, 0, dry.stderr);
    assert.ok(!existsSync(`${root}/opt/portwarden`), '--dry-run changes nothing');
    assert.match(dry.stdout, /\+ ln -sfn \/opt\/portwarden\/dist\/agent\/cli\.js/);

    const r = install(['--root', root, '--no-start']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(readlinkSync(`${root}/usr/local/bin/portwarden`), '/opt/portwarden/dist/agent/cli.js');
    assert.equal(statSync(`${root}/etc/portwarden/policy.yaml`).mode & 0o777, 0o644);
    assert.equal(statSync(`${root}/etc/portwarden/config.yaml`).mode & 0o777, 0o600);
    assert.equal(statSync(`${root}/var/lib/portwarden`).mode & 0o777, 0o700);
    assert.ok(!existsSync(`${root}/opt/portwarden/node_modules/typescript`), 'no dev dependencies');
    // The installed CLI runs with what was installed, and its files are valid.
    const cli = `${root}/opt/portwarden/dist/agent/cli.js`;
    execFileSync(process.execPath, [cli, 'validate', '--policy', `${root}/etc/portwarden/policy.yaml`]);
    const cfg = loadConfig(`${root}/etc/portwarden/config.yaml`);
    assert.equal(cfg.policy, '/etc/portwarden/policy.yaml');
    const unit = readFileSync(`${root}/etc/systemd/system/portwarden.service`, 'utf8');
    for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/portwarden', 'CapabilityBoundingSet=CAP_NET_ADMIN CAP_SYS_PTRACE CAP_DAC_READ_SEARCH']) {
      assert.ok(unit.includes(line), line);
    }
    if (hasCommand('systemd-analyze')) {
      const v = spawnSync('systemd-analyze', ['verify', `${root}/etc/systemd/system/portwarden.service`], { encoding: 'utf8' });
      assert.equal(v.status, 0, v.stderr);
      if (existsSync('/run/systemd/system')) {
        const s = spawnSync('systemd-analyze', ['security', '--offline=yes', `${root}/etc/systemd/system/portwarden.service`], { encoding: 'utf8' });
        t.diagnostic(`systemd-analyze security: ${s.stdout.trim().split('\n').at(-1)}`);
      } else t.diagnostic('systemd-analyze security skipped: systemd is not running here');
    } else if (process.env.CI === 'true') assert.fail('systemd-analyze missing under CI');
    else t.diagnostic('systemd-analyze verify skipped: not installed');

    // Again: nothing breaks, the operator's files are kept.
    execFileSync('sh', ['-c', `echo '# edited' >> ${root}/etc/portwarden/policy.yaml`]);
    const again = install(['--root', root, '--no-start']);
    assert.equal(again.status, 0, again.stderr);
    assert.match(readFileSync(`${root}/etc/portwarden/policy.yaml`, 'utf8'), /# edited\n$/);
    assert.match(again.stdout, /keeping .*policy\.yaml/);

    const un = install(['--root', root, '--uninstall']);
    assert.equal(un.status, 0, un.stderr);
    assert.ok(!existsSync(`${root}/opt/portwarden`));
    assert.throws(() => lstatSync(`${root}/usr/local/bin/portwarden`));
    assert.ok(existsSync(`${root}/etc/portwarden/config.yaml`), 'configuration is kept');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('install.sh rejects unknown options with exit 2', () => {
  const r = install(['--frobnicate']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown option: --frobnicate/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseSs, splitEndpoint } from '../agent/collect/sockets-ss.js';
import { decodeHexAddress, parseProcNet } from '../agent/collect/sockets-procfs.js';
import { OwnerIndex, parsePasswd } from '../agent/collect/processes.js';
import { collectSnapshot } from '../agent/collect/listeners.js';
import { ToolMissingError, type Exec } from '../agent/exec.js';
import { scopeOf } from '../agent/collect/address.js';
import { FIXTURES } from './helpers/paths.js';

const ss = parseSs(readFileSync(`${FIXTURES}ss/mixed.txt`, 'utf8'));
const byInode = (i: number) => ss.find((s) => s.inode === i)!;

test('ss: every TCP listener and unbound UDP socket is read', () => {
  assert.equal(ss.length, 13);
  assert.equal(ss.filter((s) => s.proto === 'udp').length, 6);
});

test('ss: interface-bound addresses keep address and interface apart', () => {
  assert.deepEqual(splitEndpoint('127.0.0.53%lo:53'), { address: '127.0.0.53', port: 53, iface: 'lo' });
  assert.deepEqual(splitEndpoint('[fe80::1]%eth0:546'), { address: 'fe80::1', port: 546, iface: 'eth0' });
  assert.equal(byInode(21003).interface, 'eth0');
  assert.equal(byInode(21003).address, '0.0.0.0');
  assert.equal(byInode(21006).address, 'fe80::5054:ff:fe12:3456');
});

test('ss: dual-stack only for an IPv6 wildcard with v6only:0', () => {
  assert.deepEqual([byInode(22004).address, byInode(22004).family, byInode(22004).dualStack], ['::', 6, true]);
  assert.equal(byInode(21005).dualStack, true);
  assert.equal(byInode(22005).dualStack, false); // v6only:1
  assert.equal(byInode(22001).dualStack, false); // IPv4
});

test('ss: full IPv6 addresses are compressed, never truncated', () => {
  assert.equal(byInode(22007).address, '2001:db8::10');
  assert.equal(byInode(22007).port, 8443);
});

test('scope: loopback, wildcard, address', () => {
  assert.equal(scopeOf('127.0.0.53'), 'loopback');
  assert.equal(scopeOf('::1'), 'loopback');
  assert.equal(scopeOf('0.0.0.0'), 'wildcard');
  assert.equal(scopeOf('::'), 'wildcard');
  assert.equal(scopeOf('2001:db8::10'), 'address');
  assert.equal(scopeOf('192.0.2.1'), 'address');
});

test('procfs: hex addresses decode in host byte order', () => {
  assert.equal(decodeHexAddress('0100007F'), '127.0.0.1');
  assert.equal(decodeHexAddress('00000000000000000000000001000000'), '::1');
  assert.equal(decodeHexAddress('B80D0120000000000000000010000000'), '2001:db8::10');
});

test('procfs: listening TCP and unconnected UDP only; dual-stack from bindv6only', () => {
  const tcp6 = parseProcNet(readFileSync(`${FIXTURES}procnet/tcp6`, 'utf8'), 'tcp', 6, false);
  assert.deepEqual(tcp6.map((s) => [s.address, s.port, s.dualStack]), [['::', 22, true], ['::1', 25, false], ['2001:db8::10', 8443, false]]);
  assert.equal(parseProcNet(readFileSync(`${FIXTURES}procnet/tcp6`, 'utf8'), 'tcp', 6, true)[0]!.dualStack, false);
  const udp = parseProcNet(readFileSync(`${FIXTURES}procnet/udp`, 'utf8'), 'udp', 4, false);
  assert.deepEqual(udp.map((s) => `${s.address}:${s.port}`), ['127.0.0.53:53', '0.0.0.0:5353']);
});

interface FakeProc {
  pid: number;
  comm?: string;
  exe?: string;
  uid?: number;
  cmdline?: string[];
  sockets: number[];
}

function fakeProc(procs: FakeProc[]): string {
  const root = mkdtempSync(`${tmpdir()}/pw-proc-`);
  for (const p of procs) {
    const dir = `${root}/${p.pid}`;
    mkdirSync(`${dir}/fd`, { recursive: true });
    p.sockets.forEach((inode, i) => symlinkSync(`socket:[${inode}]`, `${dir}/fd/${i + 3}`));
    symlinkSync('/dev/null', `${dir}/fd/0`);
    if (p.comm !== undefined) writeFileSync(`${dir}/comm`, `${p.comm}\n`);
    if (p.exe) symlinkSync(p.exe, `${dir}/exe`);
    if (p.uid !== undefined) writeFileSync(`${dir}/status`, `Name:\t${p.comm}\nUid:\t${p.uid}\t${p.uid}\t${p.uid}\t${p.uid}\n`);
    if (p.cmdline) writeFileSync(`${dir}/cmdline`, p.cmdline.join('\0') + '\0');
  }
  mkdirSync(`${root}/self`);
  writeFileSync(`${root}/passwd`, 'root:x:0:0:root:/root:/bin/bash\npostfix:x:107:113::/var/spool/postfix:/usr/sbin/nologin\n');
  return root;
}

test('owners: shared sockets, spoofed names, unreadable processes, and the cache', () => {
  const root = fakeProc([
    { pid: 100, comm: 'master', exe: '/usr/lib/postfix/sbin/master', uid: 0, cmdline: ['/usr/lib/postfix/sbin/master', '-w'], sockets: [22002] },
    { pid: 101, comm: 'smtpd', exe: '/usr/lib/postfix/sbin/smtpd', uid: 107, cmdline: ['smtpd', '-n', 'smtp'], sockets: [22002, 5] },
    // A process that renamed itself to look like a forged ss -p users: entry.
    { pid: 200, comm: 'x",pid=1,fd=9)', exe: '/tmp/evil', uid: 1000, cmdline: ['/tmp/evil'], sockets: [22003] },
    // Nothing readable but its fds (e.g. it exited mid-walk, or hidepid).
    { pid: 300, sockets: [22004] },
  ]);
  try {
    const index = new OwnerIndex({ procRoot: root, passwdPath: `${root}/passwd`, cmdline: true });
    const owners = index.owners([22002, 22003, 22004, 99999]);
    assert.deepEqual(owners.get(22002)!.map((p) => [p.pid, p.name, p.user]), [[100, 'master', 'root'], [101, 'smtpd', 'postfix']]);
    assert.equal(owners.get(22002)![0]!.cmdline, '/usr/lib/postfix/sbin/master -w');
    const evil = owners.get(22003)![0]!;
    assert.deepEqual([evil.pid, evil.name, evil.exe, evil.user], [200, 'x",pid=1,fd=9)', '/tmp/evil', '1000']);
    assert.deepEqual(owners.get(22004), [{ pid: 300, name: 'unknown', exe: null, user: 'unknown', cmdline: null }]);
    assert.deepEqual(owners.get(99999), []);
    assert.equal(index.walks, 1);
    index.owners([22002, 22003, 99999]);
    assert.equal(index.walks, 1, 'known inodes (and known-unowned ones) need no new walk');
    index.owners([22002, 5]);
    assert.equal(index.walks, 2, 'a new inode triggers a walk');
    rmSync(`${root}/101`, { recursive: true });
    index.owners([22002, 5]);
    assert.equal(index.walks, 3, 'an owner that exited triggers a walk');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('passwd: first entry per uid wins', () => {
  assert.deepEqual([...parsePasswd('a:x:0:0::/:/bin/sh\nb:x:0:0::/:/bin/sh\nc:x:5:5::/:/bin/sh\n')], [[0, 'a'], [5, 'c']]);
});

test('without ss: sockets from /proc/net (the fallback loaded on demand), owners from the same walk', async () => {
  const root = fakeProc([{ pid: 100, comm: 'sshd', exe: '/usr/sbin/sshd', uid: 0, sockets: [22005] }]);
  try {
    mkdirSync(`${root}/net`);
    for (const f of ['tcp', 'tcp6', 'udp']) copyFileSync(`${FIXTURES}procnet/${f}`, `${root}/net/${f}`);
    const exec: Exec = () => Promise.reject(new ToolMissingError('ss'));
    const snap = await collectSnapshot({ procRoot: root, exec, platform: 'linux' });
    assert.equal(snap.host.source, 'procfs');
    const ssh = snap.listeners.find((l) => l.port === 22 && l.family === 6)!;
    assert.deepEqual([ssh.address, ssh.dualStack, ssh.processes.map((p) => p.name)], ['::', true, ['sshd']]);
    assert.deepEqual(snap.listeners.map((l) => `${l.proto}/${l.port}`).slice(0, 3), ['tcp/22', 'tcp/22', 'tcp/25']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluate } from '../agent/policy/evaluate.js';
import { loadPolicy } from '../agent/policy/load.js';
import { scopeOf } from '../agent/collect/address.js';
import type { Listener, ProcessInfo } from '../agent/model.js';

const policy = (yaml: string) => loadPolicy('p.yaml', { text: yaml, hostname: 'h' }).policy;

function proc(pid: number, name: string, exe: string | null = `/usr/sbin/${name}`): ProcessInfo {
  return { pid, name, exe, user: 'root', cmdline: name };
}

function listener(proto: 'tcp' | 'udp', address: string, port: number, processes: ProcessInfo[]): Listener {
  return { proto, family: address.includes(':') ? 6 : 4, address, port, scope: scopeOf(address), dualStack: false, inode: port, processes };
}

const POLICY = policy(`
version: 1
sources: { office: [192.0.2.0/24] }
rules:
  - { name: ssh, port: 22, from: [office], process: [sshd], required: true }
  - { name: smtp, port: 25, process: [master, /usr/sbin/exim4] }
  - { name: postgres, port: 5432, from: localhost }
  - { name: telnet, port: 23, action: deny }
  - { name: dns, port: 53, proto: udp, required: true }
`);

test('a host that matches the policy has no findings', () => {
  const ls = [
    listener('tcp', '0.0.0.0', 22, [proc(10, 'sshd')]),
    listener('tcp', '::', 22, [proc(10, 'sshd')]),
    listener('tcp', '0.0.0.0', 25, [proc(11, 'master'), proc(12, 'smtpd-renamed', '/usr/sbin/exim4')]),
    listener('tcp', '127.0.0.1', 5432, [proc(13, 'postgres')]),
    listener('udp', '0.0.0.0', 53, [proc(14, 'unbound')]),
    listener('tcp', '127.0.0.1', 8080, [proc(15, 'node')]), // loopback: allowed by default
  ];
  assert.deepEqual(evaluate(POLICY, ls), []);
});

test('every finding kind, with severity and a stable id', () => {
  const ls = [
    listener('tcp', '0.0.0.0', 8080, [proc(20, 'node')]),
    listener('tcp', '0.0.0.0', 23, [proc(21, 'telnetd')]),
    listener('tcp', '0.0.0.0', 5432, [proc(22, 'postgres')]),
    listener('tcp', '0.0.0.0', 25, [proc(23, 'python3', '/usr/bin/python3')]),
    listener('udp', '0.0.0.0', 53, [proc(24, 'unbound')]),
  ];
  const fs = evaluate(POLICY, ls);
  const brief = fs.map((f) => [f.kind, f.severity, f.rule, f.id]);
  assert.deepEqual(brief, [
    ['forbidden-listener', 'critical', 'telnet', 'forbidden-listener:tcp/23:wildcard:telnetd'],
    ['missing-listener', 'high', 'ssh', 'missing-listener:tcp/22:ssh'],
    ['unexpected-process', 'high', 'smtp', 'unexpected-process:tcp/25:wildcard:python3'],
    ['overexposed', 'high', 'postgres', 'overexposed:tcp/5432:wildcard:postgres'],
    ['unexpected-listener', 'high', null, 'unexpected-listener:tcp/8080:wildcard:node'],
  ]);
  for (const f of fs) {
    assert.ok(f.message.length > 10 && !f.message.includes('\n'));
    assert.ok(f.remedy.length > 10);
  }
});

test('ids ignore pids: a restarted program keeps its finding id', () => {
  const a = evaluate(POLICY, [listener('tcp', '0.0.0.0', 8080, [proc(1, 'node')])]);
  const b = evaluate(POLICY, [listener('tcp', '0.0.0.0', 8080, [proc(999, 'node')])]);
  assert.equal(a[0]!.id, b[0]!.id);
});

test('the same program on v4 and v6 is one finding', () => {
  const fs = evaluate(POLICY, [listener('tcp', '0.0.0.0', 8080, [proc(1, 'node')]), listener('tcp', '::', 8080, [proc(1, 'node')])]);
  assert.equal(fs.filter((f) => f.kind === 'unexpected-listener').length, 1);
});

test('a process renamed to an allowed name fails an exe-path rule', () => {
  const p = policy('version: 1\nrules:\n  - { name: smtp, port: 25, process: [/usr/sbin/exim4] }\n');
  const fs = evaluate(p, [listener('tcp', '0.0.0.0', 25, [proc(5, 'exim4', '/tmp/fake')])]);
  assert.deepEqual(fs.map((f) => f.kind), ['unexpected-process']);
});

test('an unreadable owner is reported low, not as a wrong program', () => {
  const fs = evaluate(POLICY, [listener('tcp', '0.0.0.0', 25, []), listener('tcp', '0.0.0.0', 22, [proc(1, 'sshd')]), listener('udp', '::', 53, [])]);
  assert.deepEqual(fs.map((f) => [f.kind, f.severity]), [['unexpected-process', 'low']]);
});

test('loopback: audit reports loopback listeners; default allow makes strays info only', () => {
  const audit = policy('version: 1\nloopback: audit\nrules: []\n');
  assert.deepEqual(evaluate(audit, [listener('tcp', '127.0.0.1', 9000, [])]).map((f) => f.severity), ['low']);
  const allow = policy('version: 1\ndefault: allow\nrules: []\n');
  assert.deepEqual(evaluate(allow, [listener('tcp', '0.0.0.0', 9000, [])]).map((f) => f.severity), ['info']);
});

test('first matching rule decides; ranges and lists; proto matters', () => {
  const p = policy(`
version: 1
rules:
  - { name: deny-high, port: "6000-6010", action: deny }
  - { name: x11-ok, port: 6005 }
  - { name: mixed, port: [80, "8000-8002"] }
  - { name: udp-only, port: 9999, proto: udp }
`);
  const fs = evaluate(p, [
    listener('tcp', '0.0.0.0', 6005, []),
    listener('tcp', '0.0.0.0', 8001, []),
    listener('tcp', '0.0.0.0', 9999, []),
    listener('udp', '0.0.0.0', 9999, []),
  ]);
  assert.deepEqual(fs.map((f) => `${f.kind}:${f.port}`), ['forbidden-listener:6005', 'unexpected-listener:9999']);
});

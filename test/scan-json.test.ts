// scan --json is read by scripts: its text (field order, indentation, which fields appear when)
// is pinned here, so a faster way of building it cannot change it unnoticed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listenerJson } from '../agent/serialize.js';
import type { Listener, ProcessInfo } from '../agent/model.js';
import type { Exposure } from '../agent/exposure/exposure.js';

const proc: ProcessInfo = { pid: 42, name: 'nginx\u202e', exe: null, user: 'www-data', cmdline: 'nginx -g "daemon off;"' };

test('scan --json: listener fields in README order; interface and exposure only when present', () => {
  const bound: Listener = { proto: 'udp', family: 6, address: 'fe80::1', port: 546, scope: 'address', dualStack: false, inode: 7, processes: [proc, proc], interface: 'eth0' };
  const plain: Listener = { proto: 'tcp', family: 4, address: '0.0.0.0', port: 22, scope: 'wildcard', dualStack: false, inode: 9, processes: [] };
  // The collector adds interface last; the JSON puts it after port.
  const exposure: Exposure = { verdict: 'restricted', sources: ['192.0.2.0/24'], reason: 'r', perInterface: { eth0: [] } };
  const text = JSON.stringify([listenerJson(bound, exposure), listenerJson(plain), listenerJson(plain, undefined)], null, 2);
  const one = (l: string, procs: string, exp: string) => `  {\n${l}    "processes": ${procs}${exp}\n  }`;
  const p42 = '    {\n      "pid": 42,\n      "name": "nginx\u202e",\n      "exe": null,\n      "user": "www-data",\n      "cmdline": "nginx -g \\"daemon off;\\""\n    }';
  const plainText = one('    "proto": "tcp",\n    "family": 4,\n    "address": "0.0.0.0",\n    "port": 22,\n    "scope": "wildcard",\n    "dualStack": false,\n    "inode": 9,\n', '[]', '');
  assert.equal(
    text,
    '[\n' +
      one(
        '    "proto": "udp",\n    "family": 6,\n    "address": "fe80::1",\n    "port": 546,\n    "interface": "eth0",\n    "scope": "address",\n    "dualStack": false,\n    "inode": 7,\n',
        `[\n  ${p42.replaceAll('\n', '\n  ')},\n  ${p42.replaceAll('\n', '\n  ')}\n    ]`,
        ',\n    "exposure": {\n      "verdict": "restricted",\n      "sources": [\n        "192.0.2.0/24"\n      ],\n      "reason": "r",\n      "perInterface": {\n        "eth0": []\n      }\n    }',
      ) +
      ',\n' + plainText + ',\n' + plainText + '\n]',
  );
});

test('scan --json: owners are copies, so the JSON never carries fields added to ProcessInfo later', () => {
  const extra = { ...proc, secret: 'x' } as ProcessInfo;
  const l: Listener = { proto: 'tcp', family: 4, address: '127.0.0.1', port: 1, scope: 'loopback', dualStack: false, inode: 1, processes: [extra] };
  assert.deepEqual(Object.keys(listenerJson(l).processes[0]!), ['pid', 'name', 'exe', 'user', 'cmdline']);
  assert.deepEqual(Object.keys(listenerJson(l)), ['proto', 'family', 'address', 'port', 'scope', 'dualStack', 'inode', 'processes']);
});

// An exposure's source list is made when first read (most callers read the verdict only): it must
// still look like a plain field to everything that copies or prints it — JSON, spreads, deep
// comparisons, structuredClone — in the same place among the fields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseNftJson } from '../agent/exposure/nft-json.js';
import { exposureOf, type FirewallView } from '../agent/exposure/exposure.js';
import type { Listener } from '../agent/model.js';
import { FIXTURES } from './helpers/paths.js';

const view = (name: string): FirewallView => ({ ruleset: parseNftJson(readFileSync(`${FIXTURES}nft/${name}.json`, 'utf8')), error: null, interfaces: ['eth0', 'eth1'], legacyRules: 0, published: [] });
const L = (port: number): Listener => ({ proto: 'tcp', family: 6, address: '::', port, scope: 'wildcard', dualStack: true, inode: 1, processes: [] });

test('exposure: sources read like a plain field — JSON text and field order, spreads, deep equality, clones', () => {
  const e = exposureOf(L(22), view('portwarden-mail-relay'));
  const sources = ['2001:db8:a::/48', '203.0.113.0/26'];
  const plain = { verdict: 'restricted', sources, reason: 'the input rules accept some sources' };
  assert.equal(JSON.stringify(e), JSON.stringify(plain));
  assert.equal(JSON.stringify({ exposure: e }, null, 2), JSON.stringify({ exposure: plain }, null, 2));
  assert.deepEqual(Object.keys(e), ['verdict', 'sources', 'reason']);
  assert.deepEqual(e, plain);
  assert.deepEqual({ ...e }, plain);
  assert.deepEqual(structuredClone(e), plain);
  assert.equal(e.sources, e.sources, 'made once, then the same list');
  assert.equal(exposureOf(L(22), view('portwarden-mail-relay')).sources.join(), sources.join());
});

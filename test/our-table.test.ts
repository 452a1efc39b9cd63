// What the nft monitor's lines tell (agent/firewall/monitor-events.ts, firewall/drift.ts): the table,
// chain or set each changes, and for our own table, what a run of them tells against the last full
// comparison; and how a chain or set listed again is put in place (exposure/read.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OurTableLedger } from '../agent/firewall/drift.js';
import { monitorChange } from '../agent/firewall/monitor-events.js';
import { listingsFor, withRelisted, type Touched } from '../agent/exposure/read.js';
import type { NftObject } from '../agent/exposure/nft-json.js';

// Real `nft -j monitor` lines (nftables 1.0.6, captured in a lab namespace): a rule inserted into
// our table and deleted again, an element, a chain, someone else's rule, and what `flush table`
// prints (a delete per rule).
const MONITOR = {
  insert: '{"insert": {"rule": {"family": "inet", "table": "portwarden", "chain": "input", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 9}}, {"accept": null}]}}}',
  deleteIt: '{"delete": {"rule": {"family": "inet", "table": "portwarden", "chain": "input", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 9}}, {"accept": null}]}}}',
  element: '{"add": {"element": {"family": "inet", "table": "portwarden", "name": "src_a_v4", "elem": {"set": [{"prefix": {"addr": "192.168.0.0", "len": 16}}]}}}}',
  chain: '{"add": {"chain": {"family": "inet", "table": "portwarden", "name": "extra", "handle": 5}}}',
  others: '{"add": {"rule": {"family": "inet", "table": "other", "chain": "c", "handle": 3, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 3}}, {"accept": null}]}}}',
  flushed: '{"delete": {"rule": {"family": "inet", "table": "portwarden", "chain": "input", "handle": 3, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 1}}, {"accept": null}]}}}',
  dropTable: '{"delete": {"table": {"family": "inet", "name": "portwarden", "handle": 1}}}',
  // `flush table` of a table whose rules hold anonymous sets (`icmp type { … }`, a vmap): a line for each.
  anonymousSet: '{"delete": {"set": {"family": "inet", "name": "__set1", "table": "portwarden", "type": "invalid", "handle": 5}}}',
  anonymousMap: '{"delete": {"set": {"family": "inet", "name": "__map0", "table": "portwarden", "type": "invalid", "handle": 7}}}',
  // `nft replace rule … handle 12128`: a delete and an add of the same handle.
  replaced: '{"add": {"rule": {"family": "inet", "table": "portwarden", "chain": "rule_r403", "handle": 12128, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}}',
  mapElement: '{"delete": {"element": {"family": "inet", "table": "portwarden", "name": "tcp_ports", "elem": {"set": [[8, {"drop": null}]]}}}}',
};

test('monitorChange: the table, and the chain or set within it, each line changes', () => {
  assert.deepEqual(monitorChange(MONITOR.insert), { kind: 'rule', table: 'inet portwarden', chain: 'input', op: 'add', handle: 4 });
  assert.deepEqual(monitorChange(MONITOR.deleteIt), { kind: 'rule', table: 'inet portwarden', chain: 'input', op: 'delete', handle: 4 });
  assert.deepEqual(monitorChange(MONITOR.element), { kind: 'elements', table: 'inet portwarden', set: 'src_a_v4' });
  assert.deepEqual(monitorChange(MONITOR.mapElement), { kind: 'elements', table: 'inet portwarden', set: 'tcp_ports' });
  assert.deepEqual(monitorChange(MONITOR.chain), { kind: 'table', table: 'inet portwarden' });
  assert.deepEqual(monitorChange(MONITOR.dropTable), { kind: 'table', table: 'inet portwarden' });
  assert.deepEqual(monitorChange(MONITOR.others), { kind: 'rule', table: 'inet other', chain: 'c', op: 'add', handle: 3 });
  assert.deepEqual(monitorChange(MONITOR.anonymousSet), { kind: 'bound' }, "an anonymous set goes with its rule");
  assert.deepEqual(monitorChange(MONITOR.anonymousMap), { kind: 'bound' });
  assert.deepEqual(monitorChange('{"delete": {"set": {"family": "inet", "name": "blocklist", "table": "f", "type": "ipv4_addr", "handle": 5}}}'), { kind: 'table', table: 'inet f' }, 'a named set deleted: the table is read');
  assert.deepEqual(monitorChange('{"replace": {"rule": {"family": "inet", "table": "portwarden", "chain": "input", "handle": 9, "expr": []}}}'), { kind: 'rule', table: 'inet portwarden', chain: 'input', op: 'other', handle: 9 });
  assert.deepEqual(monitorChange('{"add": {"table": {"family": "ip", "name": "filter", "handle": 7}}}'), { kind: 'table', table: 'ip filter' });
  assert.deepEqual(monitorChange('{"add": {"chain": {"family": "ip6", "table": "a \\"b\\"", "name": "x", "handle": 1}}}'), { kind: 'table', table: 'ip6 a "b"' });
  assert.deepEqual(monitorChange('{"flush": {"ruleset": null}}'), { kind: 'unknown' });
  assert.deepEqual(monitorChange('{"add": {"rule": {"family": "inet", "ta'), { kind: 'unknown' }, 'a torn line');
  assert.deepEqual(monitorChange('{"insert": {"rule": {"family": "inet", "table": "portwarden"'), { kind: 'table', table: 'inet portwarden' }, 'torn before the chain: the table');
  assert.deepEqual(monitorChange('{"add": {"table": {"family": "inet", "table": "x"}}}'), { kind: 'unknown' }, 'a table object names itself by name');
  assert.deepEqual(monitorChange('not json'), { kind: 'unknown' });
});

test('OurTableLedger: what the events alone tell against the last comparison', () => {
  const l = new OurTableLedger();
  const note = (line: string) => l.note(monitorChange(line));
  assert.equal(l.verdict(), null, 'no comparison yet');
  l.reset();
  assert.equal(l.verdict(), 'same');
  note(MONITOR.others);
  assert.equal(l.verdict(), 'same', "someone else's table");
  note(MONITOR.insert);
  assert.equal(l.verdict(), 'changed', 'a rule more');
  note(MONITOR.deleteIt);
  assert.equal(l.verdict(), 'same', 'inserted and deleted again');
  note(MONITOR.flushed);
  note(MONITOR.anonymousSet);
  note(MONITOR.anonymousMap);
  assert.equal(l.verdict(), 'changed', 'rules less (flush table), their anonymous sets with them');
  note(MONITOR.insert);
  assert.equal(l.verdict(), null, 'one removed and one added: maybe the same rule again, compare');
  l.reset();
  note(MONITOR.deleteIt.replace('"handle": 4', '"handle": 12128'));
  note(MONITOR.replaced);
  assert.equal(l.verdict(), null, 'a rule replaced (delete and add of one handle): compare');
  l.reset();
  note(MONITOR.element);
  assert.equal(l.verdict(), null, 'an element of ours: compare');
  assert.equal(l.listening, false, 'nothing after it can tell more: the lines need not be read');
  l.reset();
  note('{"flush": {"ruleset": null}}');
  assert.equal(l.verdict(), null, 'a change naming no table may have been ours');
  l.reset();
  l.forget();
  assert.equal(l.verdict(), null, 'the monitor restarted: events may be missed');
});

const rule = (chain: string, handle: number): NftObject => ({ rule: { family: 'inet', table: 't', chain, handle, expr: [] } });
const handles = (objects: NftObject[]) => objects.map((o) => (o.rule ? `${String(o.rule.chain)}#${String(o.rule.handle)}` : Object.keys(o)[0]!));

test("withRelisted: a chain listed again takes its rules' place, a set its own; the rest stays as it was", () => {
  const kept: NftObject[] = [{ table: { family: 'inet', name: 't' } }, { set: { family: 'inet', table: 't', name: 's', elem: [1] } }, { chain: { family: 'inet', table: 't', name: 'a' } }, { chain: { family: 'inet', table: 't', name: 'b' } }, rule('a', 1), rule('a', 2), rule('b', 3)];
  const listedA: NftObject[] = [{ chain: { family: 'inet', table: 't', name: 'a' } }, rule('a', 9), rule('a', 1), rule('a', 2)];
  assert.deepEqual(handles(withRelisted(kept, 'chain', 'a', listedA)), ['table', 'set', 'chain', 'chain', 'a#9', 'a#1', 'a#2', 'b#3']);
  assert.deepEqual(handles(withRelisted(kept, 'chain', 'b', [rule('b', 4)])), ['table', 'set', 'chain', 'chain', 'a#1', 'a#2', 'b#4']);
  assert.deepEqual(handles(withRelisted(kept, 'chain', 'a', [])), ['table', 'set', 'chain', 'chain', 'b#3'], 'a chain flushed');
  const withC = withRelisted(kept, 'chain', 'c', [rule('c', 5)]);
  assert.deepEqual(handles(withC), ['table', 'set', 'chain', 'chain', 'a#1', 'a#2', 'b#3', 'c#5'], 'a chain that had no rules');
  const fresh: NftObject = { set: { family: 'inet', table: 't', name: 's', elem: [1, 2] } };
  const sets = withRelisted(kept, 'set', 's', [{ table: { family: 'inet', name: 't' } }, fresh]);
  assert.equal(sets[1], fresh);
  assert.equal(sets.length, kept.length);
});

test('listingsFor: chains and sets of a table, whole tables, our own table made anew, too much', () => {
  const kept = new Map<string, NftObject[]>([
    ['inet portwarden', [{ map: { family: 'inet', table: 'portwarden', name: 'tcp_ports' } }]],
    ['inet f', []],
  ]);
  const t = (x: Partial<Touched>): Touched => ({ whole: false, chains: [], sets: [], ...x });
  assert.deepEqual(listingsFor(kept, new Map([['inet portwarden', t({ chains: ['input'], sets: ['tcp_ports', 'src_a_v4'] })]])), [
    { table: 'inet portwarden', what: 'chain', name: 'input' },
    { table: 'inet portwarden', what: 'map', name: 'tcp_ports' },
    { table: 'inet portwarden', what: 'set', name: 'src_a_v4' },
  ]);
  assert.deepEqual(listingsFor(kept, new Map([['inet f', t({ whole: true, chains: ['x'] })], ['ip new', t({ chains: ['y'] })]])), [
    { table: 'inet f', what: 'table', name: 'f' },
    { table: 'ip new', what: 'table', name: 'new' },
  ], 'a table touched whole, and one not kept, are listed whole');
  assert.equal(listingsFor(kept, new Map([['inet portwarden', t({ whole: true })]])), null, 'our table made anew: everything is read');
  assert.equal(listingsFor(kept, new Map([['inet f', t({ chains: Array.from({ length: 9 }, (_, i) => `c${i}`) })]])), null, 'more than 8 listings');
});

// What the nft monitor's lines tell (agent/firewall/drift.ts, daemon/firewall-watch.ts): the table each
// changes, and for our own table, what a run of them tells against the last full comparison.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OurTableLedger, ourTableEvent } from '../agent/firewall/drift.js';
import { tableOfEvent } from '../agent/daemon/firewall-watch.js';

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
};

test('ourTableEvent: rules of ours by handle, anything else of ours is "other", the rest null', () => {
  assert.deepEqual(ourTableEvent(MONITOR.insert), { op: 'add', handle: 4 });
  assert.deepEqual(ourTableEvent(MONITOR.deleteIt), { op: 'delete', handle: 4 });
  assert.equal(ourTableEvent(MONITOR.element), 'other');
  assert.equal(ourTableEvent(MONITOR.chain), 'other');
  assert.equal(ourTableEvent(MONITOR.dropTable), 'other');
  assert.equal(ourTableEvent(MONITOR.others), null);
  assert.equal(ourTableEvent(MONITOR.others.replace('"inet", "table": "other"', '"ip", "table": "portwarden"')), null, 'table ip portwarden is not ours');
  assert.equal(ourTableEvent('{"insert": {"rule": {"family": "inet", "table": "portwarden"'), 'other', 'a torn line: assume the worst');
});

test('OurTableLedger: what the events alone tell against the last comparison', () => {
  const l = new OurTableLedger();
  assert.equal(l.verdict(), null, 'no comparison yet');
  l.reset();
  assert.equal(l.verdict(), 'same');
  l.note(ourTableEvent(MONITOR.others));
  assert.equal(l.verdict(), 'same', "someone else's table");
  l.note(ourTableEvent(MONITOR.insert));
  assert.equal(l.verdict(), 'changed', 'a rule more');
  l.note(ourTableEvent(MONITOR.deleteIt));
  assert.equal(l.verdict(), 'same', 'inserted and deleted again');
  l.note(ourTableEvent(MONITOR.flushed));
  assert.equal(l.verdict(), 'changed', 'a rule less (flush table)');
  l.note(ourTableEvent(MONITOR.insert));
  assert.equal(l.verdict(), null, 'one removed and one added: maybe the same rule again, compare');
  l.reset();
  l.note(ourTableEvent(MONITOR.element));
  assert.equal(l.verdict(), null, 'an element of ours: compare');
  assert.equal(l.listening, false, 'nothing after it can tell more: the lines need not be read');
  l.reset();
  l.forget();
  assert.equal(l.verdict(), null, 'the monitor restarted: events may be missed');
});

test('tableOfEvent: the table a monitor line changes; none for flush ruleset or a torn line', () => {
  assert.equal(tableOfEvent(MONITOR.insert), 'inet portwarden');
  assert.equal(tableOfEvent(MONITOR.element), 'inet portwarden');
  assert.equal(tableOfEvent(MONITOR.others), 'inet other');
  assert.equal(tableOfEvent(MONITOR.dropTable), 'inet portwarden');
  assert.equal(tableOfEvent('{"add": {"table": {"family": "ip", "name": "filter", "handle": 7}}}'), 'ip filter');
  assert.equal(tableOfEvent('{"add": {"chain": {"family": "ip6", "table": "a \\"b\\"", "name": "x", "handle": 1}}}'), 'ip6 a "b"');
  assert.equal(tableOfEvent('{"flush": {"ruleset": null}}'), null);
  assert.equal(tableOfEvent('{"add": {"rule": {"family": "inet", "ta'), null);
  assert.equal(tableOfEvent('{"add": {"table": {"family": "inet", "table": "x"}}}'), null, 'a table object names itself by name');
});

// Child process for the full-disk test, run under `unshare --mount`: mounts a small tmpfs on DIR
// (only this process's mount namespace sees it), fills it, and drives a SinkQueue whose spool is
// there, delivering to the receiver on 127.0.0.1:PORT. Prints one JSON line with what it saw.
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { SinkQueue, type QueueOptions } from '../../agent/alerts/delivery.js';
import { webhookSender } from '../../agent/alerts/sinks/webhook.js';
import type { JournalEvent } from '../../agent/alerts/journal.js';

const [dir, port] = process.argv.slice(2) as [string, string];
execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'pw-spool-test', dir]);

const reported: (string | null)[] = [];
let logged = 0;
const log = { info: () => undefined, warn: () => undefined, error: () => void logged++ };
const opts = {
  spoolDir: `${dir}/spool`,
  limit: 100,
  log,
  host: 'testhost',
  onOutcome: () => undefined,
  onWriteError: (err: NodeJS.ErrnoException | null) => void reported.push(err ? (err.code ?? err.message) : null),
} as QueueOptions;
const queue = new SinkQueue(webhookSender({ name: 'hook', url: `http://127.0.0.1:${port}/hook`, format: 'standard', secret: null, timeoutMs: 5000 }), opts);
const spooled = () => readdirSync(`${dir}/spool/hook`).filter((f) => f.endsWith('.json')).length;
const event = (n: number) => ({
  event: 'opened', at: new Date().toISOString(), host: 'testhost',
  finding: { id: `f-${n}`, kind: 'forbidden-listener', severity: 'high', proto: 'tcp', port: 2000 + n, address: '0.0.0.0', rule: null, processes: [], message: `m${n}`, remedy: 'r' },
}) as JournalEvent;

try {
  writeFileSync(`${dir}/filler`, Buffer.alloc(1024 * 1024));
} catch {
  /* ENOSPC: the disk is full now */
}
for (let i = 0; i < 3; i++) queue.enqueue([event(i)]);
const spooledWhileFull = spooled();
await queue.drain(Date.now() + 5000);
rmSync(`${dir}/filler`);
queue.enqueue([event(3)]);
await queue.drain(Date.now() + 5000);
await queue.stop();
process.stdout.write(JSON.stringify({ reported, logged, spooledWhileFull, spooledAfter: spooled() }) + '\n');

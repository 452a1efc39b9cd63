// A separate process that takes a state lock (tryLock) at a given moment, holds it a while and
// prints when it entered and left. Judging the holder takes judgeMs (a slow /proc, a loaded box):
// that is the window in which two contenders can both judge the same dead holder stale.
import { alive, removeFile, tryLock } from '../../agent/state-files.js';

const [path, startAt, holdMs, judgeMs] = process.argv.slice(2).map((a, i) => (i === 0 ? a : Number(a))) as [string, number, number, number];
const slowAlive = (pid: number) => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, judgeMs);
  return alive(pid);
};
while (Date.now() < startAt) {
  /* spin: each contender starts at its own moment, a few ms apart */
}
while (tryLock(path, slowAlive) !== null) await new Promise((r) => setTimeout(r, 20));
const entered = performance.timeOrigin + performance.now();
await new Promise((r) => setTimeout(r, holdMs));
const left = performance.timeOrigin + performance.now();
removeFile(path);
process.stdout.write(JSON.stringify({ pid: process.pid, entered, left }) + '\n');

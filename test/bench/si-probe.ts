// Times systeminformation.networkConnections() in-process (run inside the bench namespace).
import si from 'systeminformation';

const runs = Number(process.argv[2] ?? 5);
const times: number[] = [];
let count = 0;
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  count = (await si.networkConnections()).length;
  times.push(performance.now() - t0);
}
process.stdout.write(JSON.stringify({ times, count }));

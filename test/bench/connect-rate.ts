// Bench helper for the per-packet cost of the generated rules, run inside a lab namespace:
//   {"mode": "listen", "port": P}  accept TCP on P (v4 and v6), print "ready"
//   {"mode": "connect", "host": H, "port": P, "ms": T, "parallel": N}  open connections to H:P for T ms, N at a
//            time, each reset as soon as it is established (no TIME_WAIT: the client's ports
//            never run out); prints {"connections": n, "errors": e}
import { connect, createServer } from 'node:net';

const arg = JSON.parse(process.argv[2] ?? '{}') as { mode: 'listen' | 'connect'; port: number; host?: string; ms?: number; parallel?: number };

if (arg.mode === 'listen') {
  const server = createServer((s) => s.on('error', () => {}));
  server.listen(arg.port, '::', () => process.stdout.write('ready\n'));
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
} else {
  const end = performance.now() + (arg.ms ?? 3000);
  let connections = 0;
  let errors = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const s = connect(arg.port, arg.host);
      s.once('connect', () => {
        connections++;
        s.resetAndDestroy();
        resolve();
      });
      s.once('error', () => {
        errors++;
        resolve();
      });
    });
  const worker = async () => {
    while (performance.now() < end) await one();
  };
  await Promise.all(Array.from({ length: arg.parallel ?? 16 }, worker));
  process.stdout.write(JSON.stringify({ connections, errors }) + '\n');
}

// Bench load generator, run inside a bench namespace: N listeners (9 TCP : 1 UDP) on loopback and
// M established loopback TCP connections. Prints "ready" and waits for stdin to close.
import { createServer, connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';

const { listeners, base, connections, connPort } = JSON.parse(process.argv[2] ?? '{}') as { listeners: number; base: number; connections: number; connPort: number };
const keep: unknown[] = [];

for (let i = 0; i < listeners; i++) {
  const port = base + i;
  await new Promise<void>((resolve, reject) => {
    if (i % 10 === 9) {
      const u = createSocket('udp4');
      u.once('error', reject);
      u.bind(port, '127.0.0.1', () => resolve());
      keep.push(u);
    } else {
      const s = createServer();
      s.once('error', reject);
      s.listen(port, i % 2 ? '::1' : '127.0.0.1', () => resolve());
      keep.push(s);
    }
  });
}

if (connections > 0) {
  const accepted: Socket[] = [];
  const server = createServer((c) => accepted.push(c));
  await new Promise<void>((r) => server.listen(connPort, '127.0.0.1', () => r()));
  keep.push(server);
  for (let done = 0; done < connections; ) {
    const batch = Math.min(500, connections - done);
    await Promise.all(
      Array.from({ length: batch }, () => new Promise<void>((resolve, reject) => {
        const c = connect(connPort, '127.0.0.1', () => resolve());
        c.once('error', reject);
        keep.push(c);
      })),
    );
    done += batch;
  }
  while (accepted.length < connections) await new Promise((r) => setTimeout(r, 20));
}
process.stdout.write('ready\n');
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

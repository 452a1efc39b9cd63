// Bench helper for the per-packet cost of the generated rules, run inside a lab namespace:
//   {"mode": "listen", "port": P}  accept TCP on P (v4 and v6) and reset each connection at once;
//            print "ready"
//   {"mode": "connect", "targets": [{"host": H, "port": P} …], "slices": S, "sliceMs": T, "parallel": N}
//            S times, each target in turn (ABBA…: the order alternates), open connections to it
//            for T ms, N at a time; prints {"connections": [per target], "ms": [per target],
//            "ratios": [per slice: target 1's rate / target 0's], "errors": e}
// Short alternating slices from one warm process: the machine's slow swings (a 2-core VM's rate
// moved ±30 % from one second to the next) fall on both targets alike.
// A connection counts when the server has accepted it (its reset arrives): the client never has
// more than N connections the server has not taken, so the server's accept queue cannot overflow.
// (A client that reset its own connections at once outran the server's accepts: the queue
// overflowed, every worker waited out a 1 s SYN retransmit, and one round's rate was a quarter of
// the next one's, with or without rules.) Resets leave no TIME_WAIT: the client's ports never run out.
import { connect, createServer } from 'node:net';

interface Target {
  host: string;
  port: number;
}
const arg = JSON.parse(process.argv[2] ?? '{}') as { mode: 'listen' | 'connect'; port: number; targets?: Target[]; slices?: number; sliceMs?: number; parallel?: number };

if (arg.mode === 'listen') {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.resetAndDestroy();
  });
  server.listen(arg.port, '::', () => process.stdout.write('ready\n'));
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
} else {
  const targets = arg.targets ?? [];
  let errors = 0;
  const one = (t: Target): Promise<boolean> =>
    new Promise((resolve) => {
      const s = connect(t.port, t.host);
      let accepted = false;
      // A reset comes only from the server's accept (a refused SYN gives ECONNREFUSED), sometimes
      // before 'connect' is emitted.
      s.on('error', (e: NodeJS.ErrnoException) => (accepted ||= e.code === 'ECONNRESET'));
      s.on('data', () => {});
      s.setTimeout(3000, () => s.destroy()); // an answer that never comes is an error, not a hang
      s.once('close', () => resolve(accepted));
    });
  /** Connections to t for ms, `parallel` at a time: how many, and how long until the last ended. */
  const slice = async (t: Target, ms: number): Promise<{ n: number; ms: number }> => {
    const t0 = performance.now();
    let n = 0;
    const worker = async () => {
      while (performance.now() - t0 < ms) {
        if (await one(t)) n++;
        else errors++;
      }
    };
    await Promise.all(Array.from({ length: arg.parallel ?? 16 }, worker));
    return { n, ms: performance.now() - t0 };
  };
  const connections = targets.map(() => 0);
  const ms = targets.map(() => 0);
  const ratios: number[] = [];
  for (let i = 0; i < (arg.slices ?? 1); i++) {
    const rates: number[] = [];
    const order = i % 2 ? [...targets.keys()].reverse() : [...targets.keys()];
    for (const k of order) {
      const r = await slice(targets[k]!, arg.sliceMs ?? 1000);
      connections[k]! += r.n;
      ms[k]! += r.ms;
      rates[k] = r.n / r.ms;
    }
    if (rates.length > 1) ratios.push(rates[1]! / rates[0]!);
  }
  process.stdout.write(JSON.stringify({ connections, ms, ratios, errors }) + '\n');
}

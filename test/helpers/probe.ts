// Child process: tries each probe (TCP connect / UDP echo) and prints open|refused|timeout as JSON.
import { connect } from 'node:net';
import { createSocket } from 'node:dgram';

interface Probe {
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
}
type Result = 'open' | 'refused' | 'timeout';

const { probes, timeoutMs, sequential } = JSON.parse(process.argv[2] ?? '{}') as { probes: Probe[]; timeoutMs: number; sequential: boolean };

function tcp(p: Probe): Promise<Result> {
  return new Promise((resolve) => {
    const s = connect({ host: p.host, port: p.port });
    const done = (r: Result) => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    // Open means the server accepted and spoke (listen.ts writes "ok"): a handshake whose later
    // packets the firewall drops is not a usable connection.
    s.once('data', () => done('open'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ETIMEDOUT' ? 'timeout' : 'refused'));
  });
}

function udp(p: Probe): Promise<Result> {
  return new Promise((resolve) => {
    const s = createSocket(p.host.includes(':') ? 'udp6' : 'udp4');
    const done = (r: Result) => {
      clearTimeout(timer);
      s.close();
      resolve(r);
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    s.once('message', () => done('open'));
    s.once('error', () => done('refused')); // ICMP port unreachable on a connected socket
    s.connect(p.port, p.host, () => s.send('ping'));
  });
}

const run = (p: Probe) => (p.proto === 'tcp' ? tcp(p) : udp(p));
const results: Result[] = [];
if (sequential) for (const p of probes) results.push(await run(p));
else results.push(...(await Promise.all(probes.map(run))));
process.stdout.write(JSON.stringify(results));

// Child process: connects to host:port every few milliseconds until its stdin ends (or `ms`
// milliseconds at most); says "connected" after the first connect, then prints
// {ok, failed, errors} at the end. Paced so that it never runs out of ephemeral ports (which fails
// connects with no firewall at all).
import { connect } from 'node:net';

const { host, port, ms } = JSON.parse(process.argv[2] ?? '{}') as { host: string; port: number; ms: number };
let ok = 0;
let failed = 0;
const errors: string[] = [];
const end = Date.now() + ms;
let stopped = false;
process.stdin.on('end', () => (stopped = true)).on('error', () => (stopped = true)).resume();
while (!stopped && Date.now() < end) {
  const good = await new Promise<boolean>((resolve) => {
    const s = connect({ host, port });
    const timer = setTimeout(() => (s.destroy(), resolve(false)), 1000);
    s.once('connect', () => (clearTimeout(timer), s.destroy(), resolve(true)));
    s.once('error', (e: NodeJS.ErrnoException) => (clearTimeout(timer), errors.push(e.code ?? e.message), resolve(false)));
  });
  if (good) ok++;
  else failed++;
  if (good && ok === 1) process.stdout.write('connected\n');
  await new Promise((r) => setTimeout(r, 3));
}
process.stdout.write(JSON.stringify({ ok, failed, errors }));
process.exit(0); // stdin may still be open when `ms` ran out

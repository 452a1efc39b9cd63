// Child process: connects to host:port every few milliseconds for `ms` milliseconds; prints
// {ok, failed, errors}. Paced so that it never runs out of ephemeral ports (which fails connects
// with no firewall at all).
import { connect } from 'node:net';

const { host, port, ms } = JSON.parse(process.argv[2] ?? '{}') as { host: string; port: number; ms: number };
let ok = 0;
let failed = 0;
const errors: string[] = [];
const end = Date.now() + ms;
while (Date.now() < end) {
  const good = await new Promise<boolean>((resolve) => {
    const s = connect({ host, port });
    const timer = setTimeout(() => (s.destroy(), resolve(false)), 1000);
    s.once('connect', () => (clearTimeout(timer), s.destroy(), resolve(true)));
    s.once('error', (e: NodeJS.ErrnoException) => (clearTimeout(timer), errors.push(e.code ?? e.message), resolve(false)));
  });
  if (good) ok++;
  else failed++;
  await new Promise((r) => setTimeout(r, 3));
}
process.stdout.write(JSON.stringify({ ok, failed, errors }));

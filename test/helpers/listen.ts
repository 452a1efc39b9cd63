// Child process: opens the TCP/UDP listeners it is given, answers each connection/datagram, and
// runs until stdin closes. Used inside test namespaces only.
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';

interface Spec {
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
  ipv6Only?: boolean;
}

const { specs, title } = JSON.parse(process.argv[2] ?? '{}') as { specs: Spec[]; title?: string };
if (title) process.title = title;

await Promise.all(
  specs.map(
    (s) =>
      new Promise<void>((resolve, reject) => {
        if (s.proto === 'tcp') {
          const server = createServer((c) => {
            c.on('error', () => c.destroy()); // probes reset connections on purpose
            c.end('ok\n');
          });
          server.once('error', reject);
          server.listen({ host: s.host, port: s.port, ipv6Only: s.ipv6Only ?? false }, () => resolve());
        } else {
          const sock = createSocket({ type: s.host.includes(':') ? 'udp6' : 'udp4', ipv6Only: s.ipv6Only ?? false });
          sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
          sock.once('error', reject);
          sock.bind(s.port, s.host, () => resolve());
        }
      }),
  ),
);
process.stdout.write('ready\n');
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

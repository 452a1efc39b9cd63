// Fallback when ss is missing: /proc/net/{tcp,tcp6,udp,udp6}. It cannot see v6only per socket, so
// dual-stack comes from the system default (net.ipv6.bindv6only).
import { readFile } from 'node:fs/promises';
import { canonicalAddress } from './address.js';
import { exec as defaultExec, inNetns, type Exec } from '../exec.js';
import type { Family, Proto } from '../model.js';
import type { RawSocket } from './sockets.js';

const TCP_LISTEN = '0A';
const UDP_UNCONN = '07';

/** Decodes the kernel's hex address: 32-bit words in host (little-endian) byte order. */
export function decodeHexAddress(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex.slice(w, w + 8);
    for (let b = 6; b >= 0; b -= 2) bytes.push(parseInt(word.slice(b, b + 2), 16));
  }
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return canonicalAddress(groups.join(':'));
}

export function parseProcNet(text: string, proto: Proto, family: Family, bindV6Only: boolean): RawSocket[] {
  const want = proto === 'tcp' ? TCP_LISTEN : UDP_UNCONN;
  const out: RawSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== want) continue;
    const [addrHex, portHex] = (f[1] ?? '').split(':');
    if (!addrHex || !portHex) continue;
    const address = decodeHexAddress(addrHex);
    out.push({
      proto,
      family,
      address,
      port: parseInt(portHex, 16),
      inode: Number(f[9]),
      dualStack: family === 6 && address === '::' && !bindV6Only,
    });
  }
  return out;
}

const TABLES: [string, Proto, Family][] = [
  ['tcp', 'tcp', 4],
  ['tcp6', 'tcp', 6],
  ['udp', 'udp', 4],
  ['udp6', 'udp', 6],
];

export async function readProcNet(procRoot = '/proc', netns?: string, exec: Exec = defaultExec): Promise<RawSocket[]> {
  const read = async (rel: string): Promise<string> => {
    if (!netns) return readFile(`${procRoot}/${rel}`, 'utf8').catch(() => '');
    // /proc/net follows the reading process's namespace, so read it from inside.
    const [cmd, args] = inNetns(netns, 'cat', [`/proc/${rel}`]);
    return (await exec(cmd, args)).stdout;
  };
  const bindV6Only = (await read('sys/net/ipv6/bindv6only')).trim() === '1';
  const texts = await Promise.all(TABLES.map(([file]) => read(`net/${file}`)));
  return TABLES.flatMap(([, proto, family], i) => parseProcNet(texts[i] ?? '', proto, family, bindV6Only));
}

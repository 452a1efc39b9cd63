// Listening sockets from `ss -Htulne`: netlink with the kernel's own state filter, and the only
// source that reports v6only per socket. Parsing is pure; reading is readSs().
import { canonicalAddress } from './address.js';
import { exec as defaultExec, inNetns, type Exec } from '../exec.js';
import type { RawSocket } from './sockets.js';

export const SS_ARGS = ['-H', '-t', '-u', '-l', '-n', '-e'];

/** Splits "addr:port" as ss prints it: "0.0.0.0:22", "[::1]:53", "*:80", "127.0.0.53%lo:53", "[fe80::1]%eth0:123". */
export function splitEndpoint(text: string): { address: string; port: number; iface?: string } | null {
  const colon = text.lastIndexOf(':');
  if (colon < 0) return null;
  const port = Number(text.slice(colon + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) return null;
  let host = text.slice(0, colon);
  let iface: string | undefined;
  const pct = host.lastIndexOf('%');
  if (pct >= 0 && !host.slice(pct).includes(']')) {
    iface = host.slice(pct + 1);
    host = host.slice(0, pct);
  }
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const inner = host.indexOf('%');
  if (inner >= 0) {
    iface ??= host.slice(inner + 1);
    host = host.slice(0, inner);
  }
  return { address: host, port, ...(iface ? { iface } : {}) };
}

// proto state recv-q send-q local peer extras… (one regex over the whole text: the daemon parses
// this every cycle, and splitting 10 000 lines field by field costs more than running ss).
const SS_LINE = /^(tcp|udp)[ \t]+\S+[ \t]+\S+[ \t]+\S+[ \t]+(\S+)[ \t]+\S+(.*)$/gm;

function extra(tail: string, key: string): string | undefined {
  const at = tail.indexOf(` ${key}:`);
  if (at < 0) return undefined;
  const from = at + key.length + 2;
  const end = tail.indexOf(' ', from);
  return tail.slice(from, end < 0 ? undefined : end);
}

export function parseSs(text: string): RawSocket[] {
  const out: RawSocket[] = [];
  for (const m of text.matchAll(SS_LINE)) {
    const proto = m[1] as 'tcp' | 'udp';
    const local = splitEndpoint(m[2]!);
    if (!local) continue;
    const tail = m[3]!;
    const v6only = extra(tail, 'v6only');
    // ss prints "*" for an IPv6 wildcard socket that also accepts IPv4 (v6only=0).
    const star = local.address === '*';
    const family = star || local.address.includes(':') ? 6 : 4;
    const address = star ? '::' : family === 6 && local.address !== '::' && local.address !== '::1' ? canonicalAddress(local.address) : local.address;
    out.push({
      proto,
      family,
      address,
      port: local.port,
      ...(local.iface ? { interface: local.iface } : {}),
      inode: Number(extra(tail, 'ino') ?? 0),
      dualStack: family === 6 && address === '::' && (v6only === undefined ? star : v6only === '0'),
    });
  }
  return out;
}

/** Runs ss (inside netns when given). Rejects with ENOENT when ss is not installed. */
export async function readSs(netns?: string, exec: Exec = defaultExec): Promise<RawSocket[]> {
  const [cmd, args] = inNetns(netns, 'ss', SS_ARGS);
  const r = await exec(cmd, args);
  if (r.code !== 0) throw new Error(`ss failed (exit ${r.code}): ${firstLine(r.stderr)}`);
  return parseSs(r.stdout);
}

function firstLine(s: string): string {
  return s.split('\n').find((l) => l.trim() !== '') ?? '';
}

// Portable fallback for non-Linux hosts: systeminformation's networkConnections(). It is less
// precise (no v6only, one pid per socket, truncated names), so the snapshot says precise: false.
import si from 'systeminformation';
import { canonicalAddress, scopeOf } from './address.js';
import type { Listener } from '../model.js';

export async function readSystemInformation(): Promise<Listener[]> {
  const conns = await si.networkConnections();
  const out: Listener[] = [];
  for (const c of conns) {
    const proto = c.protocol.startsWith('udp') ? 'udp' : c.protocol.startsWith('tcp') ? 'tcp' : null;
    if (!proto || (proto === 'tcp' && c.state !== 'LISTEN')) continue;
    const address = canonicalAddress(c.localAddress === '*' ? '0.0.0.0' : c.localAddress);
    const port = Number(c.localPort);
    if (!Number.isInteger(port)) continue;
    out.push({
      proto,
      family: address.includes(':') || c.protocol.endsWith('6') ? 6 : 4,
      address,
      port,
      scope: scopeOf(address),
      dualStack: false,
      inode: 0,
      processes: c.pid ? [{ pid: c.pid, name: c.process || 'unknown', exe: null, user: 'unknown', cmdline: null }] : [],
    });
  }
  return out;
}

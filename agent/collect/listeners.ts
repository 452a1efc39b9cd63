// Collects the host's (or a namespace's) listening sockets with their owners: ss first, /proc/net
// when ss is missing, systeminformation off Linux.
import { hostname } from 'node:os';
import { scopeOf } from './address.js';
import { OwnerIndex } from './processes.js';
import { readSs } from './sockets-ss.js';
import type { RawSocket } from './sockets.js';
import { exec as defaultExec, type Exec } from '../exec.js';
import { RuntimeError } from '../errors.js';
import type { Listener, Snapshot } from '../model.js';

export interface CollectOptions {
  netns?: string;
  procRoot?: string;
  /** Read process command lines (off by default: they may hold passwords). Ignored when owners is given. */
  cmdline?: boolean;
  /** Keep one across calls to reuse the inode→pid index (the daemon does). */
  owners?: OwnerIndex;
  exec?: Exec;
  platform?: NodeJS.Platform;
}

export async function collectSnapshot(opts: CollectOptions = {}): Promise<Snapshot> {
  const host = { hostname: hostname(), netns: opts.netns ?? null };
  if ((opts.platform ?? process.platform) !== 'linux') {
    if (opts.netns) throw new RuntimeError('--netns works on Linux only');
    // Loaded only here: systeminformation is large, and Linux never needs it.
    const { readSystemInformation } = await import('./sockets-si.js');
    const listeners = sortListeners(await readSystemInformation());
    return { host: { ...host, source: 'systeminformation', precise: false }, listeners };
  }
  let source: 'ss' | 'procfs' = 'ss';
  let raw: RawSocket[];
  try {
    raw = await readSs(opts.netns, opts.exec ?? defaultExec);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new RuntimeError(`cannot read sockets: ${(err as Error).message}`);
    source = 'procfs';
    try {
      // Loaded only here: the fallback for hosts without ss.
      const { readProcNet } = await import('./sockets-procfs.js');
      raw = await readProcNet(opts.procRoot, opts.netns, opts.exec ?? defaultExec);
    } catch (e) {
      throw new RuntimeError(`cannot read sockets: ss is not installed, and reading /proc/net failed: ${(e as Error).message}`);
    }
  }
  // After ss, not alongside it: measured on 2 shared cores, the overlap saved no time and cost CPU,
  // and a socket the overlapped walk missed (or one no process holds) needed a second walk.
  const owners = (opts.owners ?? new OwnerIndex({ procRoot: opts.procRoot, cmdline: opts.cmdline ?? false })).owners(raw.map((s) => s.inode));
  // Built field by field in one order: every listener object gets the same shape (the daemon
  // builds 10 000 of these each cycle; a spread of mixed shapes costs more than ss itself).
  const listeners = raw.map((s): Listener => {
    const l: Listener = { proto: s.proto, family: s.family, address: s.address, port: s.port, scope: scopeOf(s.address), dualStack: s.dualStack, inode: s.inode, processes: owners.get(s.inode) ?? [] };
    if (s.interface) l.interface = s.interface;
    return l;
  });
  return { host: { ...host, source, precise: true }, listeners: sortListeners(listeners) };
}

export function sortListeners(ls: Listener[]): Listener[] {
  // One number for proto, port and family; the address only breaks ties. Sorted in place: no
  // wrapper object per listener.
  const key = (l: Listener) => (l.proto === 'tcp' ? 0 : 1 << 20) + l.port * 8 + l.family;
  return ls.sort((a, b) => key(a) - key(b) || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

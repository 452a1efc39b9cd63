// Collects the host's (or a namespace's) listening sockets with their owners: ss first, /proc/net
// when ss is missing, systeminformation off Linux.
import { hostname } from 'node:os';
import { scopeOf } from './address.js';
import { OwnerIndex } from './processes.js';
import { readProcNet } from './sockets-procfs.js';
import { readSs } from './sockets-ss.js';
import type { RawSocket } from './sockets.js';
import { exec as defaultExec, type Exec } from '../exec.js';
import { RuntimeError } from '../errors.js';
import type { Listener, Snapshot } from '../model.js';

export interface CollectOptions {
  netns?: string;
  procRoot?: string;
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
    raw = await readProcNet(opts.procRoot, opts.netns, opts.exec ?? defaultExec);
  }
  const owners = (opts.owners ?? new OwnerIndex({ procRoot: opts.procRoot })).owners(raw.map((s) => s.inode));
  const listeners = raw.map((s): Listener => ({
    ...s,
    scope: scopeOf(s.address),
    processes: owners.get(s.inode) ?? [],
  }));
  return { host: { ...host, source, precise: true }, listeners: sortListeners(listeners) };
}

export function sortListeners(ls: Listener[]): Listener[] {
  const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return [...ls].sort((a, b) => cmp(a.proto, b.proto) || a.port - b.port || a.family - b.family || cmp(a.address, b.address));
}

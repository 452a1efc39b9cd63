// What the commands collect: the listening sockets of this host, or of a named network namespace.
import { existsSync } from 'node:fs';
import { UsageError } from '../errors.js';
import { netnsPath } from '../exec.js';
import type { Snapshot } from '../model.js';
import { collectSnapshot } from './listeners.js';

/** A usage error unless /run/netns/NAME exists. */
export function checkNetns(netns: string): void {
  let path: string;
  try {
    path = netnsPath(netns);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (!existsSync(path)) throw new UsageError(`no network namespace named ${JSON.stringify(netns)} (${path} does not exist)`);
}

export async function snapshotFor(netns: string | undefined, opts: { cmdline?: boolean } = {}): Promise<Snapshot> {
  if (netns !== undefined) checkNetns(netns);
  return collectSnapshot({ netns, cmdline: opts.cmdline ?? false });
}

// portwarden scan [--json] [--netns NAME]: the listening sockets, better than ss -tulpn.
import { existsSync } from 'node:fs';
import { collectSnapshot } from '../collect/listeners.js';
import { UsageError } from '../errors.js';
import { netnsPath } from '../exec.js';
import type { Listener, ProcessInfo, Snapshot } from '../model.js';
import { exposureCell, exposureOf, publishedTarget, targetExposure, unheardPublished, type Exposure, type FirewallView } from '../exposure/exposure.js';
import type { Published } from '../exposure/published.js';
import { readFirewall } from '../exposure/read.js';
import { parse } from './args.js';
import { printable, table } from './output.js';

export const scanOptions = {
  json: { type: 'boolean' },
  netns: { type: 'string' },
  cmdline: { type: 'boolean' },
} as const;

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

export function listenerJson(l: Listener, exposure?: Exposure) {
  // Two fixed shapes, no spreads: scan --json builds 10 000 of these (JSON.stringify of them is
  // faster than writing the text by hand).
  const processes = l.processes.map((p) => ({ pid: p.pid, name: p.name, exe: p.exe, user: p.user, cmdline: p.cmdline }));
  const o: ListenerJson = l.interface
    ? { proto: l.proto, family: l.family, address: l.address, port: l.port, interface: l.interface, scope: l.scope, dualStack: l.dualStack, inode: l.inode, processes }
    : { proto: l.proto, family: l.family, address: l.address, port: l.port, scope: l.scope, dualStack: l.dualStack, inode: l.inode, processes };
  if (exposure) o.exposure = exposure;
  return o;
}

type ListenerJson = Omit<Listener, 'processes'> & { processes: ProcessInfo[]; exposure?: Exposure };

/** A published port nothing here listens on: its connections go to a container. */
export interface PublishedRow {
  published: Published;
  exposure: Exposure;
}

export function publishedRows(fw: FirewallView, listeners: readonly Listener[]): PublishedRow[] {
  return unheardPublished(fw, listeners).map((u) => ({ published: u.published, exposure: targetExposure(publishedTarget(u.published, u.families), fw) }));
}

export function listenersTable(ls: readonly Listener[], exposures?: Exposure[], published: readonly PublishedRow[] = []): string {
  const rows = ls.map((l, i) => [
    l.proto + (l.family === 6 ? '6' : ''),
    printable(`${l.family === 6 ? `[${l.address}]` : l.address}${l.interface ? `%${l.interface}` : ''}:${l.port}`),
    l.scope,
    l.dualStack ? 'v4+v6' : '',
    ...(exposures ? [exposureCell(exposures[i]!)] : []),
    l.processes.length ? l.processes.map((p) => `${printable(p.name)}(${p.pid},${printable(p.user)})`).join(' ') : '?',
  ]);
  for (const { published: p, exposure } of published) {
    rows.push([p.proto, `*:${p.port}`, 'published', '', ...(exposures ? [exposureCell(exposure)] : []), `DNAT → ${printable(p.to ?? '?')}`]);
  }
  return table(['PROTO', 'ADDRESS:PORT', 'SCOPE', 'DUAL', ...(exposures ? ['EXPOSURE'] : []), 'PROCESSES'], rows);
}

export function snapshotNote(s: Snapshot): string {
  const missing = s.listeners.filter((l) => l.processes.length === 0).length;
  const notes: string[] = [];
  if (!s.host.precise) notes.push(`read through ${s.host.source}: less precise (no v6only, one pid per socket)`);
  if (missing) notes.push(`${missing} socket(s) with unknown owner ("?"): the owner is not readable (run as root; processes in another pid namespace stay hidden)`);
  return notes.map((n) => `note: ${n}\n`).join('');
}

export async function runScan(argv: string[]): Promise<number> {
  const { values } = parse(argv, scanOptions);
  const [snap, fw] = await Promise.all([snapshotFor(values.netns, { cmdline: values.cmdline }), readFirewall(values.netns)]);
  const exposures = snap.listeners.map((l) => exposureOf(l, fw));
  const published = publishedRows(fw, snap.listeners);
  if (values.json) {
    const pub = published.map(({ published: p, exposure }) => ({ proto: p.proto, port: p.port, to: p.to, where: p.where, exposure }));
    process.stdout.write(JSON.stringify({ host: snap.host, listeners: snap.listeners.map((l, i) => listenerJson(l, exposures[i])), published: pub }, null, 2) + '\n');
  } else {
    process.stdout.write(listenersTable(snap.listeners, exposures, published));
    process.stderr.write(snapshotNote(snap) + (fw.error ? `note: exposure undetermined: cannot read the firewall (${printable(fw.error)})\n` : ''));
  }
  return 0;
}

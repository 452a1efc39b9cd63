// portwarden scan [--json] [--netns NAME]: the listening sockets, better than ss -tulpn.
import { snapshotFor } from '../collect/snapshot.js';
import { exposureOf } from '../exposure/exposure.js';
import { readFirewall } from '../exposure/read.js';
import { listenerJson } from '../serialize.js';
import { parse } from './args.js';
import { SPECS } from './specs.js';
import { printable } from './output.js';
import { listenersTable, publishedRows, snapshotNote } from './present.js';

export async function runScan(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.scan.options);
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

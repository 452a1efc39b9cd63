// How the commands show findings and listeners to a person: the findings list, the listeners
// table (with exposure and published container ports) and the notes under it.
import { exposureCell, publishedTarget, targetExposure, unheardPublished, type Exposure, type FirewallView } from '../exposure/exposure.js';
import type { Published } from '../exposure/published.js';
import { SEVERITIES, severityRank, type Finding, type Listener, type Severity, type Snapshot } from '../model.js';
import { paintSeverity, printable, table } from './output.js';

export function findingsText(findings: readonly Finding[], color: boolean): string {
  if (!findings.length) return 'no findings: what listens matches the policy\n';
  // Exposure that was not compared is not a match: say so first, in one line.
  const unsure = findings.filter((f) => f.kind === 'exposure-undetermined');
  let out = unsure.length ? `exposure not compared for ${unsure.length} listener${unsure.length > 1 ? 's' : ''}: ${printable(unsure[0]!.message.replace(/^.*? not compared with [^:]*: /, ''))}\n` : '';
  for (const sev of SEVERITIES) {
    const group = findings.filter((f) => f.severity === sev);
    if (!group.length) continue;
    out += paintSeverity(sev, `${sev.toUpperCase()} (${group.length})`, color) + '\n';
    for (const f of group) out += `  ${f.kind}: ${printable(f.message)}\n    → ${printable(f.remedy)}\n`;
  }
  return out;
}

export function exitFor(findings: readonly Finding[], failOn: Severity | 'none'): number {
  if (failOn === 'none') return 0;
  return findings.some((f) => severityRank(f.severity) >= severityRank(failOn)) ? 1 : 0;
}


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

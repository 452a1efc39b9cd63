// portwarden alerts [--since DURATION] [--open] [--json] [--state-dir DIR]: the event history.
import { openFindings, type DriftState } from '../alerts/drift.js';
import { readEvents } from '../alerts/journal.js';
import { STATE_FILE } from '../daemon/agent.js';
import { parseDuration } from '../daemon/config.js';
import { DEFAULT_STATE_DIR } from '../firewall/apply.js';
import { UsageError } from '../errors.js';
import type { Finding } from '../model.js';
import { readJson } from '../state-files.js';
import { parse } from './args.js';
import { findingJson } from './check.js';
import { table } from './output.js';

const program = (f: Finding) => [...new Set(f.processes.map((p) => p.name))].join(',') || '-';
const port = (f: Finding) => (f.proto ? `${f.proto}/${f.port}` : '-');

export async function runAlerts(argv: string[]): Promise<number> {
  const { values } = parse(argv, { since: { type: 'string' }, open: { type: 'boolean' }, json: { type: 'boolean' }, 'state-dir': { type: 'string' } });
  const dir = values['state-dir'] ?? DEFAULT_STATE_DIR;
  if (values.open) {
    const open = openFindings(readJson<DriftState>(`${dir}/${STATE_FILE}`) ?? { version: 1, tracked: {} });
    if (values.json) {
      process.stdout.write(JSON.stringify({ open: open.map((t) => ({ since: t.openedAt, finding: findingJson(t.finding) })) }, null, 2) + '\n');
    } else {
      process.stdout.write(open.length ? table(['SINCE', 'SEVERITY', 'KIND', 'PORT', 'PROGRAM', 'RULE', 'MESSAGE'], open.map((t) => [t.openedAt ?? '', t.finding.severity, t.finding.kind, port(t.finding), program(t.finding), t.finding.rule ?? '-', t.finding.message])) : 'no open findings\n');
    }
    return 0;
  }
  let sinceMs = 0;
  if (values.since !== undefined) {
    try {
      sinceMs = Date.now() - parseDuration(values.since);
    } catch (err) {
      throw new UsageError(`--since: ${(err as Error).message}`);
    }
  }
  const events = readEvents(dir).filter((e) => Date.parse(e.at) >= sinceMs);
  if (values.json) {
    process.stdout.write(JSON.stringify({ events: events.map((e) => ({ event: e.event, at: e.at, host: e.host, finding: findingJson(e.finding) })) }, null, 2) + '\n');
  } else {
    process.stdout.write(events.length ? table(['AT', 'EVENT', 'SEVERITY', 'KIND', 'PORT', 'PROGRAM', 'RULE', 'MESSAGE'], events.map((e) => [e.at, e.event, e.finding.severity, e.finding.kind, port(e.finding), program(e.finding), e.finding.rule ?? '-', e.finding.message])) : 'no events\n');
  }
  return 0;
}

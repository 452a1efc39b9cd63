// portwarden alerts [--since DURATION] [--open] [--json] [--state-dir DIR]: the event history.
import { isDriftState, openFindings } from '../alerts/drift.js';
import { readJournal } from '../alerts/journal.js';
import { parseDuration } from '../duration.js';
import { DEFAULT_STATE_DIR, STATE_FILE } from '../paths.js';
import { RuntimeError, UsageError } from '../errors.js';
import type { Finding } from '../model.js';
import { readJson } from '../state-files.js';
import { parse, stateDirReadable } from './args.js';
import { SPECS } from './specs.js';
import { findingJson } from '../serialize.js';
import { table } from './output.js';

const program = (f: Finding) => [...new Set(f.processes.map((p) => p.name))].join(',') || '-';
const port = (f: Finding) => (f.proto ? `${f.proto}/${f.port}` : '-');


export async function runAlerts(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.alerts.options);
  const dir = values['state-dir'] ?? DEFAULT_STATE_DIR;
  const readable = stateDirReadable(dir, values['state-dir'] !== undefined);
  if (values.open) {
    const saved = readable ? readJson<unknown>(`${dir}/${STATE_FILE}`) : null;
    // A state.json of another shape is not read as one: the daemon keeps such a file aside too.
    if (saved !== null && !isDriftState(saved)) throw new RuntimeError(`${dir}/${STATE_FILE} is not a state file portwarden wrote (the agent keeps it aside and rebuilds from the journal at its next start)`);
    const open = openFindings(saved ?? { version: 1, tracked: {} });
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
  const journal = readable ? readJournal(dir) : { events: [], unreadable: [] };
  const events = journal.events.filter((e) => Date.parse(e.at) >= sinceMs);
  const unreadable = journal.unreadable.reduce((n, u) => n + u.lines, 0);
  if (unreadable) process.stderr.write(`portwarden: skipped ${unreadable} unreadable line${unreadable === 1 ? '' : 's'} in ${journal.unreadable.map((u) => u.file).join(', ')}\n`);
  if (values.json) {
    const out = { events: events.map((e) => ({ event: e.event, at: e.at, host: e.host, finding: findingJson(e.finding) })), unreadable };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } else {
    process.stdout.write(events.length ? table(['AT', 'EVENT', 'SEVERITY', 'KIND', 'PORT', 'PROGRAM', 'RULE', 'MESSAGE'], events.map((e) => [e.at, e.event, e.finding.severity, e.finding.kind, port(e.finding), program(e.finding), e.finding.rule ?? '-', e.finding.message])) : 'no events\n');
  }
  return 0;
}

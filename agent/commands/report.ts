// portwarden report: what `npm start` runs. Listeners (with their exposure), findings and the suggested nft rules for
// this host, with /etc/portwarden/policy.yaml or, when there is none, the bundled default policy.
// Exit 0 unless something broke: findings are for reading here, `check` is for CI.
// With --html FILE: the review page instead (agent/report), written atomically.
import { existsSync } from 'node:fs';
import { parseDuration } from '../duration.js';
import { UsageError } from '../errors.js';
import { buildPage } from '../report/model.js';
import { renderPage } from '../report/html.js';
import { DEFAULT_SINCE, fileSha256, readAttemptsForPage, readStateForPage } from '../report/read.js';
import { evaluate, sortFindings } from '../policy/evaluate.js';
import { compareExposure } from '../exposure/compare.js';
import { exposureOf } from '../exposure/exposure.js';
import { readFirewall } from '../exposure/read.js';
import { BUNDLED_POLICY_PATH, DEFAULT_POLICY_PATH, DEFAULT_STATE_DIR } from '../paths.js';
import { loadPolicy } from '../policy/load.js';
import { lockoutWarning } from '../firewall/oracle.js';
import { renderRuleset } from '../firewall/render.js';
import { parse, stateDirReadable } from './args.js';
import { SPECS } from './specs.js';
import { snapshotFor } from '../collect/snapshot.js';
import { checkOutputPath, printable, printWarnings, useColor, writeOutput } from './output.js';
import { findingsText, listenersTable, publishedRows, snapshotNote } from './present.js';

export async function runReport(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.report.options);
  if (values.html === undefined && (values['state-dir'] !== undefined || values.since !== undefined)) throw new UsageError('--state-dir and --since go with --html FILE');
  const file = values.policy ?? (existsSync(DEFAULT_POLICY_PATH) ? DEFAULT_POLICY_PATH : BUNDLED_POLICY_PATH);
  if (values.html !== undefined) return writeHtml(values.html, file, values);
  const loaded = loadPolicy(file);
  printWarnings(loaded.warnings);
  const [snap, fw] = await Promise.all([snapshotFor(values.netns), readFirewall(values.netns)]);
  const out = process.stdout;
  out.write(`== listeners on ${printable(snap.host.hostname)}${snap.host.netns ? ` (netns ${snap.host.netns})` : ''}\n`);
  out.write(listenersTable(snap.listeners, snap.listeners.map((l) => exposureOf(l, fw)), publishedRows(fw, snap.listeners)));
  out.write(snapshotNote(snap));
  if (fw.error) out.write(`note: exposure undetermined: cannot read the firewall (${printable(fw.error)})\n`);
  out.write(`\n== findings against ${file}\n`);
  out.write(findingsText(sortFindings([...evaluate(loaded.policy, snap.listeners), ...compareExposure(loaded.policy, snap.listeners, fw)]), useColor()));
  out.write(`\n== suggested nftables rules (portwarden rules --policy ${file})\n`);
  const warning = lockoutWarning(loaded.policy, process.env);
  if (warning) out.write(`# WARNING: ${warning}\n`);
  out.write(renderRuleset(loaded.policy, 'nft', file));
  return 0;
}

/** report --html FILE: the review page of this scan, with the state dir's journal and status. */
async function writeHtml(out: string, file: string, values: { netns?: string; 'state-dir'?: string; since?: string }): Promise<number> {
  let sinceMs: number;
  try {
    sinceMs = parseDuration(values.since ?? DEFAULT_SINCE);
  } catch (err) {
    throw new UsageError(`--since: ${(err as Error).message}`);
  }
  checkOutputPath(out); // before the scan: a bad path is exit 2 at once
  const loaded = loadPolicy(file);
  printWarnings(loaded.warnings);
  const dir = values['state-dir'] ?? DEFAULT_STATE_DIR;
  const readable = stateDirReadable(dir, values['state-dir'] !== undefined);
  const [snap, fw] = await Promise.all([snapshotFor(values.netns), readFirewall(values.netns)]);
  const state = readable ? await readStateForPage(dir, values.netns) : null;
  if (state?.unreadable) process.stderr.write(`portwarden: skipped ${state.unreadable} unreadable journal line${state.unreadable === 1 ? '' : 's'} in ${dir}\n`);
  const drift = state?.drift ?? null;
  const findings = [...evaluate(loaded.policy, snap.listeners), ...compareExposure(loaded.policy, snap.listeners, fw), ...(drift ? [drift] : [])];
  const now = new Date();
  const since = new Date(now.getTime() - sinceMs);
  const page = buildPage({
    generatedAt: now, snapshot: snap, fw, policy: { file, sha256: fileSha256(file), compiled: loaded.policy }, findings,
    openedAt: state?.openedAt ?? new Map(), events: state?.events ?? [], since, status: state?.status ?? null,
    attempts: readable ? readAttemptsForPage(dir, since, values.since ?? DEFAULT_SINCE) : null,
  });
  writeOutput(out, renderPage(page), 0o600); // as the journal it shows: which ports are open to whom
  process.stdout.write(`wrote ${out}: ${page.counts.findings} open finding${page.counts.findings === 1 ? '' : 's'}, ${page.counts.listeners} listener${page.counts.listeners === 1 ? '' : 's'}, ${page.counts.events} event${page.counts.events === 1 ? '' : 's'}\n`);
  return 0;
}

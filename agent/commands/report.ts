// portwarden report: what `npm start` runs. Listeners (with their exposure), findings and the suggested nft rules for
// this host, with /etc/portwarden/policy.yaml or, when there is none, the bundled default policy.
// Exit 0 unless something broke: findings are for reading here, `check` is for CI.
import { existsSync } from 'node:fs';
import { evaluate, sortFindings } from '../policy/evaluate.js';
import { compareExposure } from '../exposure/compare.js';
import { exposureOf } from '../exposure/exposure.js';
import { readFirewall } from '../exposure/read.js';
import { BUNDLED_POLICY_PATH, DEFAULT_POLICY_PATH } from '../paths.js';
import { loadPolicy } from '../policy/load.js';
import { lockoutWarning } from '../firewall/oracle.js';
import { renderRuleset } from '../firewall/render.js';
import { parse } from './args.js';
import { SPECS } from './specs.js';
import { snapshotFor } from '../collect/snapshot.js';
import { printable, printWarnings, useColor } from './output.js';
import { findingsText, listenersTable, publishedRows, snapshotNote } from './present.js';

export async function runReport(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.report.options);
  const file = values.policy ?? (existsSync(DEFAULT_POLICY_PATH) ? DEFAULT_POLICY_PATH : BUNDLED_POLICY_PATH);
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

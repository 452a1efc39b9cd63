// portwarden check [--policy FILE] [--json] [--fail-on SEVERITY] [--netns NAME]
import { DEFAULT_POLICY_PATH } from '../paths.js';
import { loadPolicy } from '../policy/load.js';
import { evaluate, sortFindings } from '../policy/evaluate.js';
import { compareExposure } from '../exposure/compare.js';
import { readFirewall } from '../exposure/read.js';
import { checkServices } from '../service/host.js';
import { snapshotFor } from '../collect/snapshot.js';
import { findingJson, listenerJson } from '../serialize.js';
import { parse, parseSeverity } from './args.js';
import { SPECS } from './specs.js';
import { printWarnings, useColor } from './output.js';
import { exitFor, findingsText } from './present.js';

export async function runCheck(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.check.options);
  const failOn = parseSeverity(values['fail-on'], 'low');
  const loaded = loadPolicy(values.policy ?? DEFAULT_POLICY_PATH);
  printWarnings(loaded.warnings);
  const [snap, fw] = await Promise.all([snapshotFor(values.netns), readFirewall(values.netns)]);
  const services = await checkServices(loaded.policy, snap.listeners, { netns: values.netns });
  const findings = sortFindings([...evaluate(loaded.policy, snap.listeners), ...compareExposure(loaded.policy, snap.listeners, fw), ...services]);
  if (values.json) {
    process.stdout.write(JSON.stringify({ findings: findings.map(findingJson), listeners: snap.listeners.map((l) => listenerJson(l)) }, null, 2) + '\n');
  } else {
    process.stdout.write(findingsText(findings, useColor()));
  }
  return exitFor(findings, failOn);
}

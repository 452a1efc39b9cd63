// portwarden check [--policy FILE] [--json] [--fail-on SEVERITY] [--netns NAME]
import { loadPolicy, DEFAULT_POLICY_PATH } from '../policy/load.js';
import { evaluate, sortFindings } from '../policy/evaluate.js';
import { compareExposure } from '../exposure/compare.js';
import { readFirewall } from '../exposure/read.js';
import { checkServices } from '../service/host.js';
import { SEVERITIES, severityRank, type Finding, type Severity } from '../model.js';
import { parse, parseSeverity } from './args.js';
import { paintSeverity, printable, useColor } from './output.js';
import { listenerJson, snapshotFor } from './scan.js';

export const checkOptions = {
  policy: { type: 'string' },
  json: { type: 'boolean' },
  'fail-on': { type: 'string' },
  netns: { type: 'string' },
} as const;

export function findingJson(f: Finding) {
  return {
    id: f.id,
    kind: f.kind,
    severity: f.severity,
    proto: f.proto,
    port: f.port,
    address: f.address,
    rule: f.rule,
    processes: f.processes.map((p) => ({ pid: p.pid, name: p.name, exe: p.exe, user: p.user })),
    message: f.message,
    remedy: f.remedy,
  };
}

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

export function printWarnings(warnings: readonly string[]): void {
  for (const w of warnings) process.stderr.write(w + '\n');
}

export async function runCheck(argv: string[]): Promise<number> {
  const { values } = parse(argv, checkOptions);
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

// portwarden validate [--policy FILE] [--hostname NAME] [--json]: problems at their file:line:col,
// exit 2 when invalid. With --hostname or --json: the compiled policy that host enforces (its
// rules in decision order, each with the file:line:col it came from), for review in CI.
import { DEFAULT_POLICY_PATH } from '../paths.js';
import { loadPolicy, type LoadedPolicy } from '../policy/load.js';
import type { CompiledRule, PortRange, Sources } from '../policy/compile.js';
import { UsageError } from '../errors.js';
import { parse } from './args.js';
import { printable, printWarnings, table } from './output.js';
import { SPECS } from './specs.js';

const portsText = (ports: readonly PortRange[]) => ports.map((r) => (r.lo === r.hi ? String(r.lo) : `${r.lo}-${r.hi}`));
const fromJson = (s: Sources) => (s.kind === 'list' ? s.names : s.kind);

/** One rule as validate --json shows it. */
export function ruleJson(rule: CompiledRule, origin: string) {
  return {
    name: rule.name,
    action: rule.action,
    proto: rule.proto,
    ports: portsText(rule.ports),
    from: fromJson(rule.from),
    process: rule.process,
    rate: rule.rate ? `${rule.rate.count}/${rule.rate.unit}` : null,
    required: rule.required,
    log: rule.log,
    origin,
  };
}

export function compiledJson(loaded: LoadedPolicy) {
  const p = loaded.policy;
  return {
    policy: loaded.file,
    hostname: loaded.hostname,
    fragments: loaded.fragments,
    default: p.default,
    loopback: p.loopback,
    refuse: p.refuse,
    rules: p.rules.map((r) => ruleJson(r, loaded.origin(r))),
    warnings: loaded.warnings,
  };
}

export function compiledText(loaded: LoadedPolicy): string {
  const p = loaded.policy;
  const n = p.rules.length;
  const frag = loaded.fragments.length;
  const head = `${printable(loaded.file)}: ok for host ${printable(loaded.hostname)}: ${n} rule${n === 1 ? '' : 's'}${frag ? ` (with ${frag} fragment${frag === 1 ? '' : 's'})` : ''}, default ${p.default}, loopback ${p.loopback}, refuse ${p.refuse}\n`;
  if (!n) return head;
  const rows = p.rules.map((r, i) => {
    const j = ruleJson(r, loaded.origin(r));
    const extra = [j.process ? `process ${j.process.join(',')}` : '', j.rate ? `rate ${j.rate}` : '', j.required ? 'required' : '', j.log ? 'log' : ''].filter(Boolean).join(' ');
    return [String(i + 1), r.name, r.action, `${r.proto}/${j.ports.join(',')}`, Array.isArray(j.from) ? j.from.join(',') : j.from, extra || '-', j.origin].map(printable);
  });
  return head + table(['#', 'RULE', 'ACTION', 'PORTS', 'FROM', 'ALSO', 'ORIGIN'], rows);
}

export async function runValidate(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.validate.options);
  if (values.hostname !== undefined && !/^[A-Za-z0-9._-]{1,253}$/.test(values.hostname)) throw new UsageError(`--hostname ${JSON.stringify(values.hostname)} is not a host name`);
  const loaded = loadPolicy(values.policy ?? DEFAULT_POLICY_PATH, { hostname: values.hostname });
  if (values.json) {
    process.stdout.write(JSON.stringify(compiledJson(loaded), null, 2) + '\n');
    return 0;
  }
  printWarnings(loaded.warnings);
  if (values.hostname !== undefined) {
    process.stdout.write(compiledText(loaded));
    return 0;
  }
  const n = loaded.policy.rules.length;
  const frag = loaded.fragments.length;
  process.stdout.write(`${loaded.file}: ok (${n} rule${n === 1 ? '' : 's'} in effect on this host${frag ? `, with ${frag} fragment${frag === 1 ? '' : 's'}` : ''})\n`);
  return 0;
}

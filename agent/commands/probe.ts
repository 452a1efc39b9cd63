// portwarden probe HOST [--policy FILE] [--source ADDR] [--json] [--timeout SECONDS] [--concurrency N] [--all-ports]
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { RuntimeError, UsageError } from '../errors.js';
import { DEFAULT_POLICY_PATH } from '../paths.js';
import { loadPolicy } from '../policy/load.js';
import { familyOf } from '../exposure/intervals.js';
import { probeMismatch, writeProbeTextfile } from '../probe-textfile.js';
import { namedPorts, portFailed, probeFailed, probeJson, probePlan, probeResult, routeSource, scan, worstFailure, type ProbeResult } from '../service/probe.js';
import { parse } from './args.js';
import { checkOutputPath, paintSeverity, printable, printWarnings, table, useColor } from './output.js';
import { SPECS, synopsis } from './specs.js';

/** At most this many new connections a second: a probe, not a flood. */
const SPACING_MS = 10;

function number(text: string | undefined, flag: string, fallback: number, min: number, max: number, integer: boolean): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${flag} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}, not ${JSON.stringify(text)}`);
  }
  return n;
}

async function resolve(host: string): Promise<string> {
  if (isIP(host)) return host;
  try {
    return (await lookup(host)).address;
  } catch (err) {
    throw new RuntimeError(`cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function probeText(r: ProbeResult, color: boolean): string {
  const rows = r.ports.map((p) => {
    const failed = p.checks.filter((c) => !c.ok).map((c) => c.name);
    const checks = !p.checks.length ? '-' : failed.length ? `FAILED ${failed.join(', ')}` : `ok (${p.checks.map((c) => c.name).join(', ')})`;
    return [p.proto, String(p.port), p.expected, p.observed, p.rule ?? '-', probeMismatch(p) ? 'MISMATCH' : 'ok', checks];
  });
  let out = `probe of ${r.target} as seen from ${r.source}\n`;
  out += table(['PROTO', 'PORT', 'EXPECTED', 'OBSERVED', 'RULE', 'MATCH', 'CHECKS'], rows.map((row) => row.map(printable)));
  for (const p of r.ports) {
    if (probeMismatch(p)) {
      const why = p.expected === 'open' ? `the policy allows ${r.source}, but the port is ${p.observed}` : `the policy does not allow ${r.source}, but the port is open`;
      out += `${paintSeverity('high', 'MISMATCH', color)} ${p.proto}/${p.port}${p.rule ? ` (rule "${printable(p.rule)}")` : ''}: ${why}\n`;
    }
    if (!worstFailure(p)) continue;
    for (const c of p.checks.filter((c) => !c.ok)) {
      out += `${paintSeverity(c.severity, c.severity.toUpperCase(), color)} ${p.proto}/${p.port} ${c.name}: ${printable(c.detail)}\n`;
    }
  }
  const bad = r.ports.filter(portFailed).length;
  out += bad ? `${bad} of ${r.ports.length} ports do not match the policy\n` : `all ${r.ports.length} ports match the policy\n`;
  return out;
}

export async function runProbe(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, SPECS.probe.options, true);
  if (positionals.length !== 1) throw new UsageError(`usage: portwarden probe ${synopsis(SPECS.probe)}`);
  // A textfile we must not replace is refused before anything is probed (exit 2).
  if (values.textfile !== undefined) checkOutputPath(values.textfile);
  const host = positionals[0]!;
  const timeoutMs = number(values.timeout, '--timeout', 5, 0.1, 120, false) * 1000;
  const concurrency = number(values.concurrency, '--concurrency', 8, 1, 256, true);
  if (values.source !== undefined && !isIP(values.source)) throw new UsageError(`--source must be an IP address, not ${JSON.stringify(values.source)}`);
  const loaded = loadPolicy(values.policy ?? DEFAULT_POLICY_PATH, isIP(host) ? {} : { hostname: host });
  printWarnings(loaded.warnings);
  const address = await resolve(host);
  let source = values.source;
  if (source === undefined) {
    try {
      source = await routeSource(address);
    } catch (err) {
      throw new RuntimeError(`no route to ${address}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (familyOf(source) !== familyOf(address)) throw new UsageError(`--source ${source} and ${host} (${address}) are not the same address family`);
  const plan = probePlan(loaded.policy, source, values['all-ports'] ?? false);
  const seen = await scan(plan, { address, timeoutMs, concurrency, spacingMs: SPACING_MS });
  const result = probeResult(host, source, plan, seen, namedPorts(loaded.policy));
  process.stdout.write(values.json ? JSON.stringify(probeJson(result), null, 2) + '\n' : probeText(result, useColor()));
  if (values.textfile !== undefined) writeProbeTextfile(values.textfile, [probeJson(result)]);
  return probeFailed(result) ? 1 : 0;
}

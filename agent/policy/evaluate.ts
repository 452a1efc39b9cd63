// Snapshot + policy → findings. Pure: no clock, no file, no process.
import type { Finding, FindingKind, Listener, ProcessInfo, Severity } from '../model.js';
import { listenerPlace, severityRank } from '../model.js';
import type { CompiledPolicy, CompiledRule } from './compile.js';
import { buildPortIndex, decidingRule } from './port-index.js';

/** comm is cut to 15 bytes by the kernel, so policy names are compared the same way. */
const COMM_LEN = 15;

export function processAllowed(proc: ProcessInfo, allowed: readonly string[]): boolean {
  return allowed.some((a) => (a.startsWith('/') ? proc.exe === a : proc.name === a.slice(0, COMM_LEN)));
}

function program(l: Listener): string {
  const names = [...new Set(l.processes.map((p) => p.name))].sort();
  return names.length ? names.join(',') : '-';
}

function ownersText(procs: readonly ProcessInfo[]): string {
  return procs.map((p) => `${p.name} (pid ${p.pid}${p.exe ? `, ${p.exe}` : ''})`).join(', ');
}

function owners(l: Listener): string {
  return l.processes.length ? ownersText(l.processes) : 'owner unknown';
}

function finding(kind: FindingKind, severity: Severity, l: Listener, rule: CompiledRule | null, message: string, remedy: string): Finding {
  return {
    id: `${kind}:${l.proto}/${l.port}:${l.scope}:${program(l)}`,
    kind,
    severity,
    proto: l.proto,
    port: l.port,
    address: l.address,
    rule: rule?.name ?? null,
    processes: l.processes,
    message,
    remedy,
  };
}

function judgeListener(policy: CompiledPolicy, rule: CompiledRule | null, l: Listener): Finding[] {
  const exposed = l.scope !== 'loopback';
  const who = owners(l);
  if (!rule) {
    if (!exposed && policy.loopback === 'allow') return [];
    const severity: Severity = policy.default === 'allow' ? 'info' : exposed ? 'high' : 'low';
    return [
      finding('unexpected-listener', severity, l, null, `${listenerPlace(l)} (${who}) is not covered by any rule`,
        `stop the service, or add a rule for ${l.proto}/${l.port} to the policy`),
    ];
  }
  if (rule.action === 'deny') {
    return [
      finding('forbidden-listener', exposed ? 'critical' : 'medium', l, rule, `${listenerPlace(l)} (${who}) is forbidden by rule "${rule.name}"`,
        `stop and disable the program holding ${l.proto}/${l.port}, or change rule "${rule.name}"`),
    ];
  }
  const out: Finding[] = [];
  if (rule.from.kind === 'localhost' && exposed) {
    out.push(
      finding('overexposed', 'high', l, rule, `${listenerPlace(l)} (${who}) is bound beyond loopback, but rule "${rule.name}" allows localhost only`,
        `bind it to 127.0.0.1 and/or ::1 in the service's configuration`),
    );
  }
  if (rule.process) {
    const allowed = rule.process.join(', ');
    if (!l.processes.length) {
      out.push(
        finding('unexpected-process', 'low', l, rule, `cannot tell which program holds ${listenerPlace(l)}; rule "${rule.name}" allows ${allowed}`,
          'run portwarden as root (or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH) so it can read process owners'),
      );
    } else {
      const strangers = l.processes.filter((p) => !processAllowed(p, rule.process!));
      if (strangers.length) {
        out.push(
          finding('unexpected-process', exposed ? 'high' : 'medium', l, rule,
            `${listenerPlace(l)} is held by ${ownersText(strangers)}; rule "${rule.name}" allows ${allowed}`,
            `find out why ${strangers[0]!.name} holds ${l.proto}/${l.port}; stop it, or add it to the process list of rule "${rule.name}"`),
        );
      }
    }
  }
  return out;
}

export function evaluate(policy: CompiledPolicy, listeners: readonly Listener[]): Finding[] {
  const index = buildPortIndex(policy.rules);
  const matched = new Set<number>();
  const byId = new Map<string, Finding>();
  for (const l of listeners) {
    const idx = decidingRule(index, l.proto, l.port);
    if (idx >= 0) matched.add(idx);
    for (const f of judgeListener(policy, idx >= 0 ? policy.rules[idx]! : null, l)) {
      if (!byId.has(f.id)) byId.set(f.id, f); // the same program on v4 and v6 is one finding
    }
  }
  policy.rules.forEach((rule, idx) => {
    if (!rule.required || rule.action === 'deny' || matched.has(idx)) return;
    const ports = rule.ports.map((r) => (r.lo === r.hi ? `${r.lo}` : `${r.lo}-${r.hi}`)).join(',');
    const id = `missing-listener:${rule.proto}/${ports}:${rule.name}`;
    byId.set(id, {
      id,
      kind: 'missing-listener',
      severity: 'high',
      proto: rule.proto,
      port: rule.ports[0]?.lo ?? 0,
      address: null,
      rule: rule.name,
      processes: [],
      message: `nothing listens on ${rule.proto}/${ports}, which rule "${rule.name}" requires`,
      remedy: `start the service for rule "${rule.name}" and check its logs; or drop "required" from the rule`,
    });
  });
  return sortFindings([...byId.values()]);
}

export function sortFindings(fs: Finding[]): Finding[] {
  return fs.sort(
    (a, b) =>
      severityRank(b.severity) - severityRank(a.severity) ||
      (a.proto ?? '').localeCompare(b.proto ?? '') ||
      (a.port ?? 0) - (b.port ?? 0) ||
      a.id.localeCompare(b.id),
  );
}

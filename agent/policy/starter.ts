// A commented starter policy from what listens now: every listener reachable beyond loopback becomes
// a rule `from: any` naming its program, so `check` against it passes at once. Pure.
import type { Listener, Proto } from '../model.js';

function ruleName(programs: string[], proto: Proto, port: number): string {
  const base = (programs[0] ?? proto).replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[^A-Za-z0-9]+/, '').slice(0, 30) || proto;
  return `${base}-${proto === 'udp' ? 'udp-' : ''}${port}`;
}

export function starterPolicy(listeners: readonly Listener[], hostname: string): string {
  const ports = new Map<string, { proto: Proto; port: number; programs: Set<string>; unknown: boolean }>();
  for (const l of listeners) {
    if (l.scope === 'loopback') continue;
    const key = `${l.proto}/${l.port}`;
    const entry = ports.get(key) ?? { proto: l.proto, port: l.port, programs: new Set<string>(), unknown: false };
    l.processes.forEach((p) => entry.programs.add(p.name));
    if (!l.processes.length || l.processes.some((p) => p.name === 'unknown')) entry.unknown = true;
    ports.set(key, entry);
  }
  const sorted = [...ports.values()].sort((a, b) => a.proto.localeCompare(b.proto) || a.port - b.port);
  const lines = [
    `# portwarden policy for ${hostname}, written by \`portwarden init\` from what listened at the time.`,
    '# Every listener reachable beyond loopback became a rule open to anyone: narrow `from:` to the',
    '# networks that need each service, add `required: true` where a service must run, and delete what',
    '# should not listen at all. Check with `portwarden validate`, then `portwarden check`.',
    'version: 1',
    'default: deny      # the generated firewall drops what no rule opens',
    'loopback: allow    # loopback-only listeners are fine unless a rule denies them',
    'refuse: drop       # drop | reject',
    'sources: {}',
    '  # office: [203.0.113.0/24, "2001:db8:10::/48"]',
    'rules:',
  ];
  if (!sorted.length) lines.push('  []');
  const names = new Set<string>();
  for (const e of sorted) {
    const programs = [...e.programs].filter((p) => p !== 'unknown').sort();
    let name = ruleName(programs, e.proto, e.port);
    while (names.has(name)) name += '_';
    names.add(name);
    lines.push(`  - name: ${JSON.stringify(name)}`, `    port: ${e.port}`, `    proto: ${e.proto}`, '    from: any');
    if (programs.length && !e.unknown) lines.push(`    process: ${JSON.stringify(programs)}`);
    else lines.push('    # process: [...]   # the owner could not be read when this file was written');
  }
  return lines.join('\n') + '\n';
}

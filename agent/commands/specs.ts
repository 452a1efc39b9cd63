// Every command's options, arguments and one-line summary: what the commands parse, what
// `portwarden --help` and `portwarden COMMAND --help` print, and what the README's command table
// must say (test/cli-help.test.ts). Kept apart from the commands so help loads nothing else.

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  /** The value's placeholder in the synopsis (FILE, NAME, nft|iptables). */
  readonly arg?: string;
  /** Shown without brackets: the command refuses to run without it. */
  readonly required?: boolean;
  readonly help: string;
}

export interface CommandSpec {
  readonly summary: string;
  /** Positional arguments, as the synopsis writes them (PORT[/PROTO]). */
  readonly args?: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Internal: not listed in the help. */
  readonly hidden?: boolean;
}

const policy = { type: 'string', arg: 'FILE', help: 'the policy (default /etc/portwarden/policy.yaml)' } as const;
const netns = { type: 'string', arg: 'NAME', help: 'work inside the network namespace /run/netns/NAME' } as const;
const json = { type: 'boolean', help: 'machine-readable output' } as const;
const stateDir = { type: 'string', arg: 'DIR', help: 'the state directory (default /var/lib/portwarden)' } as const;
const output = { type: 'string', arg: 'FILE', help: 'write there (atomically) instead of to stdout' } as const;
const stateful = { 'state-dir': stateDir, netns } as const;

export const SPECS = {
  scan: {
    summary: 'listening sockets and their programs',
    options: { json, cmdline: { type: 'boolean', help: "also read each process's command line (may hold secrets)" }, netns },
  },
  check: {
    summary: 'listeners against the policy',
    options: { policy, json, 'fail-on': { type: 'string', arg: 'SEVERITY', help: 'exit 1 at or above: critical, high, medium, low (default), info, none' }, netns },
  },
  validate: {
    summary: 'check a policy and its fragments; what NAME enforces',
    options: { policy, hostname: { type: 'string', arg: 'NAME', help: "show the compiled policy this host name enforces, each rule with its file:line:col" }, json },
  },
  init: {
    summary: 'starter policy from what listens now',
    options: { output, force: { type: 'boolean', help: 'replace an existing --output file' }, netns },
  },
  rules: {
    summary: 'firewall rules that enforce the policy',
    options: { policy, backend: { type: 'string', arg: 'nft|iptables|ip6tables', help: 'the ruleset format (default nft)' }, output },
  },
  report: {
    summary: 'scan + check + suggested nft rules (npm start); --html: the review page',
    options: {
      policy,
      netns,
      html: { type: 'string', arg: 'FILE', help: 'write the review page there: one self-contained HTML file' },
      'state-dir': { type: 'string', arg: 'DIR', help: 'with --html: where the journal and state are (default /var/lib/portwarden)' },
      since: { type: 'string', arg: 'DURATION', help: 'with --html: the history shown (default 7d)' },
    },
  },
  apply: {
    summary: 'check, back up and load the rules; roll back unless confirmed',
    options: {
      policy,
      backend: { type: 'string', arg: 'nft|iptables', help: 'the firewall to load into (default nft)' },
      confirm: { type: 'string', arg: 'SECONDS', help: 'roll back unless confirmed within 0..86400 s (0: no timer)' },
      diff: { type: 'string', arg: 'full|summary|none', help: 'what to print of the change before loading (default: by size)' },
      yes: { type: 'boolean', help: 'do not ask before loading' },
      'force-lockout': { type: 'boolean', help: 'load even if the rules would refuse the SSH session in use' },
      ...stateful,
    },
  },
  confirm: { summary: 'keep what the last apply loaded', options: stateful },
  rollback: { summary: 'restore what was loaded before the last apply', options: stateful },
  remove: { summary: "take all of portwarden's rules out", options: stateful },
  status: { summary: 'what is applied, and whether a confirmation is pending', options: { json, ...stateful } },
  explain: {
    summary: 'follow one connection, packet by packet, through the live firewall',
    args: 'PORT[/PROTO]',
    options: {
      from: { type: 'string', arg: 'ADDR', required: true, help: 'the client address' },
      iif: { type: 'string', arg: 'IFACE', help: 'the interface the client comes in on (default: from the routes)' },
      to: { type: 'string', arg: 'ADDR', help: 'the address of this host it connects to' },
      json,
      netns,
    },
  },
  probe: {
    summary: 'from another machine: what HOST shows this source, against the policy (exit 1 on a mismatch)',
    args: 'HOST',
    options: {
      policy,
      source: { type: 'string', arg: 'ADDR', help: 'the address the policy is asked about (default: the local address the route to HOST uses)' },
      json,
      timeout: { type: 'string', arg: 'SECONDS', help: 'bound on each connection and service dialogue (default 5)' },
      concurrency: { type: 'string', arg: 'N', help: 'connections at once (default 8; at most 100 new ones a second)' },
      'all-ports': { type: 'boolean', help: 'also every TCP port 1-65535 (only the open ones are listed)' },
      textfile: { type: 'string', arg: 'FILE', help: 'also write the result as node_exporter textfile metrics there (atomically)' },
    },
  },
  watch: {
    summary: 'the agent: scheduled checks and drift alerts',
    options: { config: { type: 'string', arg: 'FILE', help: 'the agent config (default /etc/portwarden/config.yaml)' }, once: { type: 'boolean', help: 'run one cycle and exit' } },
  },
  alerts: {
    summary: 'review opened/resolved/reminder events',
    options: {
      since: { type: 'string', arg: 'DURATION', help: 'only events this recent (90s, 30m, 24h, 7d)' },
      open: { type: 'boolean', help: 'what is open now' },
      json,
      'state-dir': stateDir,
    },
  },
  attempts: {
    summary: 'who knocked: refused and rate-limited connections by rule, port and source',
    options: {
      since: { type: 'string', arg: 'DURATION', help: 'the window (default 1h; the agent keeps a day of samples)' },
      port: { type: 'string', arg: 'N', help: 'only this destination port' },
      top: { type: 'string', arg: 'N', help: 'sources listed per rule (default 10)' },
      json,
      netns,
      'state-dir': stateDir,
    },
  },
  '_rollback-timer': { summary: 'the detached rollback timer', hidden: true, options: { 'state-dir': stateDir, id: { type: 'string', arg: 'ID', help: 'the apply to roll back' } } },
} as const satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof SPECS;

/** `[--json] [--policy FILE] --from ADDR`: the options as a synopsis. */
export function synopsis(spec: CommandSpec): string {
  const opts = Object.entries(spec.options).map(([name, o]) => {
    const text = `--${name}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}`;
    return o.required ? text : `[${text}]`;
  });
  return [spec.args, ...opts].filter(Boolean).join(' ');
}

/** `portwarden --help`: every command, its synopsis and summary. */
export function usageText(): string {
  let out = 'usage: portwarden <command> [options]   (portwarden <command> --help: its options)\n\n';
  for (const [name, spec] of Object.entries(SPECS) as [string, CommandSpec][]) {
    if (spec.hidden) continue;
    const head = `  ${name.padEnd(9)} ${synopsis(spec)}`;
    out += head.length <= 60 ? `${head.padEnd(60)}${spec.summary}\n` : `${head}\n${' '.repeat(60)}${spec.summary}\n`;
  }
  return out + '\nexit codes: 0 ok · 1 findings at or above --fail-on · 2 bad input or usage · 3 runtime failure\n';
}

/** `portwarden COMMAND --help`. */
export function commandHelp(name: string, spec: CommandSpec): string {
  const rows = Object.entries(spec.options).map(([opt, o]) => [`--${opt}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}`, o.help] as const);
  const width = rows.reduce((w, [flag]) => Math.max(w, flag.length), 0);
  return `usage: portwarden ${name} ${synopsis(spec)}\n${spec.summary}\n\n${rows.map(([flag, help]) => `  ${flag.padEnd(width)}  ${help}\n`).join('')}`;
}

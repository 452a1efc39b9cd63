#!/usr/bin/env node
// argv → command. No logic of its own: errors become their exit codes (2 input, 3 runtime).
import { PortwardenError, UsageError } from './errors.js';
type Command = (argv: string[]) => Promise<number>;

// Loaded on demand: a scan should not pay for the policy validator or the renderers.
const COMMANDS: Record<string, () => Promise<Command>> = {
  scan: async () => (await import('./commands/scan.js')).runScan,
  check: async () => (await import('./commands/check.js')).runCheck,
  validate: async () => (await import('./commands/validate.js')).runValidate,
  init: async () => (await import('./commands/init.js')).runInit,
  rules: async () => (await import('./commands/rules.js')).runRules,
  report: async () => (await import('./commands/report.js')).runReport,
  apply: async () => (await import('./commands/apply.js')).runApply,
  confirm: async () => (await import('./commands/apply.js')).runConfirm,
  rollback: async () => (await import('./commands/apply.js')).runRollback,
  remove: async () => (await import('./commands/apply.js')).runRemove,
  status: async () => (await import('./commands/apply.js')).runStatus,
  watch: async () => (await import('./commands/watch.js')).runWatch,
  alerts: async () => (await import('./commands/alerts.js')).runAlerts,
  explain: async () => (await import('./commands/explain.js')).runExplain,
  attempts: async () => (await import('./commands/attempts.js')).runAttempts,
  '_rollback-timer': async () => (await import('./commands/apply.js')).runRollbackTimer,
};

const USAGE = `usage: portwarden <command> [options]

  scan      [--json] [--cmdline] [--netns NAME]             listening sockets and their programs
  check     [--policy FILE] [--json] [--fail-on SEVERITY] [--netns NAME]
                                                          listeners against the policy
  validate  [--policy FILE]                               check a policy file
  init      [--output FILE] [--force] [--netns NAME]      starter policy from what listens now
  rules     [--policy FILE] [--backend nft|iptables|ip6tables] [--output FILE]
                                                          firewall rules that enforce the policy
  report    [--policy FILE] [--netns NAME]                scan + check + suggested nft rules (npm start)
  apply     [--policy FILE] [--backend nft|iptables] [--confirm SECONDS] [--diff full|summary|none] [--yes] [--force-lockout]
                                                          check, back up and load the rules; roll back unless confirmed
  confirm                                                 keep what the last apply loaded
  rollback                                                restore what was loaded before the last apply
  remove                                                  take all of portwarden's rules out
  status    [--json]                                      what is applied, and whether a confirmation is pending
            (apply, confirm, rollback, remove, status also take --state-dir DIR and --netns NAME)
  explain   PORT[/PROTO] --from ADDR [--iif IFACE] [--to ADDR] [--json] [--netns NAME]
                                                          follow one connection, packet by packet, through the live firewall
  watch     [--config FILE] [--once]                      the agent: scheduled checks and drift alerts
  alerts    [--since DURATION] [--open] [--json] [--state-dir DIR]
                                                          review opened/resolved/reminder events
  attempts  [--since DURATION] [--port N] [--top N] [--json] [--netns NAME] [--state-dir DIR]
                                                          who knocked: refused and rate-limited connections by rule, port and source

exit codes: 0 ok · 1 findings at or above --fail-on · 2 bad input or usage · 3 runtime failure
`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) throw new UsageError(`unknown command "${name}"\n\n${USAGE}`);
  return (await load())(rest);
}

// `portwarden scan | head` closes the pipe early: that is not a failure.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof PortwardenError) {
      process.stderr.write(`${err.exitCode === 2 && !(err instanceof UsageError) ? '' : 'portwarden: '}${err.message}\n`);
      process.exitCode = err.exitCode;
    } else {
      // A bug, not bad input: one line for the operator, the stack only when asked for.
      const detail = process.env.PORTWARDEN_DEBUG ? ((err as Error)?.stack ?? String(err)) : String((err as Error)?.message ?? err);
      process.stderr.write(`portwarden: unexpected failure: ${detail}\n`);
      process.exitCode = 3;
    }
  },
);

#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS PORTWARDEN_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS} node
// The shebang: Node would read NODE_EXTRA_CA_CERTS' file at every start; the TLS sinks read it when they connect (extra-ca.ts).
// argv → command. No logic of its own: errors become their exit codes (2 input, 3 runtime).
import { PortwardenError, UsageError } from './errors.js';
import { SPECS, commandHelp, usageText, type CommandName, type CommandSpec } from './commands/specs.js';
type Command = (argv: string[]) => Promise<number>;

// Loaded on demand: a scan should not pay for the policy validator or the renderers.
const COMMANDS: Record<CommandName, () => Promise<Command>> = {
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
  probe: async () => (await import('./commands/probe.js')).runProbe,
  attempts: async () => (await import('./commands/attempts.js')).runAttempts,
  '_rollback-timer': async () => (await import('./commands/apply.js')).runRollbackTimer,
};


async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usageText());
    return name === undefined ? 2 : 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name as CommandName] : undefined;
  if (!load) throw new UsageError(`unknown command "${name}"\n\n${usageText()}`);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(commandHelp(name, (SPECS as Record<string, CommandSpec>)[name]!));
    return 0;
  }
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

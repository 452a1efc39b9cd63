// portwarden watch [--config FILE] [--once]: the agent. SIGHUP reloads; SIGTERM/SIGINT stop within
// a few seconds (deliveries in flight stay spooled) and exit 0.
import { Agent } from '../daemon/agent.js';
import { DEFAULT_CONFIG_PATH } from '../paths.js';
import { RuntimeError } from '../errors.js';
import { createLogger } from '../log.js';
import { parse } from './args.js';
import { SPECS } from './specs.js';

export async function runWatch(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.watch.options);
  const log = createLogger();
  const agent = new Agent(values.config ?? DEFAULT_CONFIG_PATH, log, values.once ?? false);
  // Nothing should reject unhandled (the sink queues catch their own write errors); if something
  // does, it is a bug: one line, exit 3, never a stack trace.
  process.on('unhandledRejection', (err: unknown) => {
    log.error({ error: String((err as Error)?.message ?? err) }, 'unexpected failure');
    process.exit(3);
  });
  // Signals are handled from the start: a stop asked for while starting or during the first
  // cycle is honoured once they are done (never the default action, which would kill us mid-write).
  const stopped = values.once
    ? null
    : new Promise<string>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
  await agent.start(); // a bad config or policy throws here: exit 2 with file:line:col
  if (!stopped) {
    await agent.runCycle();
    await agent.drain(15_000); // give sinks a chance; what is left stays in the spool
    await agent.stop();
    if (agent.stateWriteProblem) throw new RuntimeError(agent.stateWriteProblem);
    return agent.metrics.cycleErrors ? 3 : 0;
  }
  agent.schedule();
  process.on('SIGHUP', () => void agent.reload());
  await agent.runCycle();
  const signal = await stopped;
  log.info({ signal }, 'stopping');
  await agent.stop();
  log.info({}, 'portwarden agent stopped');
  // A send that ignored the stop (a server that never answers) must not keep the process alive:
  // its batch is still in the spool.
  process.exit(0);
}

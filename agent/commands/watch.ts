// portwarden watch [--config FILE] [--once]: the agent. SIGHUP reloads, SIGTERM stops cleanly.
import { Agent } from '../daemon/agent.js';
import { DEFAULT_CONFIG_PATH } from '../daemon/config.js';
import { createLogger } from '../log.js';
import { parse } from './args.js';

export async function runWatch(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string' }, once: { type: 'boolean' } });
  const log = createLogger();
  const agent = new Agent(values.config ?? DEFAULT_CONFIG_PATH, log);
  await agent.start(); // a bad config or policy throws here: exit 2 with file:line:col
  if (values.once) {
    await agent.runCycle();
    await agent.drain(15_000); // give sinks a chance; what is left stays in the spool
    await agent.stop();
    return agent.metrics.cycleErrors ? 3 : 0;
  }
  agent.schedule();
  await agent.runCycle();
  process.on('SIGHUP', () => void agent.reload());
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping after the cycle in flight');
      void agent.stop().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log.info({}, 'portwarden agent stopped');
  return 0;
}

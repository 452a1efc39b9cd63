// The agent connects to services at most every service_interval; in between, the last results
// stand, so an open finding stays open (and is raised once) instead of flapping each cycle.
import type { Finding, Listener } from '../model.js';
import type { CompiledPolicy } from '../policy/compile.js';
import { checkServices, hostTargets } from './host.js';

export class ServiceSchedule {
  /** The last results: what stands while a check cannot run (the namespace is gone, a tool failed). */
  last: Finding[] = [];
  private at = -Infinity;
  /** What was checked: a new policy or a new service on a checked port checks again at once. */
  private key = '';

  async findings(policy: CompiledPolicy, listeners: readonly Listener[], netns: string | undefined, intervalMs: number, now = Date.now()): Promise<Finding[]> {
    const key = hostTargets(policy, listeners).map((t) => `${t.rule.name}@${t.target.host}:${t.target.port}:${JSON.stringify(t.rule.expect)}`).join(',');
    if (key === this.key && now - this.at < intervalMs) return this.last;
    this.last = await checkServices(policy, listeners, { netns, now: new Date(now) });
    this.at = now;
    this.key = key;
    return this.last;
  }
}

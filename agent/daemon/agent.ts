// The watch daemon: scheduled cycles of collect → evaluate → drift → journal → sinks.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { OwnerIndex } from '../collect/processes.js';
import { collectSnapshot } from '../collect/listeners.js';
import { evaluate, sortFindings } from '../policy/evaluate.js';
import { compareExposure } from '../exposure/compare.js';
import { readFirewall } from '../exposure/read.js';
import { loadPolicy, type LoadedPolicy } from '../policy/load.js';
import { liveState, StateDir } from '../firewall/apply.js';
import { ensureDir, readJson, writeJson } from '../state-files.js';
import { emptyState, step, type DriftState } from '../alerts/drift.js';
import { appendEvents, type JournalEvent } from '../alerts/journal.js';
import { SinkQueue } from '../alerts/delivery.js';
import { webhookSender } from '../alerts/sinks/webhook.js';
import { emailSender } from '../alerts/sinks/email.js';
import { Metrics, serveMetrics, writeTextfile } from '../alerts/sinks/prometheus.js';
import { findingJson } from '../commands/check.js';
import { PortwardenError } from '../errors.js';
import type { Finding } from '../model.js';
import { loadConfig, type Config } from './config.js';

export const STATE_FILE = 'state.json';

function readSecret(file: string | undefined, env: string | undefined, what: string): string | null {
  if (file) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new Error(`${what}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  }
  if (env) {
    const v = process.env[env];
    if (!v) throw new Error(`${what}: environment variable ${env} is not set`);
    return v.trim();
  }
  return null;
}

/** Our applied rules, compared with what the kernel has now. */
export async function firewallDrift(state: StateDir, netns: string | undefined): Promise<Finding | null> {
  const applied = state.readApplied();
  if (!applied) return null;
  const live = await liveState(applied, netns);
  if (live === 'in place') return null;
  const what = applied.backend === 'nft' ? 'table inet portwarden' : 'the PORTWARDEN-* chains';
  const plural = applied.backend !== 'nft';
  return {
    id: `firewall-drift:${applied.backend}`,
    kind: 'firewall-drift',
    severity: 'high',
    proto: null,
    port: null,
    address: null,
    rule: null,
    processes: [],
    message: live === 'changed' ? `${what} ${plural ? 'differ' : 'differs'} from what portwarden applied at ${applied.at} (${applied.policy})` : `${what} that portwarden applied at ${applied.at} ${plural ? 'are' : 'is'} missing`,
    remedy: 'find out who changed the firewall; then run portwarden apply to restore the policy, or portwarden remove if it should go',
  };
}

interface Loaded {
  config: Config;
  policy: LoadedPolicy;
  queues: SinkQueue[];
}

export class Agent {
  private loaded!: Loaded;
  private readonly owners = new OwnerIndex();
  readonly metrics = new Metrics();
  private readonly servers: Server[] = [];
  private task: ScheduledTask | null = null;
  private inFlight: Promise<void> | null = null;
  private configProblem: string | null = null;
  private firewallError: string | null = null;
  private readonly host = hostname();

  constructor(
    private readonly configFile: string,
    private readonly log: Logger,
  ) {}

  private build(): Loaded {
    const config = loadConfig(this.configFile);
    const policy = loadPolicy(config.policy);
    for (const w of policy.warnings) this.log.warn({ warning: w }, 'policy warning');
    ensureDir(config.stateDir);
    const spoolDir = `${config.stateDir}/spool`;
    const queues: SinkQueue[] = [];
    for (const s of config.sinks) {
      const common = {
        spoolDir,
        limit: config.spoolLimit,
        log: this.log,
        host: this.host,
        onOutcome: (sink: string, outcome: string, n?: number) => this.metrics.countAlert(sink, outcome, outcome === 'dropped' ? (n ?? 1) : 1),
      };
      if (s.type === 'webhook') {
        const secret = readSecret(s.secret_file, s.secret_env, `sink ${s.name}`);
        if (!secret && (s.format ?? 'standard') === 'standard') this.log.warn({ sink: s.name }, 'webhook without a secret: requests are not signed');
        queues.push(new SinkQueue(webhookSender({ name: s.name, url: s.url, format: s.format ?? 'standard', secret, timeoutMs: (s.timeout ?? 10) * 1000 }), common));
      } else if (s.type === 'email') {
        const password = readSecret(s.password_file, s.password_env, `sink ${s.name}`) ?? undefined;
        const tls = s.tls ?? 'starttls';
        queues.push(new SinkQueue(emailSender({ name: s.name, host: s.host, port: s.port ?? (tls === 'implicit' ? 465 : 25), tls, from: s.from, to: s.to, user: s.user, password, timeoutMs: (s.timeout ?? 20) * 1000 }), common));
      }
    }
    return { config, policy, queues };
  }

  async start(): Promise<void> {
    this.loaded = this.build();
    for (const s of this.loaded.config.sinks) {
      if (s.type === 'prometheus' && s.listen) this.servers.push(await serveMetrics(s.listen, this.metrics));
    }
    this.loaded.queues.forEach((q) => q.kick()); // deliver what an earlier run left in the spool
    this.log.info({ config: this.configFile, policy: this.loaded.config.policy, schedule: this.loaded.config.schedule, sinks: this.loaded.config.sinks.map((s) => s.name) }, 'portwarden agent started');
  }

  schedule(): void {
    this.task = cron.schedule(this.loaded.config.schedule, () => this.runCycle(), { noOverlap: true, name: 'portwarden-scan' });
  }

  /** One cycle; errors are logged and counted, never thrown (the next cycle tries again). */
  runCycle(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    this.inFlight = this.cycle()
      .catch((err: unknown) => {
        this.metrics.cycleErrors++;
        this.log.error({ error: (err as Error).message }, 'scan cycle failed');
      })
      .finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private async cycle(): Promise<void> {
    const { config, policy, queues } = this.loaded;
    const started = new Date();
    const t0 = performance.now();
    const [snap, fw] = await Promise.all([
      collectSnapshot({ netns: config.netns, owners: this.owners }),
      config.exposure ? readFirewall(config.netns) : null,
    ]);
    const findings = evaluate(policy.policy, snap.listeners);
    // Said once per change, not every cycle: the daemon may run for months without root.
    if ((fw?.error ?? null) !== this.firewallError) {
      this.firewallError = fw?.error ?? null;
      if (this.firewallError) this.log.warn({ error: this.firewallError }, 'cannot read the firewall: no exposure findings until it can');
    }
    if (fw) findings.push(...compareExposure(policy.policy, snap.listeners, fw));
    const drift = await firewallDrift(new StateDir(config.stateDir), config.netns).catch((err: Error) => {
      this.log.warn({ error: err.message }, 'cannot read the firewall for drift');
      return null;
    });
    if (drift) findings.push(drift);
    if (this.configProblem) {
      findings.push({
        id: 'agent-config-invalid', kind: 'agent-config-invalid', severity: 'high', proto: null, port: null, address: null, rule: null, processes: [],
        message: `reload refused, still running the previous policy and config: ${this.configProblem}`,
        remedy: 'fix the file (portwarden validate --policy FILE) and send SIGHUP again',
      });
    }
    const statePath = `${config.stateDir}/${STATE_FILE}`;
    const prev = readJson<DriftState>(statePath) ?? emptyState();
    const { state, events } = step(prev, sortFindings(findings), started, { settle: config.settle, repeatMs: config.repeatMs });
    const journal: JournalEvent[] = events.map((e) => ({ ...e, host: this.host }));
    appendEvents(config.stateDir, journal); // before any sink sees them
    writeJson(statePath, state);
    for (const e of journal) this.log.info({ event: e.event, finding: findingJson(e.finding) }, `${e.event}: ${e.finding.message}`);
    for (const q of queues) q.enqueue(journal);
    this.metrics.observeScan(findings, snap.listeners, new Date(), (performance.now() - t0) / 1000);
    for (const s of config.sinks) {
      if (s.type === 'prometheus' && s.textfile) {
        try {
          writeTextfile(s.textfile, this.metrics);
        } catch (err) {
          this.log.error({ sink: s.name, error: (err as Error).message }, 'cannot write the metrics textfile');
        }
      }
    }
    this.log.debug({ listeners: snap.listeners.length, findings: findings.length, events: events.length, ms: performance.now() - t0 }, 'cycle done');
  }

  /** SIGHUP: load the files again; if they are bad, keep the old ones and say why. */
  async reload(): Promise<void> {
    try {
      const next = this.build();
      await Promise.all(this.loaded.queues.map((q) => q.stop()));
      if (next.config.schedule !== this.loaded.config.schedule && this.task) {
        void this.task.stop();
        this.loaded = next;
        this.schedule();
      } else this.loaded = next;
      this.loaded.queues.forEach((q) => q.kick());
      this.configProblem = null;
      this.log.info({ policy: next.config.policy }, 'reloaded policy and config');
    } catch (err) {
      this.configProblem = err instanceof PortwardenError ? err.message.replace(/\n/g, '; ') : (err as Error).message;
      this.log.error({ error: this.configProblem }, 'reload refused: keeping the previous policy and config');
    }
  }

  async drain(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    await Promise.all(this.loaded.queues.map((q) => q.drain(deadline)));
  }

  /** SIGTERM: no new cycles, finish the one in flight, close everything. */
  async stop(): Promise<void> {
    if (this.task) await this.task.stop();
    if (this.inFlight) await this.inFlight;
    await Promise.all(this.loaded.queues.map((q) => q.stop()));
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }
}

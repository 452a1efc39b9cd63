// The watch daemon: scheduled cycles of collect → evaluate → drift → journal → sinks.
// One daemon per state dir (watch.lock). The drift state lives in memory and is saved every
// cycle; when the state dir cannot be written (a full disk) the daemon keeps scanning, holds the
// events in memory (the sink queues keep their batches in memory too) and raises state-write-failed until the
// writes work again. A state.json it cannot read is kept aside and rebuilt from the journal.
import { readdirSync, readFileSync, renameSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { OwnerIndex } from '../collect/processes.js';
import { collectSnapshot } from '../collect/listeners.js';
import { evaluate, sortFindings } from '../policy/evaluate.js';
import { compareExposure } from '../exposure/compare.js';
import { readFirewall } from '../exposure/read.js';
import { ServiceSchedule } from '../service/schedule.js';
import type { FirewallView } from '../exposure/exposure.js';
import type { CompiledPolicy } from '../policy/compile.js';
import { exec as defaultExec, type Exec } from '../exec.js';
import { FirewallWatch } from './firewall-watch.js';
import { loadPolicy, type LoadedPolicy } from '../policy/load.js';
import { liveState, StateDir, type LiveState } from '../firewall/apply.js';
import { AppliedMemo } from '../firewall/applied-memo.js';
import { driftFinding } from '../firewall/drift.js';
import { alive, ensureDir, probeWrite, readStateText, removeFile, tryLock } from '../state-files.js';
import { FsError, fsError, writeFileAtomic } from '../fs-atomic.js';
import { checkTrustedDir } from '../file-perms.js';
import { emptyState, isDriftState, openFindings, stateFromEvents, step, type DriftState } from '../alerts/drift.js';
import { appendEvents, readJournal, type JournalEvent } from '../alerts/journal.js';
import { JOURNAL, STATE_FILE } from '../paths.js';
import { SinkQueue } from '../alerts/delivery.js';
import type { Sender } from '../alerts/sinks/sink.js';
import { webhookSender } from '../alerts/sinks/webhook.js';
import { emailSender } from '../alerts/sinks/email.js';
import { alertmanagerSender, authorization, Resender } from '../alerts/sinks/alertmanager.js';
import { Metrics, serveMetrics, writeTextfile } from '../alerts/sinks/prometheus.js';
import type { CycleView } from '../report/serve.js';
import { PortwardenError, UsageError } from '../errors.js';
import { parseDuration } from '../duration.js';
import { hostFinding, type Finding, type Listener } from '../model.js';
import { findingJson } from '../serialize.js';
import { loadConfig, type Config } from './config.js';
import { AttemptSampler } from '../attempts/sampler.js';

export const LOCK_FILE = 'watch.lock';
/** Events kept in memory per sink (and for the journal) while the state dir cannot be written. */
const HELD_LIMIT = 1000;
/** How long SIGTERM waits for the cycle and the deliveries in flight (the unit allows 60 s). */
export const STOP_WAIT_MS = 3000;
/** A firewall change is checked this long after the last change of a burst (one `nft -f` is many events) … */
export const CHANGE_DEBOUNCE_MS = 200;
/** … but no later than this after its first: nft prints `flush table` of 10 000 rules for a second. */
const CHANGE_MAX_WAIT_MS = 500;
/** Between the checks that follow a change, so that `settle` scans see it within a second or two. */
export const CHANGE_FOLLOW_MS = 250;
/** How long a cycle waits for the firewall reading before it goes on with the last view. */
const FIREWALL_WAIT_MS = 400;

/** Copies of state.json kept aside as corrupt, oldest first: state-corrupt stays open while any is left. */
function corruptStateFinding(dir: string): Finding | null {
  let kept: string[];
  try {
    kept = readdirSync(dir).filter((f) => f.startsWith(`${STATE_FILE}.corrupt-`)).sort();
  } catch {
    return null;
  }
  if (!kept.length) return null;
  const paths = kept.map((f) => `${dir}/${f}`).join(', ');
  return hostFinding(
    'state-corrupt',
    'high',
    `${dir}/${STATE_FILE} could not be read and was kept aside as ${paths}; the open findings were rebuilt from ${JOURNAL}`,
    `look at the copy for what damaged it (a full disk, an edit, a crash), then delete ${paths}; this finding then resolves`,
  );
}

/** Whether pid is a running `watch` (a dead daemon's pid may have gone to another program). */
function watching(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('watch');
  } catch {
    return alive(pid); // no /proc: the pid is all we can check
  }
}

/** A sink's queue (it keeps batches in memory itself while its spool cannot be written). */
interface Outlet {
  queue: SinkQueue;
  /** Alertmanager: re-posts the open findings while they are open. */
  resend?: Resender;
}

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

interface Loaded {
  config: Config;
  policy: LoadedPolicy;
  outlets: Outlet[];
  attempts: AttemptSampler | null;
}

export class Agent {
  private loaded!: Loaded;
  private readonly owners = new OwnerIndex();
  private readonly services = new ServiceSchedule();
  readonly metrics = new Metrics();
  private readonly servers: Server[] = [];
  private task: ScheduledTask | null = null;
  private inFlight: Promise<void> | null = null;
  private configProblem: string | null = null;
  private firewallError: string | null = null;
  private attemptsError: string | null = null;
  private readonly host = hostname();
  private state: DriftState = emptyState();
  /** Events the journal has not taken yet (the state dir could not be written). */
  private unjournaled: JournalEvent[] = [];
  /** One line naming the state path that could not be written, while that lasts. */
  private writeProblem: string | null = null;
  private lockPath: string | null = null;
  private stopping = false;
  /** The last cycle, for the review page served beside /metrics. */
  private lastCycle: CycleView | null = null;
  /** The last complete firewall view, the reading in flight, and the one a check already follows. */
  private fw: { netns: string | null; view: FirewallView | null; reading: Promise<FirewallView> | null; followed: Promise<FirewallView> | null } | null = null;
  /** The firewall between cycles (not for --once): parsed again only when it changed. */
  private rules: FirewallWatch | null = null;
  private exposureMemo: { key: string; ruleset: FirewallView['ruleset']; policy: CompiledPolicy; findings: Finding[] } | null = null;
  /** The last full comparison of our table (compared) and the answer since (finding). */
  private driftMemo: { generation: number; file: string; netns: string | undefined; compared: LiveState | null; finding: Finding | null } | null = null;
  /** applied.json, read again only when apply replaced it (drift and attempts ask every cycle). */
  private applied!: AppliedMemo;
  private changeTimer: NodeJS.Timeout | null = null;
  /** When the burst of changes the timer waits out began. */
  private burstStart = 0;
  /** The checks after a firewall change: running, and whether another change came meanwhile. */
  private checking: Promise<void> | null = null;
  private changedAgain = false;
  /** state.json as last written. */
  private savedState: string | null = null;

  constructor(
    private readonly configFile: string,
    private readonly log: Logger,
    /** watch --once: sinks get one attempt each. */
    private readonly once = false,
    /** Runs the tools (ss, ip, nft); tests replace it to run many cycles quickly. */
    private readonly exec: Exec = defaultExec,
  ) {}

  private build(config: Config): Loaded {
    const policy = loadPolicy(config.policy);
    for (const w of policy.warnings) this.log.warn({ warning: w }, 'policy warning');
    const spoolDir = `${config.stateDir}/spool`;
    const outlets: Outlet[] = [];
    const add = (sender: Sender, common: ConstructorParameters<typeof SinkQueue>[1]) => outlets.push({ queue: new SinkQueue(sender, common) });
    const open = () => openFindings(this.state).map((t): JournalEvent => ({ event: 'opened', at: t.openedAt ?? t.firstSeen, host: this.host, finding: t.finding }));
    for (const s of config.sinks) {
      const common = {
        spoolDir,
        limit: config.spoolLimit,
        log: this.log,
        host: this.host,
        onOutcome: (sink: string, outcome: string, n?: number) => this.metrics.countAlert(sink, outcome, outcome === 'dropped' ? (n ?? 1) : 1),
        // watch --once: one attempt per sink, the rest stays spooled.
        once: this.once,
      };
      if (s.type === 'webhook') {
        const secret = readSecret(s.secret_file, s.secret_env, `sink ${s.name}`);
        if (!secret && (s.format ?? 'standard') === 'standard') this.log.warn({ sink: s.name }, 'webhook without a secret: requests are not signed');
        add(webhookSender({ name: s.name, url: s.url, format: s.format ?? 'standard', secret, timeoutMs: (s.timeout ?? 10) * 1000 }), common);
      } else if (s.type === 'email') {
        const password = readSecret(s.password_file, s.password_env, `sink ${s.name}`) ?? undefined;
        const tls = s.tls ?? 'starttls';
        add(emailSender({ name: s.name, host: s.host, port: s.port ?? (tls === 'implicit' ? 465 : 25), tls, from: s.from, to: s.to, user: s.user, password, timeoutMs: (s.timeout ?? 20) * 1000 }), common);
      } else if (s.type === 'alertmanager') {
        const resendMs = parseDuration(s.resend ?? '1m');
        s.urls.forEach((url, j) => {
          const queue = new SinkQueue(alertmanagerSender({ name: `${s.name}#${j + 1}`, url, authorization: authorization(s, s.credential), resendMs, timeoutMs: (s.timeout ?? 10) * 1000 }), common);
          outlets.push({ queue, resend: new Resender(queue, resendMs, open) });
        });
      }
    }
    return { config, policy, outlets, attempts: config.attempts && new AttemptSampler(config.stateDir, config.netns, config.attempts, this.applied) };
  }

  /**
   * The state dir: made if missing, refused when someone else could plant files in it (as for
   * the policy), and locked for this daemon. A second daemon on it is refused (exit 2).
   */
  private claimStateDir(dir: string): void {
    ensureDir(dir);
    checkTrustedDir(dir);
    const lock = `${dir}/${LOCK_FILE}`;
    const holder = tryLock(lock, watching);
    if (holder !== null) throw new UsageError(`another portwarden watch is running on ${dir} (pid ${holder || 'unknown'}, lock ${lock}); stop it first or give this one another state_dir`);
    this.lockPath = lock;
  }

  private releaseStateDir(): void {
    if (!this.lockPath) return;
    try {
      if (readStateText(this.lockPath)?.trim() === String(process.pid)) removeFile(this.lockPath);
    } catch {
      /* a lock we cannot remove is taken over by the next daemon: our pid will be dead */
    }
    this.lockPath = null;
  }

  /** state.json, or when it is unreadable: kept aside and rebuilt from the journal. */
  private loadState(dir: string): DriftState {
    const path = `${dir}/${STATE_FILE}`;
    const text = readStateText(path);
    if (text === null) return emptyState();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (isDriftState(parsed)) return parsed;
    const aside = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    try {
      renameSync(path, aside);
    } catch (err) {
      throw fsError(path, err);
    }
    let events: JournalEvent[] = [];
    try {
      events = readJournal(dir).events;
    } catch (err) {
      this.log.error({ error: (err as Error).message }, 'cannot read the journal either: starting with no open findings');
    }
    const state = stateFromEvents(events);
    this.log.error({ state: path, keptAs: aside, open: Object.keys(state.tracked).length }, 'state.json could not be read: kept it aside and rebuilt the open findings from the journal');
    return state;
  }

  async start(): Promise<void> {
    const config = loadConfig(this.configFile);
    this.claimStateDir(config.stateDir);
    this.applied = new AppliedMemo(new StateDir(config.stateDir)); // state_dir stays for the agent's life
    try {
      this.state = this.loadState(config.stateDir);
      this.loaded = this.build(config);
      if (!this.once) this.rules = this.newWatch(config.netns);
    } catch (err) {
      this.releaseStateDir();
      throw err;
    }
    try {
      for (const s of this.loaded.config.sinks) {
        if (s.type === 'prometheus' && s.listen) {
          // The review page's code only where it is served (it is most of what the agent would load).
          const { reportPages } = await import('../report/serve.js');
          this.servers.push(await serveMetrics(s.listen, this.metrics, reportPages(() => this.pageContext())));
        }
      }
    } catch (err) {
      // One listener refused (address in use): close those already open and let go of the state
      // dir, so the error ends the agent instead of leaving it half started.
      await Promise.all(this.servers.splice(0).map((srv) => new Promise<void>((r) => srv.close(() => r()))));
      this.releaseStateDir();
      throw err;
    }
    this.loaded.outlets.forEach((o) => o.queue.kick()); // deliver what an earlier run left in the spool
    if (!this.once) this.loaded.outlets.forEach((o) => o.resend?.start());
    this.log.info({ config: this.configFile, policy: this.loaded.config.policy, schedule: this.loaded.config.schedule, sinks: this.loaded.config.sinks.map((s) => s.name) }, 'portwarden agent started');
  }

  /** The scheduled cycles, and a check as soon as the firewall changes (nft monitor, legacy poll). */
  schedule(): void {
    this.scheduleCycles();
    this.rules?.start();
  }

  private scheduleCycles(): void {
    this.task = cron.schedule(this.loaded.config.schedule, () => this.runCycle(), { noOverlap: true, name: 'portwarden-scan' });
  }

  private newWatch(netns: string | undefined): FirewallWatch {
    return new FirewallWatch({ netns, log: this.log, exec: this.exec, onChange: (source) => this.firewallChanged(source) });
  }

  /** Debounced: one check for a burst of changes (an `nft -f` of many rules is many events). */
  private firewallChanged(source: string): void {
    if (this.stopping) return;
    this.log.debug({ source }, 'firewall changed');
    const now = performance.now();
    if (this.changeTimer) clearTimeout(this.changeTimer);
    else this.burstStart = now;
    this.changeTimer = setTimeout(() => {
      this.changeTimer = null;
      if (this.checking) this.changedAgain = true;
      else this.checking = this.checkChange().finally(() => (this.checking = null));
    }, Math.max(0, Math.min(CHANGE_DEBOUNCE_MS, this.burstStart + CHANGE_MAX_WAIT_MS - now)));
  }

  /**
   * `settle` checks in quick succession, so a firewall change opens (or resolves) its finding in
   * about a second whatever the schedule; started over when the firewall changes meanwhile.
   */
  private async checkChange(): Promise<void> {
    for (let i = 0; i < this.loaded.config.settle && !this.stopping; i++) {
      if (i) await new Promise((r) => setTimeout(r, CHANGE_FOLLOW_MS));
      // A cycle already running may have read the firewall before the change: this one comes after it.
      if (this.inFlight) await this.inFlight;
      if (this.stopping) return;
      if (this.changedAgain) {
        this.changedAgain = false;
        i = 0;
      }
      await this.runCycle();
    }
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
    const { config, policy, outlets } = this.loaded;
    const started = new Date();
    const t0 = performance.now();
    // The ruleset and our table are listed side by side: after a change of a large ruleset each
    // listing takes seconds.
    const [snap, fw, drift] = await Promise.all([
      collectSnapshot({ netns: config.netns, owners: this.owners, exec: this.exec }),
      config.exposure ? this.firewallView(config) : null,
      this.checkDrift(config).catch((err: Error) => {
        this.log.warn({ error: err.message }, 'cannot read the firewall for drift');
        return null;
      }),
    ]);
    const findings = evaluate(policy.policy, snap.listeners);
    // Said once per change, not every cycle: the daemon may run for months without root.
    if ((fw?.error ?? null) !== this.firewallError) {
      this.firewallError = fw?.error ?? null;
      if (this.firewallError) this.log.warn({ error: this.firewallError }, 'cannot read the firewall: no exposure findings until it can');
    }
    if (fw) findings.push(...this.exposureFindings(policy.policy, snap.listeners, fw));
    // Services of rules with expect: connected to at most every service_interval.
    findings.push(...(await this.services.findings(policy.policy, snap.listeners, config.netns, config.serviceIntervalMs).catch((err: Error) => {
      this.log.warn({ error: err.message }, 'cannot check the services: keeping the last results');
      return this.services.last;
    })));
    if (drift) findings.push(drift);
    // Who knocks (agent/attempts): what our rules counted, as findings and metrics.
    const knocks = await this.loaded.attempts?.cycle(started).catch((err: Error) => {
      if (err.message !== this.attemptsError) this.log.warn({ error: err.message }, 'cannot read the attempt counters'); // once per change
      this.attemptsError = err.message;
      return null;
    });
    if (knocks) {
      this.attemptsError = null;
      findings.push(...knocks.findings);
      this.metrics.observeAttempts(knocks.totals, knocks.sources);
    }
    if (this.configProblem) {
      findings.push(hostFinding(
        'agent-config-invalid',
        'high',
        `reload refused, still running the previous policy and config: ${this.configProblem}`,
        'fix the file (portwarden validate --policy FILE) and send SIGHUP again',
      ));
    }
    const corrupt = corruptStateFinding(config.stateDir);
    if (corrupt) findings.push(corrupt);
    if (this.writeProblem) {
      findings.push(hostFinding(
        'state-write-failed',
        'high',
        `cannot write ${this.writeProblem}; scanning and alerting go on from memory, but the journal, state and spool fall behind`,
        `free space or fix ${config.stateDir} (df -h, ls -la); this finding resolves once the writes work again`,
      ));
    }
    const { state, events } = step(this.state, sortFindings(findings), started, { settle: config.settle, repeatMs: config.repeatMs });
    this.state = state;
    const journal: JournalEvent[] = events.map((e) => ({ ...e, host: this.host }));
    const problems: string[] = knocks?.writeError ? [writeFailure(knocks.writeError)] : [];
    const pending = [...this.unjournaled, ...journal];
    try {
      appendEvents(config.stateDir, pending); // before any sink sees them
      this.unjournaled = [];
    } catch (err) {
      problems.push(writeFailure(err));
      this.unjournaled = pending.slice(-HELD_LIMIT);
    }
    // Written when it changed (or the last write failed): a quiet cycle costs no fsync.
    const stateText = JSON.stringify(state, null, 2) + '\n';
    if (stateText !== this.savedState) {
      try {
        writeFileAtomic(`${config.stateDir}/${STATE_FILE}`, stateText, 0o600);
        this.savedState = stateText;
      } catch (err) {
        problems.push(writeFailure(err));
      }
    }
    for (const e of journal) this.log.info({ event: e.event, finding: findingJson(e.finding) }, `${e.event}: ${e.finding.message}`);
    for (const o of outlets) {
      if (this.once) o.resend?.tick(); // a run from cron re-posts what is open (when nothing else waits)
      const problem = this.deliver(o, journal);
      if (problem) problems.push(problem);
    }
    if (!problems.length && this.writeProblem) {
      const room = roomFor(config.stateDir);
      if (room) problems.push(room);
    }
    this.noteWriteProblem(problems[0] ?? null);
    this.metrics.observeScan(findings, snap.listeners, new Date(), (performance.now() - t0) / 1000);
    this.lastCycle = { snapshot: snap, fw, findings, at: started };
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

  /**
   * The firewall for this cycle. A reading that takes longer than FIREWALL_WAIT_MS (a large
   * ruleset just changed: nft alone lists 10 000 rules in seconds) goes on without holding the
   * cycle, which uses the last view (its exposure findings stand meanwhile, so nothing resolves or
   * opens from a half-read firewall), and a check runs as soon as it is there. --once waits.
   */
  private async firewallView(config: Config): Promise<FirewallView> {
    const ns = config.netns ?? null;
    // A reload that moved to another namespace starts afresh: nothing of the old one is shown.
    if (this.fw?.netns !== ns) this.fw = { netns: ns, view: null, reading: null, followed: null };
    const fw = this.fw;
    const reading = (fw.reading ??= readFirewall(config.netns, this.exec, this.rules ?? undefined).finally(() => (fw.reading = null)));
    if (this.once || !fw.view) return (fw.view = await reading);
    if (fw.followed === reading) return fw.view; // an earlier cycle waited for it already
    let timer: NodeJS.Timeout | undefined;
    const view = await Promise.race([reading, new Promise<null>((r) => (timer = setTimeout(() => r(null), FIREWALL_WAIT_MS)))]);
    clearTimeout(timer);
    if (view) return (fw.view = view);
    fw.followed = reading;
    const last = fw.view;
    void reading.then((v) => {
      fw.view = v;
      // Only a new ruleset is news: an unchanged one (read again for nothing, e.g. while no monitor
      // runs and its listing is hashed) must not start checks that read it again, and so on.
      if (this.fw === fw && (v.ruleset !== last.ruleset || v.error !== last.error)) this.firewallChanged('read');
    }, () => undefined);
    return fw.view;
  }

  /** What the review page (/ and /report.json) is built from. */
  private pageContext() {
    const openedAt = new Map(Object.entries(this.state.tracked).flatMap(([id, t]) => (t.status === 'open' && t.openedAt ? [[id, t.openedAt] as const] : [])));
    return { cycle: this.lastCycle, policy: this.loaded.policy, stateDir: this.loaded.config.stateDir, netns: this.loaded.config.netns, openedAt };
  }

  /** compareExposure, again only when the ruleset, the host's addresses, the listeners or the policy changed. */
  private exposureFindings(policy: CompiledPolicy, listeners: readonly Listener[], fw: FirewallView): Finding[] {
    const { ruleset } = fw; // published comes from the ruleset
    const key = JSON.stringify([fw.error, fw.interfaces, fw.addresses, fw.routes, fw.forwarding, fw.legacyRules, listeners]);
    const m = this.exposureMemo;
    if (m && m.ruleset === ruleset && ruleset !== null && m.policy === policy && m.key === key) return m.findings;
    const findings = compareExposure(policy, listeners, fw);
    this.exposureMemo = { key, ruleset, policy, findings };
    return findings;
  }

  /**
   * firewall-drift. While nft monitor runs and reports nothing, our nft table has not changed
   * either, and while applied.json is the same file (apply replaces it) neither has what we compare
   * it with: the last answer stands, without reading either. When the monitor saw only rules of
   * ours added, or only removed (or changes that cancel out), since a comparison that found the
   * table in place, that tells the answer too (OurTableLedger): a hand edit is reported without
   * listing a table that may take seconds to list.
   */
  private async checkDrift(config: Config): Promise<Finding | null> {
    const generation = this.rules?.generation() ?? null;
    const { key: file, record: applied } = this.applied.read();
    const m = this.driftMemo;
    if (generation !== null && m && m.file === file && m.netns === config.netns && applied) {
      if (m.generation === generation) return m.finding;
      const told = this.rules!.ourTable.verdict();
      const live = told === 'same' ? m.compared : told === 'changed' && m.compared === 'in place' ? 'changed' : null;
      if (live) {
        this.driftMemo = { ...m, generation, finding: driftFinding(applied, live) };
        return this.driftMemo.finding;
      }
    }
    this.rules?.ourTable.reset(); // before the listing: what happens during it counts against it
    const compared = applied ? await liveState(applied, config.netns) : null;
    const finding = applied && compared ? driftFinding(applied, compared) : null;
    // iptables-legacy has no monitor: its chains are compared every cycle.
    this.driftMemo = generation !== null && (!applied || applied.backend === 'nft') ? { generation, file, netns: config.netns, compared, finding } : null;
    return finding;
  }

  /** SIGHUP: load the files again; if they are bad, keep the old ones and say why. */
  async reload(): Promise<void> {
    if (this.stopping) return; // a SIGHUP during stop must not start monitors or timers again
    try {
      const config = loadConfig(this.configFile);
      if (config.stateDir !== this.loaded.config.stateDir) throw new Error(`state_dir changed from ${this.loaded.config.stateDir} to ${config.stateDir}: restart the agent to move it`);
      const next = this.build(config);
      this.loaded.outlets.forEach((o) => o.resend?.stop());
      await Promise.all(this.loaded.outlets.map((o) => o.queue.stop()));
      if (next.config.netns !== this.loaded.config.netns && this.rules) {
        const wasStarted = Boolean(this.task);
        await this.rules.stop();
        this.rules = this.newWatch(next.config.netns);
        if (wasStarted) this.rules.start();
      }
      if (next.config.schedule !== this.loaded.config.schedule && this.task) {
        void this.task.stop();
        this.loaded = next;
        this.scheduleCycles();
      } else this.loaded = next;
      this.loaded.outlets.forEach((o) => {
        o.queue.kick();
        o.resend?.start();
      });
      this.configProblem = null;
      this.log.info({ policy: next.config.policy }, 'reloaded policy and config');
    } catch (err) {
      this.configProblem = err instanceof PortwardenError ? err.message.replace(/\n/g, '; ') : (err as Error).message;
      this.log.error({ error: this.configProblem }, 'reload refused: keeping the previous policy and config');
    }
  }

  /**
   * Hands the events to a sink's queue. When its spool cannot be written the queue keeps them in
   * memory and still delivers them; the failure is a state write problem until it can again.
   */
  private deliver(o: Outlet, events: JournalEvent[]): string | null {
    if (events.length) o.queue.enqueue(events);
    else o.queue.flushHeld(); // enqueue does it first
    const err = o.queue.spoolError;
    return err ? writeFailure(err) : null;
  }

  /** Said once when state writes start failing and once when they work again. */
  noteWriteProblem(problem: string | null): void {
    if (problem && !this.writeProblem) this.log.error({ error: problem }, "cannot write the agent's state: holding events in memory and alerting from there until it can");
    if (!problem && this.writeProblem) this.log.info({}, 'state writes work again: the journal and spool have caught up');
    this.writeProblem = problem;
  }

  /** Whether nft monitor runs (the ruleset is then read only when it changes). */
  get watchingFirewall(): boolean {
    return this.rules?.watching ?? false;
  }

  /** What failed to be written, if anything (for --once). */
  get stateWriteProblem(): string | null {
    return this.writeProblem;
  }

  async drain(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    await Promise.all(this.loaded.outlets.map((o) => o.queue.drain(deadline)));
  }

  /**
   * SIGTERM: no new cycles; waits at most waitMs for the cycle and the deliveries in flight, whose
   * batches stay in the spool for the next start; closes everything and releases the state dir.
   */
  async stop(waitMs = STOP_WAIT_MS): Promise<void> {
    this.stopping = true;
    if (this.task) await this.task.stop();
    this.loaded.outlets.forEach((o) => o.resend?.stop());
    if (this.changeTimer) clearTimeout(this.changeTimer);
    await this.rules?.stop();
    const settled = (async () => {
      if (this.inFlight) await this.inFlight;
      // Sends still running when the wait is nearly over are aborted; their batches stay spooled.
      await Promise.all(this.loaded.outlets.map((o) => o.queue.stop(Math.max(0, waitMs - 500))));
    })();
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([settled.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), waitMs)))]);
    clearTimeout(timer);
    if (!finished) this.log.warn({ waitedMs: waitMs }, 'stopping without waiting longer for deliveries in flight: their batches stay in the spool');
    for (const s of this.servers) s.closeAllConnections();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
    this.releaseStateDir();
  }
}

/** While writes were failing: whether the state dir has room again (probeWrite); the failure or null. */
function roomFor(dir: string): string | null {
  try {
    probeWrite(dir);
    return null;
  } catch (err) {
    return writeFailure(err);
  }
}

/** A failed state write in one line; anything that is not about a path is a bug and is thrown on. */
function writeFailure(err: unknown): string {
  const e = fsError((err as NodeJS.ErrnoException)?.path ?? 'the state dir', err);
  if (e instanceof FsError) return e.message;
  throw e;
}

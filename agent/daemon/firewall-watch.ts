// The daemon's view of when the firewall changed, so that it reads and parses it only then and
// checks at once instead of at the next scheduled cycle. nftables: `nft -j monitor` as a child
// (inside the watched namespace); the interfaces, addresses, routes and forwarding sysctls:
// `ip monitor`. Each is restarted with backoff when it dies; while one is not running its
// generation is unknown (null) and readFirewall reads that part every cycle (the ruleset: its
// text listing, hashed). iptables-legacy has no monitor: its tables are polled (the names file,
// then the save without counters, hashed). I/O edge.
import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { exec as defaultExec, inNetns, startTool, type Exec } from '../exec.js';
import { legacyKey, type RulesCache, type Touched } from '../exposure/read.js';
import { OurTableLedger } from '../firewall/drift.js';
import { monitorChange } from '../firewall/monitor-events.js';

/** The generation of a table's last change that re-reads it whole (-1: none yet), and of each chain's rules and each set's elements. */
interface TableTouches {
  whole: number;
  chains: Map<string, number>;
  sets: Map<string, number>;
}

/** A monitor that has run this long has subscribed (nft and ip do so within milliseconds of starting). */
const ARM_MS = 300;
/** Restart delays after a monitor dies: doubling from the first, capped at the last. */
const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;
/** A monitor that ran this long before dying starts the backoff again from the beginning. */
const HEALTHY_MS = 10_000;
/** How often iptables-legacy is polled. */
export const LEGACY_POLL_MS = 1000;

/** A long-running monitor program: every output is a change; restarted with backoff when it dies. */
class Monitor {
  private child: ChildProcess | null = null;
  private armed = false;
  private running = false;
  private gen = 0;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The last complaint, said once until it works again. */
  private problem: string | null = null;

  constructor(
    private readonly name: string,
    private readonly cmd: [string, string[]],
    private readonly log: Logger,
    private readonly onChange: () => void,
    /** Each line it prints (the nft monitor's events; generation() is already that of the line), and `null` when it (re)starts watching: lines may have been missed. */
    private readonly onLine?: (line: string | null) => void,
  ) {}

  /** Unchanged while it runs and reports nothing; null while it does not run. */
  generation(): number | null {
    return this.armed ? this.gen : null;
  }

  get pid(): number | undefined {
    return this.armed ? this.child?.pid : undefined;
  }

  start(): void {
    this.running = true;
    this.spawn();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.armed = false;
    if (this.timer) clearTimeout(this.timer);
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise<void>((r) => (timer = setTimeout(r, 1000)))]);
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }

  /** The generation moves first, so each line is handed over as of the generation it moved to. */
  private changed(lines: string[] = []): void {
    this.gen++;
    for (const l of lines) if (l.trim()) this.onLine!(l);
    this.onChange();
  }

  private spawn(): void {
    const child = startTool(...this.cmd);
    this.child = child;
    const startedAt = Date.now();
    let stderr = '';
    let partial = '';
    child.stdout!.on('data', (d: Buffer) => {
      const lines = this.onLine ? (partial + d.toString()).split('\n') : [];
      partial = lines.pop() ?? '';
      if (this.armed) this.changed(lines);
    });
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.child !== child || child.exitCode !== null || child.signalCode !== null) return;
      // Changes before now were not seen: the generation moves on, so the next read is a full one.
      this.gen++;
      this.armed = true;
      this.onLine?.(null);
      if (this.problem) this.log.info({ monitor: this.name }, 'monitor runs again: that part of the firewall is read only when it changes');
      this.problem = null;
    }, ARM_MS);
    let ended = false;
    const end = (why: string) => {
      if (ended) return;
      ended = true;
      if (this.child !== child) return; // stopped on purpose
      this.child = null;
      const wasArmed = this.armed;
      this.armed = false;
      this.failures = Date.now() - startedAt >= HEALTHY_MS ? 1 : this.failures + 1;
      const delay = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** (this.failures - 1));
      if (why !== this.problem) this.log.warn({ monitor: this.name, error: why, retryMs: delay }, 'monitor stopped: reading that part of the firewall every cycle until it runs again');
      this.problem = why;
      // A change it missed while dying is found by a check now (not again for every failed restart).
      if (wasArmed) this.changed();
      if (this.running) this.timer = setTimeout(() => this.running && this.spawn(), delay);
    };
    child.on('error', (e: NodeJS.ErrnoException) => end(e.code === 'ENOENT' ? `${this.cmd[0]} is not installed` : e.message));
    child.on('exit', (code, signal) => end(`${this.name} exited (${signal ?? `code ${code}`})${stderr.trim() ? `: ${stderr.trim().split('\n')[0]}` : ''}`));
  }
}

export interface WatchOptions {
  netns: string | undefined;
  log: Logger;
  /** Called for each change seen (the caller debounces). */
  onChange: (source: 'nft' | 'ip' | 'iptables-legacy') => void;
  exec?: Exec;
  legacyPollMs?: number;
}

export class FirewallWatch implements RulesCache {
  kept: RulesCache['kept'] = null;
  /** What the nft monitor saw happen to our own table (firewall-drift without listing it). */
  readonly ourTable = new OurTableLedger();
  /** What each table's events changed, by generation, and the generation of the last change that named no table (or of the monitor's start). */
  private readonly touchedAt = new Map<string, TableTouches>();
  private lostAt = Number.MAX_SAFE_INTEGER;
  keptHost: RulesCache['keptHost'] = null;
  private readonly nft: Monitor;
  private readonly ip: Monitor;
  private running = false;
  private pollTimer: NodeJS.Timeout | null = null;
  private legacy: string | null = null;
  private polling = false;

  constructor(private readonly opts: WatchOptions) {
    this.nft = new Monitor('nft monitor', inNetns(opts.netns, 'nft', ['-j', 'monitor']), opts.log, () => opts.onChange('nft'), (line) => {
      const gen = this.nft.generation() ?? 0;
      if (line === null) {
        this.ourTable.forget();
        this.lostAt = gen;
        this.touchedAt.clear();
        return;
      }
      const change = monitorChange(line);
      if (change.kind === 'unknown') this.lostAt = gen;
      if ('table' in change) {
        let t = this.touchedAt.get(change.table);
        if (!t) this.touchedAt.set(change.table, (t = { whole: -1, chains: new Map(), sets: new Map() }));
        if (change.kind === 'rule') t.chains.set(change.chain, gen);
        else if (change.kind === 'elements') t.sets.set(change.set, gen);
        else t.whole = gen;
      }
      if (this.ourTable.listening) this.ourTable.note(change);
    });
    // netconf: the forwarding sysctls.
    this.ip = new Monitor('ip monitor', inNetns(opts.netns, 'ip', ['monitor', 'link', 'address', 'route', 'netconf']), opts.log, () => opts.onChange('ip'));
  }

  /** RulesCache: what changed after generation `since`, by table (null: a change named no table, or events were missed). */
  touched(since: number): Map<string, Touched> | null {
    if (this.lostAt > since || this.nft.generation() === null) return null;
    const after = (m: Map<string, number>) => [...m].filter(([, gen]) => gen > since).map(([name]) => name);
    const out = new Map<string, Touched>();
    for (const [table, t] of this.touchedAt) {
      const touched = { whole: t.whole > since, chains: after(t.chains), sets: after(t.sets) };
      if (touched.whole || touched.chains.length || touched.sets.length) out.set(table, touched);
    }
    return out;
  }

  /** RulesCache: nft monitor's count of changes; null while it does not run. */
  generation(): number | null {
    return this.nft.generation();
  }

  hostGeneration(): number | null {
    return this.ip.generation();
  }

  /** A process inside the namespace (the monitor): its /proc/PID/net is the namespace's. */
  procPid(): number | undefined {
    return this.nft.pid;
  }

  /** Whether both monitors run (the firewall is then read only when it changes). */
  get watching(): boolean {
    return this.nft.generation() !== null && this.ip.generation() !== null;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.nft.start();
    this.ip.start();
    this.pollLegacy();
  }

  /** Kills the monitors and waits (at most 1 s) for them to exit. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    await Promise.all([this.nft.stop(), this.ip.stop()]);
  }

  private pollLegacy(): void {
    if (!this.running) return;
    if (!this.polling) {
      this.polling = true;
      legacyKey(this.opts.netns, this.opts.exec ?? defaultExec, this.procPid())
        .then((key) => {
          if (this.legacy !== null && key !== this.legacy && this.running) this.opts.onChange('iptables-legacy');
          this.legacy = key;
        })
        .catch(() => undefined)
        .finally(() => (this.polling = false));
    }
    this.pollTimer = setTimeout(() => this.pollLegacy(), this.opts.legacyPollMs ?? LEGACY_POLL_MS);
  }
}

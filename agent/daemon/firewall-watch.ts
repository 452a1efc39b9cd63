// The daemon's view of when the firewall changed, so that it parses the ruleset only then and
// checks at once instead of at the next scheduled cycle. nftables: `nft -j monitor` as a child
// (inside the watched namespace), restarted with backoff when it dies; while it is not running the
// generation is unknown and readFirewall hashes the text listing instead. iptables-legacy has no
// monitor: its tables are polled (names file, then the save without counters, hashed). I/O edge.
import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { exec as defaultExec, inNetns, startTool, type Exec } from '../exec.js';
import { legacyKey, type RulesCache } from '../exposure/read.js';

/** A monitor that has run this long has subscribed (nft does so within milliseconds of starting). */
const ARM_MS = 300;
/** Restart delays after the monitor dies: doubling from the first, capped at the last. */
const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;
/** A monitor that ran this long before dying starts the backoff again from the beginning. */
const HEALTHY_MS = 10_000;
/** How often iptables-legacy is polled. */
export const LEGACY_POLL_MS = 1000;

export interface WatchOptions {
  netns: string | undefined;
  log: Logger;
  /** Called for each change seen (the caller debounces). */
  onChange: (source: 'nft' | 'iptables-legacy') => void;
  exec?: Exec;
  legacyPollMs?: number;
}

export class FirewallWatch implements RulesCache {
  kept: RulesCache['kept'] = null;
  private gen = 0;
  private armed = false;
  private running = false;
  private child: ChildProcess | null = null;
  private failures = 0;
  private timers = new Set<NodeJS.Timeout>();
  private legacy: string | null = null;
  private polling = false;
  /** The monitor's last complaint, said once until it works again. */
  private problem: string | null = null;

  constructor(private readonly opts: WatchOptions) {}

  /** RulesCache: unchanged while the monitor runs and reports nothing; null while it does not run. */
  generation(): number | null {
    return this.armed ? this.gen : null;
  }

  /** Whether `nft monitor` is running and subscribed (for tests and the log). */
  get watching(): boolean {
    return this.armed;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.spawnMonitor();
    this.pollLegacy();
  }

  /** Kills the monitor and waits (at most 1 s) for it to exit. */
  async stop(): Promise<void> {
    this.running = false;
    this.armed = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
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

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private changed(source: 'nft' | 'iptables-legacy'): void {
    this.gen++;
    this.opts.onChange(source);
  }

  private spawnMonitor(): void {
    const [cmd, args] = inNetns(this.opts.netns, 'nft', ['-j', 'monitor']);
    const child = startTool(cmd, args);
    this.child = child;
    const startedAt = Date.now();
    let stderr = '';
    child.stdout!.on('data', () => this.armed && this.changed('nft'));
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    this.later(ARM_MS, () => {
      if (this.child !== child || child.exitCode !== null || child.signalCode !== null) return;
      // Changes before now were not seen: the generation moves on so the next read is a full one.
      this.gen++;
      this.armed = true;
      if (this.problem) this.opts.log.info({}, 'nft monitor runs again: the ruleset is read only when it changes');
      this.problem = null;
    });
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
      if (why !== this.problem) this.opts.log.warn({ error: why, retryMs: delay }, 'nft monitor stopped: hashing the ruleset listing every cycle until it runs again');
      this.problem = why;
      // A change it missed while dying is found by a check now (not again for every failed restart).
      if (wasArmed) this.changed('nft');
      if (this.running) this.later(delay, () => this.running && this.spawnMonitor());
    };
    child.on('error', (e: NodeJS.ErrnoException) => end(e.code === 'ENOENT' ? `${cmd} is not installed` : e.message));
    child.on('exit', (code, signal) => end(`nft monitor exited (${signal ?? `code ${code}`})${stderr.trim() ? `: ${stderr.trim().split('\n')[0]}` : ''}`));
  }

  private pollLegacy(): void {
    if (!this.running) return;
    if (!this.polling) {
      this.polling = true;
      const pid = this.child?.pid;
      legacyKey(this.opts.netns, this.opts.exec ?? defaultExec, this.armed ? pid : undefined)
        .then((key) => {
          if (this.legacy !== null && key !== this.legacy && this.running) this.changed('iptables-legacy');
          this.legacy = key;
        })
        .catch(() => undefined)
        .finally(() => (this.polling = false));
    }
    this.later(this.opts.legacyPollMs ?? LEGACY_POLL_MS, () => this.pollLegacy());
  }
}

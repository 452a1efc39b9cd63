// At-least-once delivery per sink: batches wait in <state_dir>/spool/<sink>/ (atomic files) until
// the sink takes them. Each sink has its own queue and loop, so a failing one delays nothing else.
// Retries: exponential backoff with jitter, Retry-After honoured; the wait belongs to the sink, so
// new events queue behind it instead of retrying at once. Non-retryable errors get a few tries,
// then the batch is dropped. The spool is bounded: overflow drops the oldest batches and queues an
// "alerts-dropped" event that says how many events were lost. A spool file that is not a batch
// is moved to spool/<sink>/bad/; when the spool cannot be written (ENOSPC, EACCES), batches are
// kept in memory and the failure is reported once through onWriteError.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { hostFinding } from '../model.js';
import { ensureDir, probeWrite, writeJson } from '../state-files.js';
import type { JournalEvent } from './journal.js';
import { redact } from './sinks/redact.js';
import { DeliveryError, type Batch, type Sender } from './sinks/sink.js';

export interface DeliveryLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export type DeliveryOutcome = 'delivered' | 'failed' | 'rejected' | 'dropped';

export interface QueueOptions {
  spoolDir: string;
  limit: number;
  log: DeliveryLog;
  onOutcome: (sink: string, outcome: DeliveryOutcome, n?: number) => void;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Tries for a batch the sink rejects outright (4xx other than 408/429, SMTP 5xx). */
  maxRejections?: number;
  host: string;
  /** One pass (watch --once): each batch is tried at most once, the first failure ends the pass,
   *  and nothing waits for a backoff; what is left stays spooled for the next run. */
  once?: boolean;
  /** Spool writes started failing (err, once per episode) or work again (null). Meanwhile the
   *  batches are kept in memory (up to `limit`) and still delivered. */
  onWriteError?: (err: NodeJS.ErrnoException | null, sink: string) => void;
}

export function backoffMs(attempt: number, base: number, max: number, random = Math.random): number {
  const exp = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp * (0.5 + random())); // ±50 % jitter spreads retries of many agents
}

const fileName = (b: Batch) => `${b.createdAt.replace(/[:.]/g, '-')}_${b.id}.json`;

/** Why a parsed spool file is not a batch this queue can send, or null when it is one. */
function notABatch(v: unknown): string | null {
  const b = v as Partial<Batch> | null;
  if (!b || typeof b !== 'object' || Array.isArray(b)) return 'not a JSON object';
  if (typeof b.id !== 'string' || typeof b.createdAt !== 'string' || !Number.isInteger(b.attempts) || !Array.isArray(b.events)) return 'not a batch (id, createdAt, attempts, events)';
  const bad = b.events.findIndex((e: Partial<JournalEvent> | null) => !e || typeof e.event !== 'string' || typeof e.at !== 'string' || typeof e.finding?.id !== 'string' || typeof e.finding.message !== 'string');
  return bad >= 0 ? `events[${bad}] is not an event` : null;
}

export class SinkQueue {
  private running: Promise<void> | null = null;
  /** True from kick() until the loop returns (set synchronously, unlike `running`). */
  private active = false;
  private wake: (() => void) | null = null;
  private stopped = false;
  /** No attempt before this time: the backoff or Retry-After of the sink's last failure. */
  private notBefore = 0;
  /** Aborts the send in flight (stop() past its deadline). */
  private inFlight: AbortController | null = null;
  /** Batches the spool could not take, by file name; delivered from here, written when it can. */
  private readonly held = new Map<string, Batch>();
  private writeError: NodeJS.ErrnoException | null = null;
  /** Spool files that could not be moved to bad/: skipped until restart, not retried in a loop. */
  private readonly unusable = new Set<string>();
  private readonly dir: string;

  constructor(
    private readonly sender: Sender,
    private readonly o: QueueOptions,
  ) {
    this.dir = `${o.spoolDir}/${sender.name}`;
    try {
      ensureDir(this.dir);
    } catch (err) {
      this.writeFailed(err as NodeJS.ErrnoException);
    }
  }

  get name(): string {
    return this.sender.name;
  }

  /** Why the spool cannot be written now (null when it can): for a finding of the daemon. */
  get spoolError(): NodeJS.ErrnoException | null {
    return this.writeError;
  }

  /** Batch files, oldest first (names start with the creation time). */
  pending(): string[] {
    try {
      return readdirSync(this.dir).filter((f) => f.endsWith('.json') && !this.unusable.has(f)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.writeFailed(err as NodeJS.ErrnoException);
      return [];
    }
  }

  /** How many batches wait (the Alertmanager resend only adds one to an empty queue). */
  get waiting(): number {
    return this.backlog().length;
  }

  /** Batches waiting, on disk or in memory. */
  private backlog(): string[] {
    return [...new Set([...this.pending(), ...this.held.keys()])].sort();
  }

  enqueue(events: JournalEvent[]): void {
    if (!events.length) return;
    this.flushHeld();
    this.save({ id: `msg_${randomUUID()}`, createdAt: new Date().toISOString(), events, attempts: 0 }, false);
    this.enforceLimit();
    this.kick();
  }

  /** Writes a batch to the spool; when that fails, keeps it in memory (a copy on disk is removed
   *  first, so the batch lives in one place only). */
  private save(b: Batch, onDisk: boolean): void {
    const name = fileName(b);
    try {
      ensureDir(this.dir);
      writeJson(`${this.dir}/${name}`, b);
      this.held.delete(name);
      this.writeWorks();
      return;
    } catch (err) {
      this.writeFailed(err as NodeJS.ErrnoException);
    }
    if (onDisk) {
      try {
        unlinkSync(`${this.dir}/${name}`);
      } catch {
        return; // the old copy stays the batch (its attempt count is not updated)
      }
    }
    this.held.set(name, b);
  }

  /**
   * Writes the batches kept in memory to the spool, oldest first, until one fails; with none
   * kept, a failed spool is tried with a probe file. The daemon calls it every cycle: a disk with
   * room again is seen then, not only when this sink next sends or gets an event (a sink that
   * asked to retry in an hour, or one whose batches were all delivered from memory, would hold
   * state-write-failed open until then).
   */
  flushHeld(): void {
    if (this.writeError && !this.held.size) return this.probeSpool();
    for (const name of [...this.held.keys()].sort()) {
      this.save(this.held.get(name)!, false);
      if (this.held.has(name)) return; // still failing
    }
  }

  /** A probe file written and removed (not a .json: never taken for a batch): the spool works again. */
  private probeSpool(): void {
    try {
      ensureDir(this.dir);
      probeWrite(this.dir);
    } catch {
      return; // still failing: said once already
    }
    this.writeWorks();
  }

  private writeFailed(err: NodeJS.ErrnoException): void {
    if (this.writeError) return; // said once per episode
    this.writeError = err;
    this.o.log.error({ sink: this.name, dir: this.dir, error: err.code ?? err.message }, 'cannot write to the alert spool: keeping batches in memory until it can');
    this.o.onWriteError?.(err, this.name);
  }

  private writeWorks(): void {
    if (!this.writeError) return;
    this.writeError = null;
    this.o.log.info({ sink: this.name, dir: this.dir }, 'the alert spool can be written again');
    this.o.onWriteError?.(null, this.name);
  }

  /** A batch is done: off the disk (where enqueue may have flushed it meanwhile) and out of memory. */
  private forget(name: string): void {
    this.held.delete(name);
    try {
      unlinkSync(`${this.dir}/${name}`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      this.unusable.add(name); // sending it again and again would not help
      this.o.log.error({ sink: this.name, file: `${this.dir}/${name}`, error: code ?? (err as Error).message }, 'cannot remove a finished batch from the spool: skipping it until restart');
    }
  }

  /** The batch in a spool file; a file that is not one is moved to bad/ and null returned. */
  private readBatch(name: string): Batch | null {
    const path = `${this.dir}/${name}`;
    let why: string;
    try {
      const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
      const problem = notABatch(value);
      if (!problem) return value as Batch;
      why = problem;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      why = code ?? `not valid JSON (${(err as Error).message})`;
    }
    try {
      mkdirSync(`${this.dir}/bad`, { recursive: true, mode: 0o700 });
      renameSync(path, `${this.dir}/bad/${name}`);
      this.o.log.error({ sink: this.name, file: path, reason: why }, `spool file is not a batch: moved it to ${this.dir}/bad/`);
    } catch (err) {
      this.unusable.add(name);
      this.o.log.error({ sink: this.name, file: path, reason: why, error: (err as NodeJS.ErrnoException).code ?? (err as Error).message }, 'spool file is not a batch and cannot be moved to bad/: skipping it');
    }
    return null;
  }

  private enforceLimit(): void {
    const names = this.backlog();
    if (names.length <= this.o.limit) return;
    let dropped = 0;
    for (const name of names.slice(0, names.length - this.o.limit + 1)) {
      const held = this.held.get(name);
      if (held) {
        dropped += held.events.length;
        this.held.delete(name);
        continue;
      }
      const b = this.readBatch(name);
      if (!b) continue;
      dropped += b.events.length;
      this.forget(name);
    }
    this.o.onOutcome(this.name, 'dropped', dropped);
    this.o.log.error({ sink: this.name, dropped }, 'alert spool full: dropped the oldest events');
    const at = new Date().toISOString();
    this.save({
      id: `msg_${randomUUID()}`,
      createdAt: at,
      attempts: 0,
      events: [{
        event: 'opened',
        at,
        host: this.o.host,
        finding: hostFinding(
          'alerts-dropped',
          'high',
          `dropped ${dropped} events: sink ${this.name} could not deliver and its spool (${this.o.limit} batches) was full`,
          `check that ${this.name} is reachable, then review what was missed with portwarden alerts`,
          `alerts-dropped:${this.name}`,
        ),
      }],
    }, false);
  }

  /** Starts the delivery loop if it is idle. A loop waiting out a backoff is left waiting. */
  kick(): void {
    if (this.stopped || this.active) return;
    this.active = true;
    this.running = this.loop()
      .catch((err: unknown) => this.o.log.error({ sink: this.name, error: redact(String((err as Error)?.message ?? err)) }, 'alert delivery loop failed'))
      .finally(() => (this.running = null));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = null;
        resolve();
      };
    });
  }

  /** The oldest batch waiting, from disk or memory. */
  private next(): { batch: Batch; onDisk: boolean } | null {
    for (const name of this.backlog()) {
      const held = this.held.get(name);
      if (held) return { batch: held, onDisk: false };
      const batch = this.readBatch(name);
      if (batch) return { batch, onDisk: true };
    }
    return null;
  }

  private async loop(): Promise<void> {
    const base = this.o.baseDelayMs ?? 1000;
    const max = this.o.maxDelayMs ?? 300_000;
    try {
      while (!this.stopped) {
        // One pass: its first failure ends it for good (a later kick is no new pass, even once
        // the backoff is over); the rest stays spooled.
        if (this.o.once && this.notBefore) return;
        const wait = this.notBefore - Date.now();
        if (wait > 0) {
          await this.sleep(wait);
          continue;
        }
        this.flushHeld();
        const item = this.next();
        if (!item) return;
        const { batch, onDisk } = item;
        const name = fileName(batch);
        this.inFlight = new AbortController();
        const aborted = this.inFlight.signal;
        try {
          await this.sender.send(batch, aborted);
          this.forget(name);
          this.o.onOutcome(this.name, 'delivered', batch.events.length);
          this.o.log.info({ sink: this.name, batch: batch.id, events: batch.events.length, attempts: batch.attempts + 1 }, 'alert delivered');
        } catch (err) {
          if (aborted.aborted) {
            this.o.log.info({ sink: this.name, batch: batch.id }, 'delivery interrupted by stop: the batch stays spooled');
            return;
          }
          const e = err instanceof DeliveryError ? err : new DeliveryError(redact((err as Error).message), true);
          batch.attempts++;
          if (!e.retryable && batch.attempts >= (this.o.maxRejections ?? 3)) {
            this.forget(name);
            this.o.onOutcome(this.name, 'rejected', batch.events.length);
            this.o.log.error({ sink: this.name, batch: batch.id, error: redact(e.message), attempts: batch.attempts }, 'alert rejected by the sink; giving up on this batch');
            continue;
          }
          this.save(batch, onDisk);
          this.o.onOutcome(this.name, 'failed');
          const delay = e.retryAfterMs !== undefined ? Math.min(max, e.retryAfterMs) : backoffMs(batch.attempts, base, max);
          this.notBefore = Date.now() + delay;
          this.o.log.warn({ sink: this.name, batch: batch.id, error: redact(e.message), attempts: batch.attempts, retryInMs: delay }, 'alert delivery failed; will retry');
        } finally {
          this.inFlight = null;
        }
      }
    } finally {
      this.active = false;
    }
  }

  /** Waits until nothing is waiting, the deadline passes, the sink's next try would come after
   *  the deadline, or (once) the pass has ended. It never makes a sink retry sooner. */
  async drain(deadline: number): Promise<void> {
    this.kick();
    while (!this.stopped && Date.now() < deadline && this.backlog().length) {
      if (!this.active || this.notBefore >= deadline) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops the loop. A send in flight gets until graceMs to finish; then it is aborted and its
   *  batch stays spooled, not counted as an attempt (a reload's new queue sends it again). */
  async stop(graceMs = 5_000): Promise<void> {
    this.stopped = true;
    if (this.wake) this.wake();
    const timer = setTimeout(() => this.inFlight?.abort(), graceMs);
    try {
      await this.running;
    } finally {
      clearTimeout(timer);
    }
    this.flushHeld();
    if (this.held.size) {
      const events = [...this.held.values()].reduce((n, b) => n + b.events.length, 0);
      this.o.log.error({ sink: this.name, batches: this.held.size, events, error: this.writeError?.code }, 'stopping with batches the spool could not take: they are lost (the journal has them)');
    }
  }
}

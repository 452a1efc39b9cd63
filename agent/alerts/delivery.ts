// At-least-once delivery per sink: batches wait in <state_dir>/spool/<sink>/ (atomic files) until
// the sink takes them. Each sink has its own queue and loop, so a failing one delays nothing else.
// Retries: exponential backoff with jitter, Retry-After honoured; non-retryable errors get a few
// tries, then the batch is dropped. The spool is bounded: overflow drops the oldest batches and
// queues an "alerts-dropped" event that says how many events were lost.
import { randomUUID } from 'node:crypto';
import { readdirSync, unlinkSync } from 'node:fs';
import { ensureDir, readJson, writeJson } from '../state-files.js';
import type { JournalEvent } from './journal.js';
import { DeliveryError, type Batch, type Sender } from './sinks/sink.js';

export interface DeliveryLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export type Outcome = 'delivered' | 'failed' | 'rejected' | 'dropped';

export interface QueueOptions {
  spoolDir: string;
  limit: number;
  log: DeliveryLog;
  onOutcome: (sink: string, outcome: Outcome, n?: number) => void;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Tries for a batch the sink rejects outright (4xx other than 408/429, SMTP 5xx). */
  maxRejections?: number;
  host: string;
}

export function backoffMs(attempt: number, base: number, max: number, random = Math.random): number {
  const exp = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp * (0.5 + random())); // ±50 % jitter spreads retries of many agents
}

export class SinkQueue {
  private running: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private stopped = false;
  private readonly dir: string;

  constructor(
    private readonly sender: Sender,
    private readonly o: QueueOptions,
  ) {
    this.dir = `${o.spoolDir}/${sender.name}`;
    ensureDir(this.dir);
  }

  get name(): string {
    return this.sender.name;
  }

  /** Batch files, oldest first (names start with the creation time). */
  pending(): string[] {
    return readdirSync(this.dir).filter((f) => f.endsWith('.json')).sort();
  }

  enqueue(events: JournalEvent[]): void {
    if (!events.length) return;
    this.write({ id: `msg_${randomUUID()}`, createdAt: new Date().toISOString(), events, attempts: 0 });
    this.enforceLimit();
    this.kick();
  }

  private write(b: Batch): void {
    writeJson(`${this.dir}/${b.createdAt.replace(/[:.]/g, '-')}_${b.id}.json`, b);
  }

  private enforceLimit(): void {
    const files = this.pending();
    if (files.length <= this.o.limit) return;
    let dropped = 0;
    for (const f of files.slice(0, files.length - this.o.limit + 1)) {
      dropped += readJson<Batch>(`${this.dir}/${f}`)?.events.length ?? 0;
      unlinkSync(`${this.dir}/${f}`);
    }
    this.o.onOutcome(this.name, 'dropped', dropped);
    this.o.log.error({ sink: this.name, dropped }, 'alert spool full: dropped the oldest events');
    const at = new Date().toISOString();
    this.write({
      id: `msg_${randomUUID()}`,
      createdAt: at,
      attempts: 0,
      events: [{
        event: 'opened',
        at,
        host: this.o.host,
        finding: {
          id: `alerts-dropped:${this.name}`, kind: 'alerts-dropped', severity: 'high', proto: null, port: null, address: null, rule: null, processes: [],
          message: `dropped ${dropped} events: sink ${this.name} could not deliver and its spool (${this.o.limit} batches) was full`,
          remedy: `check that ${this.name} is reachable, then review what was missed with portwarden alerts`,
        },
      }],
    });
  }

  /** Starts the delivery loop if it is idle; wakes it if it is waiting. */
  kick(): void {
    if (this.stopped) return;
    if (this.wake) this.wake();
    if (!this.running) this.running = this.loop().finally(() => (this.running = null));
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

  private async loop(): Promise<void> {
    const base = this.o.baseDelayMs ?? 1000;
    const max = this.o.maxDelayMs ?? 300_000;
    while (!this.stopped) {
      const next = this.pending()[0];
      if (!next) return;
      const path = `${this.dir}/${next}`;
      const batch = readJson<Batch>(path);
      if (!batch) continue;
      try {
        await this.sender.send(batch);
        unlinkSync(path);
        this.o.onOutcome(this.name, 'delivered', batch.events.length);
        this.o.log.info({ sink: this.name, batch: batch.id, events: batch.events.length, attempts: batch.attempts + 1 }, 'alert delivered');
        continue;
      } catch (err) {
        const e = err instanceof DeliveryError ? err : new DeliveryError((err as Error).message, true);
        batch.attempts++;
        if (!e.retryable && batch.attempts >= (this.o.maxRejections ?? 3)) {
          unlinkSync(path);
          this.o.onOutcome(this.name, 'rejected', batch.events.length);
          this.o.log.error({ sink: this.name, batch: batch.id, error: e.message, attempts: batch.attempts }, 'alert rejected by the sink; giving up on this batch');
          continue;
        }
        this.write(batch);
        this.o.onOutcome(this.name, 'failed');
        const delay = e.retryAfterMs !== undefined ? Math.min(max, e.retryAfterMs) : backoffMs(batch.attempts, base, max);
        this.o.log.warn({ sink: this.name, batch: batch.id, error: e.message, attempts: batch.attempts, retryInMs: delay }, 'alert delivery failed; will retry');
        await this.sleep(delay);
      }
    }
  }

  /** Waits until the spool is empty or the deadline passes. */
  async drain(deadline: number): Promise<void> {
    while (this.pending().length && Date.now() < deadline && !this.stopped) {
      this.kick();
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops the loop; resolves once a send in flight has finished (so no other queue re-sends it). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.wake) this.wake();
    await this.running;
  }
}

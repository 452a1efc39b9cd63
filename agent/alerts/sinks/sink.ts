// What a delivering sink is: it sends one batch, or throws a DeliveryError saying whether to retry.
import type { JournalEvent } from '../journal.js';

export interface Batch {
  /** Stable across retries and restarts: the webhook-id. */
  id: string;
  createdAt: string;
  events: JournalEvent[];
  attempts: number;
}

export interface Sender {
  readonly name: string;
  /** Sends one batch; `signal` aborts it (the queue is stopping), which rejects promptly. */
  send(batch: Batch, signal?: AbortSignal): Promise<void>;
}

export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

const RANK = ['info', 'low', 'medium', 'high', 'critical'];

export function worstSeverity(events: readonly JournalEvent[]): string {
  return events.reduce((w, e) => (RANK.indexOf(e.finding.severity) > RANK.indexOf(w) ? e.finding.severity : w), 'info');
}

export function eventLine(e: JournalEvent): string {
  const f = e.finding;
  const where = f.proto ? ` ${f.proto}/${f.port}` : '';
  return `${e.event.toUpperCase()} ${f.severity} ${f.kind}${where}${f.rule ? ` (rule ${f.rule})` : ''}: ${f.message}`;
}

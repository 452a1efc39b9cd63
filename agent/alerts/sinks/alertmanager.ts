// Alertmanager sink: each open finding is an alert posted to /api/v2/alerts of every instance.
// Every URL has its own queue (spool, retries), so one instance down delays nothing for the
// others and nothing is lost while all are down. Alertmanager forgets an alert whose endsAt
// passes, so open findings are re-posted every `resend` with endsAt four resends ahead (as
// Prometheus does): if the agent dies, its alerts expire by themselves. A resolve is posted once
// with endsAt set to when it resolved.
import type { SinkQueue } from '../delivery.js';
import type { JournalEvent } from '../journal.js';
import { type Batch, type Sender } from './sink.js';
import { postOnce } from './webhook.js';

export interface AlertmanagerOptions {
  /** The queue's name: SINK#N for the Nth URL. */
  name: string;
  /** Base URL of one instance (http://am-1:9093). */
  url: string;
  /** Authorization header value ("Bearer …", "Basic …"), or null. */
  authorization: string | null;
  resendMs: number;
  timeoutMs: number;
}

/** What Alertmanager's v2 API takes for one alert. */
export interface PostableAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
}

/** "forbidden-listener" → "PortwardenForbiddenListener". */
export function alertName(kind: string): string {
  return 'Portwarden' + kind.split(/[^A-Za-z0-9]+/).map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
}

/** One alert for an event: firing until `now` + 4 resends, or resolved at the event's time. Labels
 *  without a value (proto of a host-wide finding) are left out, as Prometheus does. */
export function toAlert(e: JournalEvent, now: Date, resendMs: number): PostableAlert {
  const f = e.finding;
  const programs = [...new Set(f.processes.map((p) => p.name))].sort().join(',');
  const labels: Record<string, string> = {
    alertname: alertName(f.kind),
    host: e.host,
    severity: f.severity,
    kind: f.kind,
    proto: f.proto ?? '',
    port: f.port === null ? '' : String(f.port),
    rule: f.rule ?? '',
    program: programs,
    finding_id: f.id,
  };
  for (const k of Object.keys(labels)) if (!labels[k]) delete labels[k];
  const resolved = e.event === 'resolved';
  return {
    labels,
    annotations: { summary: f.message, remedy: f.remedy },
    // A resolve does not know when the finding opened; Alertmanager keeps the earliest startsAt.
    startsAt: e.at,
    endsAt: resolved ? e.at : new Date(now.getTime() + 4 * resendMs).toISOString(),
  };
}

/** The request body for a batch: one alert per finding, its last event in the batch deciding. */
export function alertsBody(batch: Batch, now: Date, resendMs: number): string {
  const last = new Map<string, JournalEvent>();
  for (const e of batch.events) last.set(e.finding.id, e);
  return JSON.stringify([...last.values()].map((e) => toAlert(e, now, resendMs)));
}

export function alertmanagerSender(o: AlertmanagerOptions): Sender {
  const url = `${o.url.replace(/\/+$/, '')}/api/v2/alerts`;
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'portwarden' };
  if (o.authorization) headers.authorization = o.authorization;
  return {
    name: o.name,
    // endsAt is computed when sent, not when queued: a batch that waited out an outage still fires.
    send: (batch, signal) => postOnce(url, headers, alertsBody(batch, new Date(), o.resendMs), o.timeoutMs, signal),
  };
}

/** The Authorization header for bearer_token_file or basic_auth (the secret read at load). */
export function authorization(s: { bearer_token_file?: string; basic_auth?: { user: string } }, credential: string | null | undefined): string | null {
  if (!credential) return null;
  if (s.bearer_token_file) return `Bearer ${credential}`;
  if (s.basic_auth) return `Basic ${Buffer.from(`${s.basic_auth.user}:${credential}`).toString('base64')}`;
  return null;
}

/**
 * Re-posts the open findings to one instance's queue every resendMs. Only when that queue has
 * nothing waiting: while an instance is down its backlog already holds the findings (each
 * delivered with a fresh endsAt), and one re-post per outage is enough — the spool does not fill
 * with copies of the same alerts.
 */
export class Resender {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly queue: SinkQueue,
    private readonly resendMs: number,
    /** The findings open now, each as an "opened" event at its opening time (startsAt). */
    private readonly open: () => JournalEvent[],
  ) {}

  tick(): void {
    if (this.queue.waiting > 0) return;
    this.queue.enqueue(this.open());
  }

  start(): void {
    this.stop();
    this.timer = setInterval(() => this.tick(), this.resendMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

// E-mail sink: one plain-text message per batch over SMTP (nodemailer).
import type { Transporter } from 'nodemailer';
import { extraCaOption } from '../../extra-ca.js';
import { redact } from './redact.js';
import { DeliveryError, eventLine, worstSeverity, type Batch, type Sender } from './sink.js';

export interface EmailOptions {
  name: string;
  host: string;
  port: number;
  tls: 'starttls' | 'implicit' | 'none';
  from: string;
  to: string[];
  user?: string;
  password?: string;
  timeoutMs: number;
}

export function emailSubject(batch: Batch): string {
  const host = batch.events[0]?.host ?? '?';
  const n = batch.events.length;
  return `[portwarden] ${host}: ${n} event${n === 1 ? '' : 's'}, worst ${worstSeverity(batch.events)}`;
}

export function emailBody(batch: Batch): string {
  const host = batch.events[0]?.host ?? '?';
  const parts = batch.events.map((e) => `${eventLine(e)}\n  at ${e.at}\n  remedy: ${e.finding.remedy}\n  id: ${e.finding.id}\n`);
  return `portwarden on ${host} reports:\n\n${parts.join('\n')}\nReview with: portwarden alerts --since 24h\n`;
}

export function emailSender(o: EmailOptions): Sender {
  // nodemailer (~15 MB of the daemon's memory) is loaded with the first message, not at start:
  // most agents have no e-mail sink, and those that do send rarely.
  let transport: Promise<Transporter> | null = null;
  const open = () => (transport ??= Promise.all([import('nodemailer'), o.tls === 'none' ? null : extraCaOption()]).then(([{ default: nodemailer }, ca]) => nodemailer.createTransport({
    host: o.host,
    port: o.port,
    secure: o.tls === 'implicit',
    requireTLS: o.tls === 'starttls',
    ignoreTLS: o.tls === 'none',
    auth: o.user ? { user: o.user, pass: o.password ?? '' } : undefined,
    connectionTimeout: o.timeoutMs,
    greetingTimeout: o.timeoutMs,
    socketTimeout: o.timeoutMs,
    tls: ca ?? undefined,
  })).catch((err: unknown) => {
    transport = null; // not kept: the next batch tries again (an unreadable CA file may be fixed)
    throw err;
  }));
  return {
    name: o.name,
    async send(batch, signal) {
      // nodemailer takes no signal: a stop stops waiting for it (the batch stays spooled; if the
      // server took it meanwhile, the next run sends it again: at least once).
      let onStop: () => void = () => undefined;
      const stopped = new Promise<never>((_resolve, reject) => {
        onStop = () => reject(new DeliveryError(`SMTP ${o.host}:${o.port}: aborted: the queue is stopping`, true));
        if (signal?.aborted) onStop();
        signal?.addEventListener('abort', onStop, { once: true });
      });
      try {
        await Promise.race([
          open().then((t) => t.sendMail({ from: o.from, to: o.to, subject: emailSubject(batch), text: emailBody(batch), messageId: `<${batch.id}@portwarden>` })),
          stopped,
        ]);
      } catch (err) {
        if (err instanceof DeliveryError) throw err;
        const code = (err as { responseCode?: number }).responseCode;
        // SMTP 5xx is permanent; 4xx and connection problems are worth another try.
        throw new DeliveryError(redact(`SMTP ${o.host}:${o.port}: ${(err as Error).message}`), code === undefined || code < 500);
      } finally {
        signal?.removeEventListener('abort', onStop);
      }
    },
  };
}

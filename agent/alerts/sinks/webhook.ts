// Webhook sink: Standard Webhooks (webhook-id / webhook-timestamp / webhook-signature v1 HMAC-SHA256
// of "id.timestamp.body" with the base64 key of a whsec_ secret), or a Slack-compatible message.
import { createHmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { extraCaOption } from '../../extra-ca.js';
import { findingJson } from '../../serialize.js';
import { redact, redactUrl } from './redact.js';
import { DeliveryError, eventLine, worstSeverity, type Batch, type Sender } from './sink.js';

export interface WebhookOptions {
  name: string;
  url: string;
  format: 'standard' | 'slack';
  /** whsec_<base64>; null sends unsigned. */
  secret: string | null;
  timeoutMs: number;
}

/** The HMAC key of a whsec_<base64> secret (or bare base64). Strict: a typo must not sign with a
 *  garbage key that Buffer.from would make of it. */
export function secretKey(secret: string): Buffer {
  const b64 = secret.startsWith('whsec_') ? secret.slice(6) : secret;
  if (!b64) throw new Error('the webhook secret is empty (expected whsec_<base64>)');
  const key = Buffer.from(b64, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || key.toString('base64').replace(/=+$/, '') !== b64.replace(/=+$/, '')) {
    throw new Error('the webhook secret is not base64 (expected whsec_<base64>)');
  }
  return key;
}

export function sign(secret: string, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', secretKey(secret)).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

export function standardBody(batch: Batch): string {
  return JSON.stringify({
    type: 'portwarden.alert',
    host: batch.events[0]?.host ?? null,
    events: batch.events.map((e) => ({ event: e.event, at: e.at, finding: findingJson(e.finding) })),
  });
}

export function slackBody(batch: Batch): string {
  const host = batch.events[0]?.host ?? '?';
  const head = `*portwarden on ${host}*: ${batch.events.length} event${batch.events.length === 1 ? '' : 's'}, worst ${worstSeverity(batch.events)}`;
  const lines = batch.events.map((e) => `• ${eventLine(e)}\n   → ${e.finding.remedy}`);
  return JSON.stringify({ text: [head, ...lines].join('\n') });
}

/** Seconds or an HTTP date, as Retry-After allows. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const t = Date.parse(header);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

export function webhookSender(o: WebhookOptions): Sender {
  return {
    name: o.name,
    async send(batch, signal) {
      const body = o.format === 'slack' ? slackBody(batch) : standardBody(batch);
      const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'portwarden' };
      if (o.format === 'standard') {
        const ts = Math.floor(Date.now() / 1000);
        headers['webhook-id'] = batch.id;
        headers['webhook-timestamp'] = String(ts);
        if (o.secret) headers['webhook-signature'] = sign(o.secret, batch.id, ts, body);
      }
      await postOnce(o.url, headers, body, o.timeoutMs, signal);
    },
  };
}

/** One POST that succeeds on 2xx or throws a DeliveryError (retryable on 5xx, 408, 429 and network
 *  errors; Retry-After honoured), with the URL redacted. `signal` (the queue stopping) aborts it. */
export async function postOnce(url: string, headers: Record<string, string>, body: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const target = redactUrl(url);
  // One signal for the request, the headers and the body; the timer stays referenced (and is
  // cleared) here, so a receiver that stalls the body cannot outlive the timeout.
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`timed out: no complete response within ${timeoutMs / 1000} s`)), timeoutMs);
  const onStop = () => ac.abort(new Error('aborted: the queue is stopping'));
  if (signal?.aborted) onStop();
  signal?.addEventListener('abort', onStop, { once: true });
  try {
    const res = await post(url, headers, body, ac.signal);
    if (res.status >= 200 && res.status < 300) return;
    // No redirect is followed (a receiver that moved is a config to fix, not a retry).
    const retryable = res.status >= 500 || res.status === 429 || res.status === 408;
    throw new DeliveryError(`POST ${target}: HTTP ${res.status}`, retryable, retryAfterMs(res.retryAfter));
  } catch (err) {
    if (err instanceof DeliveryError) throw err;
    const why = ac.signal.aborted ? (ac.signal.reason as Error).message : (err as Error).message;
    throw new DeliveryError(redact(`POST ${target}: ${why}`), true);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onStop);
  }
}

let httpsRequest: typeof httpRequest | undefined;

/**
 * The POST itself, with Node's http client: the response read to its end, `signal` ending it at
 * any point. (fetch loads undici: 2–3 MB more of the agent's resident memory, measured over 5 000 cycles.)
 */
async function post(url: string, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<{ status: number; retryAfter: string | null }> {
  // TLS only where a sink uses it (another MB resident otherwise), with the operator's extra CAs.
  let ca: { ca: string[] } | null = null;
  if (url.startsWith('https:')) {
    httpsRequest ??= (await import('node:https')).request;
    ca = await extraCaOption();
  }
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return reject(new Error(`unsupported protocol ${u.protocol}`));
    if (signal.aborted) return reject(signal.reason as Error);
    const req = (u.protocol === 'https:' ? httpsRequest! : httpRequest)(u, { method: 'POST', headers: { ...headers, 'content-length': Buffer.byteLength(body) }, ...ca }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => {
        const h = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, retryAfter: (Array.isArray(h) ? h[0] : h) ?? null });
      });
      res.on('error', reject);
    });
    const abort = () => {
      reject(signal.reason as Error);
      req.destroy();
    };
    signal.addEventListener('abort', abort, { once: true });
    req.on('close', () => signal.removeEventListener('abort', abort));
    req.on('error', reject);
    req.end(body);
  });
}

// A real HTTP server on loopback that checks Standard Webhooks signatures on its own (not with
// portwarden's code) and records what it accepted.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';

export interface Received {
  id: string;
  timestamp: number;
  body: { type: string; host: string; events: { event: string; at: string; finding: { id: string; kind: string } }[] };
}

export class WebhookReceiver {
  received: Received[] = [];
  rejected = 0;
  private server: Server | null = null;
  constructor(
    private readonly secret: string,
    public port = 0,
  ) {}

  private verify(id: string, ts: string, sig: string, body: string): boolean {
    const key = Buffer.from(this.secret.replace(/^whsec_/, ''), 'base64');
    const want = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest();
    return sig.split(' ').some((s) => {
      const [v, b64] = s.split(',');
      const got = Buffer.from(b64 ?? '', 'base64');
      return v === 'v1' && got.length === want.length && timingSafeEqual(got, want);
    });
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const id = String(req.headers['webhook-id'] ?? '');
        const ts = String(req.headers['webhook-timestamp'] ?? '');
        const sig = String(req.headers['webhook-signature'] ?? '');
        if (!id || !ts || !this.verify(id, ts, sig, body) || Math.abs(Date.now() / 1000 - Number(ts)) > 300) {
          this.rejected++;
          res.writeHead(401).end();
          return;
        }
        this.received.push({ id, timestamp: Number(ts), body: JSON.parse(body) as Received['body'] });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', () => resolve()));
    const addr = this.server.address();
    if (addr && typeof addr === 'object') this.port = addr.port;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise((r) => this.server!.close(r));
    this.server = null;
  }

  events(): { batch: string; event: string; id: string; at: string }[] {
    return this.received.flatMap((r) => r.body.events.map((e) => ({ batch: r.id, event: e.event, id: e.finding.id, at: e.at })));
  }
}

// Prometheus exposition: a node_exporter textfile written atomically each cycle, and optionally
// a /metrics endpoint (and beside it, read-only, the pages the agent hands in: the review page).
import { createServer, type Server } from 'node:http';
import { RuntimeError } from '../../errors.js';
import { writeFileAtomic } from '../../fs-atomic.js';
import type { AttemptTotals, Finding, Listener } from '../../model.js';

/** A label value in the text exposition format: backslash, newline and double quote escaped. */
export const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

export class Metrics {
  findings = new Map<string, number>();
  listeners = new Map<string, number>();
  lastScan = 0;
  scanDuration = 0;
  alerts = new Map<string, number>();
  cycleErrors = 0;
  /** Who knocks (agent/attempts): running totals, and distinct sources per rule in the last window. */
  attempts: { totals: AttemptTotals; sources: Record<string, number> } | null = null;

  observeAttempts(totals: AttemptTotals, sources: Record<string, number>): void {
    this.attempts = { totals, sources };
  }

  observeScan(findings: readonly Finding[], listeners: readonly Listener[], at: Date, seconds: number): void {
    this.findings = new Map();
    for (const f of findings) {
      const k = `kind="${esc(f.kind)}",severity="${f.severity}"`;
      this.findings.set(k, (this.findings.get(k) ?? 0) + 1);
    }
    this.listeners = new Map([['scope="loopback"', 0], ['scope="wildcard"', 0], ['scope="address"', 0]]);
    for (const l of listeners) this.listeners.set(`scope="${l.scope}"`, (this.listeners.get(`scope="${l.scope}"`) ?? 0) + 1);
    this.lastScan = at.getTime() / 1000;
    this.scanDuration = seconds;
  }

  countAlert(sink: string, result: string, n = 1): void {
    const k = `sink="${esc(sink)}",result="${esc(result)}"`;
    this.alerts.set(k, (this.alerts.get(k) ?? 0) + n);
  }

  render(): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string, samples: Map<string, number> | number) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      if (typeof samples === 'number') out.push(`${name} ${samples}`);
      else for (const [labels, v] of [...samples].sort()) out.push(`${name}{${labels}} ${v}`);
    };
    family('portwarden_findings', 'gauge', 'Findings of the last scan, by kind and severity.', this.findings);
    family('portwarden_listeners', 'gauge', 'Listening sockets of the last scan, by bind scope.', this.listeners);
    family('portwarden_last_scan_timestamp_seconds', 'gauge', 'Unix time of the last completed scan.', this.lastScan);
    family('portwarden_scan_duration_seconds', 'gauge', 'How long the last scan cycle took.', this.scanDuration);
    family('portwarden_alerts_total', 'counter', 'Alert batches (events for dropped) by sink and result.', this.alerts);
    family('portwarden_cycle_errors_total', 'counter', 'Scan cycles that failed.', this.cycleErrors);
    if (this.attempts) {
      const { totals, sources } = this.attempts;
      const byRule = (m: Record<string, number>) => new Map(Object.entries(m).map(([rule, v]) => [`rule="${esc(rule)}"`, v]));
      const byPort = new Map(
        Object.entries(totals.refused).map(([k, v]) => {
          const [rule, proto, port] = k.split('\0');
          return [`rule="${esc(rule!)}",proto="${esc(proto!)}",port="${esc(port!)}"`, v];
        }),
      );
      family('portwarden_refused_connections_total', 'counter', "New connections portwarden's rules refused, by rule, protocol and port.", byPort);
      family('portwarden_rate_limited_total', 'counter', "New connections portwarden's rate limits refused, by rule.", byRule(totals.rateLimited));
      family('portwarden_accepted_connections_total', 'counter', "New connections portwarden's rules accepted, by rule.", byRule(totals.accepted));
      family('portwarden_refused_sources', 'gauge', 'Distinct sources refused or rate-limited within the attempts window, by rule.', byRule(sources));
    }
    return out.join('\n') + '\n';
  }
}

export function writeTextfile(path: string, metrics: Metrics): void {
  writeFileAtomic(path, metrics.render(), 0o644);
}

/** A read-only page served beside /metrics: its body, or null while there is nothing to show yet. */
export type PageHandler = (query: URLSearchParams) => Promise<{ type: string; body: string; headers?: Record<string, string> } | null>;

export function serveMetrics(listen: string, metrics: Metrics, pages: Record<string, PageHandler> = {}): Promise<Server> {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(listen.slice(colon + 1));
  const server = createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      res.writeHead(400).end('bad request\n');
      return;
    }
    const page = Object.hasOwn(pages, url.pathname) ? pages[url.pathname] : undefined;
    if (url.pathname !== '/metrics' && !page) {
      res.writeHead(404).end('not found\n');
    } else if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end('read-only: GET only\n');
    } else if (!page) {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(metrics.render());
    } else {
      page(url.searchParams).then(
        (p) => {
          if (!p) res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '5' }).end('no scan yet: the page follows the first cycle\n');
          else res.writeHead(200, { 'content-type': p.type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...p.headers }).end(p.body);
        },
        // Bad input in the query is the client's (400); anything else one line, never a stack.
        (err: Error & { exitCode?: number }) => res.writeHead(err.exitCode === 2 ? 400 : 500, { 'content-type': 'text/plain; charset=utf-8' }).end(`${err.message}\n`),
      );
    }
  });
  return new Promise((resolve, reject) => {
    // The port or address is the operator's environment (in use, not on this host): exit 3, one line.
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why = { EADDRINUSE: 'address already in use', EADDRNOTAVAIL: 'no such address on this host', EACCES: 'permission denied' }[err.code ?? ''] ?? err.message;
      reject(new RuntimeError(`cannot serve /metrics on ${listen}: ${why}${err.code ? ` (${err.code})` : ''}`));
    });
    server.listen(port, host, () => resolve(server));
  });
}

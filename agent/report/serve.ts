// The review page as the agent serves it, read-only, beside /metrics: `/` (HTML) and
// `/report.json` (its data), built on request from the last cycle, the journal and the state dir.
import type { PageHandler } from '../alerts/sinks/prometheus.js';
import { parseDuration } from '../duration.js';
import { UsageError } from '../errors.js';
import type { FirewallView } from '../exposure/exposure.js';
import type { Finding, Snapshot } from '../model.js';
import type { LoadedPolicy } from '../policy/load.js';
import { renderPage } from './html.js';
import { buildPage, type PageData } from './model.js';
import { DEFAULT_SINCE, fileSha256, readAttemptsForPage, readStateForPage } from './read.js';

/** What one cycle saw; fw is null when the config turns exposure off. */
export interface CycleView {
  snapshot: Snapshot;
  fw: FirewallView | null;
  findings: readonly Finding[];
  at: Date;
}

export interface PageContext {
  cycle: CycleView | null;
  policy: LoadedPolicy;
  stateDir: string;
  netns: string | undefined;
  /** Open findings → when they opened, from the agent's own (current) state. */
  openedAt: ReadonlyMap<string, string>;
}

const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

export async function agentPage(ctx: PageContext, query: URLSearchParams): Promise<PageData | null> {
  let sinceMs: number;
  try {
    sinceMs = parseDuration(query.get('since') ?? DEFAULT_SINCE);
  } catch (err) {
    throw new UsageError(`since: ${(err as Error).message}`);
  }
  const c = ctx.cycle;
  if (!c) return null;
  const state = await readStateForPage(ctx.stateDir, ctx.netns);
  const fw = c.fw ?? { ruleset: null, error: 'exposure is off in the config (exposure: false)', interfaces: [], legacyRules: 0, published: [] };
  const now = new Date();
  const since = new Date(now.getTime() - sinceMs);
  return buildPage({
    generatedAt: now, snapshot: c.snapshot, fw, findings: c.findings, openedAt: ctx.openedAt,
    policy: { file: ctx.policy.file, sha256: fileSha256(ctx.policy.file), compiled: ctx.policy.policy },
    events: state.events, since, status: state.status,
    attempts: readAttemptsForPage(ctx.stateDir, since, query.get('since') ?? DEFAULT_SINCE),
  });
}

/** The routes serveMetrics adds beside /metrics. */
export function reportPages(context: () => PageContext): Record<string, PageHandler> {
  return {
    '/': async (q) => {
      const page = await agentPage(context(), q);
      return page && { type: 'text/html; charset=utf-8', body: renderPage(page), headers: { 'content-security-policy': CSP } };
    },
    '/report.json': async (q) => {
      const page = await agentPage(context(), q);
      return page && { type: 'application/json; charset=utf-8', body: JSON.stringify(page, null, 2) + '\n' };
    },
  };
}

// Judges `scan --json` predictions and `explain` verdicts against real connects from every lab
// client to the server's v4 and v6 address, port by port (the live Docker and firewalld tests).
import assert from 'node:assert/strict';
import { containsCidr } from 'cidr-tools';
import { flushConntrack, flushNeighbours, probe, recheck, type Lab, type Probe } from './lab.js';
import { runCli } from './cli.js';

interface Exposure {
  verdict: string;
  sources: string[];
  reason: string;
  perAddress?: Record<string, string[]>;
  perPort?: Record<string, string[]>;
}
export interface Row {
  port: number;
  family?: number;
  address?: string;
  dualStack?: boolean;
  to?: string | null;
  exposure: Exposure;
}

export const NO_ROW = 'no row: nothing listens or is published there';

/** What scan predicts for `src` connecting to `host`:`port` (open: null when undetermined). */
export function predict(rows: Row[], port: number, host: string, src: string): { open: boolean | null; why: string } {
  const fam = host.includes(':') ? 6 : 4;
  // A listener reached through a redirect from `port` also stands for it (its perPort says who).
  const mine = rows.filter((r) => r.port === port || r.exposure.perPort?.[String(port)] !== undefined).filter((r) => {
    // A published row's sources carry their family; one for a family no DNAT covers stands for nothing.
    if (r.family === undefined) return !/nothing answers there/.test(r.exposure.reason);
    if (r.family !== fam && !(r.dualStack && fam === 4)) return false;
    return r.address === '0.0.0.0' || r.address === '::' || r.address === host;
  });
  if (!mine.length) return { open: false, why: NO_ROW };
  if (mine.some((r) => r.exposure.verdict === 'undetermined')) return { open: null, why: mine.map((r) => r.exposure.reason).join('; ') };
  const sources = mine.flatMap((r) => r.exposure.perPort?.[String(port)] ?? r.exposure.perAddress?.[host] ?? r.exposure.sources);
  return { open: sources.length > 0 && containsCidr(sources, src), why: mine.map((r) => `${r.address ?? `published → ${r.to ?? '?'}`}: ${r.exposure.verdict} (${r.exposure.reason})`).join('; ') };
}

export interface Tally {
  predictions: number;
  matched: number;
  undetermined: number;
  explain: number;
  explainMatched: number;
  mismatches: string[];
}

export const newTally = (): Tally => ({ predictions: 0, matched: 0, undetermined: 0, explain: 0, explainMatched: 0, mismatches: [] });

/**
 * Scans, connects from every client to every port (v4 and v6), and asks explain about each
 * connect that reached something listening or published (explain judges the firewall: where
 * nothing answers it has no say). Mismatches and undetermined predictions go to the tally.
 */
export async function judge(lab: Lab, label: string, ports: number[], tally: Tally): Promise<Row[]> {
  const ns = lab.server.ns;
  flushConntrack(ns);
  flushNeighbours(ns, ...lab.clients.map((c) => c.ns));
  const scan = await runCli(['scan', '--json', '--netns', ns]);
  assert.equal(scan.code, 0, scan.stderr);
  const parsed = JSON.parse(scan.stdout) as { listeners: Row[]; published: Row[] };
  const rows = [...parsed.listeners, ...parsed.published];
  const observed: (Probe & { src: string; got: string })[] = [];
  for (const c of lab.clients) {
    const probes: (Probe & { src: string })[] = ports.flatMap((port) => [
      { proto: 'tcp' as const, host: lab.server.v4, port, src: c.v4 },
      { proto: 'tcp' as const, host: lab.server.v6, port, src: c.v6 },
    ]);
    const seen = probe(c.ns, probes, { timeoutMs: 600 });
    for (const [i, p] of probes.entries()) {
      const { open, why } = predict(rows, p.port, p.host, p.src);
      const got = open === null ? seen[i]! : recheck(c.ns, p, seen[i]!, open);
      tally.predictions++;
      if (open === null) {
        tally.undetermined++;
        tally.mismatches.push(`${label}: ${p.src} → [${p.host}]:${p.port} undetermined (${why}); a connect saw ${got}`);
      } else if ((got === 'open') === open) tally.matched++;
      else tally.mismatches.push(`${label}: ${p.src} → [${p.host}]:${p.port} predicted ${open ? 'open' : 'closed'}, a connect saw ${got} (${why})`);
      if (why !== NO_ROW) observed.push({ ...p, got });
    }
  }
  const queue = [...observed];
  await Promise.all([0, 1, 2].map(async () => {
    for (let p = queue.shift(); p; p = queue.shift()) {
      const ex = await runCli(['explain', String(p.port), '--from', p.src, '--to', p.host, '--netns', ns, '--json']);
      tally.explain++;
      const verdict = ex.code === 0 ? (JSON.parse(ex.stdout) as { verdict: string }).verdict : `exit ${ex.code}: ${ex.stderr.trim()}`;
      if ((verdict === 'accept') === (p.got === 'open') && !verdict.startsWith('exit') && verdict !== 'undetermined') tally.explainMatched++;
      else tally.mismatches.push(`${label}: explain ${p.port} --from ${p.src} --to ${p.host} said ${verdict}, a connect saw ${p.got}`);
    }
  }));
  return rows;
}

export function report(name: string, tally: Tally, diagnostic: (m: string) => void): void {
  const summary = `${name}: ${tally.predictions} predictions, ${tally.matched} matched, ${tally.undetermined} undetermined; explain ${tally.explain}, ${tally.explainMatched} matched`;
  diagnostic(summary);
  console.log(summary);
  for (const m of tally.mismatches) console.log(`  MISMATCH ${m}`);
  assert.deepEqual(tally.mismatches, []);
}

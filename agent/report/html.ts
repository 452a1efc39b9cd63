// The review page as one self-contained HTML file: inline CSS and SVG, no script, nothing
// fetched (a Content-Security-Policy says so to the browser too). Every picture has a table
// behind it, every colour a word or symbol beside it, and every string from the system or the
// policy is escaped. Pure: PageData in, text out.
import { SEVERITIES, type Severity } from '../model.js';
import { TRACED_KINDS, type CellState, type MapCell, type MapColumn, type PageData, type PageFinding, type HistoryLane } from './model.js';

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Text for element content and (double-quoted) attribute values alike. */
export const esc = (s: string | number | null | undefined): string => String(s ?? '').replace(/[&<>"']/g, (c) => ESC[c]!);

/** At most `n` prefixes, then how many more: titles stay short with 10 000 sources. */
function list(prefixes: readonly string[], n = 6): string {
  if (!prefixes.length) return 'none';
  return prefixes.length > n ? `${prefixes.slice(0, n).join(', ')} … and ${prefixes.length - n} more` : prefixes.join(', ');
}

/** What a cell shows besides its colour: a symbol, and a word where it matters (gap, blocked). */
const CELL: Record<CellState, { mark: string; word: string }> = {
  gap: { mark: '✖ gap', word: 'gap' },
  blocked: { mark: '⊘ blocked', word: 'blocked' },
  open: { mark: '✔', word: 'allowed' },
  closed: { mark: '·', word: 'closed' },
  unknown: { mark: '?', word: 'unknown' },
};
const MEANING: Record<CellState, string> = {
  gap: 'not allowed by the policy, but reachable (firewall-gap)',
  blocked: 'allowed by the policy, but blocked by the firewall (blocked-service)',
  open: 'allowed and reachable',
  closed: 'not allowed and not reachable',
  unknown: 'the firewall could not be decided for these sources',
};

const CSS = `
:root{--fg:#1b1b1b;--bg:#fff;--mute:#5c5c5c;--line:#d0d0d0;--gap:#b3261e;--gapbg:#fbe0dd;--blk:#8a5a00;--blkbg:#fdf0cf;--ok:#1d6b35;--okbg:#e0f2e5;--unk:#444;--unkbg:#e8e8e8}
body{font:14px/1.4 system-ui,sans-serif;color:var(--fg);background:var(--bg);margin:1.5em auto;max-width:80em;padding:0 1em}
h1{font-size:1.4em}h2{font-size:1.2em;border-bottom:1px solid var(--line);padding-bottom:.2em;margin-top:1.6em}h3{font-size:1em}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:.1em 1em}dl.kv dt{color:var(--mute)}dl.kv dd{margin:0}
dl.counts{display:flex;flex-wrap:wrap;gap:.5em 1.5em}dl.counts div{border:1px solid var(--line);padding:.3em .7em}dl.counts dt{color:var(--mute);font-size:.85em}dl.counts dd{margin:0;font-size:1.3em;font-weight:600}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid var(--line);padding:.15em .4em;text-align:left;vertical-align:top}thead th{background:#f4f4f4}
code,.mono{font-family:ui-monospace,monospace;font-size:.92em}
.sev{font-weight:600;text-transform:uppercase}.sev-critical{color:#7d0000}.sev-high{color:var(--gap)}.sev-medium{color:var(--blk)}.sev-low{color:#0b5c7a}.sev-info{color:var(--mute)}
article.f small{color:var(--mute)}article.f{border-left:4px solid var(--line);padding:.2em .8em;margin:.6em 0}article.b-critical,article.b-high{border-color:var(--gap)}article.b-medium{border-color:var(--blk)}
.remedy::before{content:"→ "}.muted{color:var(--mute)}
table.map tbody td:nth-child(n+5){text-align:center;white-space:nowrap}
.c-gap{background:var(--gapbg);color:var(--gap);font-weight:700;outline:2px solid var(--gap)}.c-blocked{background:var(--blkbg);color:var(--blk);font-weight:600}
.c-open{background:var(--okbg);color:var(--ok)}.c-closed{color:var(--mute)}.c-unknown{background:var(--unkbg);color:var(--unk)}
svg.tl{width:100%;height:auto;border:1px solid var(--line)}svg .ax{stroke:#999;stroke-width:.5}svg text{font:9px sans-serif;fill:#333}
svg .e-reminder{stroke:#222;stroke-width:1.5}svg.bar rect{fill:var(--gap)}svg .open{fill:var(--gapbg);stroke:var(--gap);stroke-width:1}
@media print{body{max-width:none;margin:0;font-size:10pt}h2{break-after:avoid}table,article.f,svg{break-inside:avoid}thead{display:table-header-group}
.c-gap,.c-blocked,.c-open,.c-unknown{-webkit-print-color-adjust:exact;print-color-adjust:exact}a{color:inherit;text-decoration:none}}
`.trim();

function header(d: PageData): string {
  const s = d.status;
  const applied = !s ? '<span class="muted">not read (no state dir)</span>' : s.applied
    ? `${esc(s.applied.backend)} rules <code>${esc(s.applied.hash.slice(0, 12))}</code> from ${esc(s.applied.policy)} at ${esc(s.applied.at)}: ${esc(s.applied.live)}`
    : 'nothing applied';
  const pending = s?.pending ? `<dt>Pending</dt><dd>confirmation of ${esc(s.pending.id)}${s.pending.deadline ? ` until ${esc(s.pending.deadline)}` : ''}</dd>` : '';
  const worst = d.worst ? `<span class="sev sev-${d.worst}">${d.worst}</span>` : 'none: no open findings';
  return `<header><h1>portwarden review: ${esc(d.host.hostname)}${d.host.netns ? ` (netns ${esc(d.host.netns)})` : ''}</h1>
<dl class="kv"><dt>Host</dt><dd>${esc(d.host.hostname)}</dd><dt>Generated</dt><dd><time datetime="${esc(d.generatedAt)}">${esc(d.generatedAt)}</time></dd>
<dt>Policy</dt><dd>${esc(d.policy.file)} <span class="mono muted">sha256 ${esc(d.policy.sha256)}</span></dd><dt>Applied</dt><dd>${applied}</dd>${pending}
<dt>Worst open severity</dt><dd data-worst="${esc(d.worst ?? 'none')}">${worst}</dd>${d.firewallError ? `<dt>Firewall</dt><dd>cannot be read: ${esc(d.firewallError)}; exposure is unknown</dd>` : ''}</dl></header>`;
}

function counts(d: PageData): string {
  const c = (key: string, label: string, n: number) => `<div><dt>${label}</dt><dd data-count="${key}">${n}</dd></div>`;
  return `<section id="summary"><h2>Summary</h2><dl class="counts">${c('listeners', 'Listeners', d.counts.listeners)}${c('findings', 'Open findings', d.counts.findings)}${SEVERITIES.map((s) => c(s, s, d.counts.bySeverity[s])).join('')}${c('events', 'Events', d.counts.events)}${c('gapCells', 'Gap cells', d.counts.gapCells)}${c('blockedCells', 'Blocked cells', d.counts.blockedCells)}${c('published', 'Published ports', d.counts.published)}</dl></section>`;
}

function trace(f: PageFinding): string {
  const t = f.explain;
  if (!t) return TRACED_KINDS.has(f.kind) && f.port !== null ? `<p class="muted">trace: portwarden explain ${f.port}/${esc(f.proto)} --from ADDR</p>` : '';
  const rows = t.steps.map((s) => `<tr><td>${esc(s.packet)}</td><td class="mono">${esc(s.chain)}${s.handle !== null ? ` handle ${s.handle}` : ''}${s.comment ? ` "${esc(s.comment)}"` : ''}</td><td class="mono">${esc(s.rule)}</td><td>${esc(s.outcome)}</td></tr>`).join('');
  return `<details open><summary>explain ${esc(f.port)}/${esc(f.proto)} --from ${esc(t.from)} --iif ${esc(t.iif)}${t.to ? ` --to ${esc(t.to)}` : ''}: <strong>${esc(t.verdict)}</strong></summary>
${rows ? `<table class="trace"><thead><tr><th scope="col">Packet</th><th scope="col">Chain</th><th scope="col">Rule</th><th scope="col">Outcome</th></tr></thead><tbody>${rows}</tbody></table>` : '<p>no rule matches any of its packets</p>'}${t.reasons.map((r) => `<p class="muted">${esc(r)}</p>`).join('')}</details>`;
}

function findings(d: PageData): string {
  if (!d.findings.length) return '<section id="findings"><h2>Open findings</h2><p>No open findings: what listens matches the policy.</p></section>';
  let out = '<section id="findings"><h2>Open findings</h2>';
  for (const sev of SEVERITIES) {
    const group = d.findings.filter((f) => f.severity === sev);
    if (!group.length) continue;
    out += `<h3 class="sev sev-${sev}">${sev} (${group.length})</h3>`;
    for (const f of group) {
      out += `<article class="f b-${sev}" id="${esc(f.id)}"><p><strong>${esc(f.kind)}</strong>${f.rule ? ` (rule ${esc(f.rule)})` : ''}: ${esc(f.message)}<br><span class="remedy">${esc(f.remedy)}</span><br><small>${f.since ? `open since <time>${esc(f.since)}</time>` : 'seen in this scan'}</small></p>${trace(f)}</article>`;
    }
  }
  return out + '</section>';
}

/** The cell's prefixes for its title (none: no title; the legend says what the state means). */
function cellTitle(c: MapCell, col: MapColumn): string {
  const whole = (p: readonly string[]) => (p.length && p.join() === col.prefixes.join() ? `all of ${col.label}` : list(p));
  const same = c.reachable.join() === c.allowed.join();
  const parts = !c.reachable.length && !c.allowed.length ? [] : same ? [`allowed and reachable: ${whole(c.reachable)}`] : [`reachable: ${whole(c.reachable)}`, `allowed: ${whole(c.allowed)}`];
  if (c.gap.length) parts.push(`gap: ${list(c.gap)}`);
  if (c.blocked.length) parts.push(`blocked: ${list(c.blocked)}`);
  return parts.length ? ` title="${esc(parts.join('\n'))}"` : '';
}

function exposureMap(d: PageData): string {
  const cols = d.map.columns;
  const head = cols.map((c) => `<th scope="col" class="col-${c.kind}" title="${esc(`${c.kind}: ${list(c.prefixes)}`)}">${esc(c.label)}</th>`).join('');
  const rows = d.map.rows.map((r) => {
    const cells = r.cells.map((c, i) => (c.state === 'closed' ? '<td>·</td>' : `<td class="c-${c.state}"${cellTitle(c, cols[i]!)}>${CELL[c.state].mark}</td>`)).join('');
    return `<tr><th scope="row">${r.proto}/${r.port}</th><td class="mono">${esc(r.address)}</td><td>${esc(r.program)}</td><td>${esc(r.rule ?? '-')}</td>${cells}</tr>`;
  }).join('\n');
  const legend = (Object.keys(CELL) as CellState[]).map((s) => `<li><span class="c-${s}">${CELL[s].mark}</span>${CELL[s].mark.includes(CELL[s].word) ? '' : ` ${CELL[s].word}`}: ${MEANING[s]}</li>`).join('');
  return `<section id="map"><h2>Exposure map</h2><p>Each listening port against each group of sources: one column per source list of the policy's rules, loopback, every other source, and each interface (the sources routed through it). Hover a cell for its prefixes.</p><ul class="legend">${legend}</ul>
<table class="map"><caption>Allowed by the policy × reachable through the live firewall</caption><thead><tr><th scope="col">Port</th><th scope="col">Address</th><th scope="col">Program</th><th scope="col">Rule</th>${head}</tr></thead><tbody>
${rows}
</tbody></table></section>`;
}

const W = 1000;
const LANE = 12;
/** Room for the lanes' names, left of the time axis. */
const LEFT = 250;

function timeline(d: PageData): string {
  const lanes = d.history.lanes;
  const t0 = Date.parse(d.history.since);
  const t1 = Math.max(Date.parse(d.history.until), t0 + 1);
  const x = (at: string) => Math.round(LEFT + ((Date.parse(at) - t0) / (t1 - t0)) * (W - LEFT));
  const h = lanes.length * LANE + 14;
  const marks = lanes.map((lane, i) => svgLane(lane, i, x, W)).join('');
  const ticks = Array.from({ length: 5 }, (_, k) => {
    const at = new Date(t0 + ((t1 - t0) * k) / 4).toISOString();
    const px = (LEFT + ((W - LEFT) * k) / 4).toFixed(0);
    return `<path class="ax" d="M${px} 0V${h - 12}"/><text x="${px}" y="${h - 2}" text-anchor="${k === 0 ? 'start' : k === 4 ? 'end' : 'middle'}">${esc(at.slice(0, 16).replace('T', ' '))}</text>`;
  }).join('');
  return `<svg class="tl" viewBox="0 0 ${W} ${h}" role="img" aria-labelledby="tl-t" xmlns="http://www.w3.org/2000/svg"><title id="tl-t">Timeline of opened, resolved and reminder events per finding from ${esc(d.history.since)} to ${esc(d.history.until)}; the table below lists them</title>${ticks}${marks}</svg>`;
}

/** One lane: a bar while open (its ends are the opened and resolved events), a mark per reminder. */
function svgLane(lane: HistoryLane, i: number, x: (at: string) => number, w: number): string {
  const y = i * LANE;
  const spans: string[] = [];
  const marks: string[] = [];
  let openAt: number | null = null;
  const bar = (from: number, to: number) => spans.push(`M${from} ${y + 2}h${Math.max(to - from, 2)}v${LANE - 4}h${-Math.max(to - from, 2)}z`);
  for (const e of lane.events) {
    const px = x(e.at);
    if (e.event === 'opened') openAt ??= px;
    else if (e.event === 'resolved') {
      bar(openAt ?? LEFT, px); // resolved without an opening in the window: open since before it
      openAt = null;
    } else marks.push(`M${px} ${y}v${LANE}`);
  }
  if (openAt !== null) bar(openAt, w);
  const p = (cls: string, parts: string[]) => (parts.length ? `<path class="${cls}" d="${parts.join('')}"/>` : '');
  const name = lane.id.length > 48 ? `${lane.id.slice(0, 47)}…` : lane.id;
  return `<g><title>${esc(lane.id)}</title><text x="2" y="${y + LANE - 3}">${esc(name)}</text>${p('open', spans)}${p('e-reminder', marks)}</g>`;
}

function historySection(d: PageData): string {
  const lanes = d.history.lanes;
  if (!lanes.length) return `<section id="history"><h2>History</h2><p>No events since ${esc(d.history.since)}.</p></section>`;
  const rows = lanes.map((l) => {
    const n = (k: string) => l.events.filter((e) => e.event === k).length;
    return `<tr><th scope="row" class="mono">${esc(l.id)}</th><td class="sev sev-${l.severity}">${l.severity}</td><td>${n('opened')}</td><td>${n('resolved')}</td><td>${n('reminder')}</td><td>${esc(l.events[0]!.at)}</td><td>${esc(l.events.at(-1)!.at)} (${esc(l.events.at(-1)!.event)})</td></tr>`;
  }).join('\n');
  return `<section id="history"><h2>History</h2><p>Events from ${esc(d.history.since)} to ${esc(d.history.until)}, one lane per finding (in the order of the table): a bar from opened to resolved (to the right edge while still open), a dark mark per reminder.</p>${timeline(d)}
<table class="history"><thead><tr><th scope="col">Finding</th><th scope="col">Severity</th><th scope="col">Opened</th><th scope="col">Resolved</th><th scope="col">Reminders</th><th scope="col">First event</th><th scope="col">Last event</th></tr></thead><tbody>
${rows}
</tbody></table></section>`;
}

function attemptsSection(d: PageData): string {
  const a = d.attempts;
  if (!a || !a.rows.length) return '<section id="attempts"><h2>Attempts</h2><p>None counted in this window (the agent samples what the rules count: <code>portwarden attempts</code>).</p></section>';
  const max = a.rows.reduce((m, r) => Math.max(m, r.refused + r.rateLimited), 1);
  const rows = a.rows.map((r) => {
    const bar = `<svg class="bar" width="120" height="10" role="img" aria-label="${r.refused + r.rateLimited} refused or rate-limited"><rect width="${Math.max(1, Math.round((120 * (r.refused + r.rateLimited)) / max))}" height="10"></rect></svg>`;
    return `<tr><th scope="row">${esc(r.rule)}</th><td>${r.proto && r.port !== null ? `${r.proto}/${r.port}` : '-'}</td><td>${r.refused}</td><td>${r.rateLimited}</td><td>${r.accepted}</td><td>${bar}</td><td class="mono">${esc(r.topSource ?? '-')}</td></tr>`;
  }).join('');
  const scanners = a.scanners.length ? `<p>Sources that touched more than 20 ports: ${a.scanners.map((s) => `<span class="mono">${esc(s.address)}</span> (${s.ports} ports)`).join(', ')}.</p>` : '';
  return `<section id="attempts"><h2>Attempts</h2><p>New connections the rules refused, rate-limited and accepted per rule and port, within ${esc(a.window)}.</p><table><thead><tr><th scope="col">Rule</th><th scope="col">Port</th><th scope="col">Refused</th><th scope="col">Rate-limited</th><th scope="col">Accepted</th><th scope="col">Refused + limited</th><th scope="col">Top source</th></tr></thead><tbody>${rows}</tbody></table>${scanners}</section>`;
}

function publishedSection(d: PageData): string {
  if (!d.published.length) return '<section id="published"><h2>Published container ports</h2><p>None: no DNAT sends a host port to a container.</p></section>';
  const rows = d.published.map((p) => `<tr><th scope="row">${p.proto}/${p.port}</th><td class="mono">${esc(p.to ?? '(not said)')}</td><td class="mono">${esc(p.where)}</td><td>${esc(p.exposure)}</td><td class="mono">${esc(list(p.sources))}</td></tr>`).join('');
  return `<section id="published"><h2>Published container ports</h2><table><thead><tr><th scope="col">Port</th><th scope="col">Leads to</th><th scope="col">Rule</th><th scope="col">Exposure</th><th scope="col">Sources</th></tr></thead><tbody>${rows}</tbody></table></section>`;
}

export function renderPage(d: PageData): string {
  const worst: Severity | 'none' = d.worst ?? 'none';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>portwarden review: ${esc(d.host.hostname)} (${worst})</title><style>${CSS}</style></head>
<body>
${header(d)}
<main>
${counts(d)}
${findings(d)}
${exposureMap(d)}
${historySection(d)}
${attemptsSection(d)}
${publishedSection(d)}
</main>
<footer class="muted"><p>portwarden report, format ${d.version}. The same data as JSON: portwarden's /report.json.</p></footer>
</body></html>
`;
}

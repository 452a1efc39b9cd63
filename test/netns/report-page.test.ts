// The review page in a real headless browser (Debian's Chromium driven by playwright-core, no
// browser download, JavaScript off): the file `report --html` writes, and the page the agent
// serves beside /metrics. A namespace with a firewall that has a known gap (tcp/8080 open to
// all, the policy allows one office prefix) and a known block (ssh from the office).
// Screenshots (light and print media) go to test-output/report-page/.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { chromium, type BrowserContext } from 'playwright-core';
import { needsRootAnd } from '../helpers/env.js';
import { createNamespace, deleteNamespace, ip, nsRun, startListeners } from '../helpers/lab.js';
import { runCli } from '../helpers/cli.js';
import { CLI, ROOT } from '../helpers/paths.js';
import { sleep, until } from '../helpers/wait.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const OUT = `${ROOT}test-output/report-page/`;
const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];

const RULES = `table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    iif lo accept
    ct state established,related accept
    tcp dport 22 ip saddr 10.0.0.0/8 accept
    tcp dport 8080 accept
  }
}
`;
const POLICY = `version: 1
sources:
  admins: [10.1.0.0/16, 2001:db8:a::/48]
  office: [198.51.100.0/24]
rules:
  - { name: ssh, port: 22, from: [admins, office] }
  - { name: web, port: 8080, from: office }
`;

function needsChromium(t: TestContext): boolean {
  if (existsSync(CHROMIUM)) return true;
  const reason = `needs ${CHROMIUM} (Debian's chromium package)`;
  if (process.env.CI === 'true') throw new Error(`${reason}, and CI=true requires this test to run`);
  console.log(`# skipped: ${reason}`);
  t.skip(reason);
  return false;
}

/** A namespace with two interfaces, the firewall above and listeners on 22 and 8080 (dual-stack). */
async function setUp(children: ChildProcess[]): Promise<string> {
  const ns = createNamespace('page');
  ip(['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']);
  ip(['-n', ns, 'addr', 'add', '192.0.2.1/24', 'dev', 'eth0']);
  for (const dev of ['eth0', 'eth1']) ip(['-n', ns, 'link', 'set', dev, 'up']);
  nsRun(ns, 'nft', ['-f', '-'], RULES);
  children.push(await startListeners(ns, [{ proto: 'tcp', host: '0.0.0.0', port: 22 }, { proto: 'tcp', host: '::', port: 8080, ipv6Only: false }]));
  return ns;
}

/** A journal the history shows: two events in the last 7 days, one before. */
function writeJournal(dir: string): void {
  const f = (id: string, kind: string, severity: string) => ({ id, kind, severity, proto: 'tcp', port: 2323, address: '0.0.0.0', rule: 'legacy', processes: [], message: `<b>${id}</b>`, remedy: 'stop it' });
  const at = (hoursAgo: number) => new Date(Date.now() - hoursAgo * 3_600_000).toISOString();
  const events = [
    { event: 'opened', at: at(24 * 10), host: 'h', finding: f('old', 'forbidden-listener', 'critical') },
    { event: 'opened', at: at(30), host: 'h', finding: f('forbidden-listener:tcp/2323:wildcard:telnetd', 'forbidden-listener', 'critical') },
    { event: 'resolved', at: at(29), host: 'h', finding: f('forbidden-listener:tcp/2323:wildcard:telnetd', 'forbidden-listener', 'critical') },
  ];
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(`${dir}/events.jsonl`, events.map((e) => JSON.stringify(e)).join('\n') + '\n', { mode: 0o600 });
}

async function withBrowser(fn: (ctx: BrowserContext) => Promise<void>): Promise<void> {
  const profile = mkdtempSync(`${tmpdir()}/pw-chromium-`); // a fresh --user-data-dir
  const ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, javaScriptEnabled: false, viewport: { width: 1280, height: 900 } });
  try {
    await fn(ctx);
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

interface Shown {
  counts: Record<string, number>;
  requests: string[];
  /** Class of the map cell (row "tcp/PORT", first row of that port) under each column. */
  cell: (port: number, column: string) => Promise<string>;
}

/** Loads a page with JavaScript off, records every request, saves screen and print screenshots. */
async function look(ctx: BrowserContext, url: string, name: string, check: (s: Shown) => Promise<void>): Promise<void> {
  const page = await ctx.newPage();
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  try {
    const res = await page.goto(url);
    assert.equal(res?.status() ?? 200, 200);
    const counts = Object.fromEntries(
      await page.locator('[data-count]').evaluateAll((els) => els.map((e) => [(e as HTMLElement).dataset.count!, Number(e.textContent)] as const)),
    ) as Record<string, number>;
    const headers = await page.locator('table.map thead th').allTextContents();
    const cell = async (port: number, column: string) => {
      const i = headers.indexOf(column);
      assert.ok(i >= 0, `column ${column} in ${headers.join('|')}`);
      const row = page.locator('table.map tbody tr').filter({ has: page.locator(`th:text-is("tcp/${port}")`) }).first();
      return (await row.locator('th, td').nth(i).getAttribute('class')) ?? '';
    };
    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: `${OUT}${name}-screen.png`, fullPage: true });
    await page.emulateMedia({ media: 'print' });
    await page.screenshot({ path: `${OUT}${name}-print.png`, fullPage: true });
    assert.ok(statSync(`${OUT}${name}-print.png`).size > 1000);
    await check({ counts, requests, cell });
  } finally {
    await page.close();
  }
}

const byCounts = (c: { listeners: number; findings: number; bySeverity: Record<string, number>; events: number; gapCells: number; blockedCells: number; published: number }) => ({
  listeners: c.listeners, findings: c.findings, ...c.bySeverity, events: c.events, gapCells: c.gapCells, blockedCells: c.blockedCells, published: c.published,
});

test('report --html: the file from disk in Chromium (JavaScript off): counts = the JSON commands, the gap cell, nothing fetched', async (t) => {
  if (!needsRootAnd(t, 'ss', 'nsenter', 'ip', 'nft') || !needsChromium(t)) return;
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(`${tmpdir()}/pw-page-`);
  let ns: string | undefined;
  try {
    ns = await setUp(children);
    writeFileSync(`${dir}/policy.yaml`, POLICY);
    writeJournal(`${dir}/state`);
    const file = `${dir}/review.html`;
    const r = await runCli(['report', '--html', file, '--policy', `${dir}/policy.yaml`, '--netns', ns, '--state-dir', `${dir}/state`, '--since', '7d']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^wrote .*review\.html: \d+ open findings?, 2 listeners, 2 events\n$/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const check = JSON.parse((await runCli(['check', '--policy', `${dir}/policy.yaml`, '--json', '--netns', ns])).stdout) as { findings: { id: string; kind: string; severity: string }[] };
    const scan = JSON.parse((await runCli(['scan', '--json', '--netns', ns])).stdout) as { listeners: unknown[] };
    const alerts = JSON.parse((await runCli(['alerts', '--json', '--since', '7d', '--state-dir', `${dir}/state`])).stdout) as { events: unknown[] };
    assert.ok(check.findings.some((f) => f.id === 'firewall-gap:tcp/8080:wildcard'), 'the known gap is a finding');
    assert.ok(check.findings.some((f) => f.kind === 'blocked-service'), 'the known block is a finding');
    await withBrowser((ctx) =>
      look(ctx, `file://${file}`, 'file', async (s) => {
        assert.equal(s.counts.findings, check.findings.length);
        for (const sev of SEVERITIES) assert.equal(s.counts[sev], check.findings.filter((f) => f.severity === sev).length, sev);
        assert.equal(s.counts.listeners, scan.listeners.length);
        assert.equal(s.counts.events, alerts.events.length);
        assert.match(await s.cell(8080, 'other'), /\bc-gap\b/);
        assert.match(await s.cell(8080, 'office'), /\bc-open\b/);
        assert.match(await s.cell(22, 'admins, office'), /\bc-blocked\b/);
        assert.deepEqual(s.requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:')), [], 'nothing but the file itself');
      }),
    );

    // Bad input: exit 2 naming the problem; a symlink as the target is refused, not followed.
    const bad = await runCli(['report', '--html', file, '--policy', `${dir}/policy.yaml`, '--netns', ns, '--since', 'soon', '--state-dir', `${dir}/state`]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--since: invalid duration "soon"/);
    rmSync(file);
    writeFileSync(`${dir}/victim`, 'keep');
    symlinkSync(`${dir}/victim`, file);
    const link = await runCli(['report', '--html', file, '--policy', `${dir}/policy.yaml`, '--netns', ns, '--state-dir', `${dir}/state`]);
    assert.equal(link.code, 2, link.stderr);
    assert.match(link.stderr, /is a symbolic link/);
    assert.equal(readFileSync(`${dir}/victim`, 'utf8'), 'keep');
    const noHtml = await runCli(['report', '--since', '1d', '--policy', `${dir}/policy.yaml`, '--netns', ns]);
    assert.equal(noHtml.code, 2);
    assert.match(noHtml.stderr, /--state-dir and --since go with --html FILE/);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    if (ns) deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Polls an async condition every 200 ms until it gives something, or fails naming it. */
async function untilAsync<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

test('the agent serves the same page at / and its data at /report.json, read-only, beside /metrics', async (t) => {
  if (!needsRootAnd(t, 'ss', 'nsenter', 'ip', 'nft') || !needsChromium(t)) return;
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(`${tmpdir()}/pw-page-agent-`);
  let ns: string | undefined;
  let daemon: ChildProcess | undefined;
  let log = '';
  try {
    ns = await setUp(children);
    writeFileSync(`${dir}/policy.yaml`, POLICY);
    writeJournal(`${dir}/state`);
    const port = await freePort();
    writeFileSync(`${dir}/config.yaml`, [`policy: ${dir}/policy.yaml`, `state_dir: ${dir}/state`, 'schedule: "* * * * * *"', 'settle: 1', 'repeat: 0', `netns: ${ns}`, 'sinks:', '  - type: prometheus', `    listen: 127.0.0.1:${port}`, ''].join('\n'));
    daemon = spawn(process.execPath, [CLI, 'watch', '--config', `${dir}/config.yaml`], { stdio: ['ignore', 'pipe', 'pipe'] });
    daemon.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    daemon.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const base = `http://127.0.0.1:${port}`;
    await until('agent start', () => log.includes('portwarden agent started')).catch((err: Error) => {
      throw new Error(`${err.message}; daemon said:\n${log}`);
    });
    type Report = { counts: Parameters<typeof byCounts>[0]; findings: { id: string; kind: string }[]; map: { columns: { label: string }[] } };
    const report = async (): Promise<Report | null> => {
      const res = await fetch(`${base}/report.json`);
      return res.status === 200 ? ((await res.json()) as Report) : null;
    };
    // Settled: every finding of the scan opened (journalled) besides the two events of the fixture.
    const before = await untilAsync('findings opened', async () => {
      const r = await report();
      return r && r.counts.gapCells > 0 && r.counts.events >= 2 + r.counts.findings ? r : undefined;
    }, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}; daemon said:\n${log}`);
    });
    assert.ok(before.findings.some((f) => f.id === 'firewall-gap:tcp/8080:wildcard'));
    await withBrowser((ctx) =>
      look(ctx, `${base}/`, 'agent', async (s) => {
        const after = (await report())!;
        assert.deepEqual(byCounts(after.counts), byCounts(before.counts), 'stable while the page loaded');
        assert.deepEqual(s.counts, byCounts(after.counts));
        assert.match(await s.cell(8080, 'other'), /\bc-gap\b/);
        assert.deepEqual(s.requests, [`${base}/`], 'the page and nothing else');
      }),
    );
    const page = await fetch(`${base}/`);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.equal((await fetch(`${base}/`, { method: 'POST', body: 'x' })).status, 405, 'read-only');
    assert.equal((await fetch(`${base}/report.json?since=soon`)).status, 400);
    assert.equal((await fetch(`${base}/nothing-here`)).status, 404);
    assert.match(await (await fetch(`${base}/metrics`)).text(), /^# HELP portwarden_findings /m);
  } finally {
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
      const exited = new Promise((r) => daemon!.once('exit', r));
      daemon.kill('SIGTERM');
      await exited;
    }
    for (const c of children) c.kill('SIGKILL');
    if (ns) deleteNamespace(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});

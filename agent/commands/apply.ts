// portwarden apply | confirm | rollback | remove | status — the safe-apply commands.
import { statSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { RuntimeError, UsageError } from '../errors.js';
import {
  CLI_PATH, MAX_CONFIRM_SECONDS, StateDir, confirm, executeApply, liveState, planApply, removeAll, rollback, rollbackTimer, withApplyLock, type ApplyPlan,
} from '../firewall/apply.js';
import { describeAll, type DiffMode } from '../firewall/diff.js';
import { hasForeignNatPrerouting, liveBackend } from '../firewall/live.js';
import { exec as defaultExec } from '../exec.js';
import { legacyTables, readFirewall } from '../exposure/read.js';
import type { CompiledPolicy } from '../policy/compile.js';
import { lockoutWarning } from '../firewall/oracle.js';
import { DEFAULT_POLICY_PATH, DEFAULT_STATE_DIR } from '../paths.js';
import { parse } from './args.js';
import { SPECS } from './specs.js';
import { printWarnings } from './output.js';
import { parseBackend } from '../firewall/render.js';
import { checkNetns } from '../collect/snapshot.js';


/**
 * The state dir and netns. With mustExist (confirm, rollback, status: they act on earlier applies) a
 * --state-dir the operator named must exist (a mistyped path is exit 2, not "nothing applied").
 */
function stateOf(values: { 'state-dir'?: string; netns?: string }, mustExist = false): { state: StateDir; netns: string | undefined; exists: boolean } {
  if (values.netns !== undefined) checkNetns(values.netns);
  const dir = values['state-dir'] ?? DEFAULT_STATE_DIR;
  if (!mustExist) return { state: new StateDir(dir), netns: values.netns, exists: true }; // apply and remove create it
  let exists: boolean;
  try {
    exists = statSync(dir).isDirectory();
    if (!exists) throw new UsageError(`--state-dir ${dir} is not a directory`);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    exists = false;
  }
  if (!exists && values['state-dir'] !== undefined) {
    throw new UsageError(`--state-dir ${dir} does not exist (no apply was made with it; check the path)`);
  }
  return { state: new StateDir(dir), netns: values.netns, exists };
}

/** File-system failures on the state dir (no permission, read-only…) as one line naming the path. */
async function stateErrors(fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (!(err instanceof Error) || typeof e.code !== 'string' || !e.path) throw err;
    const why = e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied (portwarden needs root for its state)' : e.code === 'EROFS' ? 'read-only file system' : e.code === 'ENOSPC' ? 'no space left on device' : e.code;
    throw new RuntimeError(`cannot ${e.syscall ?? 'use'} ${e.path}: ${why}`);
  }
}

/** --diff: how apply shows the change (auto: the text diff up to 2 000 lines a side, else a per-chain summary). */
export function parseDiffMode(text: string | undefined): DiffMode {
  if (text === undefined) return 'auto';
  if (text === 'full' || text === 'summary' || text === 'none' || text === 'auto') return text;
  throw new UsageError(`--diff takes full, summary, none or auto, not ${JSON.stringify(text)}`);
}

/** --confirm: whole seconds, 0..24 h, checked before anything changes. */
export function parseConfirm(text: string | undefined): number {
  if (text === undefined) return 60;
  if (!/^\d{1,6}$/.test(text) || Number(text) > MAX_CONFIRM_SECONDS) {
    throw new UsageError(`--confirm takes whole seconds from 0 to ${MAX_CONFIRM_SECONDS} (24 h; 0 turns the rollback timer off), not ${JSON.stringify(text)}`);
  }
  return Number(text);
}

async function askYes(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

export const runApply = (argv: string[]) => stateErrors(() => apply(argv));
export const runConfirm = (argv: string[]) => stateErrors(() => confirmCmd(argv));
export const runRollback = (argv: string[]) => stateErrors(() => rollbackCmd(argv));
export const runRemove = (argv: string[]) => stateErrors(() => removeCmd(argv));
export const runStatus = (argv: string[]) => stateErrors(() => status(argv));

async function apply(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.apply.options);
  const { state, netns } = stateOf(values);
  const backendName = parseBackend(values.backend, ['nft', 'iptables']) as 'nft' | 'iptables';
  const confirmSeconds = parseConfirm(values.confirm);
  const diffMode = parseDiffMode(values.diff);
  const file = values.policy ?? DEFAULT_POLICY_PATH;
  const backend = liveBackend(backendName, netns);
  const ask = process.stdin.isTTY && !values.yes;

  // Under the lock from the one reading of the firewall to the load: what is shown is what is backed up and replaced.
  let locked = false;
  return withApplyLock(state, async () => {
    locked = true;
    // The tool lists the firewall while this process parses and renders the policy; a bad policy is still what is reported.
    const reading = backend.readState();
    reading.catch(() => undefined);
    // Loaded now, not with this module: the tool's listing (over a large table, the longest step
    // before the load) starts first, and the policy reader's modules load beside it.
    const { loadPolicy } = await import('../policy/load.js');
    const loaded = loadPolicy(file);
    printWarnings(loaded.warnings);
    const lockout = lockoutWarning(loaded.policy, process.env);
    if (lockout && !values['force-lockout']) {
      throw new UsageError(`refusing to apply: ${lockout}.\nAllow your address in the policy, or pass --force-lockout if you have another way in.`);
    }
    if (lockout) process.stderr.write(`warning: ${lockout} (--force-lockout)\n`);
    const texts = backend.render(loaded.policy, file);
    // nft -f is one transaction (a refused script changes nothing), so a check first only spares
    // the operator a question about rules the tool would refuse; iptables loads in several steps.
    const plan = await planApply(state, backend, texts, { check: ask || !backend.atomicLoad, reading });
    // The tool reads while the diff is computed; a warning that cannot be worked out never stops the apply.
    const published = publishedWarnings(loaded.policy, plan, netns).catch((err: unknown) => [`cannot check for published container ports: ${(err as Error).message}`]);
    if (plan.unchanged) {
      for (const w of await published) process.stderr.write(`warning: ${w}\n`);
      process.stdout.write(`already applied: the ${backendName} rules from ${file} are in place (${plan.hash.slice(0, 12)})\n`);
      return 0;
    }
    // Both sides normalised first: a table loaded by hand with the same rules shows no change.
    const show = async () => {
      const change = describeAll(diffMode, plan.baseline.label, file, plan.baseline.texts, texts);
      for (const w of await published) process.stderr.write(`warning: ${w}\n`);
      process.stdout.write(change.text);
      if (change.same) process.stdout.write(`no change in the rules: loading them records this apply (${plan.baseline.label})\n`);
    };
    if (ask) {
      await show();
      if (!(await askYes(`Apply these ${backendName} rules${netns ? ` in netns ${netns}` : ''}? [y/N] `))) {
        process.stderr.write('not applied\n');
        return 1;
      }
    }
    // Without a question, the diff is worked out while the tool loads (backup and intent are written first).
    const result = await executeApply(state, plan, { policy: file, netns: netns ?? null, confirmSeconds, cli: CLI_PATH, whileLoading: ask ? undefined : show });
    process.stdout.write(`applied ${backendName} rules ${plan.hash.slice(0, 12)} (backup ${result.backup})\n`);
    if (result.deadline) {
      process.stdout.write(
        `run "portwarden confirm${values['state-dir'] ? ` --state-dir ${values['state-dir']}` : ''}" by ${result.deadline.toISOString()} (${confirmSeconds}s), or the previous rules come back\n`,
      );
    }
    return 0;
  }).catch(async (err: unknown) => {
    // A state dir this user may not write usually means no root: the tool says that in its own words.
    const code = (err as { code?: unknown }).code;
    if (!locked && (code === 'EACCES' || code === 'EPERM')) await backend.readOurs();
    throw err;
  });
}

/**
 * The published container ports the policy would refuse. The whole firewall is read for them only
 * where a port can be published: a nat prerouting chain outside our table (in the nft listing
 * already read), or any iptables-legacy table; with the iptables backend, always.
 */
async function publishedWarnings(policy: CompiledPolicy, plan: ApplyPlan, netns: string | undefined): Promise<string[]> {
  if (plan.backend.name === 'nft' && !hasForeignNatPrerouting(plan.reading.all.nft ?? '')) {
    const legacy = await Promise.all(['/proc/net/ip_tables_names', '/proc/net/ip6_tables_names'].map((f) => legacyTables(netns, defaultExec, f)));
    if (!legacy.includes(true)) return [];
  }
  const { publishedPolicyRefuses } = await import('../exposure/compare.js');
  return publishedPolicyRefuses(policy, await readFirewall(netns));
}

async function confirmCmd(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.confirm.options);
  const { state, exists } = stateOf(values, true);
  const r = exists ? await confirm(state) : ({ kind: 'nothing-pending' } as const);
  if (r.kind === 'too-late' || r.kind === 'interrupted') throw new RuntimeError(r.message);
  process.stdout.write(r.kind === 'confirmed' ? `confirmed: apply ${r.id} stays\n` : 'nothing awaits confirmation\n');
  return 0;
}

async function rollbackCmd(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.rollback.options);
  const { state, exists } = stateOf(values, true);
  if (!exists) throw new RuntimeError(`nothing to roll back: no apply is recorded in ${state.dir}`);
  const from = await rollback(state, 'portwarden rollback');
  process.stdout.write(`rolled back: restored the rules saved in backup ${from}\n`);
  return 0;
}

async function removeCmd(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.remove.options);
  const { state, netns } = stateOf(values);
  const removed = await removeAll(state, netns ?? null);
  process.stdout.write(removed.length ? `removed ${removed.join('; ')}\n` : 'no portwarden rules were loaded\n');
  return 0;
}

async function status(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.status.options);
  const { state, netns, exists } = stateOf(values, true);
  const applied = exists ? state.readApplied() : null;
  const pending = exists ? state.readPending() : null;
  const live = applied ? await liveState(applied, netns) : null;
  if (values.json) {
    const record = applied && { backend: applied.backend, netns: applied.netns, policy: applied.policy, hash: applied.hash, liveHash: applied.liveHash, at: applied.at, id: applied.id, backup: applied.backup };
    process.stdout.write(JSON.stringify({ applied: record, live, pending: pending ? { id: pending.id, deadline: pending.deadline, phase: pending.phase ?? 'loaded' } : null }, null, 2) + '\n');
    return 0;
  }
  if (!applied) process.stdout.write('applied: nothing (no apply recorded in ' + state.dir + ')\n');
  else {
    process.stdout.write(`applied: ${applied.backend} rules ${applied.hash.slice(0, 12)} from ${applied.policy} at ${applied.at}${applied.netns ? ` in netns ${applied.netns}` : ''}\n`);
    process.stdout.write(`live:    ${live}\n`);
  }
  if (!pending) process.stdout.write('pending: none\n');
  else if (pending.phase === 'loading') {
    process.stdout.write(`pending: apply ${pending.id} is loading, or stopped while loading; ${pending.deadline ? `the rollback timer restores backup ${pending.backup} at ${pending.deadline}` : `run portwarden rollback to restore backup ${pending.backup}`}\n`);
  } else process.stdout.write(`pending: confirmation of ${pending.id} until ${pending.deadline}\n`);
  return 0;
}

export async function runRollbackTimer(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS['_rollback-timer'].options);
  if (!values.id) throw new UsageError('--id is required');
  await rollbackTimer(new StateDir(values['state-dir'] ?? DEFAULT_STATE_DIR), values.id);
  return 0;
}

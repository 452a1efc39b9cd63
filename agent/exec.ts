// The one place that starts programs: spawn with argument arrays, never a shell. A program that is
// missing or does not answer in time becomes a RuntimeError naming it (and the package to install).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants, fstatSync, openSync, readSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RuntimeError, UsageError } from './errors.js';

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ExecOptions {
  input?: string;
  /** Default: PORTWARDEN_TOOL_TIMEOUT seconds, else 60 s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /**
   * The program is killed when this process dies (setpriv --pdeathsig KILL), so a killed CLI leaves
   * no firewall load running behind its back. Used for everything that changes the firewall.
   */
  killWithParent?: boolean;
  /**
   * Stdout through an unlinked temp file (in TMPDIR) rather than a pipe: nft writes a listing a few
   * bytes per write(2), ~670 000 writes for 10 000 rules, and through a pipe each can wake this
   * process (`nft -s list ruleset` of that table: ~1 s slower). The pipe when no file can be made.
   */
  stdoutToFile?: boolean;
}

export type Exec = (cmd: string, args: string[], opts?: ExecOptions) => Promise<ExecResult>;

/** A program that is not installed; `code` stays 'ENOENT' for callers that fall back to another way. */
export class ToolMissingError extends RuntimeError {
  readonly code = 'ENOENT';
  constructor(readonly tool: string) {
    const pkg = PACKAGES.find(([re]) => re.test(tool))?.[1];
    super(`${tool} is not installed${pkg ? ` (apt-get install ${pkg})` : ''}`);
  }
}

/** A program that did not finish in time; it has been killed. */
export class ToolTimeoutError extends RuntimeError {
  readonly code = 'ETIMEDOUT';
  constructor(readonly tool: string, seconds: number) {
    super(`${tool} did not answer within ${seconds} s and was stopped (PORTWARDEN_TOOL_TIMEOUT sets the limit)`);
  }
}

const PACKAGES: [RegExp, string][] = [
  [/^nft$/, 'nftables'],
  [/^ip6?tables(-legacy|-nft)?(-save|-restore)?$/, 'iptables'],
  [/^(ss|ip)$/, 'iproute2'],
  [/^(nsenter|setpriv)$/, 'util-linux'],
  [/^conntrack$/, 'conntrack'],
];

/** Programs that run another: the tool a message should name is the one they were asked to run. */
const WRAPPERS = new Set(['nsenter', 'setpriv']);

function toolOf(cmd: string, args: string[]): string {
  if (!WRAPPERS.has(cmd)) return cmd;
  const i = args.indexOf('--');
  return i >= 0 && args[i + 1] ? toolOf(args[i + 1]!, args.slice(i + 2)) : cmd;
}

function defaultTimeoutMs(env: NodeJS.ProcessEnv): number {
  const s = Number(env.PORTWARDEN_TOOL_TIMEOUT);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 60_000;
}

const onPath = new Map<string, boolean>();
function installed(cmd: string, path = ''): boolean {
  const key = `${cmd}\0${path}`;
  let found = onPath.get(key);
  if (found === undefined) {
    found = path.split(':').some((d) => {
      try {
        accessSync(`${d || '.'}/${cmd}`, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
    onPath.set(key, found);
  }
  return found;
}

/** A new file open for reading and writing, already unlinked (nothing to clean up), or null. */
function unlinkedFile(): number | null {
  const path = join(tmpdir(), `.portwarden-out.${process.pid}.${randomBytes(8).toString('hex')}`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch {
    return null;
  }
  try {
    unlinkSync(path);
    return fd;
  } catch {
    closeSync(fd);
    return null;
  }
}

/** Everything written to fd, from its start (the child moved the shared offset to the end). */
function readWhole(fd: number): string {
  const buf = Buffer.allocUnsafe(fstatSync(fd).size);
  for (let n = 0; n < buf.length; ) {
    const got = readSync(fd, buf, n, buf.length - n, n);
    if (got === 0) return buf.subarray(0, n).toString('utf8');
    n += got;
  }
  return buf.toString('utf8');
}

/** Runs a program; resolves with its exit code (never rejects for a non-zero exit). */
export const exec: Exec = (cmd, args, opts = {}) =>
  new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', ...opts.env };
    const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs(env);
    const [c, a] = opts.killWithParent && installed('setpriv', env.PATH) ? ['setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
    const outFd = opts.stdoutToFile ? unlinkedFile() : null;
    let child: ChildProcess;
    try {
      child = spawn(c, a, { env, stdio: ['pipe', outFd ?? 'pipe', 'pipe'] });
    } catch (e) {
      if (outFd !== null) closeSync(outFd);
      throw e;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let done = false;
    const finish = (fn: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        fn();
      } finally {
        if (outFd !== null) closeSync(outFd);
      }
    };
    // Not waiting for the pipes to close: a grandchild of a hung program may hold them open.
    const timer = setTimeout(() => finish(() => {
      child.kill('SIGKILL');
      for (const s of [child.stdin, child.stdout, child.stderr]) s?.destroy();
      reject(new ToolTimeoutError(toolOf(cmd, args), timeoutMs / 1000));
    }), timeoutMs);
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e: NodeJS.ErrnoException) => finish(() => reject(e.code === 'ENOENT' ? new ToolMissingError(c) : e)));
    child.on('close', (code) => finish(() => {
      const stderr = Buffer.concat(err).toString('utf8');
      // nsenter/setpriv exit 127 when the program they should run does not exist.
      const missing = code === 127 && WRAPPERS.has(c) ? /^(?:nsenter|setpriv): failed to execute (\S+): No such file or directory/m.exec(stderr) : null;
      if (missing) return reject(new ToolMissingError(missing[1]!));
      resolve({ stdout: outFd !== null ? readWhole(outFd) : Buffer.concat(out).toString('utf8'), stderr, code: code ?? 1 });
    }));
    // A program that exits before reading all its input (e.g. refused at once) closes the pipe;
    // its exit code and stderr tell what happened.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(opts.input ?? '');
  });

/** The path of a named network namespace, as `ip netns add` creates it. */
export function netnsPath(name: string): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name) || name === '.' || name === '..') {
    throw new UsageError(`invalid network namespace name: ${JSON.stringify(name)} (letters, digits, '.', '_', '-')`);
  }
  return `/run/netns/${name}`;
}

/**
 * Runs cmd inside the named network namespace. nsenter --net (not `ip netns exec`) keeps /sys as it is,
 * so `ss -e` does not complain about cgroup2 for every socket and slow down.
 */
export function inNetns(netns: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return netns ? ['nsenter', [`--net=${netnsPath(netns)}`, '--', cmd, ...args]] : [cmd, args];
}

/**
 * A long-running program (a monitor) with argument arrays, never a shell; it is killed when this
 * process dies (setpriv --pdeathsig KILL where installed), so a killed daemon leaves none behind.
 */
export function startTool(cmd: string, args: string[]): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
  const [c, a] = installed('setpriv', env.PATH) ? ['setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
  return spawn(c, a, { env, stdio: ['ignore', 'pipe', 'pipe'] });
}

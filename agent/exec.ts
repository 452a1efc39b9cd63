// The one place that starts programs: execFile with argument arrays, never a shell.
import { execFile } from 'node:child_process';

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export type Exec = (cmd: string, args: string[], opts?: ExecOptions) => Promise<ExecResult>;

/** Runs a program; resolves with its exit code (never rejects for a non-zero exit). ENOENT rejects. */
export const exec: Exec = (cmd, args, opts = {}) =>
  new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        env: { ...process.env, LC_ALL: 'C', ...opts.env },
        maxBuffer: 512 * 1024 * 1024,
        timeout: opts.timeoutMs ?? 60_000,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null;
        if (e && typeof e.code === 'string') return reject(e);
        resolve({ stdout, stderr, code: e ? (typeof e.code === 'number' ? e.code : 1) : 0 });
      },
    );
    if (opts.input !== undefined) {
      // A program that exits before reading all its input (e.g. refused at once) closes the pipe;
      // its exit code and stderr tell what happened.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(opts.input);
    }
  });

/** The path of a named network namespace, as `ip netns add` creates it. */
export function netnsPath(name: string): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name) || name === '.' || name === '..') {
    throw new Error(`invalid network namespace name: ${JSON.stringify(name)}`);
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

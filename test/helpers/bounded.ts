// Runs the built CLI like runCli, but with a hard time limit (SIGKILL) and an optional wrapper
// command (unshare, to give the CLI its own hostname): for inputs that used to hang.
import { execFile } from 'node:child_process';
import { CLI } from './paths.js';

export interface BoundedResult {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

export function runBounded(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; wrap?: string[]; cwd?: string } = {},
): Promise<BoundedResult> {
  const [cmd, ...pre] = opts.wrap?.length ? opts.wrap : [process.execPath];
  const argv = opts.wrap?.length ? [...pre, process.execPath, CLI, ...args] : [CLI, ...args];
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      cmd!,
      argv,
      {
        env: { ...process.env, NO_COLOR: '1', SSH_CONNECTION: '', SSH_CLIENT: '', PORTWARDEN_DEBUG: '', ...opts.env },
        cwd: opts.cwd,
        maxBuffer: 256 * 1024 * 1024,
        timeout: opts.timeoutMs ?? 10_000,
        killSignal: 'SIGKILL',
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: unknown; killed?: boolean; signal?: string | null }) | null;
        const timedOut = Boolean(e?.killed && e.signal === 'SIGKILL');
        const code = !e ? 0 : typeof e.code === 'number' ? e.code : 99;
        resolve({ code, stdout, stderr, timedOut, ms: Date.now() - started });
      },
    );
  });
}

/** The CLI's contract for bad input: a known exit code, no stack trace, no "unexpected failure". */
export function contractProblems(r: BoundedResult): string[] {
  const out: string[] = [];
  if (r.timedOut) out.push(`hung (killed after ${r.ms} ms)`);
  else if (![0, 1, 2, 3].includes(r.code)) out.push(`exit code ${r.code}`);
  if (/^ {4}at /m.test(r.stderr)) out.push('stack trace on stderr');
  if (/unexpected failure/.test(r.stderr)) out.push('"unexpected failure" on stderr');
  return out;
}

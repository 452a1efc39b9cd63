// Argument parsing shared by the commands: node's parseArgs, with usage errors as exit-2 errors.
import { accessSync, constants, statSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';
import { fsError } from '../fs-atomic.js';
import { SEVERITIES, type Severity } from '../model.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export function parse<O extends Options>(argv: string[], options: O, positionals = false) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: positionals });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function parseSeverity(text: string | undefined, fallback: Severity | 'none'): Severity | 'none' {
  if (text === undefined) return fallback;
  if (text === 'none' || (SEVERITIES as readonly string[]).includes(text)) return text as Severity | 'none';
  throw new UsageError(`--fail-on must be one of: ${SEVERITIES.join(', ')}, none`);
}

/**
 * Whether there is a state dir to read. A missing or mistyped --state-dir is bad input (exit 2);
 * a missing default dir only means the agent has not run here (said on stderr); a dir this user
 * may not read is a runtime failure (exit 3): never a silent "no events".
 */
export function stateDirReadable(dir: string, given: boolean): boolean {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      if (given) throw new UsageError(`${dir}: no such directory (--state-dir)`);
      process.stderr.write(`portwarden: ${dir}: no such directory: the agent has not run here\n`);
      return false;
    }
    throw fsError(dir, err);
  }
  if (!isDir) throw new UsageError(`${dir}: not a directory (--state-dir)`);
  try {
    accessSync(dir, constants.R_OK | constants.X_OK);
  } catch (err) {
    throw fsError(dir, err);
  }
  return true;
}

// Argument parsing shared by the commands: node's parseArgs, with usage errors as exit-2 errors.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';
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

// portwarden init [--output FILE] [--force] [--netns NAME]: a starter policy from what listens now.
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { UsageError } from '../errors.js';
import { starterPolicy } from '../policy/starter.js';
import { parse } from './args.js';
import { SPECS } from './specs.js';
import { snapshotFor } from '../collect/snapshot.js';
import { checkOutputPath, writeOutput } from './output.js';

export async function runInit(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.init.options);
  // Before the scan: a wrong path is the operator's to fix, and should not wait for ss.
  if (values.output) checkOutputPath(values.output);
  if (values.output && existsSync(values.output) && !values.force) {
    throw new UsageError(`${values.output} exists; pass --force to overwrite it`);
  }
  const snap = await snapshotFor(values.netns);
  const text = starterPolicy(snap.listeners, hostname());
  if (values.output) {
    writeOutput(values.output, text, 0o600);
    process.stderr.write(`wrote ${values.output}\n`);
  } else {
    process.stdout.write(text);
  }
  return 0;
}

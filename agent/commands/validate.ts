// portwarden validate [--policy FILE]: problems at their line:col, exit 2 when invalid.
import { DEFAULT_POLICY_PATH } from '../paths.js';
import { loadPolicy } from '../policy/load.js';
import { parse } from './args.js';
import { SPECS } from './specs.js';
import { printWarnings } from './output.js';

export async function runValidate(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.validate.options);
  const loaded = loadPolicy(values.policy ?? DEFAULT_POLICY_PATH);
  printWarnings(loaded.warnings);
  const n = loaded.policy.rules.length;
  process.stdout.write(`${loaded.file}: ok (${n} rule${n === 1 ? '' : 's'} in effect on this host)\n`);
  return 0;
}

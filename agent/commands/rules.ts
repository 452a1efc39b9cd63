// portwarden rules [--policy FILE] [--backend nft|iptables|ip6tables] [--output FILE]
import { lockoutWarning } from '../firewall/oracle.js';
import { parseBackend, renderRuleset } from '../firewall/render.js';
import { DEFAULT_POLICY_PATH } from '../paths.js';
import { loadPolicy } from '../policy/load.js';
import { parse } from './args.js';
import { SPECS } from './specs.js';
import { checkOutputPath, printWarnings, writeOutput } from './output.js';

export async function runRules(argv: string[]): Promise<number> {
  const { values } = parse(argv, SPECS.rules.options);
  const backend = parseBackend(values.backend);
  if (values.output) checkOutputPath(values.output);
  const loaded = loadPolicy(values.policy ?? DEFAULT_POLICY_PATH);
  printWarnings(loaded.warnings);
  const warning = lockoutWarning(loaded.policy, process.env);
  if (warning) process.stderr.write(`warning: ${warning}\n`);
  const text = renderRuleset(loaded.policy, backend, loaded.file);
  if (values.output) writeOutput(values.output, text);
  else process.stdout.write(text);
  return 0;
}

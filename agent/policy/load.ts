// Loads a policy file: YAML + schema (rules/policy.schema.json) + semantic checks, each problem at its line:col.
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { InputError } from '../errors.js';
import { checkTrustedFile } from '../file-perms.js';
import { capProblems, formatPath, locate, readValidatedYaml } from '../validated-yaml.js';
import { compilePolicy, type CompiledPolicy } from './compile.js';
import type { Policy } from './policy-types.js';

const schemaUrl = new URL('../../../rules/policy.schema.json', import.meta.url);
export const policySchema = JSON.parse(readFileSync(schemaUrl, 'utf8')) as object;

export interface LoadedPolicy {
  file: string;
  policy: CompiledPolicy;
  warnings: string[];
}

export function loadPolicy(file: string, opts: { hostname?: string; text?: string } = {}): LoadedPolicy {
  if (opts.text === undefined) checkTrustedFile(file);
  const { value, src } = readValidatedYaml<Policy>(file, policySchema, opts.text);
  const { policy, problems } = compilePolicy(value, opts.hostname ?? osHostname());
  const render = (p: (typeof problems)[number]) =>
    `${locate(src, p.path, p.atKey)}: ${p.level === 'warning' ? 'warning: ' : ''}${formatPath(p.path)}: ${p.message}`;
  const errors = problems.filter((p) => p.level === 'error');
  if (errors.length) throw new InputError(capProblems(file, errors, render));
  return { file, policy, warnings: problems.filter((p) => p.level === 'warning').map(render) };
}

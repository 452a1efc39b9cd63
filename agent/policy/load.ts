// Loads a policy file and the fragments it includes: YAML + schema (rules/policy.schema.json) +
// semantic checks, each problem at its file:line:col.
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { hostname as osHostname } from 'node:os';
import { InputError } from '../errors.js';
import { checkTrustedFile } from '../file-perms.js';
import { capProblems, formatPath, locate, readValidatedYaml, type Located } from '../validated-yaml.js';
import { compilePolicy, globMatches, type CompiledPolicy, type CompiledRule, type FragmentDoc } from './compile.js';
import type { Policy } from './policy-types.js';

const schemaUrl = new URL('../../../rules/policy.schema.json', import.meta.url);
export const policySchema = JSON.parse(readFileSync(schemaUrl, 'utf8')) as { $id: string; properties: Record<string, object> };
/** A fragment is a policy with only version (optional), sources, rules and hosts: derived from the
 *  one policy schema, so the two cannot drift apart. */
const fragmentSchema = {
  ...policySchema,
  $id: policySchema.$id.replace(/\.json$/, '-fragment.json'),
  title: 'PolicyFragment',
  required: [],
  properties: Object.fromEntries(['version', 'sources', 'rules', 'hosts'].map((k) => [k, policySchema.properties[k]!])),
};

export interface LoadedPolicy {
  file: string;
  policy: CompiledPolicy;
  warnings: string[];
  /** The host it was compiled for (its overlays). */
  hostname: string;
  /** The included fragments, in the order their rules come. */
  fragments: string[];
  /** "file:line:col" of a rule's name: where it was written. */
  origin(rule: CompiledRule): string;
}

const WILDCARD = /[*?]/;

/**
 * The fragment files an include list names: each entry relative to the policy's directory, a glob
 * (* and ? in the file name only) giving its matches in name order (none is fine: an empty
 * policy.d), a plain path that must exist; each file once, never the policy itself.
 */
export function includedFiles(file: string, include: readonly string[], src: Located): string[] {
  const problems: string[] = [];
  const out: string[] = [];
  const seen = new Set<string>([realOrSelf(file)]);
  include.forEach((entry, i) => {
    const at = `${locate(src, ['include', i])}: include[${i}]`;
    const path = isAbsolute(entry) ? entry : join(dirname(file), entry);
    const dir = dirname(path);
    const pattern = basename(path);
    let names: string[];
    if (WILDCARD.test(dir)) {
      problems.push(`${at}: ${JSON.stringify(entry)}: wildcards are allowed in the file name only (like policy.d/*.yaml)`);
      return;
    }
    if (WILDCARD.test(pattern)) {
      try {
        names = readdirSync(dir).filter((n) => globMatches(pattern, n, true) && (!n.startsWith('.') || pattern.startsWith('.'))).sort();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT') problems.push(`${at}: cannot read ${dir}: ${code ?? (err as Error).message}`);
        return;
      }
    } else {
      try {
        statSync(path);
      } catch (err) {
        problems.push(`${at}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        return;
      }
      names = [pattern];
    }
    for (const n of names) {
      const f = `${dir}/${n}`;
      const real = realOrSelf(f);
      if (seen.has(real)) continue;
      seen.add(real);
      out.push(f);
    }
  });
  if (problems.length) throw new InputError(problems);
  return out;
}

function realOrSelf(f: string): string {
  try {
    return realpathSync(f);
  } catch {
    return resolve(f);
  }
}

export function loadPolicy(file: string, opts: { hostname?: string; text?: string } = {}): LoadedPolicy {
  if (opts.text === undefined) checkTrustedFile(file);
  const { value, src } = readValidatedYaml<Policy>(file, policySchema, opts.text);
  const fragments = includedFiles(file, value.include ?? [], src);
  const docs: { file: string; doc: FragmentDoc }[] = [];
  const srcs: Located[] = [src];
  const unreadable: string[] = [];
  for (const f of fragments) {
    try {
      checkTrustedFile(f);
      const r = readValidatedYaml<FragmentDoc>(f, fragmentSchema);
      docs.push({ file: f, doc: r.value });
      srcs.push(r.src);
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      unreadable.push(...err.problems); // every fragment's problems, not just the first file's
    }
  }
  if (unreadable.length) throw new InputError(unreadable);
  const hostname = opts.hostname ?? osHostname();
  const { policy, problems } = compilePolicy(value, hostname, docs);
  const render = (p: (typeof problems)[number]) =>
    `${locate(srcs[p.source ?? 0]!, p.path, p.atKey)}: ${p.level === 'warning' ? 'warning: ' : ''}${formatPath(p.path)}: ${p.message}`;
  const errors = problems.filter((p) => p.level === 'error');
  if (errors.length) throw new InputError(capProblems(file, errors, render));
  return {
    file,
    policy,
    warnings: problems.filter((p) => p.level === 'warning').map(render),
    hostname,
    fragments,
    origin: (rule) => locate(srcs[rule.source ?? 0]!, [...rule.path, 'name']),
  };
}

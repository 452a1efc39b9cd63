// The agent config (rules/config.schema.json), validated like the policy, with defaults filled in.
import { readFileSync } from 'node:fs';
import { checkTrustedFile } from '../file-perms.js';
import { readValidatedYaml, locate } from '../validated-yaml.js';
import { InputError } from '../errors.js';
import type { AgentConfig, EmailSink, PrometheusSink, WebhookSink } from './config-types.js';
import cron from 'node-cron';

const schemaUrl = new URL('../../../rules/config.schema.json', import.meta.url);
export const configSchema = JSON.parse(readFileSync(schemaUrl, 'utf8')) as object;
export const DEFAULT_CONFIG_PATH = '/etc/portwarden/config.yaml';

export type NamedSink = (WebhookSink | EmailSink | PrometheusSink) & { name: string };

export interface Config {
  file: string | null;
  policy: string;
  stateDir: string;
  schedule: string;
  settle: number;
  repeatMs: number;
  netns: string | undefined;
  exposure: boolean;
  sinks: NamedSink[];
  spoolLimit: number;
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** "24h" → ms; "0" or 0 → 0. Throws on anything else. */
export function parseDuration(text: string | number): number {
  if (text === 0 || text === '0') return 0;
  const m = /^([1-9][0-9]*)(s|m|h|d)$/.exec(String(text));
  if (!m) throw new Error(`invalid duration ${JSON.stringify(text)} (like 90s, 30m, 24h, 7d)`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

export function withDefaults(doc: AgentConfig, file: string | null): Config {
  const counts = new Map<string, number>();
  const sinks = (doc.sinks ?? []).map((s) => {
    const n = (counts.get(s.type) ?? 0) + 1;
    counts.set(s.type, n);
    return { ...s, name: s.name ?? `${s.type}-${n}` };
  });
  return {
    file,
    policy: doc.policy ?? '/etc/portwarden/policy.yaml',
    stateDir: doc.state_dir ?? '/var/lib/portwarden',
    schedule: doc.schedule ?? '*/30 * * * * *',
    settle: doc.settle ?? 2,
    repeatMs: parseDuration(doc.repeat ?? '24h'),
    netns: doc.netns,
    exposure: doc.exposure ?? true,
    sinks,
    spoolLimit: doc.spool_limit ?? 1000,
  };
}

export function loadConfig(file: string, text?: string): Config {
  if (text === undefined) checkTrustedFile(file);
  const { value, src } = readValidatedYaml<AgentConfig>(file, configSchema, text);
  const problems: string[] = [];
  if (value.schedule !== undefined && !cron.validate(value.schedule)) {
    problems.push(`${locate(src, ['schedule'])}: schedule: ${JSON.stringify(value.schedule)} is not a valid node-cron expression`);
  }
  const names = new Set<string>();
  (value.sinks ?? []).forEach((s, i) => {
    if (s.name && names.has(s.name)) problems.push(`${locate(src, ['sinks', i, 'name'])}: sinks[${i}].name: duplicate sink name "${s.name}"`);
    if (s.name) names.add(s.name);
    if (s.type === 'webhook' && s.secret_file && s.secret_env) problems.push(`${locate(src, ['sinks', i])}: sinks[${i}]: give secret_file or secret_env, not both`);
    if (s.type === 'email' && s.password_file && s.password_env) problems.push(`${locate(src, ['sinks', i])}: sinks[${i}]: give password_file or password_env, not both`);
    if (s.type === 'prometheus' && !s.textfile && !s.listen) problems.push(`${locate(src, ['sinks', i])}: sinks[${i}]: a prometheus sink needs textfile, listen or both`);
  });
  if (problems.length) throw new InputError(problems);
  return withDefaults(value, file);
}

// The agent config (rules/config.schema.json), validated like the policy, with defaults filled in.
import { readFileSync, statSync } from 'node:fs';
import { checkTrustedFile } from '../file-perms.js';
import { readValidatedYaml, locate, type Located } from '../validated-yaml.js';
import { InputError } from '../errors.js';
import { parseDuration } from '../duration.js';
import { DEFAULT_POLICY_PATH, DEFAULT_STATE_DIR } from '../paths.js';
import { redactUrl } from '../alerts/sinks/redact.js';
import { secretKey } from '../alerts/sinks/webhook.js';
import type { AgentConfig, AlertmanagerSink, EmailSink, PrometheusSink, WebhookSink } from './config-types.js';
import cron from 'node-cron';
import type { AttemptsConfig } from '../attempts/sampler.js';

const schemaUrl = new URL('../../../rules/config.schema.json', import.meta.url);
export const configSchema = JSON.parse(readFileSync(schemaUrl, 'utf8')) as object;

/** A sink with its name and, for webhook and email, the secret read from secret_file/_env
 *  (password_file/_env) at load; for alertmanager, the bearer token or basic-auth password. */
export type NamedSink = (
  | (WebhookSink & { secret?: string | null })
  | (EmailSink & { password?: string | null })
  | PrometheusSink
  | (AlertmanagerSink & { credential?: string | null })
) & { name: string };

export interface Config {
  file: string | null;
  policy: string;
  stateDir: string;
  schedule: string;
  settle: number;
  repeatMs: number;
  netns: string | undefined;
  exposure: boolean;
  /** How often the services of rules with expect are connected to (agent/service). */
  serviceIntervalMs: number;
  sinks: NamedSink[];
  spoolLimit: number;
  /** null: attempts: false. */
  attempts: AttemptsConfig | null;
}

function attemptsConfig(doc: AgentConfig['attempts']): AttemptsConfig | null {
  if (doc === false) return null;
  const window = doc?.window ?? '5m';
  return { window, windowMs: parseDuration(window), threshold: doc?.threshold ?? 100, scanPorts: doc?.scan_ports ?? 20, top: doc?.top ?? 10 };
}

export function withDefaults(doc: AgentConfig, file: string | null, secrets: readonly (string | null)[] = []): Config {
  const counts = new Map<string, number>();
  const sinks = (doc.sinks ?? []).map((s, i): NamedSink => {
    const n = (counts.get(s.type) ?? 0) + 1;
    counts.set(s.type, n);
    const name = s.name ?? `${s.type}-${n}`;
    if (s.type === 'webhook') return { ...s, name, secret: secrets[i] ?? null };
    if (s.type === 'email') return { ...s, name, password: secrets[i] ?? null };
    if (s.type === 'alertmanager') return { ...s, name, credential: secrets[i] ?? null };
    return { ...s, name };
  });
  return {
    file,
    policy: doc.policy ?? DEFAULT_POLICY_PATH,
    stateDir: doc.state_dir ?? DEFAULT_STATE_DIR,
    schedule: doc.schedule ?? '*/30 * * * * *',
    settle: doc.settle ?? 2,
    repeatMs: parseDuration(doc.repeat ?? '24h'),
    netns: doc.netns,
    exposure: doc.exposure ?? true,
    serviceIntervalMs: parseDuration(doc.service_interval ?? '1h'),
    sinks,
    spoolLimit: doc.spool_limit ?? 1000,
    attempts: attemptsConfig(doc.attempts),
  };
}

/** Why a webhook URL can never deliver, or null. Says nothing of what the URL holds (it may hold secrets). */
export function webhookUrlProblem(url: string, instead = 'the receiver can check the signature (secret_file) instead'): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `${redactUrl(url)} is not a valid URL (check the host and the port, 1-65535)`;
  }
  if (u.username || u.password) return `credentials in the URL (user:pass@) are not allowed: they would show in logs; ${instead}`;
  if (!u.hostname) return `${redactUrl(url)} has no host`;
  if (u.port === '0') return `${redactUrl(url)}: port 0 cannot be connected to`;
  return null;
}

/** Reads a secret from a file (owned by root, not readable by others, like sshd's StrictModes) or
 *  from the environment; returns it, or the problem with the value. */
export function resolveSecret(from: { file?: string; env?: string }): { value: string | null } | { problem: string } {
  if (from.file) {
    const file = from.file;
    try {
      checkTrustedFile(file);
    } catch (err) {
      return { problem: (err as InputError).problems.join('; ') };
    }
    let st;
    try {
      st = statSync(file);
    } catch (err) {
      return { problem: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code}` };
    }
    if (st.isDirectory()) return { problem: `${file} is a directory, not a file with the secret` };
    if (st.mode & 0o044) return { problem: `${file}: refusing to use it: it is readable by group or others (fix: chmod 600 ${file})` };
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (err) {
      return { problem: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    }
    return text ? { value: text } : { problem: `${file} is empty` };
  }
  if (from.env) {
    const v = process.env[from.env]?.trim();
    return v ? { value: v } : { problem: `environment variable ${from.env} is not set${process.env[from.env] === undefined ? '' : ' (it is empty)'}` };
  }
  return { value: null };
}

/** Problems a schema cannot state: URLs, ports, secrets. Returns each sink's secret (or null). */
function checkSinks(value: AgentConfig, src: Located, problems: string[]): (string | null)[] {
  const at = (i: number, key: string, what: string) => problems.push(`${locate(src, ['sinks', i, key])}: sinks[${i}].${key}: ${what}`);
  const secret = (i: number, file: string | undefined, env: string | undefined, keys: [string, string]): string | null => {
    const r = resolveSecret({ file, env });
    if ('problem' in r) {
      at(i, file ? keys[0] : keys[1], r.problem);
      return null;
    }
    return r.value;
  };
  return (value.sinks ?? []).map((s, i) => {
    if (s.type === 'webhook') {
      const urlProblem = webhookUrlProblem(s.url);
      if (urlProblem) at(i, 'url', urlProblem);
      const value = secret(i, s.secret_file, s.secret_env, ['secret_file', 'secret_env']);
      if (value !== null) {
        try {
          secretKey(value);
        } catch (err) {
          at(i, s.secret_file ? 'secret_file' : 'secret_env', (err as Error).message);
        }
      }
      return value;
    }
    if (s.type === 'email') return secret(i, s.password_file, s.password_env, ['password_file', 'password_env']);
    if (s.type === 'alertmanager') {
      s.urls.forEach((url, j) => {
        const problem = webhookUrlProblem(url, 'use bearer_token_file or basic_auth instead');
        if (problem) problems.push(`${locate(src, ['sinks', i, 'urls', j])}: sinks[${i}].urls[${j}]: ${problem}`);
      });
      if (s.bearer_token_file) {
        const token = secret(i, s.bearer_token_file, undefined, ['bearer_token_file', 'bearer_token_file']);
        // It goes into an HTTP header as it is: a second line or a control character would fail every send.
        if (token !== null && !/^[\x21-\x7e]+$/.test(token)) at(i, 'bearer_token_file', `${s.bearer_token_file} must hold one token of printable ASCII without spaces`);
        return token;
      }
      if (s.basic_auth) {
        const r = resolveSecret({ file: s.basic_auth.password_file });
        if ('problem' in r) problems.push(`${locate(src, ['sinks', i, 'basic_auth', 'password_file'])}: sinks[${i}].basic_auth.password_file: ${r.problem}`);
        return 'value' in r ? r.value : null;
      }
      return null;
    }
    if (s.listen) {
      const port = Number(s.listen.slice(s.listen.lastIndexOf(':') + 1));
      if (port > 65535) at(i, 'listen', `port ${port} is out of range (1-65535, or 0 for any free port)`);
    }
    return null;
  });
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
    if (s.type === 'alertmanager' && s.bearer_token_file && s.basic_auth) problems.push(`${locate(src, ['sinks', i])}: sinks[${i}]: give bearer_token_file or basic_auth, not both`);
    if (s.type === 'prometheus' && !s.textfile && !s.listen) problems.push(`${locate(src, ['sinks', i])}: sinks[${i}]: a prometheus sink needs textfile, listen or both`);
  });
  const secrets = checkSinks(value, src, problems);
  if (problems.length) throw new InputError(problems);
  return withDefaults(value, file, secrets);
}

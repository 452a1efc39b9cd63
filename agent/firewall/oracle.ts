// The policy's own answer to "would a new connection from this source be let in?", as a pure
// function. It is the oracle the packet tests compare real connects against. Rate limits are not
// modelled here: an allowed source may still be refused once over its rate.
import { containsCidr } from 'cidr-tools';
import { isIP } from 'node:net';
import type { Proto } from '../model.js';
import type { CompiledPolicy, CompiledRule } from '../policy/compile.js';

export interface Decision {
  verdict: 'accept' | 'refuse';
  /** The deciding rule, or null when the default decided. */
  rule: CompiledRule | null;
}

function isLoopback(source: string): boolean {
  return source === '::1' || source.startsWith('127.');
}

export function decide(policy: CompiledPolicy, source: string, proto: Proto, port: number): Decision {
  if (isLoopback(source)) return { verdict: 'accept', rule: null };
  const rule = policy.rules.find((r) => r.proto === proto && r.ports.some((p) => p.lo <= port && port <= p.hi)) ?? null;
  if (!rule) return { verdict: policy.default === 'deny' ? 'refuse' : 'accept', rule: null };
  if (rule.action === 'deny' || rule.from.kind === 'localhost') return { verdict: 'refuse', rule };
  if (rule.from.kind === 'any') return { verdict: 'accept', rule };
  const prefixes = isIP(source) === 6 ? rule.from.v6 : rule.from.v4;
  return { verdict: prefixes.length && containsCidr(prefixes, source) ? 'accept' : 'refuse', rule };
}

export function allows(policy: CompiledPolicy, source: string, proto: Proto, port: number): boolean {
  return decide(policy, source, proto, port).verdict === 'accept';
}

/** SSH_CONNECTION is "client_ip client_port server_ip server_port"; SSH_CLIENT lacks the server part. */
export function sshSession(env: NodeJS.ProcessEnv): { client: string; port: number } | null {
  const conn = env.SSH_CONNECTION?.trim().split(/\s+/);
  if (conn && conn.length >= 4 && isIP(conn[0]!)) return { client: conn[0]!, port: Number(conn[3]) };
  const client = env.SSH_CLIENT?.trim().split(/\s+/);
  if (client && client.length >= 1 && isIP(client[0]!)) return { client: client[0]!, port: 22 };
  return null;
}

/** A sentence naming what would cut off the current SSH session, or null when it keeps access. */
export function lockoutWarning(policy: CompiledPolicy, env: NodeJS.ProcessEnv): string | null {
  const ssh = sshSession(env);
  if (!ssh) return null;
  const client = ssh.client.replace(/^::ffff:(?=\d+\.)/, '');
  const d = decide(policy, client, 'tcp', ssh.port);
  if (d.verdict === 'accept') return null;
  const by = d.rule ? `rule "${d.rule.name}"` : 'the default (deny)';
  return `${by} would cut off your SSH session from ${client} to port ${ssh.port}`;
}

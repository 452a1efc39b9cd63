// Docker-style published ports: DNAT in a prerouting nat chain (or a chain it jumps to) sends
// traffic for a host port to a container through the forward path, past every input-hook rule.
// This finds which host ports to ask about; exposure.ts follows their path. Pure.
import { chainKey, isObj, type Json, type NftChain, type Ruleset } from './nft-json.js';

export interface Published {
  proto: 'tcp' | 'udp';
  port: number;
  /**
   * Where the DNAT sends the connection, in one notation (dnatTargetText): "172.17.0.2:80",
   * "[fd00::2]:80", ":9090" for a redirect to this host's port; null when the rule does not say
   * (an iptables-nft DNAT target, a map or a range).
   */
  to: string | null;
  where: string;
  /** The family the DNAT translates (4, 6; null: both, an inet redirect). */
  family: 4 | 6 | null;
  /** The one host address the rule is pinned to (`-p ADDR:PORT:…`), or null for every address. */
  daddr: string | null;
}

/** One notation for a DNAT target everywhere: "172.17.0.2:80", "[fd00::2]:80", "fd00::2" without a port. */
export function dnatTargetText(addr: string, port?: number): string {
  if (port === undefined) return addr;
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** The target of a native dnat statement; null when it maps, ranges or is otherwise not one constant. */
export function dnatStatementTarget(d: Record<string, Json>): string | null {
  if (typeof d.addr !== 'string' || (d.port !== undefined && typeof d.port !== 'number')) return null;
  return dnatTargetText(d.addr, d.port);
}

function dnatTarget(expr: Json[]): string | null | undefined {
  for (const e of expr) {
    if (!isObj(e)) continue;
    if (isObj(e.dnat)) return dnatStatementTarget(e.dnat);
    // A redirect to this host's own port (firewalld's forward-port without an address).
    if ('redirect' in e) return isObj(e.redirect) && typeof e.redirect.port === 'number' ? `:${e.redirect.port}` : ':';
    if (isObj(e.xt) && e.xt.type === 'target' && e.xt.name === 'DNAT') return null;
  }
  return undefined;
}

/** The family a rule translates: its table's, else its dnat statement's, else its target's or pinned address's. */
function translatedFamily(c: NftChain, expr: Json[], to: string | null, daddr: string | null): 4 | 6 | null {
  if (c.family === 'ip') return 4;
  if (c.family === 'ip6') return 6;
  for (const e of expr) if (isObj(e) && isObj(e.dnat) && (e.dnat.family === 'ip' || e.dnat.family === 'ip6')) return e.dnat.family === 'ip' ? 4 : 6;
  const addr = daddr ?? (to && !to.startsWith(':') ? to : null);
  return addr ? (addr.includes(':') && !/^[\d.]+:\d+$/.test(addr) ? 6 : 4) : null;
}

/** The single host address a rule matches (`ip daddr 192.0.2.1`, `-d ADDR/32`), or null. */
function pinnedDaddr(expr: Json[]): string | null {
  for (const e of expr) {
    if (!isObj(e) || !isObj(e.match) || e.match.op === '!=') continue;
    const left = e.match.left;
    if (!isObj(left) || !isObj(left.payload) || left.payload.field !== 'daddr' || (left.payload.protocol !== 'ip' && left.payload.protocol !== 'ip6')) continue;
    const right = e.match.right;
    if (typeof right === 'string') return right;
    // A /32 or /128 prefix is one address too.
    if (isObj(right) && isObj(right.prefix) && typeof right.prefix.addr === 'string' && right.prefix.len === (left.payload.protocol === 'ip' ? 32 : 128)) return right.prefix.addr;
  }
  return null;
}

function dports(expr: Json[]): { proto: 'tcp' | 'udp'; ports: number[] } | null {
  for (const e of expr) {
    if (!isObj(e) || !isObj(e.match) || e.match.op === '!=') continue;
    const left = e.match.left;
    if (!isObj(left) || !isObj(left.payload) || left.payload.field !== 'dport') continue;
    const proto = left.payload.protocol;
    if (proto !== 'tcp' && proto !== 'udp') continue;
    const right = e.match.right;
    const items = isObj(right) && Array.isArray(right.set) ? right.set : [right];
    return { proto, ports: items.filter((i): i is number => typeof i === 'number') };
  }
  return null;
}

export function findPublished(rs: Ruleset): Published[] {
  const out: Published[] = [];
  const seen = new Set<NftChain>();
  const visit = (c: NftChain) => {
    if (seen.has(c)) return;
    seen.add(c);
    for (const rule of c.rules) {
      const to = dnatTarget(rule.expr);
      const d = dports(rule.expr);
      if (to !== undefined && d) {
        for (const port of d.ports) {
          const target = to === ':' ? `:${port}` : to;
          if (target === `:${port}`) continue; // redirected to the port it asked for: the listener's own
          const daddr = pinnedDaddr(rule.expr);
          out.push({ proto: d.proto, port, to: target, where: `${c.family} ${c.table} ${c.name} handle ${rule.handle ?? '?'}`, family: translatedFamily(c, rule.expr, target, daddr), daddr });
        }
      }
      for (const e of rule.expr) {
        const target = isObj(e) && (isObj(e.jump) ? e.jump.target : isObj(e.goto) ? e.goto.target : undefined);
        const next = typeof target === 'string' ? rs.chains.get(chainKey(c.family, c.table, target)) : undefined;
        if (next) visit(next);
      }
    }
  };
  for (const c of rs.chains.values()) if (c.hook === 'prerouting' && c.type === 'nat') visit(c);
  return out;
}

/**
 * The published entries a connection to `port` takes in these families (to `address` when the
 * listener is bound to one): which DNAT target a finding about it names.
 */
export function publishedFor(all: readonly Published[], proto: 'tcp' | 'udp', port: number, families: readonly (4 | 6)[], address?: string): Published[] {
  return all.filter((p) => p.proto === proto && p.port === port && (p.family === null || families.includes(p.family)) && (!address || !p.daddr || p.daddr === address));
}

/** "172.17.0.2:80, [fd00::2]:80": each target once (the rule's place where it names none). */
export const namedTargets = (ps: readonly Published[]): string => [...new Set(ps.map((p) => p.to ?? p.where))].join(', ');

// Docker-style published ports: DNAT in a prerouting nat chain (or a chain it jumps to) sends
// traffic for a host port to a container through the forward path, past every input-hook rule.
// This finds which host ports to ask about; exposure.ts follows their path. Pure.
import { chainKey, isObj, type Json, type NftChain, type Ruleset } from './nft-json.js';

export interface Published {
  proto: 'tcp' | 'udp';
  port: number;
  /**
   * "172.17.0.2:80" when the rule says (native dnat), ":9090" for a redirect to this host's port,
   * null for an iptables-nft DNAT target.
   */
  to: string | null;
  where: string;
}


function dnatTarget(expr: Json[]): string | null | undefined {
  for (const e of expr) {
    if (!isObj(e)) continue;
    if (isObj(e.dnat)) return e.dnat.addr !== undefined ? `${String(e.dnat.addr)}${e.dnat.port !== undefined ? `:${String(e.dnat.port)}` : ''}` : null;
    // A redirect to this host's own port (firewalld's forward-port without an address).
    if ('redirect' in e) return isObj(e.redirect) && typeof e.redirect.port === 'number' ? `:${e.redirect.port}` : ':';
    if (isObj(e.xt) && e.xt.type === 'target' && e.xt.name === 'DNAT') return null;
  }
  return undefined;
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
          out.push({ proto: d.proto, port, to: target, where: `${c.family} ${c.table} ${c.name} handle ${rule.handle ?? '?'}` });
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

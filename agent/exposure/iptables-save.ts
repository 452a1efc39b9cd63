// iptables-save text → the nft JSON shapes the interpreter reads. Two uses: iptables-legacy's rules
// (which `nft list ruleset` never shows) become chains of their own, and iptables-nft rules whose
// matches nft can only print as opaque `xt` expressions get their options back. Matches outside
// the translated subset stay `xt` expressions, so the interpreter reports them as undetermined.
// Pure.
import type { Json, NftChain, NftRule, Obj, Ruleset } from './nft-json.js';
import { chainKey, isObj } from './nft-json.js';

export interface SaveTable {
  name: string;
  chains: { name: string; policy: string }[];
  /** Chain name → its rules' arguments (after "-A CHAIN"), in order. */
  rules: Map<string, string[][]>;
}

/** Splits one iptables-save line the way iptables-restore reads it (double quotes, backslash escapes). */
export function tokenize(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (c === '"') {
      quoted = !quoted;
      inWord = true;
    } else if (!quoted && (c === ' ' || c === '\t')) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

export function parseSave(text: string): SaveTable[] {
  const tables: SaveTable[] = [];
  let t: SaveTable | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) tables.push((t = { name: line.slice(1), chains: [], rules: new Map() }));
    else if (!t || !line || line.startsWith('#') || line === 'COMMIT') continue;
    else if (line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(/\s+/);
      t.chains.push({ name: name!, policy: policy ?? '-' });
    } else if (line.startsWith('-A ')) {
      const [, chain, ...args] = tokenize(line);
      const list = t.rules.get(chain!) ?? [];
      list.push(args);
      t.rules.set(chain!, list);
    }
  }
  return tables;
}

const match = (left: Obj, right: Json, negate: boolean): Obj => ({ match: { op: negate ? '!=' : '==', left, right } });
const xtMatch = (name: string): Obj => ({ xt: { type: 'match', name } });
const cmp = (left: Obj, op: string, right: Json): Obj => ({ match: { op, left, right } });
const TCP_FLAGS = { payload: { protocol: 'tcp', field: 'flags' } };

/** "SYN,ACK" / "ALL" / "NONE" → nft flag names. */
function flagList(v: string): string[] {
  const l = v.toLowerCase();
  if (l === 'all') return ['fin', 'syn', 'rst', 'psh', 'ack', 'urg'];
  if (l === 'none') return [];
  return l.split(',');
}

/** "0x1" or "0x1/0xff" → a mark match (masked when a mask is given). */
function markMatch(key: Obj, v: string, negate: boolean): Obj {
  const [value, mask] = v.split('/');
  const left = mask && Number(mask) !== 0xffffffff ? { '&': [key, Number(mask)] } : key;
  return match(left as Obj, Number(value), negate);
}

/** hl/ttl: "--hl-eq N", "--ttl-lt N" … → a comparison of the IP header's field. */
const HL_OPS: Record<string, string> = { eq: '==', lt: '<', gt: '>' };

function addr(v: string): Json {
  const [a, len] = v.split('/');
  if (len === undefined) return a!;
  // iptables-save prints a netmask (255.255.0.0) only when it is not a prefix: leave those undecided.
  return /^\d+$/.test(len) ? { prefix: { addr: a!, len: Number(len) } } : { unsupported: v };
}

function ports(v: string): Json {
  const items = v.split(',').map((p): Json => (p.includes(':') ? { range: p.split(':').map((x, i) => (x === '' ? (i ? 65535 : 0) : Number(x))) } : Number(p)));
  return items.length === 1 ? items[0]! : { set: items };
}

/** iptables' ICMPv6 type names (ip6tables -p icmpv6 --help); iptables-save itself prints numbers. */
const ICMPV6_TYPES: Record<string, number> = {
  'destination-unreachable': 1, 'packet-too-big': 2, 'time-exceeded': 3, 'parameter-problem': 4, 'echo-request': 128, 'echo-reply': 129,
  'router-solicitation': 133, 'router-advertisement': 134, 'neighbour-solicitation': 135, 'neighbor-solicitation': 135,
  'neighbour-advertisement': 136, 'neighbor-advertisement': 136, redirect: 137,
};

/** "--icmpv6-type 135" or "135/0" or a name → a type match; a code other than 0 stays undecided. */
function icmpType(v: string, protocol: 'icmp' | 'icmpv6', negate: boolean): Obj {
  const [type, code] = v.split('/');
  const n = /^\d+$/.test(type!) ? Number(type) : protocol === 'icmpv6' ? ICMPV6_TYPES[type!] : undefined;
  if (n === undefined || (code !== undefined && code !== '0')) return xtMatch(`${protocol} --${protocol === 'icmp' ? 'icmp' : 'icmpv6'}-type ${v}`);
  return match({ payload: { protocol, field: 'type' } }, n, negate);
}

const iface = (v: string) => (v.endsWith('+') ? `${v.slice(0, -1)}*` : v);

/** ESTABLISHED,RELATED → ct state names; DNAT/SNAT are conntrack status bits, not states. */
function ctstate(v: string, negate: boolean): Obj[] {
  const names = v.toLowerCase().split(',');
  const states = names.filter((n) => n !== 'dnat' && n !== 'snat');
  const status = names.filter((n) => n === 'dnat' || n === 'snat');
  if (states.length && status.length) return [xtMatch('conntrack')];
  return states.length ? [match({ ct: { key: 'state' } }, { set: states }, negate)] : [match({ ct: { key: 'status' } }, { set: status }, negate)];
}

/** One rule's arguments → nft JSON expressions (a match per option, then the verdict). */
export function translateRule(args: string[], family: 4 | 6): Json[] {
  const ip = family === 4 ? 'ip' : 'ip6';
  const expr: Json[] = [];
  let proto = '';
  let negate = false;
  let module = '';
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const val = () => args[++i] ?? '';
    if (a === '!') {
      negate = true;
      continue;
    }
    const neg = negate;
    negate = false;
    switch (a) {
      case '-s': case '--source': expr.push(match({ payload: { protocol: ip, field: 'saddr' } }, addr(val()), neg)); break;
      case '-d': case '--destination': expr.push(match({ payload: { protocol: ip, field: 'daddr' } }, addr(val()), neg)); break;
      case '-p': case '--protocol': proto = val(); expr.push(match({ meta: { key: 'l4proto' } }, proto, neg)); break;
      case '-i': case '--in-interface': expr.push(match({ meta: { key: 'iifname' } }, iface(val()), neg)); break;
      case '-o': case '--out-interface': expr.push(match({ meta: { key: 'oifname' } }, iface(val()), neg)); break;
      case '-m': case '--match': module = val(); if (!['tcp', 'udp', 'comment', 'conntrack', 'state', 'multiport', 'addrtype', 'limit', 'hashlimit', 'icmp', 'icmp6', 'recent', 'rt', 'pkttype', 'hl', 'ttl', 'mark', 'connmark', 'iprange', 'connlimit'].includes(module)) expr.push(xtMatch(module)); break;
      // A routing header option (ufw's `-m rt --rt-type 0 -j DROP`): a match on the IPv6 extension header.
      case '--rt-type': case '--rt-segsleft': case '--rt-len': expr.push(match({ exthdr: { name: 'rt', field: a === '--rt-type' ? 'type' : a === '--rt-segsleft' ? 'seg-left' : 'hdrlength' } }, Number(val().split(':')[0]), neg)); break;
      case '--syn': expr.push(match({ '&': [TCP_FLAGS, ['fin', 'syn', 'rst', 'ack']] }, 'syn', neg)); break;
      case '--tcp-flags': { const mask = flagList(val()); const comp = flagList(val()); expr.push(match({ '&': [TCP_FLAGS, mask] }, comp.length ? comp : 0, neg)); break; }
      case '--pkt-type': expr.push(match({ meta: { key: 'pkttype' } }, val().toLowerCase(), neg)); break;
      case '--hl-eq': case '--hl-lt': case '--hl-gt': case '--ttl-eq': case '--ttl-lt': case '--ttl-gt': {
        const op = HL_OPS[a.slice(-2)]!;
        const left = { payload: a.startsWith('--hl') ? { protocol: 'ip6', field: 'hoplimit' } : { protocol: 'ip', field: 'ttl' } };
        expr.push(neg && op === '==' ? cmp(left, '!=', Number(val())) : neg ? xtMatch(`${module} ! ${a}`) : cmp(left, op, Number(val())));
        break;
      }
      case '--mark': expr.push(markMatch(module === 'connmark' ? { ct: { key: 'mark' } } : { meta: { key: 'mark' } }, val(), neg)); break;
      case '--src-range': case '--dst-range': { const [lo, hi] = val().split('-'); expr.push(match({ payload: { protocol: ip, field: a === '--src-range' ? 'saddr' : 'daddr' } }, { range: [lo!, hi!] }, neg)); break; }
      case '--ctdir': expr.push(match({ ct: { key: 'direction' } }, val().toLowerCase(), neg)); break;
      case '--dport': case '--destination-port': expr.push(match({ payload: { protocol: proto || 'th', field: 'dport' } }, ports(val()), neg)); break;
      case '--dports': case '--destination-ports': expr.push(match({ payload: { protocol: proto || 'th', field: 'dport' } }, ports(val()), neg)); break;
      case '--sport': case '--sports': case '--source-port': case '--source-ports': expr.push(match({ payload: { protocol: proto || 'th', field: 'sport' } }, ports(val()), neg)); break;
      case '--ports': val(); expr.push(xtMatch(`${module || proto} ${a}`)); break;
      case '--ctstate': case '--state': expr.push(...ctstate(val(), neg)); break;
      case '--ctstatus': expr.push(match({ ct: { key: 'status' } }, { set: val().toLowerCase().split(',') }, neg)); break;
      case '--ctorigsrc': expr.push(match({ ct: { key: 'saddr', dir: 'original', family: ip } }, addr(val()), neg)); break;
      case '--ctorigdst': expr.push(match({ ct: { key: 'daddr', dir: 'original', family: ip } }, addr(val()), neg)); break;
      case '--ctorigdstport': expr.push(match({ ct: { key: 'proto-dst', dir: 'original' } }, ports(val()), neg)); break;
      case '--dst-type': { const t = val().toLowerCase(); expr.push(match({ fib: { result: 'type', flags: ['daddr'] } }, t === 'local' ? 'local' : t, neg)); break; }
      case '--comment': val(); break;
      case '--icmp-type': case '--icmpv6-type': expr.push(icmpType(val(), family === 4 ? 'icmp' : 'icmpv6', neg)); break;
      case '--set': if (module === 'recent') break; expr.push(xtMatch(module)); break;
      case '--rcheck': case '--update': expr.push({ limit: {} }); break; // recent: sometimes holds, like a rate limit
      case '-j': case '--jump': case '-g': case '--goto': {
        const target = val();
        const rest: string[] = [];
        while (i + 1 < args.length && args[i + 1]!.startsWith('--')) rest.push(val(), ...(i + 1 < args.length && !args[i + 1]!.startsWith('-') ? [val()] : []));
        expr.push(...targetExpr(target, rest, a === '-g' || a === '--goto', family));
        break;
      }
      default: {
        if (!a.startsWith('-')) break; // the second word of a two-word option (--tcp-flags MASK SET)
        const option = `${module || '?'} ${a}`;
        if (args[i + 1] !== undefined && !args[i + 1]!.startsWith('-')) val();
        // A rate limit sometimes holds; the other options of limit/hashlimit/recent only tune it.
        if (['--limit', '--hashlimit-upto', '--hashlimit-above', '--connlimit-above', '--connlimit-upto'].includes(a)) expr.push({ limit: {} });
        else if (module !== 'limit' && module !== 'hashlimit' && module !== 'recent' && module !== 'connlimit') expr.push(xtMatch(option));
      }
    }
  }
  return expr;
}

const NO_EFFECT = new Set(['LOG', 'NFLOG', 'ULOG', 'TRACE', 'CT', 'NOTRACK', 'TCPMSS', 'CLASSIFY', 'DSCP', 'TOS']);

function targetExpr(target: string, opts: string[], isGoto: boolean, family: 4 | 6): Json[] {
  const opt = (name: string) => {
    const i = opts.indexOf(name);
    return i >= 0 ? opts[i + 1] : undefined;
  };
  switch (target) {
    case 'ACCEPT': return [{ accept: null }];
    case 'DROP': return [{ drop: null }];
    case 'RETURN': return [{ return: null }];
    case 'REJECT': {
      const w = opt('--reject-with') ?? '';
      return [{ reject: w === 'tcp-reset' ? { type: 'tcp reset' } : { type: family === 4 ? 'icmp' : 'icmpv6' } }];
    }
    case 'DNAT': {
      const to = opt('--to-destination') ?? '';
      const m = /^\[(.+)\](?::(\d+))?$/.exec(to) ?? /^([^:]+)(?::(\d+))?$/.exec(to);
      // A range of addresses or ports is not one destination: leave it an opaque target.
      if (!m || m[1]!.includes('-') || opts.length > 2) return [{ xt: { type: 'target', name: 'DNAT' } }];
      return [{ dnat: { addr: m[1]!, ...(m[2] ? { port: Number(m[2]) } : {}) } }];
    }
    case 'REDIRECT': {
      // --to-ports N (a range is not one port: opaque).
      const to = opt('--to-ports');
      if (to !== undefined && !/^\d+$/.test(to)) return [{ xt: { type: 'target', name: 'REDIRECT' } }];
      return [{ redirect: to !== undefined ? { port: Number(to) } : null }];
    }
    case 'MARK': {
      // --set-mark V, or --set-xmark V/0xffffffff (the whole mark); other masks stay undecided.
      const [v, m] = (opt('--set-mark') ?? opt('--set-xmark') ?? '').split('/');
      const whole = opt('--set-mark') !== undefined || m === undefined || Number(m) === 0xffffffff;
      return [{ mangle: { key: { meta: { key: 'mark' } }, value: whole && v ? Number(v) : { xt: 'MARK with a mask' } } }];
    }
    case 'CONNMARK':
      if (opts.includes('--save-mark')) return [{ mangle: { key: { ct: { key: 'mark' } }, value: { meta: { key: 'mark' } } } }];
      if (opts.includes('--restore-mark')) return [{ mangle: { key: { meta: { key: 'mark' } }, value: { ct: { key: 'mark' } } } }];
      if (opt('--set-mark') && !opt('--set-mark')!.includes('/')) return [{ mangle: { key: { ct: { key: 'mark' } }, value: Number(opt('--set-mark')) } }];
      return [{ mangle: { key: { ct: { key: 'mark' } }, value: { xt: 'CONNMARK' } } }];
    default:
      if (NO_EFFECT.has(target)) return [{ counter: null }];
      if (/^[A-Z]+$/.test(target) && !target.includes('-') && ['SNAT', 'MASQUERADE', 'TPROXY', 'NETMAP', 'QUEUE', 'NFQUEUE', 'SET', 'AUDIT', 'CHECKSUM', 'TEE', 'SYNPROXY'].includes(target)) {
        return [{ xt: { type: 'target', name: target } }];
      }
      return [isGoto ? { goto: { target } } : { jump: { target } }];
  }
}

/** Built-in chain → its hook, base-chain type and priority, per table (the kernel's fixed order). */
const HOOKS: Record<string, Record<string, [string, string, number]>> = {
  raw: { PREROUTING: ['prerouting', 'filter', -300], OUTPUT: ['output', 'filter', -300] },
  mangle: { PREROUTING: ['prerouting', 'filter', -150], INPUT: ['input', 'filter', -150], FORWARD: ['forward', 'filter', -150], OUTPUT: ['output', 'route', -150], POSTROUTING: ['postrouting', 'filter', -150] },
  nat: { PREROUTING: ['prerouting', 'nat', -100], INPUT: ['input', 'nat', 100], OUTPUT: ['output', 'nat', -100], POSTROUTING: ['postrouting', 'nat', 100] },
  filter: { INPUT: ['input', 'filter', 0], FORWARD: ['forward', 'filter', 0], OUTPUT: ['output', 'filter', 0] },
  security: { INPUT: ['input', 'filter', 50], FORWARD: ['forward', 'filter', 50], OUTPUT: ['output', 'filter', 50] },
};

export const LEGACY_SUFFIX = ' (iptables-legacy)';

/**
 * iptables-legacy tables as chains of the ruleset (table "filter (iptables-legacy)" and so on);
 * a rule's handle is its position in the chain, as `iptables -L --line-numbers` counts.
 */
export function addLegacy(rs: Ruleset, save: string, family: 4 | 6): number {
  let count = 0;
  const fam = family === 4 ? 'ip' : 'ip6';
  for (const t of parseSave(save)) {
    const table = t.name + LEGACY_SUFFIX;
    for (const c of t.chains) {
      const hook = HOOKS[t.name]?.[c.name];
      const rules: NftRule[] = (t.rules.get(c.name) ?? []).map((args, i) => ({ handle: i + 1, comment: commentOf(args), expr: translateRule(args, family) }));
      count += rules.length;
      const chain: NftChain = { family: fam, table, name: c.name, hook: hook?.[0] ?? null, type: hook?.[1] ?? null, prio: hook?.[2] ?? 0, policy: c.policy === 'DROP' ? 'drop' : 'accept', devices: null, rules };
      rs.chains.set(chainKey(fam, table, c.name), chain);
    }
  }
  return count;
}

function commentOf(args: string[]): string | null {
  const i = args.indexOf('--comment');
  return i >= 0 ? (args[i + 1] ?? null) : null;
}

/**
 * Gives iptables-nft rules with opaque `xt` expressions their meaning back from iptables-nft-save
 * of the same family: a chain's rules are listed in the same order by both, so rule i of chain C
 * is line i of "-A C". A chain whose rule count differs is left alone.
 */
export function fillXt(rs: Ruleset, save: string, family: 4 | 6): number {
  let filled = 0;
  const fam = family === 4 ? 'ip' : 'ip6';
  for (const t of parseSave(save)) {
    for (const [name, lines] of t.rules) {
      const chain = rs.chains.get(chainKey(fam, t.name, name));
      if (!chain || chain.rules.length !== lines.length) continue;
      chain.rules.forEach((rule, i) => {
        if (!rule.expr.some((e) => isObj(e) && 'xt' in e)) return;
        rule.expr = translateRule(lines[i]!, family);
        rule.comment ??= commentOf(lines[i]!);
        filled++;
      });
    }
  }
  return filled;
}

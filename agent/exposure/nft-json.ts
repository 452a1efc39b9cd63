// `nft -j list ruleset` → the chains, rules and sets the interpreter walks. Parsing is pure.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export type Obj = { [k: string]: Json };
export const isObj = (j: Json | undefined): j is Obj => typeof j === 'object' && j !== null && !Array.isArray(j);

/** A set element as written: an element with a comment or timeout is wrapped as {"elem": {"val": …}}. */
export const elemValue = (j: Json): Json => (isObj(j) && isObj(j.elem) ? ('val' in j.elem ? j.elem.val! : j.elem) : j);

export interface NftRule {
  handle: number | null;
  comment: string | null;
  expr: Json[];
}

export interface NftChain {
  family: string;
  table: string;
  name: string;
  hook: string | null;
  type: string | null;
  prio: number;
  policy: 'accept' | 'drop';
  /** Ingress chains: the devices they are attached to (null: not said, e.g. by nft 1.0.6's JSON). */
  devices: string[] | null;
  rules: NftRule[];
}

export interface NftSet {
  family: string;
  table: string;
  name: string;
  type: string | string[];
  elem: Json[];
}

export interface Ruleset {
  chains: Map<string, NftChain>;
  sets: Map<string, NftSet>;
}

export const chainKey = (family: string, table: string, name: string) => `${family} ${table} ${name}`;

const NAMED_PRIO: Record<string, number> = { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 };

function prio(p: Json | undefined): number {
  if (typeof p === 'number') return p;
  if (typeof p === 'string') return NAMED_PRIO[p] ?? 0;
  return 0;
}

/** One object of nft's JSON listing: {"chain": {…}}, {"rule": {…}}, … */
export type NftObject = Record<string, Record<string, Json>>;

/** The objects of a listing (`nft -j list ruleset`, or of one table). */
export function nftObjects(text: string): NftObject[] {
  return (JSON.parse(text) as { nftables?: NftObject[] }).nftables ?? [];
}

/** The table an object belongs to, as "family name"; null for metainfo. */
export function tableOf(obj: NftObject): string | null {
  const [kind, v] = Object.entries(obj)[0] ?? [];
  if (!v || kind === 'metainfo') return null;
  return `${String(v.family)} ${String(kind === 'table' ? v.name : v.table)}`;
}

export function parseNftJson(text: string): Ruleset {
  return rulesetOf(nftObjects(text));
}

export function rulesetOf(objects: Iterable<NftObject>): Ruleset {
  const chains = new Map<string, NftChain>();
  const sets = new Map<string, NftSet>();
  const pendingRules: Record<string, Json>[] = [];
  for (const obj of objects) {
    const [kind, v] = Object.entries(obj)[0] ?? [];
    if (!v) continue;
    if (kind === 'chain') {
      const c: NftChain = {
        family: String(v.family),
        table: String(v.table),
        name: String(v.name),
        hook: typeof v.hook === 'string' ? v.hook : null,
        type: typeof v.type === 'string' ? v.type : null,
        prio: prio(v.prio),
        policy: v.policy === 'drop' ? 'drop' : 'accept',
        devices: typeof v.dev === 'string' ? [v.dev] : Array.isArray(v.dev) ? v.dev.map(String) : null,
        rules: [],
      };
      chains.set(chainKey(c.family, c.table, c.name), c);
    } else if (kind === 'set' || kind === 'map') {
      sets.set(chainKey(String(v.family), String(v.table), String(v.name)), {
        family: String(v.family),
        table: String(v.table),
        name: String(v.name),
        type: (v.type as string | string[]) ?? 'unknown',
        elem: Array.isArray(v.elem) ? v.elem : [],
      });
    } else if (kind === 'rule') pendingRules.push(v);
  }
  for (const r of pendingRules) {
    const c = chains.get(chainKey(String(r.family), String(r.table), String(r.chain)));
    c?.rules.push({ handle: typeof r.handle === 'number' ? r.handle : null, comment: typeof r.comment === 'string' ? r.comment : null, expr: Array.isArray(r.expr) ? r.expr : [] });
  }
  return { chains, sets };
}

export type Hook = 'ingress' | 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';

/**
 * Base chains of one hook and type that see this family's packets, in the order the kernel runs
 * them. Ingress chains (netdev, and inet since Linux 5.10) see the packets of their devices only,
 * netdev ones before inet ones at any priority.
 */
const baseCache = new WeakMap<Ruleset, Map<string, NftChain[]>>();

export function baseChains(rs: Ruleset, family: 4 | 6, hook: Hook, type: 'filter' | 'nat', iif?: string): NftChain[] {
  // Asked for every packet of every listener: keep the answer per ruleset (read once, never changed).
  const key = `${family} ${hook} ${type} ${hook === 'ingress' ? (iif ?? '') : ''}`;
  let cache = baseCache.get(rs);
  if (!cache) baseCache.set(rs, (cache = new Map()));
  const hit = cache.get(key);
  if (hit) return hit;
  const found = findBaseChains(rs, family, hook, type, iif);
  cache.set(key, found);
  return found;
}

/** The chains attached to a hook: a few, among thousands of regular chains (a policy's rule chains). */
const hookedCache = new WeakMap<Ruleset, NftChain[]>();
function hookedChains(rs: Ruleset): NftChain[] {
  let hooked = hookedCache.get(rs);
  if (!hooked) hookedCache.set(rs, (hooked = [...rs.chains.values()].filter((c) => c.hook !== null)));
  return hooked;
}

function findBaseChains(rs: Ruleset, family: 4 | 6, hook: Hook, type: 'filter' | 'nat', iif?: string): NftChain[] {
  const fams = family === 4 ? ['ip', 'inet'] : ['ip6', 'inet'];
  if (hook === 'ingress') fams.push('netdev');
  const order = (c: NftChain) => (c.family === 'netdev' ? -1e9 : 0) + c.prio;
  return hookedChains(rs)
    // A `route` chain (iptables' mangle OUTPUT) filters like any other.
    .filter((c) => c.hook === hook && (c.type === type || (type === 'filter' && c.type === 'route')) && fams.includes(c.family) && (hook !== 'ingress' || !c.devices || iif === undefined || c.devices.includes(iif)))
    .sort((a, b) => order(a) - order(b));
}

/**
 * The devices of ingress chains, from nft's text listing (`nft list chains`), for nft versions
 * whose JSON leaves them out. Fills in `devices` where it is null.
 */
export function fillDevices(rs: Ruleset, chainsText: string): void {
  let table: string | null = null;
  let chain: string | null = null;
  for (const line of chainsText.split('\n')) {
    const t = /^table (\S+) (\S+) \{/.exec(line);
    if (t) table = `${t[1]} ${t[2]}`;
    const c = /^\s+chain (\S+) \{/.exec(line);
    if (c) chain = c[1]!;
    const d = /hook ingress (?:device "?([^";\s]+)"?|devices = \{ ([^}]*) \})/.exec(line);
    if (d && table && chain) {
      const ch = rs.chains.get(`${table} ${chain}`);
      if (ch && !ch.devices) ch.devices = d[1] ? [d[1]] : d[2]!.split(',').map((x) => x.trim().replace(/^"|"$/g, ''));
    }
  }
}

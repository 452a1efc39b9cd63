// libnftables JSON expressions back to nft's own syntax, for people reading `explain`: the forms
// rulesets use most, and the JSON itself for anything else (never a wrong rendering). Pure.
import { isObj, type Json, type Obj } from './nft-json.js';

const BARE_META = new Set(['iif', 'iifname', 'oif', 'oifname', 'mark']);

function raw(j: Json): string {
  const s = JSON.stringify(j);
  return s.length > 160 ? s.slice(0, 157) + '...' : s;
}

/** A value on the right of a match, or a key on the left. */
export function valueText(v: Json): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return v.startsWith('@') || /^[A-Za-z0-9_.:/-]+$/.test(v) ? v : JSON.stringify(v);
  // A bare list is a set of flags or values (ct state established,related); concatenations are {concat}.
  if (Array.isArray(v)) return v.map(valueText).join(',');
  if (!isObj(v)) return raw(v);
  if (isObj(v.prefix)) return `${String(v.prefix.addr)}/${String(v.prefix.len)}`;
  if (Array.isArray(v.range)) return `${valueText(v.range[0]!)}-${valueText(v.range[1]!)}`;
  if (Array.isArray(v.set)) return `{ ${v.set.map((e) => (Array.isArray(e) && e.length === 2 && isObj(e[1]) ? `${valueText(e[0]!)} : ${exprText(e[1])}` : valueText(e))).join(', ')} }`;
  if (Array.isArray(v.concat)) return v.concat.map(valueText).join(' . ');
  if (isObj(v.payload)) return `${String(v.payload.protocol)} ${String(v.payload.field)}`;
  if (isObj(v.meta)) return BARE_META.has(String(v.meta.key)) ? String(v.meta.key) : `meta ${String(v.meta.key)}`;
  if (isObj(v.ct)) return ['ct', v.ct.dir, v.ct.family, v.ct.key].filter((x) => typeof x === 'string').join(' ');
  if (isObj(v.fib)) return `fib ${(Array.isArray(v.fib.flags) ? v.fib.flags : []).join(' . ')} ${String(v.fib.result)}`;
  return raw(v);
}

/** One expression (match or statement) of a rule. */
export function exprText(e: Json): string {
  if (!isObj(e)) return raw(e);
  const [k, v] = Object.entries(e)[0] ?? [];
  switch (k) {
    case 'match': {
      const m = v as Obj;
      const op = String(m.op ?? '==');
      return `${valueText(m.left!)} ${op === '==' || op === 'in' ? '' : `${op} `}${valueText(m.right!)}`;
    }
    case 'accept': case 'drop': case 'return': case 'continue': case 'counter': case 'notrack':
      return k;
    case 'jump': case 'goto':
      return `${k} ${String((v as Obj).target)}`;
    case 'reject':
      return isObj(v) && v.type !== undefined ? `reject with ${String(v.type)}${v.expr !== undefined ? ` ${String(v.expr)}` : ''}` : 'reject';
    case 'log':
      return isObj(v) && v.prefix !== undefined ? `log prefix ${JSON.stringify(v.prefix)}` : 'log';
    case 'limit':
      return isObj(v) && v.rate !== undefined
        ? `limit rate ${v.inv ? 'over ' : ''}${String(v.rate)}/${String(v.per ?? 'second')}${typeof v.burst === 'number' && v.burst > 0 ? ` burst ${v.burst} packets` : ''}`
        : 'limit';
    case 'set':
      // update @rate_0_smtp_v4 { ip saddr limit rate over 30/minute }: a per-source meter.
      return isObj(v) && typeof v.set === 'string'
        ? `${String(v.op ?? 'add')} ${v.set} { ${valueText(v.elem!)}${Array.isArray(v.stmt) ? v.stmt.map((s) => ` ${exprText(s)}`).join('') : ''} }`
        : raw(e);
    case 'dnat':
      return isObj(v) ? `dnat to ${valueText(v.addr ?? '?')}${v.port !== undefined ? `:${valueText(v.port)}` : ''}` : raw(e);
    case 'redirect':
      return isObj(v) && v.port !== undefined ? `redirect to :${valueText(v.port)}` : 'redirect';
    case 'vmap':
      return isObj(v) ? `${valueText(v.key!)} vmap ${valueText(v.data!)}` : raw(e);
    case 'xt':
      return isObj(v) ? `xt ${String(v.type)} ${String(v.name)}` : raw(e);
    default:
      return raw(e);
  }
}

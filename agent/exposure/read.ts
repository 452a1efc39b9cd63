// Reads the live firewall and interface names (inside --netns when given). I/O edge.
import { exec as defaultExec, inNetns, type Exec } from '../exec.js';
import type { FirewallView } from './exposure.js';
import { parseNftJson } from './nft-json.js';

export async function readFirewall(netns?: string, exec: Exec = defaultExec): Promise<FirewallView> {
  const view: FirewallView = { ruleset: null, error: null, interfaces: [], legacyRules: 0 };
  for (const bin of ['iptables-legacy-save', 'ip6tables-legacy-save']) {
    try {
      const [cmd, args] = inNetns(netns, bin, []);
      const r = await exec(cmd, args);
      if (r.code === 0) view.legacyRules += r.stdout.split('\n').filter((l) => l.startsWith('-A ')).length;
    } catch {
      /* no legacy tools: no legacy rules to worry about */
    }
  }
  try {
    const [cmd, args] = inNetns(netns, 'ip', ['-j', 'link', 'show']);
    const r = await exec(cmd, args);
    if (r.code === 0) view.interfaces = (JSON.parse(r.stdout) as { ifname: string }[]).map((i) => i.ifname).filter((n) => n !== 'lo');
  } catch {
    /* no ip: evaluate for a generic interface */
  }
  try {
    const [cmd, args] = inNetns(netns, 'nft', ['-j', 'list', 'ruleset']);
    const r = await exec(cmd, args);
    if (r.code !== 0) view.error = r.stderr.trim().split('\n')[0] ?? `nft exited ${r.code}`;
    else view.ruleset = parseNftJson(r.stdout || '{"nftables":[]}');
  } catch (err) {
    view.error = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'nft is not installed' : (err as Error).message;
  }
  return view;
}

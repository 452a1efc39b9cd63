// Reads the live firewall, iptables-legacy's rule count and interface names (inside --netns when
// given), all at once. I/O edge.
import { exec as defaultExec, inNetns, type Exec, type ExecResult } from '../exec.js';
import type { FirewallView } from './exposure.js';
import { parseNftJson } from './nft-json.js';
import { findPublished } from './published.js';

export async function readFirewall(netns?: string, exec: Exec = defaultExec): Promise<FirewallView> {
  const run = (cmd: string, args: string[]): Promise<ExecResult | Error> => exec(...inNetns(netns, cmd, args)).catch((err: Error) => err);
  const [links, nft, legacy4, legacy6] = await Promise.all([
    run('ip', ['-j', 'link', 'show']),
    run('nft', ['-j', 'list', 'ruleset']),
    run('iptables-legacy-save', []),
    run('ip6tables-legacy-save', []),
  ]);
  const view: FirewallView = { ruleset: null, error: null, interfaces: [], legacyRules: 0, published: [] };
  // No ip: evaluate for a generic interface. No legacy tools: no legacy rules to worry about.
  if (!(links instanceof Error) && links.code === 0) view.interfaces = (JSON.parse(links.stdout) as { ifname: string }[]).map((i) => i.ifname).filter((n) => n !== 'lo');
  for (const r of [legacy4, legacy6]) {
    if (!(r instanceof Error) && r.code === 0) view.legacyRules += r.stdout.split('\n').filter((l) => l.startsWith('-A ')).length;
  }
  if (nft instanceof Error) view.error = (nft as NodeJS.ErrnoException).code === 'ENOENT' ? 'nft is not installed' : nft.message;
  else if (nft.code !== 0) view.error = nft.stderr.trim().split('\n')[0] ?? `nft exited ${nft.code}`;
  else {
    view.ruleset = parseNftJson(nft.stdout || '{"nftables":[]}');
    view.published = findPublished(view.ruleset);
  }
  return view;
}

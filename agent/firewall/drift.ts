// firewall-drift: whether the rules portwarden applied (applied.json) are still what is loaded.
// The agent asks every cycle (or when the monitor says the ruleset moved); report --html reads
// the live state once for its status and derives the finding from it.
import { hostFinding, type Finding } from '../model.js';
import { liveState, type AppliedRecord, type LiveState } from './apply.js';

/** The finding for what the kernel has now of the rules we applied; null while they are in place. Pure. */
export function driftFinding(applied: AppliedRecord, live: LiveState): Finding | null {
  if (live === 'in place') return null;
  const what = applied.backend === 'nft' ? 'table inet portwarden' : 'the PORTWARDEN-* chains';
  const plural = applied.backend !== 'nft';
  return hostFinding(
    'firewall-drift',
    'high',
    live === 'changed' ? `${what} ${plural ? 'differ' : 'differs'} from what portwarden applied at ${applied.at} (${applied.policy})` : `${what} that portwarden applied at ${applied.at} ${plural ? 'are' : 'is'} missing`,
    'find out who changed the firewall; then run portwarden apply to restore the policy, or portwarden remove if it should go',
    `firewall-drift:${applied.backend}`,
  );
}

/** Our applied rules (none recorded: no finding), compared with what the kernel has now. */
export async function driftOf(applied: AppliedRecord | null, netns: string | undefined): Promise<Finding | null> {
  return applied ? driftFinding(applied, await liveState(applied, netns)) : null;
}

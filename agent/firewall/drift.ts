// firewall-drift: whether the rules portwarden applied (applied.json) are still what is loaded.
// The agent asks every cycle (or when the monitor says the ruleset moved); report asks once.
import { hostFinding, type Finding } from '../model.js';
import { liveState, type StateDir } from './apply.js';

/** Our applied rules, compared with what the kernel has now. */
export async function firewallDrift(state: StateDir, netns: string | undefined): Promise<Finding | null> {
  return driftOf(state.readApplied(), netns);
}

export async function driftOf(applied: ReturnType<StateDir['readApplied']>, netns: string | undefined): Promise<Finding | null> {
  if (!applied) return null;
  const live = await liveState(applied, netns);
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

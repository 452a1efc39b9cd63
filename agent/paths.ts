// Where portwarden looks by default: one place for the paths the commands and the agent share.

/** The operator's policy. */
export const DEFAULT_POLICY_PATH = '/etc/portwarden/policy.yaml';
/** The policy shipped with the package, used by `npm start` (report) when /etc has none. */
export const BUNDLED_POLICY_PATH = new URL('../../rules/default.yaml', import.meta.url).pathname;
/** The agent's configuration. */
export const DEFAULT_CONFIG_PATH = '/etc/portwarden/config.yaml';
/** Backups, the applied-rules record, the agent's state and journal. */
export const DEFAULT_STATE_DIR = '/var/lib/portwarden';
/** In the state dir: the agent's open findings (atomic JSON). */
export const STATE_FILE = 'state.json';
/** In the state dir: opened/resolved/reminder events, one JSON object per line. */
export const JOURNAL = 'events.jsonl';

#!/usr/bin/env bash
# portwarden installer (first version: it only says what it will do).
set -euo pipefail
cat <<'TXT'
portwarden install.sh — not yet implemented. It will:
  1. check for Node.js >= 20 (and say how to get it);
  2. install the built agent with production dependencies under /opt/portwarden (--prefix);
  3. link /usr/local/bin/portwarden;
  4. create /etc/portwarden/{policy.yaml (from `portwarden init`), config.yaml} without overwriting, root-owned;
  5. create /var/lib/portwarden and install a hardened systemd unit, then start it.
Until then, run from a clone:  npm ci && npx portwarden check --policy /etc/portwarden/policy.yaml
TXT
exit 0

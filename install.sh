#!/usr/bin/env bash
# portwarden installer.
#   sudo ./install.sh [--prefix DIR] [--root DIR] [--dry-run] [--uninstall] [--no-start]
# Installs the built agent with its production dependencies under the prefix (default
# /opt/portwarden), links /usr/local/bin/portwarden, creates /etc/portwarden (policy.yaml from
# `portwarden init`, config.yaml; never overwritten) and /var/lib/portwarden, installs a hardened
# systemd unit and starts it where systemd runs. --root installs into a directory tree instead of
# / (for packaging and tests). Running it again is safe.
set -euo pipefail

prefix=/opt/portwarden
root=
dry=0
uninstall=0
start=1

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --root=*) root=${1#*=}; shift ;;
    --dry-run) dry=1; shift ;;
    --uninstall) uninstall=1; shift ;;
    --no-start) start=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$prefix" in /*) ;; *) echo "install.sh: --prefix must be an absolute path" >&2; exit 2 ;; esac
root=${root%/}
if [ -n "$root" ]; then
  mkdir -p "$root"
  root=$(cd "$root" && pwd)
fi

src=$(cd "$(dirname "$0")" && pwd)
dest=$root$prefix
etc=$root/etc/portwarden
state=$root/var/lib/portwarden
unit=$root/etc/systemd/system/portwarden.service
bin=$root/usr/local/bin/portwarden

say() { echo "install.sh: $*"; }
run() {
  echo "+ $*"
  if [ "$dry" = 0 ]; then "$@"; fi
}

if [ "$(id -u)" != 0 ] && [ -z "$root" ]; then
  echo "install.sh: run as root (sudo ./install.sh), or with --root DIR to install into a directory" >&2
  exit 2
fi

systemd_running() { [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

if [ "$uninstall" = 1 ]; then
  if systemd_running; then
    run systemctl disable --now portwarden.service || true
  fi
  run rm -f "$unit" "$bin"
  if systemd_running; then run systemctl daemon-reload; fi
  run rm -rf "$dest"
  say "removed the agent, its link and its unit; kept $etc and $state (remove them yourself if you want)"
  say "portwarden's firewall rules, if any, stay loaded: run 'portwarden remove' before uninstalling to drop them"
  exit 0
fi

# Node.js >= 20
if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "install.sh: portwarden needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))." >&2
  echo "  Debian 13: apt-get install nodejs npm; older releases: https://nodejs.org/en/download (or the NodeSource packages)" >&2
  exit 2
fi
node_bin=$(command -v node)

# The built agent: a clone that has not been built yet gets npm ci (whose prepare step builds it).
if [ ! -f "$src/dist/agent/cli.js" ] || [ ! -d "$src/node_modules" ]; then
  say "building in $src"
  (cd "$src" && run npm ci --no-audit --no-fund)
fi

# Install into a fresh directory beside the old one, then swap: a failed install leaves the old one.
say "installing into $dest"
run mkdir -p "$(dirname "$dest")"
tmp="$dest.new.$$"
run rm -rf "$tmp"
run mkdir -p "$tmp/dist"
run cp -R "$src/dist/agent" "$tmp/dist/agent"
run cp -R "$src/rules" "$src/package.json" "$src/package-lock.json" "$src/README.md" "$tmp/"
run cp -R "$src/node_modules" "$tmp/node_modules"
(cd "$tmp" 2>/dev/null && run npm prune --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null) || [ "$dry" = 1 ]
run rm -rf "$dest.old"
if [ -e "$dest" ]; then run mv "$dest" "$dest.old"; fi
run mv "$tmp" "$dest"
run rm -rf "$dest.old"
run chmod 0755 "$dest"
run mkdir -p "$(dirname "$bin")"
run ln -sfn "$prefix/dist/agent/cli.js" "$bin"
run chmod 0755 "$dest/dist/agent/cli.js"

# Configuration: created once, never overwritten, root-owned and not writable by others
# (portwarden refuses group/other-writable files when it runs as root).
run mkdir -p "$etc"
run chmod 0755 "$etc"
if [ -e "$etc/policy.yaml" ]; then
  say "keeping $etc/policy.yaml"
else
  run "$node_bin" "$dest/dist/agent/cli.js" init --output "$etc/policy.yaml"
  run chmod 0644 "$etc/policy.yaml"
fi
if [ -e "$etc/config.yaml" ]; then
  say "keeping $etc/config.yaml"
elif [ "$dry" = 1 ]; then
  echo "+ write $etc/config.yaml"
else
  cat > "$etc/config.yaml" <<'YAML'
# portwarden agent configuration (schema: /opt/portwarden/rules/config.schema.json).
policy: /etc/portwarden/policy.yaml
state_dir: /var/lib/portwarden
schedule: "*/30 * * * * *"   # node-cron syntax; a seconds field may come first
settle: 2                    # scans a finding must be seen (or gone) before it opens (or resolves)
repeat: 24h                  # remind about findings still open; 0 = never
sinks: []
# sinks:
#   - type: webhook
#     url: https://hooks.example.com/portwarden
#     secret_file: /etc/portwarden/webhook.secret   # whsec_<base64>
#     format: standard                              # standard | slack
#   - type: email
#     host: 127.0.0.1
#     port: 25
#     tls: starttls                                 # starttls | implicit | none
#     from: portwarden@example.com
#     to: [ops@example.com]
#   - type: prometheus
#     textfile: /var/lib/node_exporter/textfile_collector/portwarden.prom
#     listen: 127.0.0.1:9842
YAML
  chmod 0600 "$etc/config.yaml"
fi
if [ -z "$root" ] || [ "$(id -u)" = 0 ]; then
  for f in "$etc" "$etc/policy.yaml" "$etc/config.yaml"; do
    if [ -e "$f" ] || [ "$dry" = 1 ]; then run chown root:root "$f"; fi
  done
fi
run mkdir -p "$state"
run chmod 0700 "$state"

# A hardened unit, after node_exporter's: root for /proc attribution, but only the capabilities
# portwarden uses, a read-only system and a private everything else.
say "installing $unit"
run mkdir -p "$(dirname "$unit")"
if [ "$dry" = 0 ]; then
  cat > "$unit" <<UNIT
[Unit]
Description=portwarden: listening ports against policy, drift alerts
Documentation=file://$prefix/README.md
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=$node_bin $prefix/dist/agent/cli.js watch --config /etc/portwarden/config.yaml
ExecReload=/bin/kill -HUP \$MAINPID
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure
RestartSec=5
User=root
# CAP_NET_ADMIN: read (and for drift, compare) nftables/iptables; CAP_SYS_PTRACE and
# CAP_DAC_READ_SEARCH: read /proc/PID/fd of every process to attribute sockets;
# CAP_SYS_ADMIN: enter a network namespace when config.netns is set.
CapabilityBoundingSet=CAP_NET_ADMIN CAP_SYS_PTRACE CAP_DAC_READ_SEARCH CAP_SYS_ADMIN
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=/var/lib/portwarden
ReadWritePaths=-/var/lib/node_exporter/textfile_collector
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=net
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
# MemoryDenyWriteExecute is left off: V8's JIT needs writable+executable memory.
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
UMask=0077

[Install]
WantedBy=multi-user.target
UNIT
  chmod 0644 "$unit"
fi

if [ "$start" = 1 ] && systemd_running; then
  run systemctl daemon-reload
  run systemctl enable --now portwarden.service
  say "started portwarden.service (journalctl -u portwarden -f)"
elif [ "$start" = 1 ]; then
  say "systemd is not running here (or --root was given): start it with: portwarden watch --config /etc/portwarden/config.yaml"
fi
say "done. Review /etc/portwarden/policy.yaml, then run: portwarden check"

#!/usr/bin/env bash
# portwarden installer.
#   sudo ./install.sh [--prefix DIR] [--state-dir DIR] [--root DIR] [--dry-run] [--no-start]
#   sudo ./install.sh --uninstall [--purge] [--prefix DIR] [--root DIR] [--dry-run]
# Installs the built agent with its production dependencies into PREFIX/lib/portwarden, a
# directory only portwarden uses (default prefix /usr/local), links PREFIX/bin/portwarden, creates
# /etc/portwarden (policy.yaml, config.yaml: never overwritten), the state directory (--state-dir,
# else the config's state_dir, else /var/lib/portwarden) and a hardened systemd unit, and starts it
# where systemd runs. Every path it creates goes, with its sha256, into a manifest (the agent's in
# PREFIX/lib/portwarden, configuration and state in /etc/portwarden); --uninstall removes only what
# is listed and unchanged, configuration and state only with --purge (an edited one never).
# --root installs into a directory tree instead of / (packaging, tests); --dry-run prints each
# step and changes nothing. Running it again is safe.
set -euo pipefail

prefix=/usr/local
state_opt=
root=
dry=0
uninstall=0
purge=0
start=1

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
say() { echo "install.sh: $*"; }
die() {
  local code=$1
  shift
  echo "install.sh: $*" >&2
  exit "$code"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --state-dir) state_opt=${2:?--state-dir needs a directory}; shift 2 ;;
    --state-dir=*) state_opt=${1#*=}; shift ;;
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --root=*) root=${1#*=}; shift ;;
    --dry-run) dry=1; shift ;;
    --uninstall) uninstall=1; shift ;;
    --purge) purge=1; shift ;;
    --no-start) start=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

# A path the manifest can hold: absolute, one line, no '.' or '..' parts, no '//'.
check_path() {
  case "$2" in /*) ;; *) die 2 "$1 must be an absolute path: $2" ;; esac
  case "$2" in
    *$'\n'*|*//*|*/./*|*/../*|*/.|*/..) die 2 "$1 must be a plain absolute path (no //, . or ..): $2" ;;
  esac
}
# ...and one the unit can name as it is (no spaces, no %specifiers).
check_unit_path() {
  check_path "$1" "$2"
  case "$2" in *[[:space:]%\\\"\']*) die 2 "$1 must not contain spaces, %, quotes or backslashes: $2" ;; esac
}
check_unit_path --prefix "$prefix"
prefix=${prefix%/}
if [ -n "$state_opt" ]; then check_unit_path --state-dir "$state_opt"; state_opt=${state_opt%/}; fi
if [ "$purge" = 1 ] && [ "$uninstall" = 0 ]; then die 2 "--purge goes with --uninstall"; fi
if [ -n "$root" ]; then
  root=$(realpath -m -- "$root") # absolute, without creating anything (--dry-run)
  if [ "$root" = / ]; then root=; fi
fi

src=$(cd "$(dirname "$0")" && pwd)
# Paths as the installed system sees them (the unit and the link name these), and on disk ($root...).
lib_path=$prefix/lib/portwarden
bin_path=$prefix/bin/portwarden
etc_path=/etc/portwarden
unit_path=/etc/systemd/system/portwarden.service
lib=$root$lib_path
bin=$root$bin_path
etc=$root$etc_path
unit=$root$unit_path
manifest=$lib/.install-manifest
conf_manifest=$etc/.install-manifest

run() {
  echo "+ $*"
  if [ "$dry" = 0 ]; then "$@"; fi
}
# write_file PATH MODE < text: a temp file beside PATH, fsync'd, renamed over it.
write_file() {
  echo "+ write $1 (mode $2)"
  if [ "$dry" = 1 ]; then cat >/dev/null; return; fi
  local tmp
  tmp=$(mktemp "$(dirname "$1")/.$(basename "$1").XXXXXX")
  cat >"$tmp"
  chmod "$2" "$tmp"
  sync "$tmp"
  mv -fT "$tmp" "$1"
}
file_hash() { sha256sum <"$1" | cut -c1-64; }
link_hash() { readlink -- "$1" | tr -d '\n' | sha256sum | cut -c1-64; }

if [ "$(id -u)" != 0 ] && [ -z "$root" ]; then
  die 2 "run as root (sudo ./install.sh), or with --root DIR to install into a directory"
fi

systemd_running() { [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

# --- Removal by manifest -----------------------------------------------------------------------
# Two manifests list every path the install created: PREFIX/lib/portwarden/.install-manifest the
# agent, its link, its unit (removed by --uninstall); /etc/portwarden/.install-manifest the
# configuration and the state directory (removed only by --uninstall --purge). Lines are
# "TYPE HASH PATH", PATH as the installed system sees it:
#   d - DIR    a directory the install created (removed when empty)
#   f SHA FILE a file (removed while its content still has that sha256)
#   l SHA LINK a symlink (removed while its target, hashed, is unchanged)
#   c SHA FILE a configuration file (removed while unedited, i.e. still that sha256)
#   s - DIR    the state directory the install created (removed with everything in it)

# remove_listed MANIFEST [FROM TO]: removes what MANIFEST lists; with FROM and TO, only the entries
# under FROM, found under TO instead (the previous agent directory, moved aside by an upgrade).
remove_listed() {
  local list=$1 from=${2:-} to=${3:-} type hash path p line
  local -a files=() dirs=()
  local checklist=
  while IFS=' ' read -r type hash path; do
    case "$type" in '#'*|'') continue ;; esac
    if [ -n "$from" ]; then
      case "$path" in "$from"|"$from"/*) p=$to${path#"$from"} ;; *) continue ;; esac
    else
      p=$root$path
    fi
    case "$type" in
      f|c) checklist+="$hash  $p"$'\n' ;;
      l) if [ -L "$p" ]; then
           if [ "$(link_hash "$p")" = "$hash" ]; then files+=("$p"); else say "keeping $p: changed since install"; fi
         fi ;;
      d) dirs+=("$p") ;;
      s) case "$path" in /?*/?*) ;; *) die 3 "$list: refusing to remove state directory '$path'" ;; esac
         if [ -e "$p" ] || [ -L "$p" ]; then run rm -rf "$p"; fi ;;
      *) die 3 "$list: unknown entry type '$type' for $path" ;;
    esac
  done <"$list"
  if [ -n "$checklist" ]; then
    while IFS= read -r line; do
      case "$line" in
        *': OK') files+=("${line%: OK}") ;;
        *': FAILED') say "keeping ${line%: FAILED}: changed since install" ;;
        *) ;; # "FAILED open or read": already gone
      esac
    done < <(printf '%s' "$checklist" | LC_ALL=C sha256sum --check 2>/dev/null || true)
  fi
  local -a empty=()
  for p in "${dirs[@]}"; do if [ -d "$p" ] && [ ! -L "$p" ]; then empty+=("$p"); fi; done
  if [ "${#empty[@]}" -gt 0 ]; then # children before their parents
    mapfile -t empty < <(printf '%s\n' "${empty[@]}" | LC_ALL=C sort -r)
  fi
  # Each step on its own line; an upgrade's removal of the previous version is summed up.
  if [ -n "$from" ]; then
    echo "+ rm -f (${#files[@]} unchanged files and links of the previous version under $to)"
    echo "+ rmdir --ignore-fail-on-non-empty (${#empty[@]} directories under $to)"
  else
    if [ "${#files[@]}" -gt 0 ]; then printf '+ rm -f %s\n' "${files[@]}"; fi
    if [ "${#empty[@]}" -gt 0 ]; then printf '+ rmdir --ignore-fail-on-non-empty %s\n' "${empty[@]}"; fi
  fi
  echo "+ rm -f $list"
  if [ "$dry" = 1 ]; then return; fi
  if [ "${#files[@]}" -gt 0 ]; then printf '%s\0' "${files[@]}" | xargs -0 rm -f --; fi
  rm -f "$list"
  if [ "${#empty[@]}" -gt 0 ]; then rmdir --ignore-fail-on-non-empty -- "${empty[@]}"; fi
  for p in "${empty[@]}"; do if [ -d "$p" ]; then say "keeping $p: not empty"; fi; done
}

is_list() { [ -f "$1" ] && [ ! -L "$1" ]; }
if [ "$uninstall" = 1 ]; then
  if is_list "$manifest"; then
    if systemd_running; then run systemctl disable --now portwarden.service || true; fi
    remove_listed "$manifest"
    if systemd_running; then run systemctl daemon-reload; fi
    say "removed what $manifest listed and was unchanged"
  else
    say "nothing to remove: no install manifest at $manifest (wrong --prefix or --root?)"
  fi
  if ! is_list "$conf_manifest"; then :
  elif [ "$purge" = 1 ]; then
    remove_listed "$conf_manifest"
    say "removed what $conf_manifest listed and was unedited"
  else
    say "kept the configuration and state ($conf_manifest lists them): --uninstall --purge removes them, except files edited since"
  fi
  say "portwarden's firewall rules, if any, stay loaded: run 'portwarden remove' before uninstalling to drop them"
  exit 0
fi

# --- Install ------------------------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "install.sh: portwarden needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))." >&2
  echo "  Debian 13: apt-get install nodejs npm; older releases: https://nodejs.org/en/download (or the NodeSource packages)" >&2
  exit 2
fi
node_bin=$(command -v node)
# The portwarden command's shebang is `/usr/bin/env -S …` (GNU coreutils 8.30 or newer).
if ! /usr/bin/env -S true >/dev/null 2>&1; then
  echo "install.sh: the portwarden command needs /usr/bin/env -S (GNU coreutils 8.30 or newer)." >&2
  exit 2
fi

# The built agent: a clone that has not been built yet gets npm ci (whose prepare step builds it).
if [ ! -f "$src/dist/agent/cli.js" ] || [ ! -d "$src/node_modules" ]; then
  say "building in $src"
  (cd "$src" && run npm ci --no-audit --no-fund)
fi

# Refuse to replace what is not ours, before changing anything.
old_manifest=
if [ -e "$lib" ] || [ -L "$lib" ]; then
  if [ -L "$lib" ] || [ ! -d "$lib" ] || [ ! -f "$manifest" ]; then
    die 3 "$lib exists and has no install manifest: install.sh did not install it; move it away or choose another --prefix"
  fi
  old_manifest=$manifest
fi
if [ -e "$bin" ] || [ -L "$bin" ]; then
  case "$(readlink -- "$bin" || true)" in
    "$lib_path/dist/agent/cli.js") ;;
    */dist/agent/cli.js) say "replacing $bin -> $(readlink -- "$bin") (an earlier install; remove its directory yourself)" ;;
    *) die 3 "$bin exists and is not portwarden's link; move it away or choose another --prefix" ;;
  esac
fi

# The state directory: --state-dir, or state_dir of the config already there, or the default.
state_dir=/var/lib/portwarden
netns=
if [ -f "$etc/config.yaml" ]; then
  # The agent's own loader (schema-validated); the text is passed so the file's owner does not matter here.
  cfg=$("$node_bin" --input-type=module -e '
    const [mod, file] = process.argv.slice(1);
    const { readFileSync } = await import("node:fs");
    const { loadConfig } = await import(mod);
    try {
      const c = loadConfig(file, readFileSync(file, "utf8"));
      process.stdout.write(`${c.stateDir}\n${c.netns ?? ""}\n`);
    } catch (err) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }' "$src/dist/agent/daemon/config.js" "$etc/config.yaml") || exit 2
  state_dir=$(printf '%s\n' "$cfg" | sed -n 1p)
  netns=$(printf '%s\n' "$cfg" | sed -n 2p)
  check_unit_path "state_dir in $etc/config.yaml" "$state_dir"
  if [ -n "$state_opt" ] && [ "$state_opt" != "${state_dir%/}" ]; then
    die 2 "--state-dir $state_opt differs from state_dir $state_dir in $etc/config.yaml: change one of them"
  fi
elif [ -n "$state_opt" ]; then
  state_dir=$state_opt
fi
state_dir=${state_dir%/}

# What this run creates, for the manifests: the agent's (entries) or the configuration's (conf_entries).
entries=()
conf_entries=()
section=entries
record() { # TYPE PATH (as the installed system sees it)
  local hash=-
  local -n into=$section
  if [ "$dry" = 0 ]; then
    case "$1" in f|c) hash=$(file_hash "$root$2") ;; l) hash=$(link_hash "$root$2") ;; esac
  fi
  into+=("$1 $hash $2")
}
# mkdirs PATH: creates PATH and its missing parents, recording each one created.
mkdirs() {
  local path=$1 missing=()
  while [ -n "$path" ] && [ ! -e "$root$path" ] && [ ! -L "$root$path" ]; do
    missing=("$path" "${missing[@]}")
    path=${path%/*}
  done
  for path in "${missing[@]}"; do
    run mkdir "$root$path"
    record d "$path"
  done
}

if [ -n "$root" ] && [ ! -d "$root" ]; then run mkdir -p "$root"; fi

# The agent directory: staged beside the old one, then swapped in; a failed install leaves the old one.
say "installing into $lib"
mkdirs "${lib_path%/*}"
stage=${lib%/*}/.portwarden.new.$$
aside=${lib%/*}/.portwarden.old.$$
cleanup() { if [ "$dry" = 0 ] && [ -e "$stage" ]; then rm -rf "$stage"; fi; }
trap cleanup EXIT
run mkdir -p "$stage/dist"
run cp -R "$src/dist/agent" "$stage/dist/agent"
run cp -R "$src/rules" "$src/package.json" "$src/package-lock.json" "$src/README.md" "$stage/"
# Production dependencies only: the lockfile's packages that are not dev-only (nested ones come
# with their parent); no npm, no network.
pkgs=$("$node_bin" -e '
  const lock = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (!lock.packages) { console.error(`${process.argv[1]}: no "packages" (a lockfile of npm >= 7 is needed)`); process.exit(3); }
  const prod = Object.keys(lock.packages).filter((k) => k && !lock.packages[k].dev);
  for (const k of prod) if (!prod.some((o) => k.startsWith(`${o}/`))) console.log(k);
' "$src/package-lock.json") || die 3 "cannot list the production dependencies in $src/package-lock.json"
run mkdir "$stage/node_modules"
while IFS= read -r pkg; do
  case "$pkg" in node_modules/@*/*) if [ ! -d "$stage/${pkg%/*}" ]; then run mkdir "$stage/${pkg%/*}"; fi ;; esac
  run cp -R "$src/$pkg" "$stage/$pkg"
done <<<"$pkgs"
run chmod 0755 "$stage" "$stage/dist/agent/cli.js"

# Manifest lines for the agent's tree in DIR, named by where it lives (lib_path); not the manifest.
tree_entries() { # DIR
  local dir=$1 hash name line
  if [ -n "$(find "$dir" \( -name $'*\n*' -o -name '*\\*' \) -print -quit)" ]; then
    die 3 "$dir: a file name with a newline or backslash cannot go into the manifest"
  fi
  find "$dir" -type d -printf '%P\n' | while IFS= read -r name; do printf 'd - %s\n' "$lib_path${name:+/$name}"; done
  (cd "$dir" && find . -type f ! -path ./.install-manifest -exec sha256sum -- {} +) | while IFS= read -r line; do
    hash=${line%% *}
    name=${line#*  ./}
    printf 'f %s %s\n' "$hash" "$lib_path/$name"
  done
  (cd "$dir" && find . -type l -printf '%P\n') | while IFS= read -r name; do
    printf 'l %s %s\n' "$(link_hash "$dir/$name")" "$lib_path/$name"
  done
}
# write_list FILE MODE OLD TREE ARRAY: a manifest of the agent's TREE (if given), this run's
# entries (ARRAY), and the entries of the earlier manifest OLD that this run did not make again.
write_list() {
  local file=$1 mode=$2 old=$3 tree=$4 text
  local -n new=$5
  text=$(
    echo "# portwarden install manifest: TYPE SHA256 PATH (see install.sh)"
    if [ -n "$tree" ] && [ "$dry" = 0 ]; then tree_entries "$tree"; fi
    if [ "${#new[@]}" -gt 0 ]; then printf '%s\n' "${new[@]}"; fi
    if [ -n "$old" ] && is_list "$old"; then
      local -A seen=()
      local e type hash path
      for e in "${new[@]}"; do seen[${e#* * }]=1; done
      while IFS=' ' read -r type hash path; do
        case "$type" in '#'*|'') continue ;; esac
        case "$path" in "$lib_path"|"$lib_path"/*) continue ;; esac
        if [ -z "${seen[$path]:-}" ]; then printf '%s %s %s\n' "$type" "$hash" "$path"; fi
      done <"$old"
    fi
  )
  printf '%s\n' "$text" | write_file "$file" "$mode"
}
write_list "$stage/.install-manifest" 0644 "$old_manifest" "$stage" entries
if [ -n "$old_manifest" ]; then run mv -T "$lib" "$aside"; fi
run mv -T "$stage" "$lib"
if [ -n "$old_manifest" ]; then
  # The previous version: only the files it installed, and only while unchanged (a dry run lists
  # them where they still are). The new manifest carries the rest of the old one's entries.
  if [ "$dry" = 0 ]; then
    remove_listed "$aside/.install-manifest" "$lib_path" "$aside"
    old_manifest=$lib/.install-manifest
conf_manifest=$etc/.install-manifest
  else
    remove_listed "$manifest" "$lib_path" "$lib"
  fi
fi
mkdirs "${bin_path%/*}"
run ln -sfn "$lib_path/dist/agent/cli.js" "$bin"
record l "$bin_path"

# Configuration: created once, never overwritten, root-owned and not writable by others
# (portwarden refuses group/other-writable files when it runs as root). Listed in its own manifest.
section=conf_entries
mkdirs "$etc_path"
run chmod 0755 "$etc"
if [ -e "$etc/policy.yaml" ]; then
  say "keeping $etc/policy.yaml"
elif [ -n "$root" ]; then
  # Another system's tree: this machine's listeners say nothing about it.
  say "policy.yaml: the bundled default policy (rules/default.yaml), not this machine's listeners; on the target run: portwarden init --output $etc_path/policy.yaml --force"
  run cp "$src/rules/default.yaml" "$etc/policy.yaml"
  run chmod 0644 "$etc/policy.yaml"
  record c "$etc_path/policy.yaml"
else
  say "policy.yaml: a starter policy from what listens on this machine now (portwarden init)"
  run "$node_bin" "$lib/dist/agent/cli.js" init --output "$etc/policy.yaml"
  run chmod 0644 "$etc/policy.yaml"
  record c "$etc_path/policy.yaml"
fi
if [ -e "$etc/config.yaml" ]; then
  say "keeping $etc/config.yaml"
else
  write_file "$etc/config.yaml" 0600 <<YAML
# portwarden agent configuration (schema: $lib_path/rules/config.schema.json).
policy: /etc/portwarden/policy.yaml
state_dir: $state_dir
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
  record c "$etc_path/config.yaml"
fi
if [ -z "$root" ] || [ "$(id -u)" = 0 ]; then
  for f in "$etc" "$etc/policy.yaml" "$etc/config.yaml"; do
    if [ -e "$f" ] || [ "$dry" = 1 ]; then run chown root:root "$f"; fi
  done
fi
if [ ! -e "$root$state_dir" ] && [ ! -L "$root$state_dir" ]; then
  mkdirs "${state_dir%/*}"
  run mkdir -p "$root$state_dir"
  record s "$state_dir"
fi
run chmod 0700 "$root$state_dir"
section=entries

# A hardened unit, after node_exporter's: root for the /proc walk, only the capabilities portwarden
# uses (each measured: see the comments in the unit), a read-only system and a private everything else.
caps="CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_PTRACE CAP_DAC_READ_SEARCH"
namespaces=yes
netns_note="#   (CAP_SYS_ADMIN and a network namespace only when config.netns is set: re-run install.sh then)"
if [ -n "$netns" ]; then
  caps="$caps CAP_SYS_ADMIN"
  namespaces=net
  netns_note="#   CAP_SYS_ADMIN       nsenter --net=/run/netns/$netns (setns), as config.netns asks"
fi
render_unit() {
  cat <<UNIT
[Unit]
Description=portwarden: listening ports against policy, drift alerts
Documentation=file://$lib_path/README.md
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=$node_bin --max-semi-space-size=1 $lib_path/dist/agent/cli.js watch --config /etc/portwarden/config.yaml
ExecReload=/bin/kill -HUP \$MAINPID
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure
RestartSec=5
# Root: the /proc walk covers every user's processes, and the config and state are root's alone.
User=root
# Each capability and why (without the two /proc ones, a socket's program shows as "?"):
#   CAP_NET_ADMIN       nft list ruleset: drift of our table, and each port's exposure
#   CAP_NET_RAW         iptables-legacy-save opens a raw socket to read legacy tables (mixed-firewall)
#   CAP_SYS_PTRACE      readlink /proc/PID/fd/* of other users' processes: who owns each socket
#   CAP_DAC_READ_SEARCH open those /proc/PID/fd directories (mode 0500, owned by that user)
$netns_note
CapabilityBoundingSet=$caps
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=$state_dir
ReadWritePaths=-/var/lib/node_exporter/textfile_collector
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
# Hides the processes portwarden could not ptrace: with CAP_SYS_PTRACE that is none, so the /proc
# walk still sees them all. (ProcSubset=pid would hide /proc/net, which the agent reads.)
ProtectProc=ptraceable
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
# AF_NETLINK: nft and ss; AF_INET/AF_INET6: webhook, e-mail, Prometheus; AF_UNIX: pipes to child processes.
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=$namespaces
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
# MemoryDenyWriteExecute is left off: V8's JIT needs writable+executable memory.
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
UMask=0077

[Install]
WantedBy=multi-user.target
UNIT
}
say "installing $unit (ReadWritePaths=$state_dir)"
mkdirs "${unit_path%/*}"
if [ -e "$unit" ] || [ -L "$unit" ]; then
  # Ours and unchanged is replaced; anything else (an older installer's, or edited) is kept aside.
  if [ -z "$old_manifest" ] || ! grep -qxF "f $(file_hash "$unit") $unit_path" "$old_manifest"; then
    keep=$unit.orig.$(date +%Y%m%d%H%M%S)
    say "keeping the existing unit as $keep (use drop-ins for local changes: systemctl edit portwarden)"
    run mv -T "$unit" "$keep"
  fi
fi
render_unit | write_file "$unit" 0644
record f "$unit_path"
write_list "$manifest" 0644 "$old_manifest" "$lib" entries
if [ "${#conf_entries[@]}" -gt 0 ]; then write_list "$conf_manifest" 0600 "$conf_manifest" "" conf_entries; fi

if [ "$start" = 1 ] && systemd_running; then
  run systemctl daemon-reload
  run systemctl enable --now portwarden.service
  say "started portwarden.service (journalctl -u portwarden -f)"
elif [ "$start" = 1 ]; then
  say "systemd is not running here (or --root was given): start it with: portwarden watch --config /etc/portwarden/config.yaml"
fi
say "done. Review /etc/portwarden/policy.yaml, then run: portwarden check"

#!/usr/bin/env bash
# Checks the Debian packages end to end, as root, on this machine (scripts/test.sh runs it after
# the tests): builds poros-hub and poros-agent from the binaries the tests built
# (packaging/build-debs.sh --no-build --profile dev: no second, release build), inspects them
# (dpkg-deb -I/-c), installs them, checks the users, owners and modes, verifies the installed
# systemd units (systemd-analyze verify, and the offline security review), then runs the
# installed binaries against each other: `poros-hub init` and `poros-agent enroll` as root with
# the packaged defaults (/var/lib, /etc), the hub and an agent started as their service users
# with their units' ExecStart, User= and UMask=, a second agent enrolled as poros-agent in a
# directory of its own, a document sent through the first agent's local API and received by
# the second, and its signed receipt back. systemd is not PID 1 here (containers, CI), so the
# services are started by hand from their units' lines, not by systemctl; the sandboxing
# directives are verified, not exercised. Then the packages are purged (what purge keeps is
# checked) and the users and state removed: the machine is left as it was, on failure too.
# Any mismatch fails the script with what was expected and what was found.
# Usage (root): scripts/package-check.sh. Installs cargo-deb and help2man if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

CARGO_DEB_VERSION=3.8.0
HUB_CODE=000.00.00.H31 # the packaged agent (/var/lib/poros-agent)
PEER_CODE=000.00.00.H32 # a second agent, in a directory of its own

say() { echo "package-check: $*"; }
fail() {
    echo "package-check: FAILED: $*" >&2
    exit 1
}
# expect WHAT EXPECTED ACTUAL
expect() { [ "$2" = "$3" ] || fail "$1: expected '$2', found '$3'"; }
mode_owner() { stat -c '%a %U %G' "$1"; }

[ "$(id -u)" -eq 0 ] || fail "run as root: it installs packages and creates system users"

# A previous run stopped before its cleanup leaves its marker; anything else of the same names
# is an administrator's, and is not touched.
MARKER=/etc/poros-hub/.package-check
leftover() {
    # Status abbreviation: its second letter is n for a package not installed (nor its conffiles).
    dpkg-query -W -f='${db:Status-Abbrev}\n' poros-hub poros-agent 2>/dev/null | grep -q '^.[^n]' ||
        getent passwd poros-hub >/dev/null || getent passwd poros-agent >/dev/null ||
        [ -e /var/lib/poros-hub ] || [ -e /var/lib/poros-agent ] ||
        [ -e /etc/poros-hub ] || [ -e /etc/poros-agent ]
}

# Everything an install and a run leave: packages, users, state, configuration.
remove_all() {
    apt-get purge -y -qq poros-hub poros-agent >/dev/null 2>&1 || true
    rm -rf /var/lib/poros-hub /var/lib/poros-agent /etc/poros-hub /etc/poros-agent
    local u
    for u in poros-hub poros-agent; do
        if getent passwd "$u" >/dev/null; then deluser --quiet --system "$u" >/dev/null 2>&1 || true; fi
        if getent group "$u" >/dev/null; then delgroup --quiet --system "$u" >/dev/null 2>&1 || true; fi
    done
}
W=
pids=()
cleanup() {
    local status=$?
    local pid log
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if ((status != 0)); then
        for log in "$W"/*.log; do
            [ -e "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
        done
    fi
    remove_all
    rm -rf "$W"
    exit "$status"
}
if leftover; then
    if [ -e "$MARKER" ]; then
        say "cleaning up after an interrupted run ($MARKER)"
        remove_all
    else
        fail "poros-hub or poros-agent (package, user, /var/lib or /etc directory) is already on this machine; this check installs and purges them, so it runs only where they are not"
    fi
fi

# --- tools ---------------------------------------------------------------------------------
t0=$(date +%s)
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    say "installing cargo-deb $CARGO_DEB_VERSION"
    cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
need=()
command -v help2man >/dev/null 2>&1 || need+=(help2man)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v curl >/dev/null 2>&1 || need+=(curl)
if ((${#need[@]})); then
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
say "tools ready in $(($(date +%s) - t0)) s"

# --- build and inspect ---------------------------------------------------------------------
t0=$(date +%s)
# The binaries as the end-to-end tests build them (after `cargo test` nothing is rebuilt).
cargo test --locked --quiet --no-run --test openapi
debs=${CARGO_TARGET_DIR:-target}/debian
rm -f "$debs"/poros-hub_*.deb "$debs"/poros-agent_*.deb
packaging/build-debs.sh --no-build --profile dev --fast >/dev/null
HUB_DEB=$(realpath "$debs"/poros-hub_*.deb)
AGENT_DEB=$(realpath "$debs"/poros-agent_*.deb)
say "built $HUB_DEB and $AGENT_DEB in $(($(date +%s) - t0)) s"

W=$(mktemp -d /tmp/poros-package-check.XXXXXX)
trap cleanup EXIT
chmod 0755 "$W"

inspect() { # inspect DEB NAME OTHER: what DEB holds, and not OTHER's binary
    local deb=$1 name=$2 other=$3
    local info contents
    info=$(dpkg-deb -I "$deb")
    contents=$(dpkg-deb -c "$deb")
    expect "$deb: Package" "$name" "$(dpkg-deb -f "$deb" Package)"
    grep -q '^ Depends:.*adduser' <<<"$info" || fail "$deb: Depends lacks adduser: $(dpkg-deb -f "$deb" Depends)"
    for s in postinst prerm postrm; do
        grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\* +$s " <<<"$info" || fail "$deb: no executable $s maintainer script"
    done
    expect "$deb: conffiles" "/etc/$name/README" "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)"
    local want
    for want in "-rwxr-xr-x 0/0 .* ./usr/bin/$name\$" \
        "-rw-r--r-- 0/0 .* ./usr/lib/systemd/system/$name.service\$" \
        "-rw-r--r-- 0/0 .* ./etc/$name/README\$" \
        "-rw-r--r-- 0/0 .* ./usr/share/man/man1/$name.1.gz\$" \
        "-rw-r--r-- 0/0 .* ./usr/share/doc/$name/$name.help.txt\$" \
        "-rw-r--r-- 0/0 .* ./usr/share/doc/$name/install.md\$"; do
        grep -qE -- "^$want" <<<"$contents" || fail "$deb: no entry matching '$want' in:
$contents"
    done
    if grep -q "/$other\$" <<<"$contents"; then fail "$deb ships $other's binary"; fi
}
inspect "$HUB_DEB" poros-hub poros-agent
inspect "$AGENT_DEB" poros-agent poros-hub
say "package contents, control fields and maintainer scripts as expected"

# contains TEXT FILE: TEXT (several lines) is in FILE, verbatim.
contains() { python3 -c 'import sys; sys.exit(sys.argv[1] not in open(sys.argv[2]).read())' "$@"; }

# --- install -------------------------------------------------------------------------------
t0=$(date +%s)
apt-get install -y -qq --no-install-recommends "$HUB_DEB" "$AGENT_DEB" >"$W/apt.log" 2>&1 ||
    fail "apt-get install of the packages failed: $(tail -n 5 "$W/apt.log")"
touch "$MARKER"
say "installed in $(($(date +%s) - t0)) s"

for name in poros-hub poros-agent; do
    pw=$(getent passwd "$name") || fail "no user $name after install"
    IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
    ((uid < 1000)) || fail "$name is not a system user (uid $uid)"
    expect "$name's group" "$name" "$(getent group "$gid" | cut -d: -f1)"
    expect "$name's home" "/var/lib/$name" "$home"
    expect "$name's shell" /usr/sbin/nologin "$shell"
    expect "/usr/bin/$name" "755 root root" "$(mode_owner "/usr/bin/$name")"
    expect "/var/lib/$name" "750 $name $name" "$(mode_owner "/var/lib/$name")"
    expect "/etc/$name/README" "644 root root" "$(mode_owner "/etc/$name/README")"
    # The shipped --help text and man page are the installed binary's.
    contains "$("/usr/bin/$name" --help)" "/usr/share/doc/$name/$name.help.txt" ||
        fail "/usr/share/doc/$name/$name.help.txt does not hold /usr/bin/$name --help"
    contains "$("/usr/bin/$name" run --help)" "/usr/share/doc/$name/$name.help.txt" ||
        fail "/usr/share/doc/$name/$name.help.txt does not hold /usr/bin/$name run --help"
    zcat "/usr/share/man/man1/$name.1.gz" >"$W/$name.1"
    grep -q "^\.TH ${name^^} \"1\"" "$W/$name.1" || fail "/usr/share/man/man1/$name.1.gz is not $name's man page"
    for sub in $("/usr/bin/$name" --help | awk '/^Commands:/ { c = 1; next } c && /^$/ { exit } c && /^  [a-z]/ { print $1 }'); do
        grep -qx "$sub" "$W/$name.1" || fail "/usr/share/man/man1/$name.1.gz does not list the subcommand $sub"
    done
    unit=/usr/lib/systemd/system/$name.service
    expect "$unit" "644 root root" "$(mode_owner "$unit")"
    systemd-analyze verify "$unit" >"$W/verify-$name.log" 2>&1 ||
        fail "systemd-analyze verify $unit: $(cat "$W/verify-$name.log")"
    # Anything verify reports about the unit is a mismatch, even where it exits 0.
    if grep -q "$name.service" "$W/verify-$name.log"; then
        fail "systemd-analyze verify $unit: $(cat "$W/verify-$name.log")"
    fi
    for line in Type=simple "User=$name" "Group=$name" Restart=on-failure UMask=0077 \
        NoNewPrivileges=yes ProtectSystem=strict "ReadWritePaths=/var/lib/$name" \
        PrivateTmp=yes ProtectHome=yes ProtectKernelTunables=yes ProtectKernelModules=yes \
        ProtectKernelLogs=yes ProtectControlGroups=yes \
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" CapabilityBoundingSet= \
        AmbientCapabilities= SystemCallFilter=@system-service "StateDirectory=$name" \
        StateDirectoryMode=0750 "ConfigurationDirectory=$name" LimitNOFILE=65536; do
        grep -qx -- "$line" "$unit" || fail "$unit lacks '$line'"
    done
    # systemd's own review of the sandbox: "OK" is an exposure of at most 2.9 out of 10.
    exposure=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null |
        sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
    [ -n "$exposure" ] || fail "systemd-analyze security --offline=yes $unit printed no exposure level"
    awk -v e="$exposure" 'BEGIN { exit !(e <= 2.9) }' ||
        fail "$unit: systemd-analyze security exposure $exposure, above 2.9 (OK)"
    say "$name: user, modes, unit verified (exposure $exposure)"
done

# --- run: the hub --------------------------------------------------------------------------
wait_for() { # wait_for DESCRIPTION COMMAND...: poll until COMMAND succeeds, for 60 s at most
    local what=$1
    shift
    local deadline=$((SECONDS + 60))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "timed out after 60 s waiting for $what"
        sleep 0.1
    done
}
# start_unit NAME LOG [ARGS...]: the unit's ExecStart (ARGS replacing its arguments when
# given) as its User= and Group=, with its UMask=, in /, with the environment systemd gives a
# service (PATH, HOME, USER, LOGNAME, SHELL), in the background. setpriv execs (no session
# process in between, as under systemd): the PID recorded is the service's.
start_unit() {
    local name=$1 log=$2
    shift 2
    local unit=/usr/lib/systemd/system/$name.service
    local exec user group umask
    exec=$(sed -n 's/^ExecStart=//p' "$unit")
    user=$(sed -n 's/^User=//p' "$unit")
    group=$(sed -n 's/^Group=//p' "$unit")
    umask=$(sed -n 's/^UMask=//p' "$unit")
    local cmd
    read -r -a cmd <<<"$exec"
    if (($#)); then cmd=("${cmd[0]}" "$@"); fi
    (
        cd / && umask "$umask" &&
            exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                HOME="/var/lib/$name" USER="$user" LOGNAME="$user" SHELL=/usr/sbin/nologin \
                setpriv --reuid="$user" --regid="$group" --init-groups -- "${cmd[@]}"
    ) >"$log" 2>&1 &
    pids+=($!)
}
expect "poros-hub.service ExecStart" "/usr/bin/poros-hub run --dir /var/lib/poros-hub" \
    "$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/poros-hub.service)"
expect "poros-agent.service ExecStart" "/usr/bin/poros-agent run --dir /var/lib/poros-agent" \
    "$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/poros-agent.service)"

PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# As root, with the packaged defaults: /var/lib/poros-hub, hub.toml in /etc/poros-hub.
poros-hub init --listen "127.0.0.1:$PORT" --ops-listen 127.0.0.1:0 >"$W/init.log" ||
    fail "poros-hub init: $(cat "$W/init.log")"
expect "/etc/poros-hub/hub.toml" "644 root root" "$(mode_owner /etc/poros-hub/hub.toml)"
expect "/var/lib/poros-hub/hub.toml" /etc/poros-hub/hub.toml "$(readlink /var/lib/poros-hub/hub.toml)"
check_state() { # check_state DIR USER KEYS...: everything USER's, private files 0600
    local dir=$1 user=$2
    shift 2
    local others
    others=$(find "$dir" ! -user "$user" -printf '%u %p\n')
    [ -z "$others" ] || fail "files in $dir not owned by $user: $others"
    others=$(find "$dir" ! -group "$user" -printf '%g %p\n')
    [ -z "$others" ] || fail "files in $dir not in group $user: $others"
    local key
    for key in "$@"; do
        expect "$dir/$key" "600 $user $user" "$(mode_owner "$dir/$key")"
    done
}
HUB_KEYS=(admin.token pki/network-ca.key pki/signing-ca.key pki/hub-tls.key pki/hub-sign.key)
check_state /var/lib/poros-hub poros-hub "${HUB_KEYS[@]}"
say "poros-hub init: hub.toml in /etc/poros-hub, deployment in /var/lib/poros-hub owned by poros-hub, keys 0600"

start_unit poros-hub "$W/hub.log"
wait_for "the hub to listen" test -s /var/lib/poros-hub/run/ops.addr
wait_for "the hub's /healthz" curl -sf "http://$(cat /var/lib/poros-hub/run/ops.addr)/healthz"
expect "the hub's user" poros-hub "$(stat -c %U "/proc/${pids[0]}")"
expect "the hub's command line" "/usr/bin/poros-hub run --dir /var/lib/poros-hub" "$(ps -o args= -p "${pids[0]}")"

# --- run: two agents -----------------------------------------------------------------------
token_a=$(poros-hub node add --dir /var/lib/poros-hub --agency "$HUB_CODE" --name "Packaged agency" 2>>"$W/admin.log") ||
    fail "poros-hub node add $HUB_CODE: $(cat "$W/admin.log")"
token_b=$(poros-hub node add --dir /var/lib/poros-hub --agency "$PEER_CODE" --name "Peer agency" 2>>"$W/admin.log") ||
    fail "poros-hub node add $PEER_CODE: $(cat "$W/admin.log")"
# As root, with the packaged defaults: /var/lib/poros-agent, agent.toml in /etc/poros-agent.
poros-agent enroll --token "$token_a" >"$W/enroll-a.log" 2>&1 ||
    fail "poros-agent enroll: $(cat "$W/enroll-a.log")"
expect "/etc/poros-agent/agent.toml" "644 root root" "$(mode_owner /etc/poros-agent/agent.toml)"
expect "/var/lib/poros-agent/agent.toml" /etc/poros-agent/agent.toml "$(readlink /var/lib/poros-agent/agent.toml)"
check_state /var/lib/poros-agent poros-agent keys/tls.key keys/sign.key
# The national SDK's listener, enabled as root: its secret goes to the service user too.
poros-agent vdxp enable --dir /var/lib/poros-agent >"$W/vdxp.log" 2>&1 ||
    fail "poros-agent vdxp enable: $(cat "$W/vdxp.log")"
check_state /var/lib/poros-agent poros-agent keys/tls.key keys/sign.key vdxp.secret
# As the service user, in a directory of its own (config in it, as without the package).
PEER=$W/peer
install -d -m 0750 -o poros-agent -g poros-agent "$PEER"
runuser -u poros-agent -- poros-agent enroll --dir "$PEER" --token "$token_b" >"$W/enroll-b.log" 2>&1 ||
    fail "poros-agent enroll as poros-agent: $(cat "$W/enroll-b.log")"
[ -f "$PEER/agent.toml" ] && [ ! -L "$PEER/agent.toml" ] || fail "$PEER/agent.toml is not a plain file"
check_state "$PEER" poros-agent keys/tls.key keys/sign.key
say "poros-agent enroll: as root into the packaged layout, and as poros-agent into $PEER"

start_unit poros-agent "$W/agent.log"
start_unit poros-agent "$W/peer.log" run --dir "$PEER"
api() { echo "http://$(cat "$1/run/api.addr")"; }
connected() { curl -sf "$(api "$1")/v1/health" | grep -q '"connected":true'; }
for dir in /var/lib/poros-agent "$PEER"; do
    wait_for "the agent of $dir to listen" test -s "$dir/run/api.addr"
    wait_for "the agent of $dir to connect to the hub" connected "$dir"
done
for pid in "${pids[@]:1}"; do expect "an agent's user" poros-agent "$(stat -c %U "/proc/$pid")"; done
expect "the agent's command line" "/usr/bin/poros-agent run --dir /var/lib/poros-agent" "$(ps -o args= -p "${pids[1]}")"

# A document through the packaged agent's local API, as the agency's software sends one.
printf 'Packaged exchange check %s\n' "$(date -u +%FT%TZ)" >"$W/letter.txt"
doc=$(curl -sf -X POST --data-binary @"$W/letter.txt" -H 'content-type: application/octet-stream' \
    "$(api /var/lib/poros-agent)/v1/documents?to=$PEER_CODE&subject=package-check" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])') || fail "sending through the local API"
listed() { # listed DIR PATH: the document is in that listing (with OUTCOME when given)
    curl -sf "$(api "$1")$2" | python3 -c '
import json, sys
items = json.load(sys.stdin)  # a page: an array of items
sys.exit(0 if any(i["id"] == sys.argv[1] and sys.argv[2] in ("", i.get("outcome")) for i in items) else 1)
' "$doc" "${3:-}"
}
wait_for "document $doc in the peer's inbox" listed "$PEER" /v1/inbox
curl -sf "$(api "$PEER")/v1/inbox/$doc/body" -o "$W/received.txt" || fail "fetching $doc's body at the peer"
cmp -s "$W/letter.txt" "$W/received.txt" || fail "the body received differs from the body sent"
wait_for "the signed receipt of $doc at the sender" listed /var/lib/poros-agent /v1/receipts delivered
# The same through the CLI verbs, as the service user.
runuser -u poros-agent -- poros-agent receipts --dir /var/lib/poros-agent | grep -q "$doc" ||
    fail "poros-agent receipts does not list $doc"
say "document $doc sent, received intact by $PEER_CODE, signed receipt back at $HUB_CODE"

# --- stop, then what the services wrote ----------------------------------------------------
for pid in "${pids[@]}"; do kill -TERM "$pid"; done
for pid in "${pids[@]}"; do wait "$pid" || fail "a service exited with status $? on SIGTERM (logs in $W)"; done
pids=()
check_state /var/lib/poros-hub poros-hub "${HUB_KEYS[@]}" pki/quic-reset.key
check_state /var/lib/poros-agent poros-agent keys/tls.key keys/sign.key
# Files the services created (UMask=0077) are theirs alone.
for dir in /var/lib/poros-hub/data /var/lib/poros-agent/data; do
    open=$(find "$dir" -mindepth 1 -perm /o=rwx -printf '%m %p\n')
    [ -z "$open" ] || fail "files the service created are open to others: $open"
done

# --- purge ---------------------------------------------------------------------------------
apt-get purge -y -qq poros-hub poros-agent >"$W/purge.log" 2>&1 || fail "apt-get purge: $(tail -n 5 "$W/purge.log")"
for name in poros-hub poros-agent; do
    for gone in "/usr/bin/$name" "/usr/lib/systemd/system/$name.service" "/etc/$name/README" \
        "/usr/share/man/man1/$name.1.gz" "/usr/share/doc/$name"; do
        [ ! -e "$gone" ] || fail "$gone is still there after purge"
    done
done
# Purge keeps the deployment's identity and data (docs/install.md).
for kept in /var/lib/poros-hub/pki/network-ca.key /etc/poros-hub/hub.toml \
    /var/lib/poros-agent/keys/sign.key /etc/poros-agent/agent.toml; do
    [ -e "$kept" ] || fail "$kept was removed by purge (it is to be kept)"
done
say "purged: binaries, units and conffiles gone, keys and configuration kept as documented"
trap - EXIT
remove_all
rm -rf "$W"
for u in poros-hub poros-agent; do
    ! getent passwd "$u" >/dev/null && ! getent group "$u" >/dev/null ||
        fail "user or group $u still there after cleanup"
    [ ! -e "/var/lib/$u" ] && [ ! -e "/etc/$u" ] || fail "/var/lib/$u or /etc/$u still there after cleanup"
done
say "passed in $(($(date +%s) - started)) s; users, state and packages removed"

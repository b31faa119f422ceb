#!/usr/bin/env bash
# Measures the time from `poros-hub node add` for a new agency to its first delivered document
# (token enrolment, agent start, a signed document to an existing agency, receipt back).
# Everything runs on loopback in a temporary directory that is removed at the end.
# Usage: scripts/onboarding-time.sh            (builds the release binaries first)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
HUB=$PWD/target/release/poros-hub
AGENT=$PWD/target/release/poros-agent
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"' EXIT
cd "$W"

wait_for() { # wait_for DESCRIPTION COMMAND...: poll up to 30 s
    local what=$1; shift
    for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "timed out waiting for $what" >&2; exit 1
}
connected() { curl -sf "http://$(cat "$1/run/api.addr")/v1/health" | grep -q '"connected":true'; }

# A fixed QUIC port so agent configs stay valid; pick a free one.
PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$HUB" init --dir hub --listen "127.0.0.1:$PORT" --ops-listen 127.0.0.1:0 >/dev/null
"$HUB" run --dir hub 2>hub.log &
wait_for "the hub" test -s hub/run/ops.addr

# The existing agency, already on the axis.
"$AGENT" init --dir old --agency 000.00.00.G01 --hub "127.0.0.1:$PORT" >/dev/null
"$HUB" node add --dir hub --agency 000.00.00.G01 --name "Existing ministry" --requests old/requests --out old/certs >/dev/null
"$AGENT" run --dir old 2>old.log &
wait_for "the existing agency" connected old
echo "Official letter from the new province." > letter.txt

T0=$(date +%s.%N)
TOKEN=$("$HUB" node add --dir hub --agency 000.00.00.H42 --name "New province" 2>/dev/null)
"$AGENT" enroll --dir new --token "$TOKEN" >/dev/null
"$AGENT" run --dir new 2>new.log &
wait_for "the new agency to connect" connected new
ID=$("$AGENT" send --dir new letter.txt --to 000.00.00.G01 --subject "First document")
wait_for "the receipt" sh -c "\"$AGENT\" status --dir new $ID --json | grep -q '\"state\": \"delivered\"'"
T1=$(date +%s.%N)
python3 -c "print(f'node add -> first delivered document (receipt stored at the new agency): {($T1-$T0)*1000:.0f} ms')"

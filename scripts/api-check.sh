#!/usr/bin/env bash
# Checks the agent's local API against its own OpenAPI document with an independent tool,
# schemathesis (PyPI): a hub and two agencies run on loopback in a temporary directory, a
# document goes each way so every listing has items, then schemathesis generates requests for
# every operation of the document the agent serves at /openapi.json (valid and invalid ones,
# with the examples, boundary values and the links between operations) and checks every
# answer: no server error other than the documented 503/507, status codes, content types,
# headers and bodies as documented, invalid input refused, valid input accepted.
# Usage: scripts/api-check.sh   (builds the debug binaries first if needed)
# Env: API_CHECK_EXAMPLES (examples per operation, default 50); API_CHECK_SEED (default a fixed
# seed, so that a run is repeatable; `random` explores new inputs, and prints its seed).
# schemathesis is installed on first use into a virtualenv under target/, not the system.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SCHEMATHESIS_VERSION=4.32.5
VENV=$ROOT/target/api-check-venv
EXAMPLES=${API_CHECK_EXAMPLES:-50}

# The binaries as the end-to-end tests build them (the same features, so after `cargo test`
# nothing is rebuilt).
cargo test --locked --quiet --no-run --test openapi
HUB=$ROOT/target/debug/poros-hub
AGENT=$ROOT/target/debug/poros-agent

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"' EXIT
cd "$W"

wait_for() { # wait_for DESCRIPTION COMMAND...: poll up to 60 s
    local what=$1
    shift
    for _ in $(seq 1 600); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "api-check: timed out waiting for $what" >&2
    tail -n 20 ./*.log >&2 || true
    exit 1
}
api() { echo "http://$(cat "$1/run/api.addr")"; }
connected() { curl -sf "$(api "$1")/v1/health" | grep -q '"connected":true'; }
listed() { curl -sf "$(api "$1")$2" | grep -q '"id"'; }

A=000.00.00.G01 # the agent under test (the document's examples are written from it)
B=000.00.00.G02 # its correspondent (the examples' recipient)

PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$HUB" init --dir hub --listen "127.0.0.1:$PORT" --ops-listen 127.0.0.1:0 >/dev/null
"$HUB" run --dir hub 2>hub.log &
wait_for "the hub" test -s hub/run/ops.addr
for code in $A $B; do
    "$AGENT" init --dir "$code" --agency "$code" --hub "127.0.0.1:$PORT" >/dev/null
    "$HUB" node add --dir hub --agency "$code" --name "Agency $code" \
        --requests "$code/requests" --out "$code/certs" >/dev/null
    "$AGENT" run --dir "$code" 2>"$code.log" &
done
for code in $A $B; do wait_for "agent $code to connect" connected "$code"; done

# A document each way, so the outbox, the inbox, the receipts and the events have items.
send() { # send FROM TO SUBJECT
    curl -sf -X POST --data-binary "official letter: $3" -H 'content-type: application/octet-stream' \
        "$(api "$1")/v1/documents?to=$2&subject=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$3")" >/dev/null
}
send $A $B "Kế hoạch 2027"
send $B $A "Báo cáo quý"
wait_for "the document at $B" listed $B /v1/inbox
wait_for "the document at $A" listed $A /v1/inbox
wait_for "the receipt at $A" listed $A /v1/receipts

# The statuses a valid request may get: success, an unknown document (404), or a refusal
# under the exchange rules, which depend on the document's state rather than the request's
# shape (422). Server errors: only the documented "not stored, retry later" ones.
cat >schemathesis.toml <<'EOF'
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "404", "422"]

[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "503", "507"]
EOF

SPEC="$(api $A)/openapi.json"
echo "api-check: schemathesis $SCHEMATHESIS_VERSION against $SPEC, $EXAMPLES examples per operation"
seed=(--seed "${API_CHECK_SEED:-20261201}")
if [ "${API_CHECK_SEED:-}" = random ]; then seed=(); fi
started=$(date +%s)
"$VENV/bin/schemathesis" --config-file schemathesis.toml run "$SPEC" \
    --checks all \
    --max-examples "$EXAMPLES" \
    --workers 1 \
    --request-timeout 30 \
    --generation-database none \
    --no-color \
    "${seed[@]}"
echo "api-check: passed in $(($(date +%s) - started)) s"

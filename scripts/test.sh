#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh Debian machine (Chromium
# for the dashboard test, procps for `kill`, PostgreSQL, Patroni and etcd for the database
# tests, promtool and amtool for the alerting rules; schemathesis through api-check.sh;
# cargo-fuzz and g++ through fuzz-smoke.sh), runs every test of the workspace, checks the
# agent's local API against its OpenAPI document, then a short run of every fuzz target over
# its corpus.
# The full-disk tests mount small tmpfs filesystems, so run it as root (as CI does).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v kill >/dev/null 2>&1 || need+=(procps)
command -v curl >/dev/null 2>&1 || need+=(curl)
# The database tests run Debian's PostgreSQL server (/usr/lib/postgresql/<version>/bin), and
# Patroni with etcd, on loopback ports of their own (the services the packages may start on
# the default ports are not used).
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
command -v patroni >/dev/null 2>&1 || need+=(patroni)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
# The alerting rules, the Alertmanager example and the metrics exposition are checked by
# Prometheus's own tools (tests/alerts.rs): promtool and amtool.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
if ((${#need[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/test.sh: the tests need ${need[*]}; run as root or install them first" >&2
        exit 1
    fi
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: the full-disk tests mount tmpfs filesystems and need root" >&2
    exit 1
fi

# Each step's wall time, so the suite's cost stays visible (CI has 2 cores).
step_started=$SECONDS
took() {
    echo "test.sh: $1 took $((SECONDS - step_started)) s (suite so far $SECONDS s)"
    step_started=$SECONDS
}

cargo test --workspace --locked
took "cargo test (build and run)"

# The Debian packages, from the binaries just built: installed, run end to end, purged.
scripts/package-check.sh
took "package-check"

# The agent's local API against its OpenAPI document, by schemathesis on a live exchange
# (about a minute; scripts/api-check.sh).
scripts/api-check.sh
took "api-check"

# Fuzz smoke run: every cargo-fuzz target for ~15 s over its committed corpus (fuzz/README.md).
scripts/fuzz-smoke.sh
took "fuzz smoke"

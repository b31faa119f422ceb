#!/usr/bin/env bash
# Fuzz smoke run for CI: builds every cargo-fuzz target and runs each for a few seconds over its
# committed corpus and seeds (fuzz/corpus/<target>, fuzz/seeds/<target>); any crash, panic or
# timeout fails the script.
# The long runs and their figures are in fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${FUZZ_SMOKE_SECS:-15}"

# libFuzzer is C++ built by libfuzzer-sys: it needs a C++ compiler.
if ! command -v c++ >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq g++ >/dev/null
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cargo +nightly fuzz build
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo +nightly fuzz list); do
    # New inputs go to a scratch directory so the committed corpus stays as it is; the
    # committed corpus and the named seeds (crash inputs included) are read after it.
    mkdir -p "$scratch/$target" "corpus/$target" "seeds/$target"
    echo "fuzz smoke: $target for ${secs}s"
    if ! cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -print_final_stats=1 2>"$scratch/$target.log"; then
        tail -n 40 "$scratch/$target.log"
        echo "fuzz smoke: target $target FAILED; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "$scratch/$target.log" | tail -n 2
done
echo "fuzz smoke: all targets passed"

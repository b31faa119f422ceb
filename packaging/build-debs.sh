#!/usr/bin/env bash
# Builds the Debian packages poros-hub and poros-agent (cargo-deb variants of the root package
# `poros`, Cargo.toml [package.metadata.deb]) into target/debian/.
#
#   packaging/build-debs.sh                         release build, then both packages
#   packaging/build-debs.sh --no-build --profile dev --fast
#                                                   package the binaries already in
#                                                   target/debug (what scripts/package-check.sh
#                                                   does after the tests built them; cargo-deb
#                                                   warns that the dev profile is not for
#                                                   releases: those come from the first form)
#
# Before cargo-deb runs, each binary's --help (every subcommand's, recursively) is written to
# target/packaging/NAME.help.txt and its man page, made from --help by help2man, to
# target/packaging/NAME.1.gz: both are in the packages. Needs cargo-deb (`cargo install
# cargo-deb --locked`) and help2man (`apt-get install help2man`). Prints the two .deb paths.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
profile=release
fast=()
while (($#)); do
    case "$1" in
    --no-build) build=0 ;;
    --profile)
        profile=${2:?--profile needs a name}
        shift
        ;;
    --fast) fast=(--fast) ;;
    *)
        echo "packaging/build-debs.sh: unknown argument $1" >&2
        exit 2
        ;;
    esac
    shift
done

for tool in cargo-deb help2man; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "packaging/build-debs.sh: $tool is missing (cargo install cargo-deb --locked; apt-get install help2man)" >&2
        exit 1
    fi
done

target=${CARGO_TARGET_DIR:-target}
case "$profile" in
dev | debug) bindir="$target/debug" ;;
*) bindir="$target/$profile" ;;
esac
if ((build)); then
    cargo build --locked --profile "$profile" --bin poros-hub --bin poros-agent
fi

# `NAME WORDS... --help`, then the same for each subcommand listed under "Commands:".
help_tree() {
    local bin=$1
    shift
    printf '$ %s %s--help\n\n' "$(basename "$bin")" "${*:+$* }"
    "$bin" "$@" --help
    echo
    local sub
    for sub in $("$bin" "$@" --help | awk '/^Commands:/ { c = 1; next } c && /^$/ { exit } c && /^  [a-z]/ { print $1 }'); do
        [ "$sub" = help ] || help_tree "$bin" "$@" "$sub"
    done
}

# Where Cargo.toml's assets name them (relative to the checkout, whatever the target dir).
gen=target/packaging
mkdir -p "$gen"
for name in poros-hub poros-agent; do
    bin="$bindir/$name"
    if [ ! -x "$bin" ]; then
        echo "packaging/build-debs.sh: $bin is missing (build it, or leave out --no-build)" >&2
        exit 1
    fi
    help_tree "$bin" >"$gen/$name.help.txt"
    # help2man's NAME line comes from the first line of --help; SEE ALSO from an include file.
    printf '[SEE ALSO]\n/usr/share/doc/%s/%s.help.txt (every subcommand'"'"'s \\-\\-help),\n/usr/share/doc/%s/install.md\n' \
        "$name" "$name" "$name" >"$gen/$name.h2m"
    help2man --no-info --section 1 --name "$("$bin" --help | head -n 1)" \
        --include "$gen/$name.h2m" --output "$gen/$name.1" "$bin"
    gzip -9nf "$gen/$name.1"
done

args=(--no-build --profile "$profile" "${fast[@]}" --output "$target/debian/")
cargo deb -p poros --variant hub "${args[@]}"
cargo deb -p poros --variant agent "${args[@]}"

#!/usr/bin/env bash
# Writes the store fixture tests/fixtures/stores/v<VERSION>/: a hub store and an agent store
# written by the binaries of REVISION (default: HEAD), for tests/upgrade.rs to open with newer
# code. Run it once per store format version, from a checkout of the revision that still
# writes that format (before the change that makes the next version):
#
#   scripts/make-store-fixture.sh 2            # the format HEAD writes
#   scripts/make-store-fixture.sh 1 75f834b    # the format a given commit writes
#
# It checks REVISION out in a temporary git worktree, adds the generator
# (tests/fixtures/stores/generate.rs, taken from the current checkout) as a test there, runs it
# (real hub and agent processes on loopback, about a minute after the build), and moves what it
# wrote into place. CARGO_TARGET_DIR is honoured (sharing this checkout's target directory
# saves building the dependencies twice). See tests/fixtures/stores/README.md.
set -euo pipefail
version=${1:?usage: scripts/make-store-fixture.sh VERSION [REVISION]}
rev=${2:-HEAD}
repo=$(git rev-parse --show-toplevel)
dest="$repo/tests/fixtures/stores/v$version"
if [ -e "$dest" ]; then
    echo "make-store-fixture: $dest exists; a fixture is written once and then kept" >&2
    exit 1
fi
commit=$(git -C "$repo" rev-parse --verify "$rev^{commit}")
work=$(mktemp -d)
cleanup() {
    git -C "$repo" worktree remove --force "$work/src" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
git -C "$repo" worktree add --detach "$work/src" "$commit" >/dev/null
mkdir -p "$work/src/tests/fixtures/stores"
cp "$repo/tests/fixtures/stores/generate.rs" "$work/src/tests/fixtures/stores/generate.rs"
printf 'mod common;\n#[path = "fixtures/stores/generate.rs"]\nmod generate;\n' \
    >"$work/src/tests/make_store_fixture.rs"
(
    cd "$work/src"
    POROS_FIXTURE_OUT="$work/out" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$work/target}" \
        cargo test --test make_store_fixture -- --ignored --exact generate::make_store_fixture
)
echo "$commit" >"$work/out/SOURCE_COMMIT"
mv "$work/out" "$dest"
echo "make-store-fixture: wrote $dest from $commit ($(du -sh --apparent-size "$dest" | cut -f1))"

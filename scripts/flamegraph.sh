#!/usr/bin/env bash
# Flame graphs of the small-document path: records every process of the exchange benchmark
# (hub, sending agents G01..G03, receiving agents H01..H03, the bench's load generator) with
# `perf record` during phase A of `POROS_BENCH_PHASES=small cargo bench --bench exchange`,
# and writes one SVG per process kind under docs/perf/ with inferno, plus the collapsed
# stacks (ROLE.folded.gz) the breakdown table of docs/perf/README.md is summed from
# (`scripts/flamegraph.sh --table` prints that table again from them).
#
# PHASE=B2 records phase B2 instead (750 docs/s offered, below saturation) and names the
# files ROLE-b2.svg and ROLE-b2.folded.gz.
#
# Needs perf (Debian: linux-perf) and inferno (`cargo install inferno --locked`).
# Environment: CALLGRAPH=dwarf|fp (default dwarf), FREQ (default 499 Hz), OUT (default
# docs/perf), PHASE=A|B2 (default A), KEEP=1 keeps the raw perf data in the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-docs/perf}
CALLGRAPH=${CALLGRAPH:-dwarf}
FREQ=${FREQ:-499}
PHASE=${PHASE:-A}
# Each phase's report line (`--- Phase X`) is printed when it ends; recording starts at the
# line printed before it: phase A's pids line, or phase B's report (phase B2 then starts
# after a 1 s settle, time enough for perf to attach).
case $PHASE in
A) START='phase A starts; pids:' END='--- Phase A' SUFFIX='' TITLE='phase A (4 KiB documents, closed loop)' ;;
B2) START='--- Phase B:' END='--- Phase B2' SUFFIX='-b2' TITLE='phase B2 (4 KiB documents, 750 docs/s offered)' ;;
*) echo "flamegraph.sh: PHASE is A or B2, not $PHASE" >&2; exit 2 ;;
esac
ROLES=(hub sending-agent receiving-agent load-generator)

# The share of each part of the work in each role's collapsed stacks. A sample counts for
# the category of its deepest frame that matches one (walking from the leaf to the root), so
# a hash inside a redb commit is hashing, a malloc inside serde is allocation, and a sample
# in the agent's own code under an axum handler is the HTTP API.
CATS='signing and verification (ring ECDSA P-256, webpki)	ring::ec::|p256|nistz256|ecdsa|webpki::|ring::arithmetic|bn_mul_mont|LIMBS_|limbs_
hashing (SHA-256)	sha256_block|sha256_|ring::digest|sha2::
QUIC (quinn, rustls, AES-GCM packet crypto, UDP)	quinn|rustls|aes_hw|aes_nohw|aesni|gcm_|ring::aead|chacha|poly1305|udp_
fsync (fsync, fdatasync and the kernel under them)	fsync|fdatasync|sync_file_range
redb (transactions and commits, fsync excluded)	redb::
HTTP API (axum, hyper, reqwest, tower)	axum|hyper|reqwest|tower|h2::|httparse
encode/decode (serde, postcard, serde_json)	postcard|serde
logging (tracing: events, spans, subscriber; not the futures it wraps)	tracing_core|tracing_subscriber|tracing::span|tracing::dispatcher|tracing::event|tracing::__macro_support|tracing_log
allocation (malloc, free, realloc)	^(__libc_)?(malloc|free|realloc|calloc|cfree)$|_int_malloc|_int_free|malloc_consolidate|tcache|__GI___libc_free|__GI___libc_malloc|alloc::raw_vec|__rust_alloc|__rust_dealloc|__rdl_
task wake-ups (tokio scheduler and timers, futex, epoll)	tokio::runtime::scheduler::.*(park|notify|unpark|steal|wake|Idle|transition|maintenance|schedule)|tokio::runtime::park|tokio::runtime::time|tokio::runtime::io|tokio::runtime::task::waker|tokio::runtime::task::raw::schedule|tokio::runtime::task::state|tokio::sync::notify|futex|epoll|mio::|parking_lot|std::thread::park|syscall$|schedule$|__schedule|try_to_wake_up'
table() {
    local dir=$1
    awk -v roles="${ROLES[*]}" -v dir="$dir" -v suffix="$SUFFIX" -v catlist="$CATS" '
    BEGIN {
        n = split(catlist, lines, "\n")
        for (i = 1; i <= n; i++) { split(lines[i], p, "\t"); name[i] = p[1]; re[i] = p[2] }
        name[n + 1] = "other (the code of Poros itself, tokio task polling, kernel I/O, ...)"
        nr = split(roles, role, " ")
        for (j = 1; j <= nr; j++) {
            f = dir "/" role[j] suffix ".folded.gz"
            cmd = "zcat -f " f
            while ((cmd | getline l) > 0) {
                c = l; sub(/.* /, "", c); s = l; sub(/ [0-9]+$/, "", s)
                tot[j] += c
                nf = split(s, fr, ";")
                cat = n + 1
                for (k = nf; k >= 2 && cat == n + 1; k--)
                    for (i = 1; i <= n; i++) if (fr[k] ~ re[i]) { cat = i; break }
                share[cat, j] += c
            }
            close(cmd)
        }
        printf "| share of CPU samples |"
        for (j = 1; j <= nr; j++) printf " %s |", role[j]
        printf "\n|---|"
        for (j = 1; j <= nr; j++) printf "---:|"
        printf "\n| samples |"
        for (j = 1; j <= nr; j++) printf " %d |", tot[j]
        printf "\n"
        for (i = 1; i <= n + 1; i++) {
            printf "| %s |", name[i]
            for (j = 1; j <= nr; j++) printf " %.1f%% |", tot[j] ? 100 * share[i, j] / tot[j] : 0
            printf "\n"
        }
    }'
}

if [ "${1:-}" = "--table" ]; then
    table "${2:-$OUT}"
    exit 0
fi

command -v perf >/dev/null || { echo "flamegraph.sh: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
command -v inferno-flamegraph >/dev/null || { echo "flamegraph.sh: inferno is missing (cargo install inferno --locked)" >&2; exit 1; }

work=$(mktemp -d /tmp/poros-flame.XXXXXX)
echo "work directory: $work"
cargo bench --bench exchange --no-run
POROS_BENCH_PHASES=small cargo bench --bench exchange >"$work/bench.log" 2>&1 &
bench=$!
until grep -q 'phase A starts; pids:' "$work/bench.log"; do
    kill -0 "$bench" 2>/dev/null || { cat "$work/bench.log"; echo "flamegraph.sh: the bench stopped before phase A" >&2; exit 1; }
    sleep 0.1
done
line=$(grep 'phase A starts; pids:' "$work/bench.log")
until grep -q -- "$START" "$work/bench.log"; do
    kill -0 "$bench" 2>/dev/null || { echo "flamegraph.sh: the bench stopped before phase $PHASE" >&2; exit 1; }
    sleep 0.05
done
declare -A role_pids
all=()
for tok in ${line#*pids: }; do
    name=${tok%=*}
    pid=${tok##*=}
    case $name in
    bench) r=load-generator ;;
    *hub*) r=hub ;;
    *G0*) r=sending-agent ;;
    *H0*) r=receiving-agent ;;
    *) continue ;;
    esac
    role_pids[$r]="${role_pids[$r]:-} $pid"
    all+=("$pid")
done
pidlist=$(IFS=,; echo "${all[*]}")
echo "recording pids $pidlist ($CALLGRAPH call graphs, $FREQ Hz)"
perf record -F "$FREQ" -g --call-graph "$CALLGRAPH" -p "$pidlist" -o "$work/perf.data" 2>"$work/perf-record.log" &
rec=$!
until grep -q -- "$END" "$work/bench.log"; do
    kill -0 "$bench" 2>/dev/null || break
    sleep 0.1
done
kill -INT "$rec"
wait "$rec" || true
echo "phase $PHASE recorded; the bench finishes its other phases in the background"
perf script -i "$work/perf.data" -F comm,pid,tid,time,event,ip,sym,dso --no-inline >"$work/perf.txt" 2>/dev/null
inferno-collapse-perf --pid "$work/perf.txt" >"$work/all.folded"
mkdir -p "$OUT"
for r in "${ROLES[@]}"; do
    # The first frame is `comm-PID`: keep this role's processes, and name the frame by role.
    pat=$(for p in ${role_pids[$r]:-}; do printf -- '-%s;|' "$p"; done)
    pat=${pat%|}
    grep -E "^[^;]*(${pat})" "$work/all.folded" | sed -E "s/^[^;]*;/$r;/" >"$work/$r.folded" || true
    if [ "$r" != load-generator ]; then
        inferno-flamegraph --minwidth 0.5 --title "Poros $r, $TITLE" \
            <"$work/$r.folded" >"$OUT/$r$SUFFIX.svg"
    fi
    gzip -9 -c "$work/$r.folded" >"$OUT/$r$SUFFIX.folded.gz"
done
wait "$bench" || true
cp "$work/bench.log" "$OUT/bench$SUFFIX.log"
table "$OUT"
[ "${KEEP:-0}" = 1 ] || rm -rf "$work"

#!/usr/bin/env bash
# Builds every fuzz target once (`cargo +nightly fuzz build`), then runs
# each built libFuzzer binary directly for SECONDS seconds (default 30),
# one after the other, with -timeout=10 -rss_limit_mb=2048 and a per-target
# -max_len.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# The build is cargo-fuzz's default: release optimisations with debug
# assertions and overflow checks, AddressSanitizer on.
#
# New inputs found by libFuzzer go to a scratch directory (libFuzzer writes
# new units into the FIRST corpus directory it is given and only reads the
# others), so the committed seeds in fuzz/corpus/<target>/ and the fixed
# crashes in fuzz/regressions/<target>/ are read, never changed.
#
# Ends with a table "target executions seconds result" and exits non-zero
# if any target crashed, timed out (-timeout: one input taking longer than
# 10 s counts as a failure), ran out of memory or failed to build. Crash
# inputs are kept in fuzz/artifacts/<target>/; their paths are printed.
set -uo pipefail

DURATION="${1:-30}"
shift || true
case "$DURATION" in
'' | *[!0-9]* | 0)
    # (-max_total_time=0 would mean "no limit")
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$FUZZ_DIR")"
cd "$ROOT" || exit 2

ALL_TARGETS=(message update open roundtrip framer ipip_packet ipip_offload)
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=("${ALL_TARGETS[@]}")
fi

# Largest input per target. Messages are at most 4096 bytes, 65535 with
# extended messages (RFC 8654); the framer takes a whole stream plus its
# chunk sizes; ipip_offload takes a TCP super-packet of up to 64 KB. A
# larger -max_len makes every mutation slower, so only the
# targets whose interesting inputs can exceed 4096 bytes get more.
max_len() {
    case "$1" in
    message | framer | ipip_offload) echo 66000 ;;
    update | roundtrip) echo 8192 ;;
    *) echo 4200 ;;
    esac
}

SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/bgp-fuzz.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT

echo "== building fuzz targets (cargo +nightly fuzz build --fuzz-dir $FUZZ_DIR)"
if ! cargo +nightly fuzz build --fuzz-dir "$FUZZ_DIR"; then
    echo "fuzz build failed" >&2
    exit 1
fi
BIN_DIR="fuzz/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

failed=0
declare -A EXECS SECS RESULT ARTIFACTS
for t in "${TARGETS[@]}"; do
    corpus="fuzz/corpus/$t"
    if [ ! -d "$corpus" ]; then
        echo "no seed corpus $corpus (run: python3 fuzz/seeds.py)" >&2
        RESULT[$t]="no-corpus"
        failed=1
        continue
    fi
    seeds=("$corpus")
    [ -d "fuzz/regressions/$t" ] && seeds+=("fuzz/regressions/$t")
    mkdir -p "$SCRATCH/$t"
    log="$SCRATCH/$t.log"
    echo "== fuzzing $t for ${DURATION}s (seeds: ${seeds[*]})"
    start=$(date +%s)
    # The binary built above, run directly: `cargo fuzz run` would rebuild
    # first, picking up whatever changed in the tree since.
    mkdir -p "fuzz/artifacts/$t"
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}" "$BIN_DIR/$t" \
        "$SCRATCH/$t" "${seeds[@]}" \
        -artifact_prefix="fuzz/artifacts/$t/" \
        -max_total_time="$DURATION" \
        -max_len="$(max_len "$t")" \
        -timeout=10 \
        -rss_limit_mb=2048 \
        -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    end=$(date +%s)
    # Keep the interesting part of libFuzzer's output.
    grep -E '^(INFO: seed corpus|#[0-9]+ +(INITED|DONE))|stat::|==[0-9]+==|panicked|Test unit written|^Failing input|^SUMMARY|^artifact_prefix|^Output of' "$log" || true
    EXECS[$t]="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -n1)"
    SECS[$t]=$((end - start))
    if [ "$rc" -eq 0 ]; then
        RESULT[$t]="ok"
    else
        failed=1
        RESULT[$t]="FAILED(rc=$rc)"
        ARTIFACTS[$t]="$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log" | sort -u | tr '\n' ' ')"
        echo "---- last 40 lines of the $t log:"
        tail -n 40 "$log"
    fi
done

echo
printf '%-10s %12s %8s  %s\n' target executions seconds result
for t in "${TARGETS[@]}"; do
    printf '%-10s %12s %8s  %s\n' "$t" "${EXECS[$t]:--}" "${SECS[$t]:--}" "${RESULT[$t]}"
done
for t in "${TARGETS[@]}"; do
    if [ -n "${ARTIFACTS[$t]:-}" ]; then
        echo "crash artifact for $t: ${ARTIFACTS[$t]}"
        echo "  reproduce: cargo +nightly fuzz run $t ${ARTIFACTS[$t]%% *}"
        echo "  minimise:  cargo +nightly fuzz tmin $t ${ARTIFACTS[$t]%% *}"
        for a in ${ARTIFACTS[$t]}; do
            [ -f "$a" ] && echo "  hex $(basename "$a"): $(od -An -tx1 -v "$a" | tr -d ' \n' | head -c 600)"
        done
    fi
done
exit "$failed"

#!/usr/bin/env bash
# Short, bounded runs of every fuzz target in fuzz/ (libFuzzer via libfuzzer-sys), for CI.
#
#   scripts/fuzz-ci.sh [seconds per target]      default 10 (or FUZZ_SECONDS)
#
# Builds the targets as `cargo fuzz build --dev --sanitizer none --debug-assertions` would
# (same RUSTFLAGS as cargo-fuzz 0.13), with plain cargo on the default toolchain: no
# nightly and no `cargo install cargo-fuzz` needed. Unoptimised code with overflow checks
# builds fastest and still runs thousands of inputs per target; long runs belong to
# `cargo +nightly fuzz run <target>` (fuzz/README.md).
#
# Each target first replays its seeds in fuzz/corpus/<target>/ (read only here; new inputs
# go to a temporary directory), then mutates them, with fuzz/dict/<target>.dict when there
# is one, until the time is up. A crash, a hang
# (longer than FUZZ_TIMEOUT seconds on one input) or an out-of-memory stops the run: the
# input is saved under fuzz/artifacts/<target>/ and printed in hex, and the script exits 1.
#
# Environment: FUZZ_SECONDS, FUZZ_TIMEOUT (default 20), FUZZ_JOBS (targets run at once,
# default: number of CPUs), FUZZ_TARGETS (space-separated subset), CARGO_TARGET_DIR
# (default fuzz/target).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-${FUZZ_SECONDS:-10}}"
timeout="${FUZZ_TIMEOUT:-20}"
jobs="${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}"
target_dir="${CARGO_TARGET_DIR:-$PWD/fuzz/target}"
host="$(rustc -vV | sed -n 's/^host: //p')"

if ! command -v c++ >/dev/null 2>&1; then
    echo "fuzz-ci: libfuzzer-sys needs a C++ compiler (apt-get install g++)" >&2
    exit 2
fi

# the instrumentation cargo-fuzz adds (src/project.rs of cargo-fuzz 0.13); passed with
# --target so that build scripts and proc macros are built without it
RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
--cfg fuzzing -Cdebug-assertions ${RUSTFLAGS:-}"
export RUSTFLAGS

cargo --version
echo "fuzz-ci: building the fuzz targets ($host, dev profile)"
started=$SECONDS
CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$target_dir" cargo build --manifest-path fuzz/Cargo.toml \
    --target "$host" --bins
echo "fuzz-ci: built in $((SECONDS - started)) s"

bin_dir="$target_dir/$host/debug"
# the targets are the [[bin]] entries of fuzz/Cargo.toml, as for `cargo fuzz list`
targets="${FUZZ_TARGETS:-$(sed -n '/^\[\[bin\]\]/,/^$/s/^name = "\(.*\)"/\1/p' fuzz/Cargo.toml)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

run_one() {
    local t=$1 rc=0 dict=()
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t" "fuzz/corpus/$t"
    [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
    "$bin_dir/$t" "$work/corpus/$t" "fuzz/corpus/$t" ${dict[@]+"${dict[@]}"} \
        -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/$t/" \
        >"$work/$t.log" 2>&1 || rc=$?
    echo "$rc" >"$work/$t.rc"
}

started=$SECONDS
running=0
for t in $targets; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

failed=0
printf '%-18s %12s %10s  %s\n' target executions exec/s result
for t in $targets; do
    rc=$(cat "$work/$t.rc" 2>/dev/null || echo 99)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log")
    if [ "$rc" = 0 ]; then
        printf '%-18s %12s %10s  %s\n' "$t" "${execs:-?}" "${rate:-?}" ok
    else
        failed=1
        printf '%-18s %12s %10s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "FAILED (exit $rc)"
    fi
done
echo "fuzz-ci: ran for $((SECONDS - started)) s, $seconds s per target"

if [ "$failed" = 1 ]; then
    for t in $targets; do
        [ "$(cat "$work/$t.rc" 2>/dev/null || echo 99)" = 0 ] && continue
        echo
        echo "=== $t: end of the libFuzzer log"
        tail -n 60 "$work/$t.log"
        for found in "$work/artifacts/$t"/*; do
            [ -f "$found" ] || continue
            mkdir -p "fuzz/artifacts/$t"
            a="fuzz/artifacts/$t/$(basename "$found")"
            cp "$found" "$a"
            echo "=== $t: input $a ($(wc -c <"$a") bytes; first 4 KiB in hex)"
            head -c 4096 "$a" | od -A x -t x1z -v
            echo "reproduce: cargo +nightly fuzz run $t $a   (or: $bin_dir/$t $a)"
        done
    done
    exit 1
fi

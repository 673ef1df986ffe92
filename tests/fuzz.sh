#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for a bounded time; fail if any finds a crash.
#
#   tests/fuzz.sh            # 60 s per target
#   tests/fuzz.sh 300        # 300 s per target
#   FUZZ_TARGETS="membership capture_frame" tests/fuzz.sh 10    # some targets only
#
# Installs cargo-fuzz (cargo install --locked) and a C++ compiler (libFuzzer is C++) when
# missing, builds all targets once (AddressSanitizer; RUSTC_BOOTSTRAP=1 lets a stable
# toolchain take cargo-fuzz's -Z flags), then runs each on a copy of its seed corpus in a
# temp dir, so nothing new is written into fuzz/corpus. Prints per target the executions run
# (libFuzzer's stat::number_of_executed_units) and the coverage reached. A crash leaves its
# input in fuzz/artifacts/TARGET/ (the path is printed; replay it with
# `cargo fuzz run TARGET PATH` in fuzz/) and the script exits 1. Root is not needed, but CI
# runs it as root after tests/run.sh; under sudo cargo is found as tests/run.sh finds it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
. tests/lib.sh

secs=${1:-60}
case "$secs" in
'' | *[!0-9]*)
    echo "usage: tests/fuzz.sh [SECONDS]   (seconds per target, default 60)" >&2
    exit 2
    ;;
esac

if [ "$(id -u)" -eq 0 ]; then
    missing=()
    command -v c++ >/dev/null 2>&1 || missing+=(g++)
    install_missing tests/fuzz.sh "${missing[@]}"
elif ! command -v c++ >/dev/null 2>&1; then
    echo "tests/fuzz.sh: no C++ compiler (libFuzzer needs one): apt-get install g++" >&2
    exit 1
fi
find_cargo tests/fuzz.sh
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "tests/fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

start=$(date +%s)
targets=${FUZZ_TARGETS:-$(cd fuzz && cargo fuzz list)}
echo "tests/fuzz.sh: building the fuzz targets"
(cd fuzz && cargo fuzz build)

tmp=$(mktemp -d /tmp/snoopcast-fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failed=()
summary=()
for t in $targets; do
    mkdir -p "$tmp/corpus/$t"
    if [ -d "fuzz/corpus/$t" ]; then
        cp fuzz/corpus/"$t"/seed-* "$tmp/corpus/$t/" 2>/dev/null || true
    fi
    seeds=$(find "$tmp/corpus/$t" -type f | wc -l)
    echo "tests/fuzz.sh: $t for ${secs} s from $seeds seeds"
    log="$tmp/$t.log"
    rc=0
    (cd fuzz && cargo fuzz run "$t" "$tmp/corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -timeout=25) >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 || true)
    line="$t: ${execs:-?} executions in ${secs} s (${cov:-no coverage line})"
    if [ "$rc" -ne 0 ] || grep -qE '^(==[0-9]+==ERROR|SUMMARY: (libFuzzer|AddressSanitizer))' "$log"; then
        artifact=$(grep -Eo 'Test unit written to [^ ]+' "$log" | tail -1 | sed 's/^Test unit written to //' || true)
        # The panic or sanitizer report and the input, then the tail of the log.
        grep -E -A12 "panicked at|==ERROR|^SUMMARY" "$log" | head -60 >&2 || true
        tail -25 "$log" >&2
        case "$artifact" in
        '' | /*) ;;
        *) artifact="fuzz/${artifact#./}" ;;
        esac
        line="$line: FAILED (exit $rc)${artifact:+, input: $artifact}"
        failed+=("$t")
    else
        line="$line: ok"
    fi
    echo "tests/fuzz.sh: $line"
    summary+=("$line")
done

echo
echo "tests/fuzz.sh: summary (${secs} s per target, $(($(date +%s) - start)) s in all)"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "tests/fuzz.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi

#!/usr/bin/env bash
# The soak test of snoopcast: hosts join, leave, go silent and expire, links flap, at random,
# while streams run; at the end nothing may be left over and memory may not have grown.
#
#   sudo tests/soak.sh            # 10 minutes
#   sudo tests/soak.sh 90s        # any duration: 90s, 10m, 1h (at least 30s)
#   SNOOPCAST_SOAK_SEED=N sudo -E tests/soak.sh 10m    # replay the random choices of a run
#
# It builds the test in release mode (the daemon as it is installed) and runs
# `cargo test --release --test soak -- --ignored --nocapture` with SNOOPCAST_SOAK_DURATION
# set. The test prints its seed, a line per check, and the start/end table of daemon
# resources (see tests/README.md, "Soak test").
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
. tests/lib.sh

usage() {
    echo "usage: sudo tests/soak.sh [DURATION]   (default 10m; e.g. 90s, 10m, 1h; at least 30s)" >&2
    exit 2
}

duration=${1:-10m}
[ "$#" -le 1 ] || usage
case "$duration" in
    -h | --help) usage ;;
esac
if ! [[ "$duration" =~ ^[0-9]+(s|m|h)?$ ]]; then
    echo "tests/soak.sh: bad duration '$duration'" >&2
    usage
fi

require_root tests/soak.sh "the soak test" "sudo tests/soak.sh $duration"

missing=()
missing_netns_tools
install_missing tests/soak.sh "${missing[@]}"
find_cargo tests/soak.sh

export PYTHONUNBUFFERED=1 RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
export SNOOPCAST_SOAK_DURATION="$duration"
echo "tests/soak.sh: building (release)"
cargo test --release --test soak --no-run
echo "tests/soak.sh: running for $duration"
started=$(date +%s)
rc=0
cargo test --release --test soak -- --ignored --nocapture || rc=$?
echo "tests/soak.sh: wall time of the test run $(($(date +%s) - started)) s, exit $rc"
exit "$rc"

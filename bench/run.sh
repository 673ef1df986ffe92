#!/usr/bin/env bash
# The one benchmark command of snoopcast: copies/s out of the box for snoopcast, the kernel
# bridge's mcast_to_unicast, a raw-socket ceiling and a minimal C forwarder (cfwd, with and
# without the box kernel joined upstream), on virtual LANs in network namespaces.
#
#   sudo bench/run.sh                 # full run (about 25-35 minutes)
#   sudo bench/run.sh --quick         # N=16, 1316 B, 1 repetition (development)
#   sudo bench/run.sh --quick --systems cfwd,cfwd_joined --no-control-plane   # only some
#   sudo bench/run.sh --help          # every option of bench.py
#
# Installs missing Debian packages, builds snoopcast (release) and the C helpers, then runs
# bench/bench.py with the arguments given here. Results go to bench/results/ (git ignores
# it; the committed summary is bench/RESULTS.md).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
. tests/lib.sh

if [ "$(id -u)" -ne 0 ]; then
    echo "bench/run.sh: the benchmark builds network namespaces, veth pairs, bridges and" >&2
    echo "nftables rules, which needs root. Run: sudo bench/run.sh" >&2
    exit 2
fi

# Debian packages: nft (switch-side counter), matplotlib (the plot), ethtool (offloads),
# ip/bridge (iproute2), gcc (the C helpers), taskset (util-linux).
missing=()
command -v nft >/dev/null 2>&1 || missing+=(nftables)
/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1 || missing+=(python3-matplotlib)
command -v ethtool >/dev/null 2>&1 || missing+=(ethtool)
{ command -v ip && command -v bridge; } >/dev/null 2>&1 || missing+=(iproute2)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
install_missing bench/run.sh "${missing[@]}"
find_cargo bench/run.sh

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
echo "bench/run.sh: cargo build --release (target dir $target_dir)"
cargo build --release

echo "bench/run.sh: gcc -O2 bench/{mcgen,ceiling,cfwd}.c -> $target_dir/bench/"
mkdir -p "$target_dir/bench"
for helper in mcgen ceiling cfwd; do
    gcc -O2 -Wall -Wextra -o "$target_dir/bench/$helper" "bench/$helper.c"
done

# The Debian interpreter: python3-matplotlib is installed for it, and a python3 found first
# on PATH (pyenv, a venv) may not see it.
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
export PYTHONUNBUFFERED=1
exec "$python" bench/bench.py --snoopcast "$target_dir/release/snoopcast" \
    --helpers "$target_dir/bench" "$@"

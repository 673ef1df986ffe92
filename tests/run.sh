#!/usr/bin/env bash
# The one test command of snoopcast: unit, CLI and netns end-to-end tests.
#
#   sudo tests/run.sh                      # everything: cargo test --all-targets, then
#                                          # tests/units.sh and tests/package.sh
#   sudo tests/run.sh --test e2e_flood     # other cargo test arguments instead (no scripts)
#
# Root is needed for network namespaces, veth pairs and bridges. Missing Debian packages
# the tests use are installed first (apt-get update only if an install fails).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
. tests/lib.sh

require_root tests/run.sh "the end-to-end tests" "sudo tests/run.sh"

# Tools the e2e tests run besides the netns basics (lib.sh): sh/kill (procps), openvpn and
# openssl (e2e_openvpn: a TAP server and clients, throwaway certificates), python3-scapy
# (e2e_hostile: malformed IGMP from tests/helpers/hostile.py), python3-prometheus-client
# (e2e_metrics: an OpenMetrics parser).
missing=()
missing_netns_tools
command -v openvpn >/dev/null 2>&1 || missing+=(openvpn)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# e2e_doctor: an nftables rule dropping IGMP for the firewall check.
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
/usr/bin/python3 -c 'import scapy' >/dev/null 2>&1 || missing+=(python3-scapy)
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || missing+=(python3-prometheus-client)
install_missing tests/run.sh "${missing[@]}"
find_cargo tests/run.sh

export PYTHONUNBUFFERED=1 RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# The systemd units (verify, security, the daemon under their sandbox) and the Debian
# package: each installs what it needs itself.
scripts=()
if [ "$#" -eq 0 ]; then
    set -- --no-fail-fast --all-targets
    scripts=(tests/units.sh tests/package.sh)
fi
echo "tests/run.sh: cargo test $*"
rc=0
cargo test "$@" || rc=$?
for s in "${scripts[@]}"; do
    echo "tests/run.sh: $s"
    bash "$s" || rc=1
done
exit "$rc"

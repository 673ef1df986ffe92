#!/usr/bin/env bash
# The one test command of snoopcast: unit, CLI and netns end-to-end tests.
#
#   sudo tests/run.sh                      # everything: cargo test --all-targets
#   sudo tests/run.sh --test e2e_flood     # other cargo test arguments instead
#
# Root is needed for network namespaces, veth pairs and bridges. Missing Debian packages
# the tests use are installed first (apt-get update only if an install fails).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
. tests/lib.sh

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: the end-to-end tests build network namespaces, veth pairs and" >&2
    echo "bridges, which needs root. Run: sudo tests/run.sh" >&2
    exit 1
fi

# Tools the e2e tests run: ip/tc/bridge (iproute2), ethtool (tx checksum off on the
# sender's veth), python3 (the helpers, standard library only), sh/kill (procps),
# openvpn and openssl (e2e_openvpn: a TAP server and clients, throwaway certificates),
# python3-scapy (e2e_hostile: malformed IGMP from tests/helpers/hostile.py).
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v tc >/dev/null 2>&1 || missing+=(iproute2)
command -v ethtool >/dev/null 2>&1 || missing+=(ethtool)
[ -x /usr/bin/python3 ] || command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v openvpn >/dev/null 2>&1 || missing+=(openvpn)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
/usr/bin/python3 -c 'import scapy' >/dev/null 2>&1 || missing+=(python3-scapy)
install_missing tests/run.sh "${missing[@]}"
find_cargo tests/run.sh

export PYTHONUNBUFFERED=1 RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
if [ "$#" -eq 0 ]; then
    set -- --no-fail-fast --all-targets
fi
echo "tests/run.sh: cargo test $*"
exec cargo test "$@"

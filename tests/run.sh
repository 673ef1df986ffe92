#!/usr/bin/env bash
# The one test command of snoopcast: unit, CLI and netns end-to-end tests.
#
#   sudo tests/run.sh                      # everything: cargo test --all-targets
#   sudo tests/run.sh --test e2e_flood     # other cargo test arguments instead
#
# Root is needed for network namespaces, veth pairs and bridges. Missing Debian packages
# the tests use are installed first (apt-get update once, only when something is missing).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: the end-to-end tests build network namespaces, veth pairs and" >&2
    echo "bridges, which needs root. Run: sudo tests/run.sh" >&2
    exit 1
fi

# Tools the e2e tests run: ip/tc/bridge (iproute2), ethtool (tx checksum off on the
# sender's veth), python3 (the helpers, standard library only), sh/kill (procps),
# openvpn and openssl (e2e_openvpn: a TAP server and clients, throwaway certificates).
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v tc >/dev/null 2>&1 || missing+=(iproute2)
command -v ethtool >/dev/null 2>&1 || missing+=(ethtool)
[ -x /usr/bin/python3 ] || command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v openvpn >/dev/null 2>&1 || missing+=(openvpn)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
    # shellcheck disable=SC2207
    missing=($(printf '%s\n' "${missing[@]}" | sort -u))
    echo "tests/run.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Under sudo, root's PATH often lacks the invoking user's rustup toolchain.
if ! command -v cargo >/dev/null 2>&1 && [ -n "${SUDO_USER:-}" ]; then
    user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    if [ -x "$user_home/.cargo/bin/cargo" ]; then
        export CARGO_HOME="$user_home/.cargo" RUSTUP_HOME="$user_home/.rustup"
        export PATH="$CARGO_HOME/bin:$PATH"
    fi
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "tests/run.sh: cargo not found (install Rust with rustup, or put cargo on root's PATH)" >&2
    exit 1
fi

export PYTHONUNBUFFERED=1 RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
if [ "$#" -eq 0 ]; then
    set -- --no-fail-fast --all-targets
fi
echo "tests/run.sh: cargo test $*"
exec cargo test "$@"

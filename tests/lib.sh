# Shared by tests/run.sh, tests/soak.sh and bench/run.sh (sourced, not run): installing the Debian
# packages they need and finding cargo under sudo.

# install_missing WHO PKG...: install the packages named (none: nothing to do). The package
# lists may be stale or absent on a fresh machine: then refresh them once and try again.
install_missing() {
    local who=$1
    shift
    [ "$#" -gt 0 ] || return 0
    # shellcheck disable=SC2207
    local pkgs=($(printf '%s\n' "$@" | sort -u))
    echo "$who: installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${pkgs[@]}"; then
        apt-get update
        apt-get install -y --no-install-recommends "${pkgs[@]}"
    fi
}

# find_cargo WHO: make cargo callable, or exit 1 saying why. Under sudo, root's PATH often
# lacks the invoking user's rustup toolchain.
find_cargo() {
    local who=$1
    if ! command -v cargo >/dev/null 2>&1 && [ -n "${SUDO_USER:-}" ]; then
        local user_home
        user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        if [ -x "$user_home/.cargo/bin/cargo" ]; then
            export CARGO_HOME="$user_home/.cargo" RUSTUP_HOME="$user_home/.rustup"
            export PATH="$CARGO_HOME/bin:$PATH"
        fi
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "$who: cargo not found (install Rust with rustup, or put cargo on root's PATH)" >&2
        exit 1
    fi
}

# require_root WHO WHAT HOW: exit 1 unless root, saying that WHAT needs it and HOW to run.
require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "$1: $2 builds network namespaces, veth pairs and bridges, which needs root." >&2
        echo "Run: $3" >&2
        exit 1
    fi
}

# missing_netns_tools: add to the array `missing` the Debian packages of the tools every
# netns test runs: ip/tc/bridge (iproute2), ethtool (tx checksum off on the sender's veth),
# python3 (the helpers).
missing_netns_tools() {
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    command -v tc >/dev/null 2>&1 || missing+=(iproute2)
    command -v ethtool >/dev/null 2>&1 || missing+=(ethtool)
    [ -x /usr/bin/python3 ] || command -v python3 >/dev/null 2>&1 || missing+=(python3)
}

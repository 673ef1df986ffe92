# Shared by tests/run.sh and tests/bench/run.sh (sourced, not run): installing the Debian
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

#!/usr/bin/env bash
# The systemd units of examples/systemd/: checked by systemd's own tools, and the daemon run
# under their sandbox on a test LAN.
#
#   sudo tests/units.sh        # SNOOPCAST_BIN=path/to/snoopcast to test another binary
#
# 1. `systemd-analyze verify` (in a scratch root holding the binary at /usr/bin/snoopcast
#    and a copy of the system's units) prints nothing for snoopcast.service and an instance
#    of snoopcast@.service.
# 2. `systemd-analyze security --offline=yes --threshold=30` (exposure at most 3.0) passes for
#    both.
# 3. Each unit's [Service] settings applied to a real daemon. With systemd as PID 1 that
#    would be `systemd-run`; in a container it is not, so tests/helpers/unit_sandbox.py
#    emulates every restricting setting (mount namespace, setpriv, a libseccomp filter from
#    the unit's SystemCallFilter= and friends) and refuses a setting it does not know. The
#    daemon runs there on a three-namespace LAN: it must start, take a host's membership,
#    deliver a stream to it as unicast copies, write its log file in LogsDirectory=, survive
#    SIGHUP and stop with exit 0 on SIGTERM. It runs with options on the command line, not
#    the unit's ExecStart= (--config FILE): the same process, the sandbox is what is tested. A probe under the same sandbox checks that the
#    restrictions really bite (read-only /etc, no AF_BLUETOOTH sockets, no unshare, no W+X
#    memory, no /home).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
. tests/lib.sh

require_root tests/units.sh "the unit sandbox test" "sudo tests/units.sh"

missing=()
missing_netns_tools
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
/usr/bin/python3 -c 'import seccomp' >/dev/null 2>&1 || missing+=(python3-seccomp)
install_missing tests/units.sh "${missing[@]}"

start=$(date +%s)
if [ -z "${SNOOPCAST_BIN:-}" ]; then
    find_cargo tests/units.sh
    cargo build --quiet
    SNOOPCAST_BIN="$(cargo metadata --format-version 1 --no-deps |
        /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/snoopcast"
fi
[ -x "$SNOOPCAST_BIN" ] || { echo "tests/units.sh: no binary at $SNOOPCAST_BIN" >&2; exit 1; }

units=(examples/systemd/snoopcast.service examples/systemd/snoopcast@.service)
tag="scu$$"
# Under /run: the sandbox hides /tmp (PrivateTmp), /root and /home (ProtectHome).
work="/run/$tag"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for ns in lan host src; do ip netns del "$tag-$ns" 2>/dev/null || true; done
    rm -rf "$work" "/run/snoopcast/$tag.sock" "/var/log/snoopcast/$tag.log"
    # The directories the sandbox created (as RuntimeDirectory=/LogsDirectory= do), if empty.
    rmdir /run/snoopcast /var/log/snoopcast 2>/dev/null || true
}
trap cleanup EXIT
fail() {
    echo "tests/units.sh: FAIL: $*" >&2
    exit 1
}

mkdir -p "$work/root/usr/bin" "$work/root/usr/lib/systemd" "$work/root/etc/systemd/system"
install -m 0755 "$SNOOPCAST_BIN" "$work/root/usr/bin/snoopcast"
# ExecReload=/bin/kill: the system's kill, in a merged-/usr layout.
install -m 0755 "$(command -v kill >/dev/null && type -P kill)" "$work/root/usr/bin/kill"
ln -s usr/bin "$work/root/bin"
install -m 0755 "$SNOOPCAST_BIN" "$work/snoopcast"
install -m 0755 tests/helpers/unit_sandbox.py tests/helpers/host_agent.py \
    tests/helpers/mcast_send.py "$work/"

# 1. verify
cp -a /usr/lib/systemd/system "$work/root/usr/lib/systemd/"
cp "${units[@]}" "$work/root/etc/systemd/system/"
ln -s snoopcast@.service "$work/root/etc/systemd/system/snoopcast@lan.service"
for u in snoopcast.service snoopcast@lan.service; do
    # --man=no: man pages are checked by tests/package.sh's contents list instead.
    out=$(systemd-analyze verify --man=no --root="$work/root" "$u" 2>&1) ||
        fail "systemd-analyze verify $u: $out"
    [ -z "$out" ] || fail "systemd-analyze verify $u printed: $out"
    echo "tests/units.sh: systemd-analyze verify $u: clean"
done

# 2. security
for u in snoopcast.service snoopcast@lan.service; do
    out=$(systemd-analyze security --offline=yes --threshold=30 --root="$work/root" "$u" 2>&1) ||
        fail "systemd-analyze security $u is over 3.0: $(echo "$out" | grep -E '✗|Overall')"
    echo "tests/units.sh: $(echo "$out" | grep 'Overall exposure')"
done

# 3. the sandbox, on a LAN: src:s0 -- up0:lan:dn0 -- h0:host
for ns in lan host src; do ip netns add "$tag-$ns"; done
ip -n "$tag-lan" link add up0 type veth peer name s0 netns "$tag-src"
ip -n "$tag-lan" link add dn0 type veth peer name h0 netns "$tag-host"
ip -n "$tag-lan" addr add 10.77.1.2/24 dev up0
ip -n "$tag-src" addr add 10.77.1.1/24 dev s0
ip -n "$tag-host" addr add 10.77.2.11/24 dev h0
for ns in lan host src; do ip -n "$tag-$ns" link set lo up; done
ip -n "$tag-lan" link set up0 up
ip -n "$tag-lan" link set dn0 up
ip -n "$tag-src" link set s0 up
ip -n "$tag-host" link set h0 up
ip -n "$tag-host" route add default dev h0
ip netns exec "$tag-src" ethtool -K s0 tx off >/dev/null 2>&1 || true

sandbox() { # sandbox UNIT CMD...: exec CMD under UNIT's sandbox in the lan namespace, as
    # nobody (every stage execs the next: in a `( )` or `&` subshell, its pid is CMD's)
    local unit=$1
    shift
    exec ip netns exec "$tag-lan" /usr/bin/python3 "$work/unit_sandbox.py" "$work/$(basename "$unit")" \
        --user 65534:65534 -- "$@"
}

for unit in "${units[@]}"; do
    cp "$unit" "$work/"
    name=$(basename "$unit")
    echo "tests/units.sh: $name: the restrictions bite"
    (sandbox "$unit" /usr/bin/python3 -c '
import ctypes, errno, os, socket, sys
bad = []
try:
    open("/etc/snoopcast-units-probe", "w"); bad.append("/etc is writable")
except OSError: pass
try:
    # AF_VSOCK: open to any user where the module is loaded; EAFNOSUPPORT says it is not,
    # and then this check proves nothing (said so below).
    socket.socket(40, socket.SOCK_STREAM); bad.append("AF_VSOCK socket opened")
except OSError as e:
    if e.errno != errno.EPERM: print("probe: AF_VSOCK unsupported here, family filter unchecked")
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000) == 0: bad.append("unshare(CLONE_NEWUSER) worked")
if libc.adjtimex(ctypes.create_string_buffer(512)) >= 0: bad.append("adjtimex (read) worked")
if libc.personality(0x0008) != -1: bad.append("personality(PER_LINUX32) worked")
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
p = libc.mmap(None, 4096, 7, 0x22, -1, 0)  # PROT_READ|WRITE|EXEC, MAP_PRIVATE|ANONYMOUS
if p not in (None, ctypes.c_void_p(-1).value): bad.append("W+X memory mapped")
try:
    if os.listdir("/root") or os.listdir("/home"): bad.append("/root or /home is visible")
except OSError: pass
if os.path.exists("/dev/sda") or os.path.exists("/dev/kmsg"): bad.append("/dev has devices")
try:
    open("/proc/sys/net/core/rmem_max", "w"); bad.append("/proc/sys is writable")
except OSError: pass
os.listdir("/sys/class/net")  # what snoopcast needs: readable
open("/proc/sys/net/core/rmem_max").read()
if os.getuid() != 65534 or os.getgroups(): bad.append("not the user alone")
if "NoNewPrivs:\t1" not in open("/proc/self/status").read(): bad.append("no no_new_privs")
if bad: print("\n".join(bad)); sys.exit(1)
') || fail "$name: the sandbox let something through"

    echo "tests/units.sh: $name: the daemon under it"
    sock="/run/snoopcast/$tag.sock"
    log="/var/log/snoopcast/$tag.log"
    sandbox "$unit" "$work/snoopcast" run --upstream up0 --downstream dn0 --control "$sock" \
        --log-file "$log" --query-interval 2s --query-response-interval 1s \
        >"$work/daemon.out" 2>&1 &
    daemon=$!
    pids+=("$daemon")
    for _ in $(seq 100); do
        "$work/snoopcast" status --control "$sock" >/dev/null 2>&1 && break
        kill -0 "$daemon" 2>/dev/null || fail "$name: the daemon exited: $(cat "$work/daemon.out")"
        sleep 0.1
    done
    "$work/snoopcast" status --control "$sock" >/dev/null || fail "$name: status does not answer"
    st=$(cat "/proc/$daemon/status")
    grep -q '^Uid:	65534	65534	65534	65534' <<<"$st" || fail "$name: not uid 65534: $st"
    grep -q '^NoNewPrivs:	1' <<<"$st" || fail "$name: no no_new_privs"
    grep -q '^Seccomp:	2' <<<"$st" || fail "$name: no seccomp filter"
    [ "$(stat -c %a "$sock")" = 660 ] || fail "$name: socket mode $(stat -c %a "$sock")"
    [ "$(stat -c %u:%a "$log")" = 65534:640 ] || fail "$name: log file $(stat -c %u:%a "$log") (UMask=0027)"
    grep -q 'privileges: kept CAP_NET_ADMIN, CAP_NET_RAW\|privileges: kept CAP_NET_RAW' "$log" ||
        fail "$name: no privilege line: $(cat "$log")"

    # A host joins, the source streams 200 datagrams: the host gets them as unicast copies.
    ip netns exec "$tag-host" /usr/bin/python3 "$work/host_agent.py" --iface h0 \
        --join 239.77.1.1 --duration 6 --name h1 </dev/null >"$work/host.json" 2>"$work/host.err" &
    agent=$!
    pids+=("$agent")
    for _ in $(seq 50); do
        [[ $("$work/snoopcast" status --control "$sock" --json) == *239.77.1.1* ]] && break
        sleep 0.1
    done
    [[ $("$work/snoopcast" status --control "$sock" --json) == *239.77.1.1* ]] ||
        fail "$name: no membership for 239.77.1.1: $(cat "$log")"
    ip netns exec "$tag-src" /usr/bin/python3 "$work/mcast_send.py" --iface s0 \
        --group 239.77.1.1 --count 200 --rate 400 --source 10.77.1.1 >/dev/null
    kill -HUP "$daemon"
    sleep 0.3
    kill -0 "$daemon" 2>/dev/null || fail "$name: SIGHUP stopped the daemon"
    wait "$agent" || fail "$name: host agent: $(cat "$work/host.err")"
    got=$(/usr/bin/python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(sum(v["unicast_to_me"] for v in r["frames"].get("239.77.1.1", {}).values()))
' "$work/host.json")
    [ "$got" -ge 190 ] || fail "$name: the host got $got of 200 unicast copies"
    echo "tests/units.sh: $name: 200 sent, $got unicast copies received"

    kill -TERM "$daemon"
    rc=0
    wait "$daemon" || rc=$?
    [ "$rc" -eq 0 ] || fail "$name: exit $rc after SIGTERM: $(tail -5 "$log")"
    grep -qi 'error' "$log" && fail "$name: errors logged: $(grep -i error "$log")"
    pids=()
    rm -f "$log"
done
echo "tests/units.sh: ok ($(($(date +%s) - start))s)"

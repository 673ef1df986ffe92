#!/usr/bin/env bash
# snoopcast demo: flooding versus unicast copies on a small virtual LAN.
#
#   sudo examples/demo.sh
#
# Builds, in network namespaces named scdemo-*:
#
#   [scdemo-src] s0 --veth-- up0 [scdemo-box] dn0 --veth-- p0 [scdemo-sw: br0, a dumb
#   switch] p1..p3 --veth-- eth0 [scdemo-h1..h3]
#
# h1 joins 239.1.1.1, h2 joins 239.1.1.1 and 239.1.1.2, h3 joins nothing. A source in
# scdemo-src sends both groups twice: first through a plain Linux bridge in the box (every
# host gets everything as multicast), then through snoopcast (members get unicast copies
# to their own MAC, h3 gets nothing). Everything is torn down on exit.
# Uses target/release/snoopcast (built with cargo if missing; SNOOPCAST_BIN overrides it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPERS=$ROOT/tests/helpers
P=scdemo
HOSTS=3
G1=239.1.1.1
G2=239.1.1.2
COUNT=${COUNT:-400}
RATE=${RATE:-400}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

heading() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root for network namespaces: sudo examples/demo.sh"

if ! command -v ethtool >/dev/null 2>&1; then
    heading "Installing ethtool"
    DEBIAN_FRONTEND=noninteractive apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ethtool
fi

BIN=${SNOOPCAST_BIN:-$ROOT/target/release/snoopcast}
if [ ! -x "$BIN" ]; then
    heading "Building snoopcast (cargo build --release)"
    if ! command -v cargo >/dev/null 2>&1 && [ -n "${SUDO_USER:-}" ]; then
        user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        export CARGO_HOME="$user_home/.cargo" RUSTUP_HOME="$user_home/.rustup"
        export PATH="$CARGO_HOME/bin:$PATH"
    fi
    (cd "$ROOT" && cargo build --release)
fi

WORK=$(mktemp -d /tmp/scdemo.XXXXXX)
NAMESPACES=(src box sw)
for i in $(seq 1 $HOSTS); do NAMESPACES+=("h$i"); done

show_table() {
    heading "Per-host counts: frames on eth0 by destination MAC, and datagrams on the socket"
"$PY" - "$WORK" "$G1" "$G2" <<'PYEOF'
import json, sys
work, groups = sys.argv[1], sys.argv[2:]
joins = {"h1": [groups[0]], "h2": groups, "h3": []}

def load(name):
    try:
        with open(f"{work}/{name}") as f:
            lines = [l for l in f if l.startswith("{")]
        return json.loads(lines[-1])
    except (OSError, IndexError, ValueError):
        return None

def frames(r, g, cls):
    if r is None:
        return "-"
    return sum(c[cls] for c in r["frames"].get(g, {}).values())

def sock(r, g):
    if r is None:
        return "-"
    return sum(c["ok"] for c in r["socket"].get(g, {}).values())

sent = {p: (load(f"{p}-sent.json") or {}).get("per_group", "-") for p in ("flood", "snoop")}
head = f"{'host':4} {'group':10} {'member':6} | {'flood: mcast':>12} {'ucast':>6} {'socket':>6} | {'snoopcast: mcast':>16} {'ucast':>6} {'socket':>6}"
print(head)
print("-" * len(head))
for h in ("h1", "h2", "h3"):
    f, s = load(f"flood-{h}.json"), load(f"snoop-{h}.json")
    for g in groups:
        print(f"{h:4} {g:10} {'yes' if g in joins[h] else 'no':6} | "
              f"{frames(f, g, 'multicast'):>12} {frames(f, g, 'unicast_to_me'):>6} {sock(f, g):>6} | "
              f"{frames(s, g, 'multicast'):>16} {frames(s, g, 'unicast_to_me'):>6} {sock(s, g):>6}")
print(f"\nsent per group: flood {sent['flood']}, snoopcast {sent['snoop']}")
print("mcast = frames to the group MAC, ucast = frames to the host's own MAC, "
      "socket = intact datagrams its application received")
PYEOF
}

cleanup() {
    local rc=$?
    for n in "${NAMESPACES[@]}"; do
        if ip netns list | grep -qw "$P-$n"; then
            for pid in $(ip netns pids "$P-$n" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        fi
    done
    for n in "${NAMESPACES[@]}"; do ip netns del "$P-$n" 2>/dev/null || true; done
    if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else echo "demo: logs kept in $WORK" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

nsx() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
sysctl_ns() { nsx "$1" sh -c "echo $3 > /proc/sys/${2//.//}"; }

build_lan() {
    for n in "${NAMESPACES[@]}"; do
        ip netns del "$P-$n" 2>/dev/null || true
        ip netns add "$P-$n"
        ip -n "$P-$n" link set lo up
        sysctl_ns "$n" net.ipv6.conf.all.disable_ipv6 1
        sysctl_ns "$n" net.ipv6.conf.default.disable_ipv6 1
        sysctl_ns "$n" net.ipv4.conf.all.rp_filter 0
        sysctl_ns "$n" net.ipv4.conf.default.rp_filter 0
    done
    ip link add s0 netns $P-src type veth peer name up0 netns $P-box
    ip -n $P-src addr add 10.1.0.1/24 dev s0
    ip -n $P-src link set s0 up
    ip -n $P-src route add 224.0.0.0/4 dev s0
    nsx src ethtool -K s0 tx off >/dev/null
    ip link add dn0 netns $P-box type veth peer name p0 netns $P-sw
    ip -n $P-box link set up0 up
    ip -n $P-box link set dn0 up
    ip -n $P-sw link add br0 type bridge mcast_snooping 0
    ip -n $P-sw link set p0 master br0
    ip -n $P-sw link set p0 up
    for i in $(seq 1 $HOSTS); do
        ip link add "p$i" netns $P-sw type veth peer name eth0 netns "$P-h$i"
        ip -n $P-sw link set "p$i" master br0
        ip -n $P-sw link set "p$i" up
        ip -n "$P-h$i" link set eth0 address "02:5c:00:02:00:0$i"
        sysctl_ns "h$i" net.ipv4.conf.eth0.rp_filter 0
        ip -n "$P-h$i" addr add "10.2.0.1$i/24" dev eth0
        ip -n "$P-h$i" link set eth0 up
        ip -n "$P-h$i" route add 224.0.0.0/4 dev eth0
    done
    ip -n $P-sw link set br0 up
}

box_bridge_on() {
    ip -n $P-box link add brx type bridge mcast_snooping 0
    ip -n $P-box link set up0 master brx
    ip -n $P-box link set dn0 master brx
    ip -n $P-box link set brx up
}

box_bridge_off() {
    ip -n $P-box link del brx
    ip -n $P-box addr add 10.1.0.2/24 dev up0
}

# Waits (up to 10 s) until every interface but lo is operationally up.
wait_links() {
    for _ in $(seq 100); do
        local down=0
        for n in "${NAMESPACES[@]}"; do
            if ip -n "$P-$n" -o link show | grep -v ': lo:' | grep -qv ' state UP '; then down=1; fi
        done
        [ $down -eq 0 ] && return 0
        sleep 0.1
    done
    die "links did not come up"
}

AGENT_PIDS=()
start_agents() {
    local phase=$1
    local joins=("--join $G1" "--join $G1 --join $G2" "")
    AGENT_PIDS=()
    for i in $(seq 1 $HOSTS); do
        # shellcheck disable=SC2086
        ip netns exec "$P-h$i" "$PY" "$HELPERS/host_agent.py" --name "h$i" --duration 60 ${joins[$((i - 1))]} \
            </dev/null >"$WORK/$phase-h$i.json" 2>"$WORK/$phase-h$i.err" &
        AGENT_PIDS+=($!)
    done
    for i in $(seq 1 $HOSTS); do
        for _ in $(seq 100); do grep -q '^ready' "$WORK/$phase-h$i.json" && break; sleep 0.1; done
        grep -q '^ready' "$WORK/$phase-h$i.json" || die "agent h$i did not start: $(cat "$WORK/$phase-h$i.err")"
    done
}

send_and_collect() {
    local phase=$1
    nsx src "$PY" "$HELPERS/mcast_send.py" --iface s0 --group $G1 --group $G2 \
        --count "$COUNT" --rate "$RATE" >"$WORK/$phase-sent.json"
    sleep 0.5
    kill -TERM "${AGENT_PIDS[@]}"
    wait "${AGENT_PIDS[@]}" || true
    echo "sent: $(cat "$WORK/$phase-sent.json")"
}

status() { nsx box "$BIN" status --control "$WORK/control.sock" "$@"; }

heading "Building the LAN (namespaces $P-*)"
build_lan
box_bridge_on
wait_links
cat <<EOF
  [src] s0 10.1.0.1 --veth-- up0 [box] dn0 --veth-- p0 [sw: br0, dumb switch] p1..p3
  --veth-- eth0 [h1 10.2.0.11 joins $G1] [h2 10.2.0.12 joins $G1 + $G2]
  [h3 10.2.0.13 joins nothing]
EOF

heading "Phase 1: a plain Linux bridge in the box (flooding)"
start_agents flood
send_and_collect flood

heading "Phase 2: snoopcast in the box"
box_bridge_off
ip netns exec $P-box "$BIN" run --upstream up0 --downstream dn0 --control "$WORK/control.sock" \
    --query-interval 10s --query-response-interval 1s --log-level info \
    >"$WORK/snoopcast.log" 2>&1 &
DAEMON=$!
up=0
for _ in $(seq 100); do
    if status --json 2>/dev/null | "$PY" -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null; then
        up=1
        break
    fi
    kill -0 $DAEMON 2>/dev/null || break
    sleep 0.1
done
if [ $up -ne 1 ]; then
    echo "snoopcast did not come up (its control socket never answered). Its log:" >&2
    cat "$WORK/snoopcast.log" >&2
    show_table
    exit 1
fi
start_agents snoop
for _ in $(seq 50); do
    n=$(status --json 2>/dev/null | "$PY" -c 'import json,sys
try: print(sum(len(g["members"]) for g in json.load(sys.stdin)["groups"]))
except Exception: print(0)')
    [ "$n" -ge 3 ] && break
    sleep 0.2
done
echo "snoopcast status:"
status | sed 's/^/  /' || true
send_and_collect snoop
kill -TERM $DAEMON 2>/dev/null || true
rc=0
wait $DAEMON || rc=$?
[ $rc -eq 0 ] || echo "snoopcast exited with status $rc after SIGTERM (expected 0)"

show_table
heading "Done; tearing the LAN down"

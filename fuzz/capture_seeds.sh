#!/usr/bin/env bash
# Seed corpus from real captures: what a Linux kernel puts on the wire when programs join and
# leave groups, captured with tcpdump and written as one seed file per frame.
#
#   sudo fuzz/capture_seeds.sh            # writes fuzz/corpus/*/seed-cap-*
#
# Two throwaway network namespaces joined by a veth pair (names scfz-<pid>-*, torn down on
# exit, even on failure):
#
#   [scfz-PID-host] h0 10.9.0.2 ---veth--- s0 [scfz-PID-rtr] in bridge br0 10.9.0.1
#    python3 sockets join/leave              multicast querier (IGMPv2 or v3 queries,
#    groups, send UDP to groups              group(-and-source)-specific on leaves)
#
# For IGMP versions 3, 2 and 1 (net.ipv4.conf.h0.force_igmp_version), the host joins any-source
# groups, source-specific groups (IP_ADD_SOURCE_MEMBERSHIP), blocks and unblocks sources,
# drops sources and leaves; the bridge's querier (mcast_igmp_version 3 or 2) asks and the host
# answers with current-state records. The v3 host also sends multicast UDP. Captured on s0:
# every frame as it crossed the link (veth passes the UDP checksum on still partial, as
# "hardware" would complete it: the CHECKSUM_PARTIAL case of a local source).
#
# Seeds: IGMP frames to corpus/igmp_frame and corpus/capture_frame; UDP frames to
# corpus/data_packet and corpus/capture_frame; the IP packets of the UDP frames (what a tun,
# an L3 link, delivers: the frame without its 14-byte Ethernet header) to
# corpus/data_packet, corpus/capture_frame and corpus/ipv4_checksum. Names are
# seed-cap-<kind>-<sha1 prefix>, so a re-run adds only new frames; delete seed-cap-* first to
# start over. Needs root, iproute2, tcpdump (installed with apt when missing) and python3.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib.sh
. "$here/../tests/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "capture_seeds.sh: needs root (network namespaces). Run: sudo $0" >&2
    exit 1
fi
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v tcpdump >/dev/null 2>&1 || missing+=(tcpdump)
[ -x /usr/bin/python3 ] || missing+=(python3)
install_missing capture_seeds.sh "${missing[@]}"

pfx="scfz-$$"
H="$pfx-host"
R="$pfx-rtr"
tmp=$(mktemp -d "/tmp/$pfx.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for ns in "$H" "$R"; do
        if ip netns list | grep -qw "$ns"; then
            for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

inh() { ip netns exec "$H" "$@"; }
inr() { ip netns exec "$R" "$@"; }

ip netns add "$H"
ip netns add "$R"
ip link add h0 netns "$H" address 02:5c:00:09:00:02 type veth peer name s0 netns "$R" address 02:5c:00:09:00:01
for ns in "$H" "$R"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip netns exec "$ns" ip link set lo up
done
inr ip link add br0 address 02:5c:00:09:00:01 type bridge mcast_snooping 1 mcast_querier 1 mcast_igmp_version 3 \
    mcast_query_interval 200 mcast_query_response_interval 50 \
    mcast_startup_query_count 1 mcast_last_member_interval 20 mcast_last_member_count 2
inr ip link set s0 master br0
inr ip addr add 10.9.0.1/24 dev br0
inr ip link set s0 up
inr ip link set br0 up
inh ip addr add 10.9.0.2/24 dev h0
inh ip link set h0 up
inh ip route add 224.0.0.0/4 dev h0
inh sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.h0.rp_filter=0
# Unsolicited reports 0.2 s apart instead of 1 s / 10 s.
inh sysctl -qw net.ipv4.conf.h0.igmpv3_unsolicited_report_interval=200 \
    net.ipv4.conf.h0.igmpv2_unsolicited_report_interval=200

# Started directly (not through inr), so $! is tcpdump itself (ip netns exec execs it).
ip netns exec "$R" tcpdump -q -n -U -i s0 -s 0 -w "$tmp/link.pcap" 'igmp or udp' 2>"$tmp/tcpdump.log" &
pids+=($!)
sleep 1.5

# The host's side: joins, source filters and leaves through real sockets, then some UDP.
cat >"$tmp/host.py" <<'EOF'
import socket, struct, sys, time

IP_UNBLOCK_SOURCE, IP_BLOCK_SOURCE = 37, 38
IP_ADD_SOURCE_MEMBERSHIP, IP_DROP_SOURCE_MEMBERSHIP = 39, 40
ME = socket.inet_aton("10.9.0.2")

def a(s):
    return socket.inet_aton(s)

def sock():
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

def any_join(s, g):
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, a(g) + ME)

def any_leave(s, g):
    s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, a(g) + ME)

def src_opt(s, opt, g, src):
    # struct ip_mreq_source: multiaddr, interface, sourceaddr
    s.setsockopt(socket.IPPROTO_IP, opt, a(g) + ME + a(src))

pause = float(sys.argv[1])
asm = sock(); any_join(asm, "239.1.1.1"); time.sleep(pause)
asm2 = sock(); any_join(asm2, "239.1.1.2"); time.sleep(pause)
# EXCLUDE with sources: block, then unblock.
src_opt(asm2, IP_BLOCK_SOURCE, "239.1.1.2", "10.9.0.66"); time.sleep(pause)
src_opt(asm2, IP_BLOCK_SOURCE, "239.1.1.2", "10.9.0.67"); time.sleep(pause)
src_opt(asm2, IP_UNBLOCK_SOURCE, "239.1.1.2", "10.9.0.66"); time.sleep(pause)
# Source-specific (INCLUDE) joins: SSM range and an ordinary group.
ssm = sock()
for s_ in ("10.9.0.100", "10.9.0.101", "10.9.0.102"):
    src_opt(ssm, IP_ADD_SOURCE_MEMBERSHIP, "232.1.1.1", s_); time.sleep(pause)
src_opt(ssm, IP_ADD_SOURCE_MEMBERSHIP, "239.2.2.2", "10.9.0.100"); time.sleep(pause)
# Let the querier ask and the host answer with current-state records.
time.sleep(float(sys.argv[2]))
# Drop one source, then leave everything.
src_opt(ssm, IP_DROP_SOURCE_MEMBERSHIP, "232.1.1.1", "10.9.0.101"); time.sleep(pause)
ssm.close(); time.sleep(pause)
any_leave(asm2, "239.1.1.2"); time.sleep(pause)
any_leave(asm, "239.1.1.1"); time.sleep(pause)
if sys.argv[3] != "udp":
    sys.exit(0)
# Multicast UDP: a few sizes (odd, empty, large) to an ASM and an SSM group.
tx = sock()
tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, ME)
for g in ("239.1.1.1", "232.1.1.1"):
    for n in (0, 1, 13, 200, 1400):
        tx.sendto(bytes((i * 7) & 0xff for i in range(n)), (g, 5000))
time.sleep(pause)
EOF

for v in 3 2 1; do
    echo "capture_seeds.sh: IGMPv$v host"
    [ "$v" = 3 ] && fv=0 || fv=$v
    inh sysctl -qw "net.ipv4.conf.h0.force_igmp_version=$fv"
    # The querier speaks v3 to the v3 host, v2 otherwise.
    qv=$([ "$v" = 3 ] && echo 3 || echo 2)
    inr ip link set br0 type bridge mcast_igmp_version "$qv"
    # The v3 host first: a v2 query puts a Linux host in v2 mode for minutes.
    inh /usr/bin/python3 "$tmp/host.py" 0.4 2.5 "$([ "$v" = 3 ] && echo udp || echo no-udp)"
done
sleep 1
for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
wait "${pids[@]}" 2>/dev/null || true
pids=()

# Split the captures into seed files.
/usr/bin/python3 - "$tmp/link.pcap" "$here/corpus" <<'EOF'
import hashlib, os, struct, sys

link_pcap, corpus = sys.argv[1:3]

def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(end + "I", data[20:24])[0]
    assert linktype == 1, f"{path}: link type {linktype}, expected Ethernet (1)"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(end + "IIII", data[off:off + 16])
        yield data[off + 16:off + 16 + incl]
        off += 16 + incl

written = {}
def put(target, kind, blob):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    name = f"seed-cap-{kind}-{hashlib.sha1(blob).hexdigest()[:10]}"
    path = os.path.join(d, name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(blob)
        written[target] = written.get(target, 0) + 1

IGMP_KIND = {0x11: "query", 0x12: "v1-report", 0x16: "v2-report", 0x17: "v2-leave", 0x22: "v3-report"}
if True:
    for fr in frames(link_pcap):
        if len(fr) < 34 or fr[12:14] != b"\x08\x00":
            continue
        ip = fr[14:]
        ihl = (ip[0] & 15) * 4
        if ip[9] == 2 and len(ip) > ihl:
            t = ip[ihl]
            kind = IGMP_KIND.get(t, "igmp")
            if t == 0x11:
                n = struct.unpack(">H", ip[2:4])[0] - ihl
                kind = "v3-query" if n >= 12 else ("v2-query" if ip[ihl + 1] else "v1-query")
            put("igmp_frame", kind, fr)
            put("capture_frame", kind, fr)
        elif ip[9] == 17:
            kind = "udp"
            put("data_packet", kind + "-ether", fr)
            put("capture_frame", kind + "-ether", fr)
            put("data_packet", kind + "-rawip", ip)
            put("capture_frame", kind + "-rawip", ip)
            put("ipv4_checksum", kind, ip)
for t, n in sorted(written.items()):
    print(f"capture_seeds.sh: {n} new seeds in corpus/{t}")
if not written:
    print("capture_seeds.sh: no new seeds")
EOF

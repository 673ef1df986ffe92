#!/usr/bin/python3
"""Send numbered, hashed UDP datagrams to IPv4 or IPv6 multicast groups (snoopcast e2e tests).

Run inside the source namespace:

    mcast_send.py --iface s0 --group 239.1.1.1 [--group ...] --count 1000 --rate 400
                  [--source 10.1.0.3] [--port 5000] [--size 200] [--ttl 8]
    mcast_send.py --iface s0 --group ff0e::1:1 ... [--source fd00:1::9] [--hop-by-hop]

COUNT datagrams go to every group; groups are served round-robin and RATE is
the total number of datagrams per second over all groups. Each payload is

    digest(8) | "SCT1" | seq u32 | group 4 bytes | source 4 bytes | size u16 | filler

with digest = first 8 bytes of SHA-256 over everything after it, so a receiver
(host_agent.py) can check that the datagram arrived intact and was meant for the
group and source it came from. IPv6 groups (`--group ff0e::1:1`) are sent the same way
from an AF_INET6 socket (IPV6_MULTICAST_IF = the interface's index, hop limit --ttl), with
"SCT6" and 16-byte group and source in the payload (`--hop-by-hop` puts an 8-byte
hop-by-hop options header with a PadN option before UDP):

    digest(8) | "SCT6" | seq u32 | group 16 bytes | source 16 bytes | size u16 | filler

The default IPv6 source is the interface's lowest global address (fd00:1::1 on s0), else
its link-local one. All groups of one run are of one family. At the end one JSON line is
printed:

    {"sent": N, "per_group": {"239.1.1.1": n, ...}, "errors": E,
     "source": "10.1.0.1", "elapsed": seconds}

Only the Python standard library is used.
"""

import argparse
import fcntl
import hashlib
import ipaddress
import json
import socket
import struct
import sys
import time

MAGIC = b"SCT1"
MAGIC6 = b"SCT6"
IPV6_HOPOPTS = 54
DIGEST_LEN = 8
SIOCGIFADDR = 0x8915
PATTERN = bytes(range(256)) * 40


def build_payload(seq, group, source, size):
    """The datagram body for sequence number seq (see the module doc); group and source
    packed, 4 bytes each (IPv4) or 16 (IPv6)."""
    start = seq % 256
    filler = PATTERN[start:start + size]
    if len(group) == 16:
        rest = MAGIC6 + struct.pack("!I16s16sH", seq, group, source, size) + filler
    else:
        rest = MAGIC + struct.pack("!I4s4sH", seq, group, source, size) + filler
    return hashlib.sha256(rest).digest()[:DIGEST_LEN] + rest


def paced_send(groups, count, rate, send, what, between=None):
    """Send `count` datagrams to each group, round robin, `rate` per second in all (0: as
    fast as possible): `send(seq, group)` sends one and raises OSError on failure (counted,
    the first five printed after `what`); `between(seq)`, if given, runs after each round.
    Returns the result JSON fields but "source": sent, per_group, errors, elapsed."""
    per_group = {str(g): 0 for g in groups}
    errors = 0
    interval = 1.0 / rate if rate > 0 else 0.0
    start = time.monotonic()
    slot = 0
    for seq in range(count):
        for g in groups:
            due = start + slot * interval
            slot += 1
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                send(seq, g)
                per_group[str(g)] += 1
            except OSError as e:
                errors += 1
                if errors <= 5:
                    print(f"{what} {g}: {e}", file=sys.stderr)
        if between is not None:
            between(seq)
    return {
        "sent": sum(per_group.values()),
        "per_group": per_group,
        "errors": errors,
        "elapsed": round(time.monotonic() - start, 3),
    }


def iface_addr(sock, iface):
    """The first IPv4 address of iface, as 4 bytes."""
    req = struct.pack("256s", iface.encode()[:15])
    return fcntl.ioctl(sock.fileno(), SIOCGIFADDR, req)[20:24]


def iface_addr6(iface):
    """(address, link-local?) of iface's lowest global IPv6 address, else its lowest
    link-local one, from /proc/net/if_inet6 (whose order is a hash's); None if none."""
    found = []
    with open("/proc/net/if_inet6") as f:
        for line in f:
            words = line.split()
            if len(words) < 6 or words[5] != iface:
                continue
            addr = ipaddress.IPv6Address(bytes.fromhex(words[0]))
            scope = int(words[3], 16)
            if scope in (0, 0x20):
                found.append((scope, addr))
    if not found:
        return None
    scope, addr = min(found)
    return str(addr), scope == 0x20


def open_v6(args, ifindex):
    """The IPv6 sending socket, bound to the source; returns (socket, source text)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    if args.source:
        source = str(ipaddress.IPv6Address(args.source))
        link_local = ipaddress.IPv6Address(source).is_link_local
    else:
        found = iface_addr6(args.iface)
        if found is None:
            sys.exit(f"mcast_send: {args.iface} has no IPv6 address")
        source, link_local = found
    sock.bind((source, 0, 0, ifindex if link_local else 0))
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, struct.pack("=i", ifindex))
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, args.ttl)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
    if args.hop_by_hop:
        # An 8-byte hop-by-hop options header holding one PadN option (RFC 8200 4.2, 4.3);
        # the kernel fills in the next header. Needs CAP_NET_RAW.
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_HOPOPTS, bytes([0, 0, 1, 4, 0, 0, 0, 0]))
    return sock, source


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iface", default="s0", help="outgoing interface (IP_MULTICAST_IF)")
    ap.add_argument("--group", action="append", required=True, help="destination group, repeatable")
    ap.add_argument("--count", type=int, default=1000, help="datagrams per group")
    ap.add_argument("--rate", type=float, default=400.0, help="datagrams per second over all groups")
    ap.add_argument("--source", help="source address to bind (default: the interface's address)")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--size", type=int, default=200, help="filler bytes per datagram (<= 10000)")
    ap.add_argument("--ttl", type=int, default=8)
    ap.add_argument("--hop-by-hop", action="store_true",
                    help="IPv6: put a hop-by-hop options header (PadN) before UDP")
    args = ap.parse_args()

    try:
        groups = [ipaddress.ip_address(g) for g in args.group]
    except ValueError as e:
        ap.error(str(e))
    for g in groups:
        if not g.is_multicast:
            ap.error(f"{g} is not a multicast address")
    if len({g.version for g in groups}) != 1:
        ap.error("all groups of one run must be IPv4, or all IPv6")
    if not 0 <= args.size <= 10000:
        ap.error("--size must be 0..10000")
    if groups[0].version == 6:
        return send_v6(args, groups)
    if args.hop_by_hop:
        ap.error("--hop-by-hop is for IPv6 groups")

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    ifindex = socket.if_nametoindex(args.iface)
    source = socket.inet_aton(args.source) if args.source else iface_addr(sock, args.iface)
    sock.bind((socket.inet_ntoa(source), 0))
    # struct ip_mreqn {imr_multiaddr, imr_address, imr_ifindex}: pick the interface by index.
    mreqn = struct.pack("4s4si", b"\0" * 4, source, ifindex)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, args.ttl)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)

    def send(seq, g):
        payload = build_payload(seq, g.packed, source, args.size)
        sock.sendto(payload, (str(g), args.port))

    result = paced_send(groups, args.count, args.rate, send, "mcast_send: sendto")
    result["source"] = socket.inet_ntoa(source)
    print(json.dumps(result), flush=True)
    return 0


def send_v6(args, groups):
    """main for IPv6 groups: the same schedule and output."""
    ifindex = socket.if_nametoindex(args.iface)
    sock, source = open_v6(args, ifindex)
    source_packed = socket.inet_pton(socket.AF_INET6, source)

    def send(seq, g):
        payload = build_payload(seq, g.packed, source_packed, args.size)
        # The scope id picks the link of a link-local scope group (ff02::/16).
        sock.sendto(payload, (str(g), args.port, 0, ifindex))

    result = paced_send(groups, args.count, args.rate, send, "mcast_send: sendto")
    result["source"] = source
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

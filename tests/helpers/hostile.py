#!/usr/bin/python3
"""Hostile IGMP from a host namespace (snoopcast e2e tests, e2e_hostile.rs).

Two sub-commands, both sending raw Ethernet frames out of IFACE (AF_PACKET):

    hostile.py malformed --iface eth0 [--count 20] [--class NAME ...] [--gap-ms 2]
                         [--group 239.77.0.1]
    hostile.py flood --iface eth0 [--count 100000] [--duration S] [--macs 2000]
                     [--groups 4096] [--group-base 239.200.0.0] [--seed 1] [--leaves R]
                     [--records N] [--distinct K]

`malformed` sends COUNT frames of each class (all of them unless --class is given), paced
by GAP_MS so that nothing is lost on the way, and prints one JSON line:

    {"sent": {"truncated_igmp": 20, ...}, "groups": ["239.77.0.1", ...], "total": N}

Each class is a valid IGMP frame from the host's own MAC and address (built with scapy)
with exactly one thing wrong; see CLASSES. `groups` are the groups those frames name, so
the test can check that none of them produced a member.

`flood` sends at least COUNT IGMP reports, as fast as one Python loop can, from spoofed
source MACs (locally administered unicast, a pool of MACS of them) and source addresses in
10.2.0.0/16, each for a random group out of GROUPS groups from GROUP_BASE: IGMPv2 reports
(half), IGMPv3 reports with one EXCLUDE{} record (a join, 3 in 10) or one INCLUDE{S} record
(a source-specific join, 2 in 10). With --records N > 1 every report is IGMPv3 with N
records (jumbo frames: the path needs the MTU). With --leaves R, a share R of the frames instead leave
what an earlier frame joined (IGMPv2 leave or IGMPv3 TO_IN{}): churn. Every frame is valid (TTL 1, Router Alert, checksums).
The frames are built once by hand (scapy builds a few thousand a second; a send loop over
prebuilt bytes does far more), then blasted; with --duration it keeps cycling through them
until that many seconds have passed. It prints `sending` when the frames are built and the
blast starts, and one JSON line at the end:

    {"sent": N, "errors": E, "elapsed": s, "rate": reports_per_s, "v2": n, "v3": n,
     "leaves": n, "macs": distinct_macs, "groups": distinct_groups, "distinct_frames": n}

Uses python3-scapy (Debian) for the malformed frames only.
"""

import argparse
import ipaddress
import json
import random
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800


def csum(data):
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def group_mac(group):
    """The IPv4 multicast MAC of a group (RFC 1112 section 6.4)."""
    o = ipaddress.IPv4Address(group).packed
    return bytes([0x01, 0x00, 0x5E, o[1] & 0x7F, o[2], o[3]])


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(":"))


def iface_mac(iface):
    with open(f"/sys/class/net/{iface}/address") as f:
        return f.read().strip()


def iface_ip(iface):
    """The first IPv4 address of iface (SIOCGIFADDR), or 0.0.0.0."""
    import fcntl

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        req = struct.pack("256s", iface.encode()[:15])
        return socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, req)[20:24])
    except OSError:
        return "0.0.0.0"
    finally:
        s.close()


def raw_socket(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind((iface, 0))
    return s


# ---------------------------------------------------------------------------------------
# Malformed classes
# ---------------------------------------------------------------------------------------

ETH = 14  # Ethernet header length


def fix_ip_checksum(frame):
    """Recompute the IPv4 header checksum over the header length the IHL says."""
    f = bytearray(frame)
    ihl = (f[ETH] & 0x0F) * 4
    f[ETH + 10:ETH + 12] = b"\0\0"
    f[ETH + 10:ETH + 12] = struct.pack("!H", csum(bytes(f[ETH:ETH + ihl])))
    return bytes(f)


def fix_igmp_checksum(frame, ihl=24):
    """Recompute the IGMP checksum over the rest of the frame after a header of ihl."""
    f = bytearray(frame)
    o = ETH + ihl
    f[o + 2:o + 4] = b"\0\0"
    f[o + 2:o + 4] = struct.pack("!H", csum(bytes(f[o:])))
    return bytes(f)


class Builder:
    """Valid frames from this host, built with scapy; the classes break one thing each."""

    def __init__(self, iface, group):
        from scapy.contrib.igmp import IGMP
        from scapy.contrib.igmpv3 import IGMPv3, IGMPv3gr, IGMPv3mr
        from scapy.layers.inet import IP, IPOption_Router_Alert
        from scapy.layers.l2 import Ether

        self.s = dict(IGMP=IGMP, IGMPv3=IGMPv3, IGMPv3gr=IGMPv3gr, IGMPv3mr=IGMPv3mr,
                      IP=IP, RA=IPOption_Router_Alert, Ether=Ether)
        self.mac = iface_mac(iface)
        self.ip = iface_ip(iface)
        if self.ip == "0.0.0.0":
            self.ip = "10.2.0.99"
        self.base = ipaddress.IPv4Address(group)
        self.n = 0

    def next_group(self):
        """A fresh group per class, so a wrongly accepted frame shows as a member."""
        g = str(self.base + self.n)
        self.n += 1
        return g

    def v2(self, group, ttl=1, src_mac=None, igmp_type=0x16):
        s = self.s
        pkt = (s["Ether"](src=src_mac or self.mac, dst=group_mac(group))
               / s["IP"](src=self.ip, dst=group, ttl=ttl, options=[s["RA"]()])
               / s["IGMP"](type=igmp_type, mrcode=0, gaddr=group))
        frame = bytes(pkt)
        assert len(frame) == ETH + 24 + 8, len(frame)
        return frame

    def v3(self, group, ttl=1, sources=(), rtype=4):
        """An IGMPv3 report with one record (type 4 = CHANGE_TO_EXCLUDE)."""
        s = self.s
        rec = s["IGMPv3gr"](rtype=rtype, maddr=group, srcaddrs=list(sources))
        pkt = (s["Ether"](src=self.mac, dst="01:00:5e:00:00:16")
               / s["IP"](src=self.ip, dst="224.0.0.22", ttl=ttl, options=[s["RA"]()])
               / s["IGMPv3"](type=0x22)
               / s["IGMPv3mr"](records=[rec]))
        return bytes(pkt)


def set_ip_total(frame, total):
    f = bytearray(frame)
    f[ETH + 2:ETH + 4] = struct.pack("!H", total)
    return fix_ip_checksum(bytes(f))


def cls_truncated_igmp(b):
    # An IGMPv2 report whose IP total length leaves 4 of its 8 bytes: too short for any
    # IGMP message (RFC 2236 section 2: 8 octets).
    f = b.v2(b.next_group())
    return set_ip_total(f[:ETH + 24 + 4], 24 + 4)


def cls_ip_total_length_overrun(b):
    # The IP total length claims 40 bytes more than the frame carries.
    f = b.v2(b.next_group())
    return set_ip_total(f, 24 + 8 + 40)


def cls_bad_igmp_checksum(b):
    f = bytearray(b.v2(b.next_group()))
    f[ETH + 24 + 2] ^= 0x5A
    return bytes(f)


def cls_bad_ip_checksum(b):
    f = bytearray(b.v2(b.next_group()))
    f[ETH + 10] ^= 0x5A
    return bytes(f)


def cls_v3_record_count_overrun(b):
    # Number of Group Records says 5; one record is present (RFC 3376 section 4.2).
    f = bytearray(b.v3(b.next_group()))
    f[ETH + 24 + 6:ETH + 24 + 8] = struct.pack("!H", 5)
    return fix_igmp_checksum(bytes(f))


def cls_v3_source_count_overrun(b):
    # The record's Number of Sources says 200; one source is present.
    f = bytearray(b.v3(b.next_group(), sources=["10.1.0.1"], rtype=1))
    rec = ETH + 24 + 8
    f[rec + 2:rec + 4] = struct.pack("!H", 200)
    return fix_igmp_checksum(bytes(f))


def cls_v3_aux_overrun(b):
    # Aux Data Len says 10 words (40 bytes, RFC 3376 section 4.2.6); none are present.
    f = bytearray(b.v3(b.next_group()))
    rec = ETH + 24 + 8
    f[rec + 1] = 10
    return fix_igmp_checksum(bytes(f))


def cls_ihl_too_small(b):
    # IHL 3 (12 bytes): below the IPv4 minimum of 5 words.
    f = bytearray(b.v2(b.next_group()))
    f[ETH] = 0x43
    return bytes(f)


def cls_ihl_too_large(b):
    # IHL 15 (60 bytes) in a 32-byte packet: the header runs past the total length.
    f = bytearray(b.v2(b.next_group()))
    f[ETH] = 0x4F
    f[ETH + 10:ETH + 12] = b"\0\0"
    f[ETH + 10:ETH + 12] = struct.pack("!H", csum(bytes(f[ETH:ETH + 24])))
    return bytes(f)


def cls_not_ipv4(b):
    # EtherType IPv4, version nibble 6.
    f = bytearray(b.v2(b.next_group()))
    f[ETH] = 0x66
    return bytes(f)


def cls_multicast_src_mac(b):
    # A valid report from a group MAC: no host has one (RFC 1112 section 6.4).
    return b.v2(b.next_group(), src_mac="01:00:5e:01:02:03")


def cls_ttl_2(b):
    # A valid IGMPv2 report with TTL 2 (RFC 2236 section 2: IGMP is sent with TTL 1).
    return b.v2(b.next_group(), ttl=2)


def cls_ttl_64_v3(b):
    # A valid IGMPv3 report with TTL 64 (RFC 3376 section 4).
    return b.v3(b.next_group(), ttl=64)


def cls_unknown_type(b):
    # A well-formed IGMP message of a type snoopcast does not know (0x1e, multicast
    # traceroute response): RFC 3376 section 4 says ignore it, it is not malformed.
    return b.v2(b.next_group(), igmp_type=0x1E)


CLASSES = {
    "truncated_igmp": cls_truncated_igmp,
    "ip_total_length_overrun": cls_ip_total_length_overrun,
    "bad_igmp_checksum": cls_bad_igmp_checksum,
    "bad_ip_checksum": cls_bad_ip_checksum,
    "v3_record_count_overrun": cls_v3_record_count_overrun,
    "v3_source_count_overrun": cls_v3_source_count_overrun,
    "v3_aux_overrun": cls_v3_aux_overrun,
    "ihl_too_small": cls_ihl_too_small,
    "ihl_too_large": cls_ihl_too_large,
    "not_ipv4": cls_not_ipv4,
    "multicast_src_mac": cls_multicast_src_mac,
    "ttl_2": cls_ttl_2,
    "ttl_64_v3": cls_ttl_64_v3,
    "unknown_type": cls_unknown_type,
}


def cmd_malformed(args):
    names = args.cls or list(CLASSES)
    for n in names:
        if n not in CLASSES:
            sys.exit(f"hostile.py: unknown class {n} (known: {', '.join(CLASSES)})")
    b = Builder(args.iface, args.group)
    s = raw_socket(args.iface)
    sent = {}
    for n in names:
        frame = CLASSES[n](b)
        sent[n] = 0
        for _ in range(args.count):
            s.send(frame)
            sent[n] += 1
            time.sleep(args.gap_ms / 1000.0)
    groups = [str(b.base + i) for i in range(b.n)]
    print(json.dumps({"sent": sent, "groups": groups, "total": sum(sent.values())}), flush=True)


# ---------------------------------------------------------------------------------------
# Flood
# ---------------------------------------------------------------------------------------

# IPv4 header with the Router Alert option (RFC 2113), 24 bytes; TTL 1, protocol 2.
IP_FMT = "!BBHHHBBH4s4s4s"
RA = b"\x94\x04\x00\x00"


def ip_header(src, dst, payload_len):
    h = struct.pack(IP_FMT, 0x46, 0xC0, 24 + payload_len, 0, 0, 1, 2, 0, src, dst, RA)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def with_checksum(igmp):
    return igmp[:2] + struct.pack("!H", csum(igmp)) + igmp[4:]


def flood_frames(args):
    rng = random.Random(args.seed)
    macs = []
    for _ in range(args.macs):
        m = bytearray(rng.getrandbits(8) for _ in range(6))
        m[0] = (m[0] & 0xFC) | 0x02  # unicast, locally administered
        macs.append(bytes(m))
    base = int(ipaddress.IPv4Address(args.group_base))
    groups = [struct.pack("!I", base + i) for i in range(args.groups)]
    all_v3 = socket.inet_aton("224.0.0.22")
    mac_v3 = group_mac("224.0.0.22")
    source = socket.inet_aton("10.1.0.1")
    frames, v2, v3, leaves, used_macs, used_groups = [], 0, 0, 0, set(), set()
    joined = []  # (mac index, group) pairs a frame joined, for --leaves
    for i in range(min(args.count, args.distinct)):
        if joined and rng.random() < args.leaves:
            # Leave what an earlier frame joined: an IGMPv2 leave or an IGMPv3 TO_IN{}.
            k = rng.randrange(len(joined))
            joined[k], joined[-1] = joined[-1], joined[k]
            mi, g = joined.pop()
            ip = struct.pack("!BBH", 10, 2, 256 + mi)
            if rng.random() < 0.5:
                igmp = with_checksum(struct.pack("!BBH4s", 0x17, 0, 0, g))
                all_routers = socket.inet_aton("224.0.0.2")
                frames.append(group_mac("224.0.0.2") + macs[mi] + b"\x08\x00"
                              + ip_header(ip, all_routers, len(igmp)) + igmp)
            else:
                rec = struct.pack("!BBH4s", 3, 0, 0, g)  # CHANGE_TO_INCLUDE {}
                igmp = with_checksum(struct.pack("!BBHHH", 0x22, 0, 0, 0, 1) + rec)
                frames.append(mac_v3 + macs[mi] + b"\x08\x00"
                              + ip_header(ip, all_v3, len(igmp)) + igmp)
            leaves += 1
            continue
        mi = rng.randrange(len(macs))
        mac = macs[mi]
        ip = struct.pack("!BBH", 10, 2, 256 + mi)
        g = groups[rng.randrange(len(groups))]
        used_macs.add(mi)
        used_groups.add(g)
        joined.append((mi, g))
        kind = 1.0 if args.records > 1 else rng.random()
        if kind < 0.5:
            igmp = with_checksum(struct.pack("!BBH4s", 0x16, 0, 0, g))
            dst_mac, dst_ip = group_mac(socket.inet_ntoa(g)), g
            v2 += 1
        else:
            if kind < 0.8:
                rec = struct.pack("!BBH4s", 4, 0, 0, g)  # CHANGE_TO_EXCLUDE {}
            else:
                rec = struct.pack("!BBH4s4s", 1, 0, 1, g, source)  # MODE_IS_INCLUDE {S}
            # --records N: N - 1 more CHANGE_TO_EXCLUDE {} records for other groups.
            more = [struct.pack("!BBH4s", 4, 0, 0, groups[rng.randrange(len(groups))])
                    for _ in range(args.records - 1)]
            rec = rec + b"".join(more)
            igmp = with_checksum(struct.pack("!BBHHH", 0x22, 0, 0, 0, args.records) + rec)
            dst_mac, dst_ip = mac_v3, all_v3
            v3 += 1
        frames.append(dst_mac + mac + b"\x08\x00" + ip_header(ip, dst_ip, len(igmp)) + igmp)
    return frames, v2, v3, leaves, len(used_macs), len(used_groups)


def cmd_flood(args):
    frames, v2, v3, leaves, n_macs, n_groups = flood_frames(args)
    s = raw_socket(args.iface)
    send = s.send
    sent = errors = 0
    start = time.monotonic()
    stop_at = start + args.duration if args.duration else None
    n = len(frames)
    print("sending", flush=True)
    i = 0
    while sent < args.count or (stop_at is not None and time.monotonic() < stop_at):
        # 1000 frames between looks at the clock and the count.
        for f in frames[i:i + 1000]:
            try:
                send(f)
                sent += 1
            except OSError:  # ENOBUFS: the queue is full; count it and go on
                errors += 1
        i = i + 1000 if i + 1000 < n else 0
    elapsed = time.monotonic() - start
    rounds = sent / n if n else 0
    print(json.dumps({
        "sent": sent, "errors": errors, "elapsed": round(elapsed, 3),
        "rate": round(sent / elapsed) if elapsed > 0 else 0,
        "v2": round(v2 * rounds), "v3": round(v3 * rounds), "leaves": round(leaves * rounds),
        "macs": n_macs, "groups": n_groups, "distinct_frames": n,
    }), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("malformed", help="a fixed count of each malformed class")
    m.add_argument("--iface", default="eth0")
    m.add_argument("--count", type=int, default=20, help="frames per class")
    m.add_argument("--class", dest="cls", action="append", help="only this class (repeatable)")
    m.add_argument("--gap-ms", type=float, default=2.0, help="pause between frames")
    m.add_argument("--group", default="239.77.0.1", help="first group named by the frames")
    m.add_argument("--list", action="store_true", help="print the class names and exit")
    f = sub.add_parser("flood", help="spoofed reports as fast as possible")
    f.add_argument("--iface", default="eth0")
    f.add_argument("--count", type=int, default=100_000, help="reports to send at least")
    f.add_argument("--duration", type=float, default=0.0,
                   help="keep sending until this many seconds have passed")
    f.add_argument("--macs", type=int, default=2000, help="spoofed source MACs in the pool")
    f.add_argument("--groups", type=int, default=4096, help="groups in the pool")
    f.add_argument("--group-base", default="239.200.0.0")
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--records", type=int, default=1,
                   help="records per IGMPv3 report; above 1 every report is IGMPv3 (jumbo "
                        "reports need a large MTU on the path)")
    f.add_argument("--distinct", type=int, default=200_000,
                   help="distinct frames built (then cycled); keep it small for big reports")
    f.add_argument("--leaves", type=float, default=0.0,
                   help="share of frames that leave a group an earlier frame joined (churn)")
    args = ap.parse_args()
    if args.cmd == "malformed":
        if args.list:
            print("\n".join(CLASSES))
            return
        cmd_malformed(args)
    else:
        if min(args.count, args.macs, args.groups, args.records, args.distinct) < 1:
            ap.error("--count, --macs, --groups, --records and --distinct must be positive")
        if 8 + 8 * args.records + 24 > 65535:
            ap.error("--records: at most 8187 records fit in an IPv4 packet")
        cmd_flood(args)


if __name__ == "__main__":
    main()

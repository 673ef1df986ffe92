#!/usr/bin/env python3
"""Write the seed corpus: a few valid frames per target, built with `struct`, checksums
computed here (independently of the crate). Run from anywhere: python3 fuzz/make_seeds.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
HOST_MAC = bytes([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def with_csum(b, at):
    b = bytearray(b)
    b[at:at + 2] = b"\0\0"
    b[at:at + 2] = struct.pack("!H", csum(bytes(b)))
    return bytes(b)


def group_mac(dst):
    return bytes([0x01, 0x00, 0x5E, dst[1] & 0x7F, dst[2], dst[3]])


def ipv4(src, dst, proto, payload, ttl=1, router_alert=True, tos=0xC0, df=True):
    opts = bytes([0x94, 4, 0, 0]) if router_alert else b""
    ihl = (20 + len(opts)) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, 20 + len(opts) + len(payload), 0,
                      0x4000 if df else 0, ttl, proto, 0, ip4(src), ip4(dst)) + opts
    return with_csum(hdr, 10) + payload


def ether(dst_ip, ip, pad_to=0):
    f = group_mac(ip4(dst_ip)) + HOST_MAC + b"\x08\x00" + ip
    return f + b"\0" * max(0, pad_to - len(f))


def igmp(b):
    return with_csum(b, 2)


def v2_report(group):
    return igmp(struct.pack("!BBH4s", 0x16, 0, 0, ip4(group)))


def v2_leave(group):
    return igmp(struct.pack("!BBH4s", 0x17, 0, 0, ip4(group)))


def v3_report(records):
    body = b""
    for rtype, group, sources, aux in records:
        body += struct.pack("!BBH4s", rtype, len(aux) // 4, len(sources), ip4(group))
        body += b"".join(ip4(s) for s in sources) + aux
    return igmp(struct.pack("!BBHHH", 0x22, 0, 0, 0, len(records)) + body)


def query(group, code, s_qrv=None, qqic=0, sources=()):
    b = struct.pack("!BBH4s", 0x11, code, 0, ip4(group))
    if s_qrv is not None:
        b += struct.pack("!BBH", s_qrv, qqic, len(sources)) + b"".join(ip4(s) for s in sources)
    return igmp(b)


def udp(src, dst, sport, dport, data):
    """A UDP datagram with its RFC 768 checksum (pseudo-header included)."""
    length = 8 + len(data)
    seg = struct.pack("!HHHH", sport, dport, length, 0) + data
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 17, length)
    c = csum(pseudo + seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


HOST = "192.168.1.10"
seeds = {
    "igmp_frame": {
        "v2-report": ether("239.1.2.3", ipv4(HOST, "239.1.2.3", 2, v2_report("239.1.2.3")), 60),
        "v2-leave": ether("224.0.0.2", ipv4(HOST, "224.0.0.2", 2, v2_leave("239.1.2.3")), 60),
        "v3-report": ether("224.0.0.22", ipv4(HOST, "224.0.0.22", 2, v3_report([
            (4, "239.1.2.3", [], b""),
            (3, "232.1.1.1", ["10.0.0.1", "10.0.0.2"], b""),
            (5, "232.9.9.9", ["10.0.0.3"], b"\xaa\xbb\xcc\xdd"),  # one aux data word
        ]))),
        "v1-query": ether("224.0.0.1", ipv4("192.168.1.1", "224.0.0.1", 2, query("0.0.0.0", 0),
                                             router_alert=False)),
        "v2-query": ether("224.0.0.1", ipv4("192.168.1.1", "224.0.0.1", 2,
                                             query("0.0.0.0", 100)), 60),
        "v3-query-general": ether("224.0.0.1", ipv4("192.168.1.1", "224.0.0.1", 2,
                                                     query("0.0.0.0", 100, 0x02, 125)), 60),
        "v3-query-group-source": ether("239.1.2.3", ipv4("192.168.1.1", "239.1.2.3", 2, query(
            "239.1.2.3", 0x8A, 0x0A, 0x90, ["10.0.0.1", "10.0.0.2"]))),
    },
}
UDP_IP = ipv4("10.1.0.1", "239.1.1.1", 17,
              udp("10.1.0.1", "239.1.1.1", 40000, 5000, b"hello, multicast"),
              ttl=8, router_alert=False, tos=0)
SSM_IP = ipv4("10.1.0.2", "232.1.1.1", 17, udp("10.1.0.2", "232.1.1.1", 1234, 5001, b"x" * 40),
              ttl=16, router_alert=True, tos=0)
SHORT_IP = ipv4("10.1.0.1", "239.1.1.1", 17, udp("10.1.0.1", "239.1.1.1", 1, 2, b"hi"),
                ttl=8, router_alert=False, tos=0)
seeds["data_packet"] = {
    "udp-ether": ether("239.1.1.1", UDP_IP),
    "udp-ether-padded": ether("239.1.1.1", SHORT_IP, 60),
    "udp-raw-ip": UDP_IP,
    "udp-raw-ip-options-ssm": SSM_IP,
}
# complete_udp_checksum sees the IPv4 packet; the seeds carry a partial (stale) checksum.
stale = lambda p, ihl: p[:ihl + 6] + b"\x12\x34" + p[ihl + 8:]
seeds["ipv4_checksum"] = {
    "udp": stale(UDP_IP, 20),
    "udp-options": stale(SSM_IP, 24),
    "udp-odd-length": stale(SHORT_IP, 20),
    "udp-empty-payload": ipv4("10.0.0.1", "239.2.2.2", 17, udp("10.0.0.1", "239.2.2.2", 7, 9, b""),
                              router_alert=False, tos=0),
}
# The capture threads see both kinds of frame: IGMP downstream, data upstream.
seeds["capture_frame"] = {**seeds["igmp_frame"], **seeds["data_packet"]}

# IPv6 (issue 6): Ethernet frames behind a flag byte (0: the checksums are already right).
def ip6a(s):
    import ipaddress
    return ipaddress.IPv6Address(s).packed


def ipv6(src, dst, nh, payload, hlim=1):
    return struct.pack("!IHBB", 0x60000000, len(payload), nh, hlim) + ip6a(src) + ip6a(dst) + payload


def ether6(dst, ip):
    return b"\x33\x33" + ip6a(dst)[12:] + HOST_MAC + b"\x86\xdd" + ip


def icmp6(src, dst, body):
    body = bytearray(body)
    body[2:4] = b"\0\0"
    pseudo = ip6a(src) + ip6a(dst) + struct.pack("!IxxxB", len(body), 58)
    body[2:4] = struct.pack("!H", csum(pseudo + bytes(body)))
    return bytes(body)


def udp6(src, dst, sport, dport, data):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    pseudo = ip6a(src) + ip6a(dst) + struct.pack("!IxxxB", len(seg), 17)
    return seg[:6] + struct.pack("!H", csum(pseudo + seg) or 0xFFFF) + seg[8:]


HBH_RA = lambda nh: bytes([nh, 0, 5, 2, 0, 0, 1, 0])  # Router Alert 0 (MLD), PadN
FRAG = lambda nh, off, more: struct.pack("!BBHI", nh, 0, off << 3 | more, 0x5eed)
LL, ALL_NODES, V2_ROUTERS = "fe80::5054:ff:fe12:3456", "ff02::1", "ff02::16"


def mld6(src, dst, body, chain=None):
    m = icmp6(src, dst, body)
    return b"\0" + ether6(dst, ipv6(src, dst, 0, (chain or HBH_RA(58)) + m))


def mld_query(group, code, v2=None):
    b = struct.pack("!BBHHH16s", 130, 0, 0, code, 0, ip6a(group))
    if v2 is not None:
        s_qrv, qqic, sources = v2
        b += struct.pack("!BBH", s_qrv, qqic, len(sources)) + b"".join(ip6a(x) for x in sources)
    return b


def mld2_report(records):
    b = struct.pack("!BBHHH", 143, 0, 0, 0, len(records))
    for rtype, group, sources, aux in records:
        b += struct.pack("!BBH", rtype, len(aux) // 4, len(sources)) + ip6a(group)
        b += b"".join(ip6a(x) for x in sources) + aux
    return b


G6, S6 = "ff0e::1234", "2001:db8::1"
UDP6 = udp6(S6, G6, 5000, 6000, b"hello, ipv6 multicast")
seeds["mld_frame"] = {
    "v2-report": mld6(LL, V2_ROUTERS, mld2_report([
        (4, "ff05::1:3", [], b""),
        (1, "ff3e::8000:1", [S6, "2001:db8::2"], b""),
        (5, "ff3e::8000:2", ["2001:db8::3"], b"\xaa\xbb\xcc\xdd"),  # one aux data word
    ])),
    "v2-report-dad": mld6("::", V2_ROUTERS, mld2_report([(4, "ff02::1:ff12:3456", [], b"")])),
    "v1-report": mld6(LL, G6, struct.pack("!BBHHH16s", 131, 0, 0, 0, 0, ip6a(G6))),
    "v1-done": mld6(LL, "ff02::2", struct.pack("!BBHHH16s", 132, 0, 0, 0, 0, ip6a(G6))),
    "v1-query": mld6("fe80::1", ALL_NODES, mld_query("::", 10000)),
    "v2-query": mld6("fe80::1", ALL_NODES, mld_query("::", 10000, (0x02, 125, []))),
    "v2-query-group-source": mld6("fe80::1", G6, mld_query(G6, 0x8123, (0x0A, 0x90, [S6]))),
    # Hop-by-hop, destination options, atomic fragment, then the report.
    "v2-report-chain": mld6(LL, V2_ROUTERS, mld2_report([(2, G6, [], b"")]),
                            chain=HBH_RA(60) + bytes([44, 0, 1, 4, 0, 0, 0, 0]) + FRAG(58, 0, 0)),
    "neighbour-solicitation": b"\0" + ether6("ff02::1:ff12:3456", ipv6(
        "::", "ff02::1:ff12:3456", 58, icmp6("::", "ff02::1:ff12:3456",
                                             struct.pack("!BBHI", 135, 0, 0, 0) + ip6a(LL)), 255)),
    "udp": b"\0" + ether6(G6, ipv6(S6, G6, 17, UDP6, 64)),
    "udp-stale-checksum": b"\0" + ether6(G6, ipv6(S6, G6, 17, UDP6[:6] + b"\x12\x34" + UDP6[8:], 64)),
    "udp-chain": b"\0" + ether6(G6, ipv6(S6, G6, 0, bytes([60, 0, 1, 4, 0, 0, 0, 0]) +
                                       bytes([17, 0, 1, 4, 0, 0, 0, 0]) + UDP6, 64)),
    "udp-first-fragment": b"\0" + ether6(G6, ipv6(S6, G6, 44, FRAG(17, 0, 1) + UDP6[:16], 64)),
    "udp-later-fragment": b"\0" + ether6(G6, ipv6(S6, G6, 44, FRAG(17, 2, 0) + UDP6[16:], 64)),
}

for target, files in seeds.items():
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)
    print(target, len(files), "seeds")

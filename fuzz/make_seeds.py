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

for target, files in seeds.items():
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)
    print(target, len(files), "seeds")

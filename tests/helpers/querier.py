#!/usr/bin/env python3
"""A general querier for the e2e tests: sends general queries to all hosts from --src on
--iface every --interval seconds, as raw Ethernet frames, until killed. No scapy.

    querier.py --iface eth0 --src 10.2.0.13 [--version 2|3] [--interval 0.5]
               [--max-resp 10] [--qrv 2] [--qqic 125]
    querier.py --iface eth0 --src fe80::5c:ff:fe02:1 --version 1|2 ...   # MLD

IGMP (an IPv4 --src, 0.0.0.0 too): to 224.0.0.1, TTL 1, Router Alert; IGMPv2 is the
8-byte query (RFC 2236), IGMPv3 the 12-byte one (RFC 3376 4.1) with S=0, --qrv and
--qqic (seconds, QQIC code) and no sources. MLD (an IPv6 --src, a link-local address):
to ff02::1, hop limit 1, a hop-by-hop header with Router Alert; MLDv1 is the 24-byte
query (RFC 2710 3), MLDv2 the 28-byte one (RFC 3810 5.1) with QRV and QQIC. --max-resp is
in seconds (default 10 s: Max Resp Code 100 for IGMP, 10000 ms for MLD). The defaults are
those the script always had (IGMPv3, QRV 2, QQIC 125, every 0.5 s)."""
import argparse, socket, struct, time


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def code8(v):
    """RFC 3376 4.1.1 / 4.1.7: an 8-bit code, literal below 128, else exp/mant."""
    v = int(v)
    if v < 128:
        return v
    for exp in range(8):
        mant = (v >> (exp + 3)) - 16
        if 0 <= mant < 16:
            return 0x80 | (exp << 4) | mant
    raise SystemExit("value %d too large for an 8-bit code" % v)


def query(version, max_resp=10.0, qrv=2, qqic=125):
    mrc = code8(round(max_resp * 10))
    if version == 2:
        q = struct.pack("!BBH4s", 0x11, mrc, 0, bytes(4))
    else:
        # Max Resp Code (1/10 s), group 0, S=0 QRV, QQIC, no sources.
        q = struct.pack("!BBH4sBBH", 0x11, mrc, 0, bytes(4), qrv & 7, code8(qqic), 0)
    return q[:2] + struct.pack("!H", csum(q)) + q[4:]


def own_mac(iface):
    with open("/sys/class/net/%s/address" % iface) as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def frame(iface, src, version, max_resp=10.0, qrv=2, qqic=125):
    igmp = query(version, max_resp, qrv, qqic)
    ra = b"\x94\x04\x00\x00"
    total = 24 + len(igmp)
    h = struct.pack("!BBHHHBBH4s4s", 0x46, 0xC0, total, 0, 0, 1, 2, 0,
                    socket.inet_aton(src), socket.inet_aton("224.0.0.1")) + ra
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    eth = bytes.fromhex("01005e000001") + own_mac(iface) + b"\x08\x00"
    return eth + h + igmp


def mld_frame(iface, src, version, max_resp=10.0, qrv=2, qqic=125):
    src6 = socket.inet_pton(socket.AF_INET6, src)
    dst6 = socket.inet_pton(socket.AF_INET6, "ff02::1")
    mrd = int(round(max_resp * 1000))
    if mrd >= 32768:
        raise SystemExit("--max-resp too large for this helper's MLD code")
    msg = struct.pack("!BBHHH16s", 130, 0, 0, mrd, 0, bytes(16))
    if version == 2:
        msg += struct.pack("!BBH", qrv & 7, code8(qqic), 0)
    pseudo = src6 + dst6 + struct.pack("!I3xB", len(msg), 58) + msg
    msg = msg[:2] + struct.pack("!H", csum(pseudo)) + msg[4:]
    hbh = bytes([58, 0, 5, 2, 0, 0, 1, 0])
    ip6 = struct.pack("!IHBB", 6 << 28, len(hbh) + len(msg), 0, 1) + src6 + dst6
    eth = b"\x33\x33" + dst6[12:] + own_mac(iface) + bytes.fromhex("86dd")
    return eth + ip6 + hbh + msg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--version", type=int, choices=(1, 2, 3), default=None,
                    help="IGMP 2 or 3 (default 3); MLD 1 or 2 (default 2)")
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--max-resp", type=float, default=10.0, help="seconds")
    ap.add_argument("--qrv", type=int, default=2)
    ap.add_argument("--qqic", type=int, default=125, help="seconds")
    a = ap.parse_args()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    if ":" in a.src:
        version = a.version or 2
        if version not in (1, 2):
            ap.error("MLD --version is 1 or 2")
        f = mld_frame(a.iface, a.src, version, a.max_resp, a.qrv, a.qqic)
    else:
        version = a.version or 3
        if version not in (2, 3):
            ap.error("IGMP --version is 2 or 3")
        f = frame(a.iface, a.src, version, a.max_resp, a.qrv, a.qqic)
    while True:
        s.send(f)
        time.sleep(a.interval)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A general querier for the e2e tests: sends IGMP general queries (v2 or v3) to 224.0.0.1
from --src on --iface every --interval seconds, as raw Ethernet frames (IP with Router
Alert, TTL 1), until killed. No scapy."""
import argparse, socket, struct, time


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def query(version, mrt_ds=10):
    if version == 2:
        q = struct.pack("!BBH4s", 0x11, mrt_ds * 10, 0, bytes(4))
    else:
        # Max Resp Code (1/10 s), group 0, S=0 QRV=2, QQIC 125, no sources.
        q = struct.pack("!BBH4sBBH", 0x11, mrt_ds * 10, 0, bytes(4), 2, 125, 0)
    return q[:2] + struct.pack("!H", csum(q)) + q[4:]


def frame(iface, src, version):
    igmp = query(version)
    ra = b"\x94\x04\x00\x00"
    total = 24 + len(igmp)
    h = struct.pack("!BBHHHBBH4s4s", 0x46, 0xC0, total, 0, 0, 1, 2, 0,
                    socket.inet_aton(src), socket.inet_aton("224.0.0.1")) + ra
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    with open("/sys/class/net/%s/address" % iface) as f:
        mac = bytes.fromhex(f.read().strip().replace(":", ""))
    eth = bytes.fromhex("01005e000001") + mac + b"\x08\x00"
    return eth + h + igmp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--version", type=int, choices=(2, 3), default=3)
    ap.add_argument("--interval", type=float, default=0.5)
    a = ap.parse_args()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    f = frame(a.iface, a.src, a.version)
    while True:
        s.send(f)
        time.sleep(a.interval)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""A wire recorder for the e2e tests: captures every frame on one interface (AF_PACKET)
and keeps the IGMP and MLD messages one by one and the multicast UDP data per group.

    sniff.py --iface p0 [--duration 120]

Run it in the switch namespace on p0, the port facing snoopcast's downstream: a frame
snoopcast sent arrives there (`"dir": "in"`), a frame of a host leaves there towards the
box (`"dir": "out"`: the dumb switch floods it).

Prints `ready` once the capture is open; on SIGTERM, SIGINT or when --duration ends it
prints one JSON line and exits 0:

    {"iface": "p0",
     "igmp": [{"t": epoch, "dir": "in"|"out", "src_mac", "dst_mac", "src", "dst", "ttl",
               "type": 17, "len": 12, "group": "0.0.0.0", "mrc": 10}, ...],
     "mld": [{"t", "dir", "src_mac", "dst_mac", "src", "dst", "hop_limit",
              "type": 130, "len": 28, "group": "::", "mrc": 1000}, ...],
     "data": {GROUP: {"in"|"out": {"multicast"|"unicast": {"n": n, "first": t, "last": t}}}}}

`type` is the IGMP type (0x11 = 17 query, 0x12 = 18 v1 report, 0x16 = 22 v2 report,
0x17 = 23 leave, 0x22 = 34 v3 report) or the ICMPv6 type (130 query, 131 v1 report, 132
done, 143 v2 report); `len` the IGMP or ICMPv6 message length (an IGMP query of 8 bytes
is v1/v2, 12 or more v3; an MLD query of 24 bytes is v1, 28 or more v2); `group` the
group field (queries, v1/v2 reports, leaves; the first record's group for v3 and MLDv2
reports, with `groups` listing all); `mrc` the max response code. `t` is time.time() at
receipt. `data` counts UDP frames whose IP destination is multicast by the L2 destination
(group MAC or not). Only the Python standard library is used.
"""

import argparse
import ipaddress
import json
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
IPV6_EXT = (0, 43, 60)


def mac(b):
    return ":".join("%02x" % x for x in b)


def parse(frame, now, direction, out):
    if len(frame) < 14:
        return
    dst_mac, src_mac, ethertype = frame[0:6], frame[6:12], frame[12:14]
    base = {"t": now, "dir": direction, "src_mac": mac(src_mac), "dst_mac": mac(dst_mac)}
    l2_multicast = bool(dst_mac[0] & 1)
    if ethertype == b"\x08\x00" and len(frame) >= 34:
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        proto, ttl = ip[9], ip[8]
        src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        body = ip[ihl:total]
        if proto == 2 and len(body) >= 8:
            rec = dict(base, src=src, dst=dst, ttl=ttl, type=body[0], len=len(body),
                       mrc=body[1], group=socket.inet_ntoa(body[4:8]))
            if body[0] == 0x22:
                rec["groups"] = v3_groups(body)
                rec["group"] = rec["groups"][0] if rec["groups"] else "0.0.0.0"
            out["igmp"].append(rec)
        elif proto == 17 and ipaddress.ip_address(dst).is_multicast:
            count_data(out, dst, direction, l2_multicast, now)
    elif ethertype == b"\x86\xdd" and len(frame) >= 54:
        ip = frame[14:]
        nh, hop = ip[6], ip[7]
        src = str(ipaddress.IPv6Address(ip[8:24]))
        dst = str(ipaddress.IPv6Address(ip[24:40]))
        off = 40
        while nh in IPV6_EXT or nh == 44:
            if off + 8 > len(ip):
                return
            if nh == 44:
                nh, off = ip[off], off + 8
            else:
                nh, off = ip[off], off + (ip[off + 1] + 1) * 8
        body = ip[off:]
        if nh == 58 and len(body) >= 4 and body[0] in (130, 131, 132, 143):
            rec = dict(base, src=src, dst=dst, hop_limit=hop, type=body[0], len=len(body))
            if body[0] in (130, 131, 132) and len(body) >= 24:
                rec["mrc"] = struct.unpack("!H", body[4:6])[0]
                rec["group"] = str(ipaddress.IPv6Address(body[8:24]))
            elif body[0] == 143:
                rec["groups"] = mld2_groups(body)
                rec["group"] = rec["groups"][0] if rec["groups"] else "::"
            out["mld"].append(rec)
        elif nh == 17 and ipaddress.ip_address(dst).is_multicast:
            count_data(out, dst, direction, l2_multicast, now)


def v3_groups(body):
    """The group of each record of an IGMPv3 report."""
    groups, n, off = [], struct.unpack("!H", body[6:8])[0], 8
    for _ in range(n):
        if off + 8 > len(body):
            break
        aux, nsrc = body[off + 1], struct.unpack("!H", body[off + 2:off + 4])[0]
        groups.append(socket.inet_ntoa(body[off + 4:off + 8]))
        off += 8 + 4 * nsrc + 4 * aux
    return groups


def mld2_groups(body):
    """The multicast address of each record of an MLDv2 report."""
    groups, n, off = [], struct.unpack("!H", body[6:8])[0], 8
    for _ in range(n):
        if off + 20 > len(body):
            break
        aux, nsrc = body[off + 1], struct.unpack("!H", body[off + 2:off + 4])[0]
        groups.append(str(ipaddress.IPv6Address(body[off + 4:off + 20])))
        off += 20 + 16 * nsrc + 4 * aux
    return groups


def count_data(out, group, direction, l2_multicast, now):
    cls = "multicast" if l2_multicast else "unicast"
    c = out["data"].setdefault(group, {}).setdefault(direction, {}).setdefault(
        cls, {"n": 0, "first": now, "last": now})
    c["n"] += 1
    c["last"] = now


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", required=True)
    ap.add_argument("--duration", type=float, default=120.0)
    a = ap.parse_args()
    out = {"iface": a.iface, "igmp": [], "mld": [], "data": {}}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((a.iface, 0))
    s.setblocking(False)
    print("ready", flush=True)
    end = time.time() + a.duration
    while not stop and time.time() < end:
        try:
            r, _, _ = select.select([s], [], [], 0.2)
        except InterruptedError:
            continue
        if not r:
            continue
        while True:
            try:
                frame, addr = s.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            direction = "out" if addr[2] == PACKET_OUTGOING else "in"
            parse(frame, time.time(), direction, out)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())

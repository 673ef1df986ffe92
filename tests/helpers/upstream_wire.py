#!/usr/bin/python3
"""The upstream wire for tests/e2e_upstream_reports.rs: a recorder that takes IGMP and MLD
reports apart record by record, and senders of raw queries and reports. Python standard
library only; every message is built and parsed here by hand.

    upstream_wire.py sniff --iface s0 [--duration 120]
    upstream_wire.py query --iface s0 --src 10.1.0.1 [--version 3] [--group G]
                     [--source S ...] [--max-resp 1] [--qrv 2] [--qqic 125]
                     [--count 1] [--interval 0.5]
    upstream_wire.py query --iface s0 --src fe80::... --version 2 ...        # MLD
    upstream_wire.py report --iface eth0 --src 10.2.0.11 --first 239.100.0.1
                     --groups 5000 [--type 4] [--repeat 2] [--gap 0.2] [--mtu 1500]

sniff: captures every frame on --iface (AF_PACKET, kernel receive timestamps,
SO_TIMESTAMPNS, CLOCK_REALTIME) and keeps each IGMP and MLD message. Prints `ready` once the
capture is open. A `dump` line on stdin prints everything recorded so far as one JSON line,
then `ok dump`; SIGTERM, SIGINT, the end of --duration or EOF on stdin print it a last time
and exit 0. The JSON:

    {"iface": "s0",
     "msgs": [{"t": epoch, "dir": "in"|"out", "src_mac", "dst_mac", "proto": "igmp"|"mld",
               "src", "dst", "ttl" (hop limit for MLD), "ra": bool, "type": n, "len": n,
               ...}, ...]}

`dir` is "in" for a frame that arrived at --iface and "out" for one it sent. `ra`: the
IPv4 header carries a Router Alert option (type 0x94), or the IPv6 hop-by-hop header a
Router Alert option (type 5). Per type:

- IGMP query (type 17): "version" (1: 8 bytes with max resp code 0, 2: 8 bytes, 3: 12 or
  more), "group", "mrc" (the code as sent), "sources" (IGMPv3), "qrv", "qqic" (IGMPv3).
- IGMPv1/v2 report (18, 22), IGMPv2 leave (23): "group".
- IGMPv3 report (34): "records": [{"type": 1..6, "group", "sources": [...], "aux": n}];
  "bad": a reason when the records overrun the message (the records before stay).
- MLD query (130): "version" (1: 24 bytes, 2: 28 or more), "group", "mrc" (ms code),
  "sources" (MLDv2).
- MLDv1 report (131), done (132): "group".
- MLDv2 report (143): "records" as for IGMPv3.

query: sends --count queries --interval apart out of --iface as raw frames: general (no
--group; to 224.0.0.1 / ff02::1), group-specific (--group; to the group) or group-and-
source-specific (--group and --source, IGMPv3 and MLDv2 only). IGMP (IPv4 --src): TTL 1,
Router Alert, version 2 (8 bytes) or 3 (12 + 4 per source). MLD (IPv6 --src, a link-local
address): hop limit 1, a hop-by-hop header with Router Alert, version 1 (24 bytes) or 2
(28 + 16 per source). --max-resp in seconds. Prints {"sent": n, "t": [epoch, ...]}.

report: IGMPv3 reports (to 224.0.0.22, TTL 1, Router Alert, IP source --src) with one
record of --type and no sources for each of --groups consecutive groups from --first,
packed into as few messages as --mtu allows, the whole set sent --repeat times --gap
seconds apart. Prints {"sent": frames, "records": n, "groups": n}.
"""

import argparse
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD: struct timespec of longs (also SCM_TIMESTAMPNS)
TIMESPEC = struct.Struct("@ll")
IPV6_EXT = (0, 43, 60, 51)  # hop-by-hop, routing, destination options, AH (fragment: 44)


def mac(b):
    return ":".join("%02x" % x for x in b)


def ip4(b):
    return socket.inet_ntoa(bytes(b))


def ip6(b):
    return str(ipaddress.IPv6Address(bytes(b)))


def records(body, addr_len, to_str):
    """The group records of an IGMPv3 (addr_len 4) or MLDv2 (16) report; (records, bad)."""
    out, n, off = [], struct.unpack("!H", body[6:8])[0], 8
    for _ in range(n):
        if off + 4 + addr_len > len(body):
            return out, "record header past the end"
        rtype, aux, nsrc = body[off], body[off + 1], struct.unpack("!H", body[off + 2:off + 4])[0]
        group = to_str(body[off + 4:off + 4 + addr_len])
        off += 4 + addr_len
        end = off + addr_len * nsrc
        if end + 4 * aux > len(body):
            return out, "sources or aux data past the end"
        sources = [to_str(body[i:i + addr_len]) for i in range(off, end, addr_len)]
        out.append({"type": rtype, "group": group, "sources": sources, "aux": aux})
        off = end + 4 * aux
    return out, None


def parse_igmp(base, ip, out):
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    if ihl < 20 or total < ihl + 8 or total > len(ip):
        return
    opts, body = ip[20:ihl], ip[ihl:total]
    ra, i = False, 0
    while i < len(opts):
        if opts[i] == 0:
            break
        if opts[i] == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            break
        if opts[i] == 0x94:
            ra = True
        i += opts[i + 1]
    m = dict(base, proto="igmp", src=ip4(ip[12:16]), dst=ip4(ip[16:20]), ttl=ip[8], ra=ra,
             type=body[0], len=len(body))
    t = body[0]
    if t == 0x11:
        m["group"], m["mrc"] = ip4(body[4:8]), body[1]
        if len(body) >= 12:
            nsrc = struct.unpack("!H", body[10:12])[0]
            m.update(version=3, qrv=body[8] & 7, qqic=body[9],
                     sources=[ip4(body[12 + 4 * k:16 + 4 * k]) for k in range(nsrc)
                              if 16 + 4 * k <= len(body)])
        else:
            m["version"] = 1 if body[1] == 0 else 2
    elif t in (0x12, 0x16, 0x17):
        m["group"] = ip4(body[4:8])
    elif t == 0x22:
        m["records"], bad = records(body, 4, ip4)
        if bad:
            m["bad"] = bad
    out.append(m)


def parse_mld(base, ip, out):
    nh, hop = ip[6], ip[7]
    src, dst = ip6(ip[8:24]), ip6(ip[24:40])
    off, ra = 40, False
    while nh in IPV6_EXT or nh == 44:
        if off + 8 > len(ip):
            return
        if nh == 44:
            nh, off = ip[off], off + 8
            continue
        length = (ip[off + 1] + 1) * 8 if nh != 51 else (ip[off + 1] + 2) * 4
        if nh == 0:
            i = off + 2
            while i < off + length and i < len(ip):
                if ip[i] == 0:  # Pad1
                    i += 1
                    continue
                if i + 1 >= len(ip):
                    break
                if ip[i] == 5:
                    ra = True
                i += 2 + ip[i + 1]
        nh, off = ip[off], off + length
    body = ip[off:]
    if nh != 58 or len(body) < 4 or body[0] not in (130, 131, 132, 143):
        return
    m = dict(base, proto="mld", src=src, dst=dst, ttl=hop, ra=ra, type=body[0], len=len(body))
    t = body[0]
    if t in (130, 131, 132) and len(body) >= 24:
        m["group"] = ip6(body[8:24])
        if t == 130:
            m["mrc"] = struct.unpack("!H", body[4:6])[0]
            if len(body) >= 28:
                nsrc = struct.unpack("!H", body[26:28])[0]
                m.update(version=2, qrv=body[24] & 7, qqic=body[25],
                         sources=[ip6(body[28 + 16 * k:44 + 16 * k]) for k in range(nsrc)
                                  if 44 + 16 * k <= len(body)])
            else:
                m["version"] = 1
    elif t == 143 and len(body) >= 8:
        m["records"], bad = records(body, 16, ip6)
        if bad:
            m["bad"] = bad
    out.append(m)


def parse(frame, stamp, direction, out):
    if len(frame) < 14:
        return
    base = {"t": stamp, "dir": direction, "dst_mac": mac(frame[0:6]),
            "src_mac": mac(frame[6:12])}
    ethertype, ip = frame[12:14], frame[14:]
    if ethertype == b"\x08\x00" and len(ip) >= 28 and ip[0] >> 4 == 4 and ip[9] == 2:
        parse_igmp(base, ip, out)
    elif ethertype == b"\x86\xdd" and len(ip) >= 44 and ip[0] >> 4 == 6:
        parse_mld(base, ip, out)


def sniff(a):
    out = {"iface": a.iface, "msgs": []}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind((a.iface, 0))
    s.setblocking(False)
    print("ready", flush=True)
    stdin = sys.stdin.fileno()
    watch = [s, stdin]
    end = time.time() + a.duration
    buf = b""
    while not stop and time.time() < end:
        try:
            r, _, _ = select.select(watch, [], [], 0.2)
        except InterruptedError:
            continue
        if s in r:
            while True:
                try:
                    frame, anc, _flags, addr = s.recvmsg(65535, socket.CMSG_SPACE(TIMESPEC.size))
                except (BlockingIOError, InterruptedError):
                    break
                stamp = time.time()
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = TIMESPEC.unpack_from(value)
                        stamp = sec + nsec / 1e9
                direction = "out" if addr[2] == PACKET_OUTGOING else "in"
                parse(frame, stamp, direction, out["msgs"])
        if stdin in r:
            chunk = os.read(stdin, 4096)
            if not chunk:
                watch = [s]  # EOF: keep recording until SIGTERM or --duration
                continue
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip() == b"dump":
                    print(json.dumps(out), flush=True)
                    print("ok dump", flush=True)
    print(json.dumps(out), flush=True)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def code8(v):
    """RFC 3376 4.1.1: an 8-bit code, literal below 128, else exponent and mantissa."""
    v = int(v)
    if v < 128:
        return v
    for exp in range(8):
        mant = (v >> (exp + 3)) - 16
        if 0 <= mant < 16:
            return 0x80 | (exp << 4) | mant
    raise SystemExit("value %d too large for an 8-bit code" % v)


def own_mac(iface):
    with open("/sys/class/net/%s/address" % iface) as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def group_mac4(dst):
    o = socket.inet_aton(dst)
    return bytes([0x01, 0x00, 0x5E, o[1] & 0x7F, o[2], o[3]])


def ipv4_frame(iface, src, dst, payload):
    ra = b"\x94\x04\x00\x00"
    h = struct.pack("!BBHHHBBH4s4s", 0x46, 0xC0, 24 + len(payload), 0, 0, 1, 2, 0,
                    socket.inet_aton(src), socket.inet_aton(dst)) + ra
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return group_mac4(dst) + own_mac(iface) + b"\x08\x00" + h + payload


def igmp_query(a):
    group = a.group or "0.0.0.0"
    mrc = code8(round(a.max_resp * 10))
    if a.version == 2:
        if a.source:
            raise SystemExit("IGMPv2 queries have no sources")
        q = struct.pack("!BBH4s", 0x11, mrc, 0, socket.inet_aton(group))
    else:
        q = struct.pack("!BBH4sBBH", 0x11, mrc, 0, socket.inet_aton(group), a.qrv & 7,
                        code8(a.qqic), len(a.source))
        q += b"".join(socket.inet_aton(s) for s in a.source)
    q = q[:2] + struct.pack("!H", csum(q)) + q[4:]
    return ipv4_frame(a.iface, a.src, a.group or "224.0.0.1", q)


def mld_query(a):
    a6 = lambda s: socket.inet_pton(socket.AF_INET6, s)
    src6 = a6(a.src)
    dst6 = a6(a.group or "ff02::1")
    mrd = int(round(a.max_resp * 1000))
    if mrd >= 32768:
        raise SystemExit("--max-resp too large for this helper's MLD code")
    msg = struct.pack("!BBHHH16s", 130, 0, 0, mrd, 0, a6(a.group or "::"))
    if a.version == 2:
        msg += struct.pack("!BBH", a.qrv & 7, code8(a.qqic), len(a.source))
        msg += b"".join(a6(s) for s in a.source)
    elif a.source:
        raise SystemExit("MLDv1 queries have no sources")
    pseudo = src6 + dst6 + struct.pack("!I3xB", len(msg), 58) + msg
    msg = msg[:2] + struct.pack("!H", csum(pseudo)) + msg[4:]
    hbh = bytes([58, 0, 5, 2, 0, 0, 1, 0])
    ip = struct.pack("!IHBB", 6 << 28, len(hbh) + len(msg), 0, 1) + src6 + dst6
    return b"\x33\x33" + dst6[12:] + own_mac(a.iface) + bytes.fromhex("86dd") + ip + hbh + msg


def query(a):
    if ":" in a.src:
        a.version = a.version or 2
        if a.version not in (1, 2):
            raise SystemExit("MLD --version is 1 or 2")
        f = mld_query(a)
    else:
        a.version = a.version or 3
        if a.version not in (2, 3):
            raise SystemExit("IGMP --version is 2 or 3")
        f = igmp_query(a)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    times = []
    for i in range(a.count):
        if i:
            time.sleep(a.interval)
        times.append(time.time())
        s.send(f)
    print(json.dumps({"sent": len(times), "t": times}), flush=True)


def report(a):
    first = int(ipaddress.IPv4Address(a.first))
    groups = [str(ipaddress.IPv4Address(first + k)) for k in range(a.groups)]
    per_msg = (a.mtu - 24 - 8) // 8  # IP header with Router Alert, IGMPv3 report header
    frames = []
    for k in range(0, len(groups), per_msg):
        chunk = groups[k:k + per_msg]
        recs = b"".join(struct.pack("!BBH4s", a.type, 0, 0, socket.inet_aton(g)) for g in chunk)
        msg = struct.pack("!BBHHH", 0x22, 0, 0, 0, len(chunk)) + recs
        msg = msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]
        frames.append(ipv4_frame(a.iface, a.src, "224.0.0.22", msg))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    sent = 0
    for r in range(a.repeat):
        if r:
            time.sleep(a.gap)
        for f in frames:
            s.send(f)
            sent += 1
    print(json.dumps({"sent": sent, "records": len(groups) * a.repeat,
                      "groups": len(groups)}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("sniff")
    p.add_argument("--iface", required=True)
    p.add_argument("--duration", type=float, default=120.0)
    p = sub.add_parser("query")
    p.add_argument("--iface", required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--version", type=int, choices=(1, 2, 3), default=None)
    p.add_argument("--group", default=None)
    p.add_argument("--source", action="append", default=[])
    p.add_argument("--max-resp", type=float, default=1.0, help="seconds")
    p.add_argument("--qrv", type=int, default=2)
    p.add_argument("--qqic", type=int, default=125, help="seconds")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--interval", type=float, default=0.5)
    p = sub.add_parser("report")
    p.add_argument("--iface", required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--first", required=True)
    p.add_argument("--groups", type=int, required=True)
    p.add_argument("--type", type=int, default=4)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--gap", type=float, default=0.2)
    p.add_argument("--mtu", type=int, default=1500)
    a = ap.parse_args()
    {"sniff": sniff, "query": query, "report": report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())

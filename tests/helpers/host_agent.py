#!/usr/bin/python3
"""A multicast receiver host for the snoopcast e2e tests. Runs inside one host namespace.

    host_agent.py [--iface eth0] [--port 5000] [--join SPEC ...] [--duration SEC] [--name h1]

SPEC is a group (`239.1.1.1`, any-source join with IP_ADD_MEMBERSHIP) or a group and a
source (`232.1.1.1@10.1.0.1`, source-specific join with IP_ADD_SOURCE_MEMBERSHIP). IPv6
works the same way: `ff0e::1:1` joins any-source with IPV6_JOIN_GROUP, `ff3e::1@fd00:1::1`
source-specific with MCAST_JOIN_SOURCE_GROUP, both on the interface's index (the kernel
then reports with MLDv2, or MLDv1 under force_mld_version=1).

Two things are counted at the same time:

* socket: one UDP socket per group, bound to (group, port), with IP_MULTICAST_ALL=0 (or
  IPV6_MULTICAST_ALL=0) so it only gets its own memberships. Datagrams are counted per (group, source address) as
  `ok` (intact, see mcast_send.py for the payload), `bad` (wrong hash, magic, group or
  source) and `dup` (a sequence number seen before). Each intact datagram's kernel receive
  time (SO_TIMESTAMPNS, CLOCK_REALTIME) feeds `arrivals`, per group over all sources: the
  first and last arrival and the longest gap between two consecutive ones.
* frames: an AF_PACKET capture on the interface counts incoming IPv4 and IPv6 UDP frames
  whose IP destination is a multicast group, per (group, source), by destination MAC:
  `unicast_to_me` (the interface's own MAC), `multicast` (group bit set), `other`.
  IPv6 frames are followed through their extension headers (hop-by-hop, routing,
  fragment, destination options, AH) to UDP; every fragment counts, as with IPv4.
  IPv6 groups and sources are written compressed (`ff0e::1:1`), as Rust prints them.
  Outgoing and incoming IGMP frames are counted too (`igmp_out`, `igmp_in`), and MLD
  messages (ICMPv6 130 query, 131 v1 report, 132 done, 143 v2 report, behind the
  hop-by-hop header) as `mld_out`, `mld_in`; outgoing frames are seen after tc egress,
  so a dropped report is not counted.

Commands, one per line on stdin, each answered on stdout by `ok CMD` or `err CMD: why`:

    join SPEC      join (as above)
    leave SPEC     drop that membership (the group's socket is closed when none is left)
    mark           zero the `since_mark` frame counters, `igmp_out_since_mark` and
                   `mld_out_since_mark`
    report         print the JSON result now and keep running

`ready` is printed once the initial joins are done and the capture is open. On SIGTERM,
SIGINT, `quit` or when --duration ends, the JSON result is printed as one line and the
agent exits 0. End of stdin is not a stop (the agent may run with stdin from /dev/null).

Result:
    {"name": "h1", "iface": "eth0", "mac": "02:..", "ip": "10.2.0.11",
     "ip6": ["fe80::..", ...] (the interface's IPv6 addresses, link-local first; [] if none),
     "joined": ["239.1.1.1", "232.1.1.1@10.1.0.1", "ff0e::1:1", "ff3e::1@fd00:1::1"],
     "socket": {GROUP: {SOURCE: {"ok": n, "bad": n, "dup": n}}},
     "frames": {GROUP: {SOURCE: {"unicast_to_me": n, "multicast": n, "other": n}}},
     "since_mark": {same shape as frames},
     "igmp_out": n, "igmp_out_since_mark": n, "igmp_in": n,
     "mld_out": n, "mld_out_since_mark": n, "mld_in": n,
     "mld_out_types": {"131": n, "132": n, "143": n, ...}, "elapsed": seconds,
     "arrivals": {GROUP: {"n": n, "first": t, "last": t, "max_gap_ms": ms,
                          "max_gap_end": t}}}

`arrivals` times are seconds since the epoch (float, the kernel's receive timestamp, so
the agent's own scheduling does not show); `max_gap_end` is the arrival that ended the
longest gap (0 and `first` while only one datagram came).

`mld_out_types` counts the outgoing MLD messages by ICMPv6 type, to tell MLDv1 reports
(131) and dones (132) from MLDv2 reports (143).

Only the Python standard library is used.
"""

import argparse
import errno
import fcntl
import hashlib
import ipaddress
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time

MAGIC = b"SCT1"
MAGIC6 = b"SCT6"
DIGEST_LEN = 8
HEADER = struct.Struct("!I4s4sH")
HEADER6 = struct.Struct("!I16s16sH")

# Linux values; older Pythons lack some of these names.
IP_MULTICAST_ALL = 49
IP_ADD_SOURCE_MEMBERSHIP = 39
IP_DROP_SOURCE_MEMBERSHIP = 40
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD: struct timespec of longs (also SCM_TIMESTAMPNS)
TIMESPEC = struct.Struct("@ll")
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SIOCGIFADDR = 0x8915
IPV6_MULTICAST_ALL = 29
MCAST_JOIN_SOURCE_GROUP = 46
MCAST_LEAVE_SOURCE_GROUP = 47
ETH_P_IP = b"\x08\x00"
ETH_P_IPV6 = b"\x86\xdd"
# IPv6 extension headers followed to the upper layer (RFC 8200 4): hop-by-hop, routing,
# fragment, destination options, AH.
IPV6_EXT = (0, 43, 44, 60, 51)
# MLD message types (RFC 2710 3.6, RFC 3810 5): query, v1 report, done, v2 report.
MLD_TYPES = (130, 131, 132, 143)

CLASSES = ("unicast_to_me", "multicast", "other")


def parse_spec(spec):
    """'G' or 'G@S' -> (group, source or None), validated; IPv4 or IPv6 (both the same)."""
    group, _, source = spec.partition("@")
    g = ipaddress.ip_address(group)
    if not g.is_multicast:
        raise ValueError(f"{group} is not a multicast address")
    s = ipaddress.ip_address(source) if source else None
    if s is not None and s.version != g.version:
        raise ValueError(f"{spec}: group and source of different families")
    return str(g), (str(s) if s else None)


def is_v6(addr):
    return ":" in addr


def check_payload(data, group, source):
    """True when the datagram is intact and was sent to this group from this source."""
    v6 = is_v6(group)
    magic, header = (MAGIC6, HEADER6) if v6 else (MAGIC, HEADER)
    if len(data) < DIGEST_LEN + len(magic) + header.size:
        return False, None
    digest, rest = data[:DIGEST_LEN], data[DIGEST_LEN:]
    if hashlib.sha256(rest).digest()[:DIGEST_LEN] != digest or not rest.startswith(magic):
        return False, None
    seq, g, s, size = header.unpack_from(rest, len(magic))
    if len(rest) != len(magic) + header.size + size:
        return False, seq
    family = socket.AF_INET6 if v6 else socket.AF_INET
    if g != socket.inet_pton(family, group) or s != socket.inet_pton(family, source):
        return False, seq
    return True, seq


def sockaddr_in6(addr):
    """struct sockaddr_in6 for addr (port 0), padded to a struct sockaddr_storage."""
    sa = (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0)
          + socket.inet_pton(socket.AF_INET6, addr) + struct.pack("=I", 0))
    return sa + b"\0" * (128 - len(sa))


def group_source_req(ifindex, group, source):
    """struct group_source_req {u32 interface; sockaddr_storage group, source} (RFC 3678
    5.2.1): the storage is aligned like a pointer, so 4 bytes of padding on 64-bit."""
    pad = struct.calcsize("P") - 4
    return struct.pack("=I", ifindex) + b"\0" * pad + sockaddr_in6(group) + sockaddr_in6(source)


def iface_ipv6(iface):
    """The IPv6 addresses of iface from /proc/net/if_inet6, link-local ones first."""
    out = []
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                words = line.split()
                if len(words) >= 6 and words[5] == iface:
                    addr = str(ipaddress.IPv6Address(bytes.fromhex(words[0])))
                    out.append((int(words[3], 16) != 0x20, addr))
    except OSError:
        pass
    return [a for _, a in sorted(out)]


class Agent:
    def __init__(self, args):
        self.args = args
        self.iface = args.iface
        self.ifindex = socket.if_nametoindex(self.iface)
        with open(f"/sys/class/net/{self.iface}/address") as f:
            self.mac_text = f.read().strip()
        self.mac = bytes.fromhex(self.mac_text.replace(":", ""))
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        req = struct.pack("256s", self.iface.encode()[:15])
        try:
            self.addr = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, req)[20:24]
        except OSError:
            self.addr = None  # no IPv4 address: IPv6 only
        probe.close()
        self.sel = selectors.DefaultSelector()
        self.groups = {}  # group -> {"sock": socket, "sources": set() or None (ASM)}
        self.socket_counts = {}
        self.seen = {}
        self.arrivals = {}
        self.frames = {}
        self.since_mark = {}
        self.igmp_out = 0
        self.igmp_out_since_mark = 0
        self.igmp_in = 0
        self.mld_out = 0
        self.mld_out_since_mark = 0
        self.mld_in = 0
        self.mld_out_types = {}
        self.stdin_buf = b""
        self.stop = False
        self.start = time.monotonic()

    # -- memberships ---------------------------------------------------------------------

    def join(self, spec):
        group, source = parse_spec(spec)
        entry = self.groups.get(group)
        if entry is None:
            sock = self.open_group_socket(group)
            entry = {"sock": sock, "sources": None if source is None else set()}
        elif (entry["sources"] is None) != (source is None):
            raise ValueError(f"{group}: cannot mix any-source and source-specific joins")
        elif source is None or source in entry["sources"]:
            raise ValueError(f"{spec} already joined")
        sock = entry["sock"]
        try:
            if is_v6(group):
                self.join6(sock, group, source)
                if source is not None:
                    entry["sources"].add(source)
            elif source is None:
                # struct ip_mreqn {imr_multiaddr, imr_address, imr_ifindex}
                mreqn = struct.pack("4s4si", socket.inet_aton(group), b"\0" * 4, self.ifindex)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP,
                                self.mreq_source(group, source))
                entry["sources"].add(source)
        except OSError:
            if group not in self.groups:
                sock.close()
            raise
        if group not in self.groups:
            self.groups[group] = entry
            self.sel.register(sock, selectors.EVENT_READ, ("udp", group))

    def leave(self, spec):
        group, source = parse_spec(spec)
        entry = self.groups.get(group)
        if entry is None:
            raise ValueError(f"{group} not joined")
        sock = entry["sock"]
        if is_v6(group):
            if (entry["sources"] is None) != (source is None):
                raise ValueError(f"{spec}: not joined like that (any-source vs G@S)")
            if source is not None and source not in entry["sources"]:
                raise ValueError(f"{spec} not joined")
            self.leave6(sock, group, source)
            if source is not None:
                entry["sources"].discard(source)
                if entry["sources"]:
                    return
        elif source is None:
            if entry["sources"] is not None:
                raise ValueError(f"{group} was joined source-specific: leave G@S")
            mreqn = struct.pack("4s4si", socket.inet_aton(group), b"\0" * 4, self.ifindex)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreqn)
        else:
            if entry["sources"] is None or source not in entry["sources"]:
                raise ValueError(f"{spec} not joined")
            sock.setsockopt(socket.IPPROTO_IP, IP_DROP_SOURCE_MEMBERSHIP,
                            self.mreq_source(group, source))
            entry["sources"].discard(source)
            if entry["sources"]:
                return
        self.drain_udp(group, sock)
        self.sel.unregister(sock)
        sock.close()
        del self.groups[group]

    def open_group_socket(self, group):
        """A UDP socket bound to (group, port) that gets only its own memberships."""
        if is_v6(group):
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
            sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        try:
            if is_v6(group):
                # The scope id is needed (and used) only for link-local scope groups.
                sock.bind((group, self.args.port, 0, self.ifindex))
            else:
                sock.bind((group, self.args.port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def join6(self, sock, group, source):
        if source is None:
            # struct ipv6_mreq {ipv6mr_multiaddr, ipv6mr_interface}
            mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("=i", self.ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, MCAST_JOIN_SOURCE_GROUP,
                            group_source_req(self.ifindex, group, source))

    def leave6(self, sock, group, source):
        if source is None:
            mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("=i", self.ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, mreq)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, MCAST_LEAVE_SOURCE_GROUP,
                            group_source_req(self.ifindex, group, source))

    def mreq_source(self, group, source):
        # struct ip_mreq_source {imr_multiaddr, imr_interface, imr_sourceaddr}
        return struct.pack("4s4s4s", socket.inet_aton(group), self.addr, socket.inet_aton(source))

    def joined(self):
        out = []
        for group, entry in sorted(self.groups.items()):
            if entry["sources"] is None:
                out.append(group)
            else:
                out.extend(f"{group}@{s}" for s in sorted(entry["sources"]))
        return out

    # -- receiving ------------------------------------------------------------------------

    def open_capture(self):
        cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            cap.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        except OSError:
            cap.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        cap.bind((self.iface, ETH_P_ALL))
        cap.setblocking(False)
        self.cap = cap
        self.sel.register(cap, selectors.EVENT_READ, ("cap", None))

    def drain_capture(self):
        while True:
            try:
                frame, addr = self.cap.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                # The kernel reports ENETDOWN once on a packet socket whose interface went
                # down (a link flap); the socket keeps working once the link is back.
                if e.errno == errno.ENETDOWN:
                    return
                raise
            if addr[0] == self.iface:
                self.count_frame(frame, addr[2])

    def count_frame(self, f, pkttype):
        if f[12:14] == ETH_P_IPV6:
            self.count_frame6(f, pkttype)
            return
        if len(f) < 34 or f[12:14] != ETH_P_IP or f[14] >> 4 != 4:
            return
        proto = f[23]
        if proto == 2:
            if pkttype == PACKET_OUTGOING:
                self.igmp_out += 1
                self.igmp_out_since_mark += 1
            else:
                self.igmp_in += 1
            return
        if proto != 17 or pkttype == PACKET_OUTGOING or not 224 <= f[30] <= 239:
            return
        self.count_udp(f, socket.inet_ntoa(f[30:34]), socket.inet_ntoa(f[26:30]))

    def count_frame6(self, f, pkttype):
        """IPv6: follow the extension headers to UDP (counted like IPv4) or MLD."""
        if len(f) < 54 or f[14] >> 4 != 6:
            return
        nh, off = f[20], 54
        for _ in range(8):
            if nh not in IPV6_EXT:
                break
            if off + 8 > len(f):
                return
            if nh == 44:
                length = 8  # fragment header: fixed size
            elif nh == 51:
                length = (f[off + 1] + 2) * 4  # AH: in 4-byte units, minus 2
            else:
                length = (f[off + 1] + 1) * 8  # in 8-byte units, not counting the first
            nh, off = f[off], off + length
        if nh == 58:
            if off < len(f) and f[off] in MLD_TYPES:
                if pkttype == PACKET_OUTGOING:
                    self.mld_out += 1
                    self.mld_out_since_mark += 1
                    kind = str(f[off])
                    self.mld_out_types[kind] = self.mld_out_types.get(kind, 0) + 1
                else:
                    self.mld_in += 1
            return
        if nh != 17 or pkttype == PACKET_OUTGOING or f[38] != 0xFF:
            return
        group = str(ipaddress.IPv6Address(f[38:54]))
        source = str(ipaddress.IPv6Address(f[22:38]))
        self.count_udp(f, group, source)

    def count_udp(self, f, group, source):
        dst = f[0:6]
        if dst == self.mac:
            cls = "unicast_to_me"
        elif dst[0] & 1:
            cls = "multicast"
        else:
            cls = "other"
        for table in (self.frames, self.since_mark):
            per_source = table.setdefault(group, {})
            counts = per_source.setdefault(source, dict.fromkeys(CLASSES, 0))
            counts[cls] += 1

    def drain_udp(self, group, sock):
        while True:
            try:
                data, anc, _flags, addr = sock.recvmsg(65535, socket.CMSG_SPACE(TIMESPEC.size))
            except (BlockingIOError, InterruptedError):
                return
            stamp = None
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = TIMESPEC.unpack_from(value)
                    stamp = sec + nsec / 1e9
            src = addr[0].partition("%")[0]  # IPv6: drop a "%eth0" zone
            counts = self.socket_counts.setdefault(group, {}).setdefault(
                src, {"ok": 0, "bad": 0, "dup": 0})
            ok, seq = check_payload(data, group, src)
            if not ok:
                counts["bad"] += 1
                continue
            seen = self.seen.setdefault((group, src), set())
            if seq in seen:
                counts["dup"] += 1
            else:
                seen.add(seq)
                counts["ok"] += 1
                self.arrived(group, stamp if stamp is not None else time.time())

    def arrived(self, group, t):
        """An intact datagram of group arrived at t (seconds since the epoch)."""
        a = self.arrivals.get(group)
        if a is None:
            self.arrivals[group] = {"n": 1, "first": t, "last": t, "max_gap_ms": 0.0,
                                    "max_gap_end": t}
            return
        gap = (t - a["last"]) * 1000.0
        if gap > a["max_gap_ms"]:
            a["max_gap_ms"], a["max_gap_end"] = gap, t
        a["n"] += 1
        a["last"] = max(a["last"], t)

    # -- commands and output ----------------------------------------------------------------

    def read_stdin(self):
        data = os.read(0, 4096)
        if not data:
            self.sel.unregister(0)
            return
        self.stdin_buf += data
        while b"\n" in self.stdin_buf:
            line, self.stdin_buf = self.stdin_buf.split(b"\n", 1)
            self.command(line.decode(errors="replace").strip())

    def command(self, line):
        if not line:
            return
        verb, _, arg = line.partition(" ")
        arg = arg.strip()
        try:
            if verb == "join":
                self.join(arg)
            elif verb == "leave":
                self.leave(arg)
            elif verb == "mark":
                self.drain_capture()
                self.since_mark = {}
                self.igmp_out_since_mark = 0
                self.mld_out_since_mark = 0
            elif verb == "report":
                self.drain_all()
                print(json.dumps(self.result()), flush=True)
            elif verb == "quit":
                self.stop = True
            else:
                raise ValueError("unknown command")
        except (OSError, ValueError) as e:
            print(f"err {line}: {e}", flush=True)
            return
        print(f"ok {line}", flush=True)

    def drain_all(self):
        self.drain_capture()
        for group, entry in list(self.groups.items()):
            self.drain_udp(group, entry["sock"])

    def result(self):
        return {
            "name": self.args.name,
            "iface": self.iface,
            "mac": self.mac_text,
            "ip": socket.inet_ntoa(self.addr) if self.addr else None,
            "ip6": iface_ipv6(self.iface),
            "joined": self.joined(),
            "socket": self.socket_counts,
            "frames": self.frames,
            "since_mark": self.since_mark,
            "igmp_out": self.igmp_out,
            "igmp_out_since_mark": self.igmp_out_since_mark,
            "igmp_in": self.igmp_in,
            "mld_out": self.mld_out,
            "mld_out_since_mark": self.mld_out_since_mark,
            "mld_in": self.mld_in,
            "mld_out_types": self.mld_out_types,
            "elapsed": round(time.monotonic() - self.start, 3),
            "arrivals": {
                g: {"n": a["n"], "first": round(a["first"], 6), "last": round(a["last"], 6),
                    "max_gap_ms": round(a["max_gap_ms"], 3),
                    "max_gap_end": round(a["max_gap_end"], 6)}
                for g, a in self.arrivals.items()
            },
        }

    def run(self):
        self.open_capture()
        for spec in self.args.join:
            self.join(spec)
        try:
            self.sel.register(0, selectors.EVENT_READ, ("stdin", None))
        except (ValueError, OSError, PermissionError):
            pass  # stdin closed or not pollable (a regular file): no commands
        print("ready", flush=True)
        deadline = self.start + self.args.duration
        while not self.stop and time.monotonic() < deadline:
            for key, _ in self.sel.select(timeout=0.05):
                kind, group = key.data
                if kind == "cap":
                    self.drain_capture()
                elif kind == "udp":
                    if group in self.groups:
                        self.drain_udp(group, self.groups[group]["sock"])
                elif kind == "stdin":
                    self.read_stdin()
        self.drain_all()
        print(json.dumps(self.result()), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--join", action="append", default=[], metavar="SPEC",
                    help="G or G@S, repeatable")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds before exiting")
    ap.add_argument("--name", default=socket.gethostname())
    args = ap.parse_args()
    for spec in args.join:
        try:
            parse_spec(spec)
        except ValueError as e:
            ap.error(f"--join {spec}: {e}")
    agent = Agent(args)

    def on_signal(_signo, _frame):
        agent.stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

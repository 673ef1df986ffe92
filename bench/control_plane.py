#!/usr/bin/env python3
"""Control-plane benchmark of snoopcast: join/leave latency (against the kernel bridge), idle
CPU with 100 members, and memory with 10,000 members.

    sudo python3 bench/control_plane.py --snoopcast PATH --json OUT [--joins N] [--quick]

Prints a table and writes OUT (JSON). Needs root, iproute2 and gcc (the multicast source is
the C helper control_plane_src.c beside this file, compiled at start). Python standard library
only. Holds flock /tmp/snoopcast-e2e.lock for the whole run, like the e2e tests.

Topology (network namespaces, all named scl-*; leftovers of an earlier run are deleted first,
everything is deleted at the end, also on errors, Ctrl-C and SIGTERM):

  [scl-src] src0 ---- up0 [scl-box] dn0 ---- swup [scl-sw] br0 (no snooping: a dumb switch)
   source                snoopcast, or                 |-- p1..p4 ---- eth0 [scl-h1..scl-h4]
   10.1.0.1              the kernel bridge             '-- p9 ------- eth0 [scl-inj]

  hK: eth0 10.2.0.(10+K)/24, MAC 02:5c:00:02:00:0K, IGMPv3 (kernel default), IPv6 off.
  inj: no address; injects spoofed IGMPv3 reports for the memory test.

Measurements:

1. Join and leave latency, for snoopcast (`run --upstream up0 --downstream dn0 --querier on`)
   and for the kernel bridge (a bridge over up0+dn0 in scl-box with multicast snooping,
   querier and IGMPv3, `mcast_to_unicast on fastleave on` on dn0). The source sends one group
   at RATE frames/s all the time. Each cycle, one host (in turn) joins the group with a real
   socket (IP_ADD_MEMBERSHIP), waits for its first copy, holds it HOLD_S, leaves
   (IP_DROP_MEMBERSHIP) and waits LEAVE_WINDOW_S + GUARD_S. An AF_PACKET socket on the host's
   eth0 (kernel timestamps, SO_TIMESTAMPNS; a BPF filter passes only outgoing IGMP and UDP
   addressed to the host's own MAC) gives:
     join latency  = first unicast copy  - the host's join report on the wire
     leave latency = last unicast copy   - the host's leave report on the wire
   Checks per cycle (a cycle that fails one is counted as failed, not timed): exactly the
   expected reports seen, no copy before the join report, no copy later than LEAVE_WINDOW_S
   after the leave report, no copy before the next cycle of that host, the daemon's (or the
   bridge's mdb) state shows the membership while joined and none after the leave.
2. Idle CPU: snoopcast with 100 members (4 hosts x 25 groups, real sockets), no data traffic;
   utime+stime of the process over IDLE_S (IDLE_QUICK_S with --quick), as % of one core.
3. Memory: 1,000 spoofed hosts (distinct MACs and IPs) x 10 groups = 10,000 members from
   IGMPv3 reports injected in scl-inj; VmRSS/VmHWM at start and with the 10,000 members.

Exit status: 0 when every measurement ran (failed cycles are reported in the table and the
JSON, "ok" is false then), 1 on an error that stopped the run.
"""

import argparse
import contextlib
import ctypes
import json
import math
import os
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

from netns import (LOCK, BenchError, Namespaces, dumb_switch, in_netns, ip, run, take_lock,
                   veth, wait_links_up)

# ------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------

PREFIX = "scl-"
NS_SRC, NS_BOX, NS_SW, NS_INJ = "scl-src", "scl-box", "scl-sw", "scl-inj"
HOSTS = 4
CONTROL = "/tmp/scl.sock"
NAMESPACES = Namespaces(PREFIX, files=[CONTROL])
WORKDIR = "/tmp/scl-bench"  # compiled source helper and daemon logs (kept after the run)

SRC_MAC, UP_MAC, DN_MAC, INJ_MAC = (
    "02:5c:00:01:00:01",
    "02:5c:00:01:00:02",
    "02:5c:00:01:00:03",
    "02:5c:00:09:00:01",
)
SRC_IP = "10.1.0.1"
PORT = 5000

RATE = 20_000  # frames/s of the source: one frame every 50 us
LAT_GROUP = "239.77.0.1"  # the group of the latency cycles
JOIN_TIMEOUT_S = 2.0  # no copy this long after the join: the cycle fails
HOLD_S = 0.05  # joined this long after the first copy
LEAVE_WINDOW_S = 0.2  # copies must stop within this after the leave report
GUARD_S = 0.1  # then watched this much longer: a copy here is a failure
# IGMPv3 retransmits a state-change report once more within the unsolicited report interval
# (1 s): one host's cycles are at least this far apart so that retransmission never lands in
# its next cycle.
HOST_SPACING_S = 1.3

IDLE_GROUPS = [f"239.78.0.{i}" for i in range(1, 26)]  # x 4 hosts = 100 members
IDLE_S, IDLE_QUICK_S = 20.0, 5.0
IDLE_SETTLE_S = 3.0  # after the members are there: the hosts' report retransmissions end

RSS_HOSTS = 1000
RSS_GROUPS = [f"239.79.0.{i}" for i in range(1, 11)]
RSS_QUERY_INTERVAL = "300s"  # members live 2 x 300 s + 10 s: longer than the whole phase
RSS_BATCH, RSS_BATCH_PAUSE_S = 50, 0.005  # inject ~10,000 reports/s
RSS_TARGET_MIB = 20
IDLE_TARGET_PCT = 0.1

# Linux constants the socket module lacks.
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SKF_AD_PKTTYPE = (-0x1000 + 4) & 0xFFFFFFFF  # BPF ancillary load: skb->pkt_type


class Interrupted(BaseException):
    """SIGTERM/SIGINT/SIGHUP: unwind so the teardown runs."""


def log(msg):
    print(f"[control_plane] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# Topology
# ------------------------------------------------------------------------------------------


class Host:
    def __init__(self, k):
        self.k = k
        self.name = f"h{k}"
        self.ns = f"scl-h{k}"
        self.mac = f"02:5c:00:02:00:{k:02x}"
        self.ip = f"10.2.0.{10 + k}"
        self.ifindex = None
        self.cap = None  # AF_PACKET capture socket on eth0
        self.joiner = None  # UDP socket that joins and leaves LAT_GROUP
        self.last_cycle_end = 0.0  # time.monotonic() of the end of its last cycle


def build_topology(hosts):
    namespaces = [NS_SRC, NS_BOX, NS_SW, NS_INJ] + [h.ns for h in hosts]
    for name in namespaces:
        NAMESPACES.add(name)
    veth(NS_SRC, "src0", NS_BOX, "up0", SRC_MAC, UP_MAC)
    ip(NS_SRC, "addr", "add", f"{SRC_IP}/24", "dev", "src0")
    ip(NS_SRC, "link", "set", "src0", "up")
    ip(NS_BOX, "link", "set", "up0", "up")

    veth(NS_BOX, "dn0", NS_SW, "swup", DN_MAC)
    ip(NS_BOX, "link", "set", "dn0", "up")
    for h in hosts:
        veth(NS_SW, f"p{h.k}", h.ns, "eth0", None, h.mac)
        run("sh", "-c", "echo 0 > /proc/sys/net/ipv4/conf/eth0/rp_filter", ns=h.ns)
        ip(h.ns, "addr", "add", f"{h.ip}/24", "dev", "eth0")
        ip(h.ns, "link", "set", "eth0", "up")
        ip(h.ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
    veth(NS_SW, "p9", NS_INJ, "eth0", None, INJ_MAC)
    ip(NS_INJ, "link", "set", "eth0", "up")
    dumb_switch(NS_SW, ["swup", "p9"] + [f"p{h.k}" for h in hosts])
    wait_links_up(namespaces)


def kernel_bridge_on():
    """scl-box becomes a snooping bridge over up0 and dn0 (the kernel's answer)."""
    ip(NS_BOX, "addr", "flush", "dev", "up0")
    # IGMPv3 queries (the bridge's default is v2, which would switch the hosts to IGMPv2 for
    # minutes); the querier has no address, so its queries come from 0.0.0.0.
    ip(NS_BOX, "link", "add", "br0", "type", "bridge", "mcast_snooping", "1",
       "mcast_querier", "1", "mcast_igmp_version", "3")
    ip(NS_BOX, "link", "set", "up0", "master", "br0")
    ip(NS_BOX, "link", "set", "dn0", "master", "br0")
    run("bridge", "link", "set", "dev", "dn0", "mcast_to_unicast", "on", "fastleave", "on",
        ns=NS_BOX)
    ip(NS_BOX, "link", "set", "br0", "up")
    wait_links_up([NS_BOX])


def kernel_bridge_off():
    """Deletes the bridge; up0 gets its address back for snoopcast (upstream joins)."""
    ip(NS_BOX, "link", "del", "br0")
    ip(NS_BOX, "addr", "add", "10.1.0.2/24", "dev", "up0")
    ip(NS_BOX, "link", "set", "up0", "up")
    ip(NS_BOX, "link", "set", "dn0", "up")
    wait_links_up([NS_BOX])


def kernel_mdb_has(group):
    """True if the box bridge's mdb has `group` on port dn0."""
    for entry in json.loads(run("bridge", "-j", "mdb", "show", "dev", "br0", ns=NS_BOX) or "[]"):
        for m in entry.get("mdb", []):
            if m.get("grp") == group and m.get("port") == "dn0":
                return True
    return False


# ------------------------------------------------------------------------------------------
# Processes: the source and snoopcast
# ------------------------------------------------------------------------------------------

STARTED = []  # every Popen we started, stopped at teardown if still running


def stop_process(p, grace=5.0):
    """SIGTERM, then SIGKILL after `grace`; returns the exit status."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


class Source:
    """control_plane_src in scl-src, sending LAT_GROUP at RATE frames/s."""

    def __init__(self, binary):
        self.binary = binary
        self.proc = None

    def start(self):
        argv = ["ip", "netns", "exec", NS_SRC, self.binary, "src0", SRC_MAC, SRC_IP, LAT_GROUP,
                str(RATE)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        STARTED.append(self.proc)
        ready, _, _ = select.select([self.proc.stdout], [], [], 5.0)
        line = self.proc.stdout.readline().strip() if ready else ""
        if line != "ready":
            stop_process(self.proc)
            raise BenchError(f"source did not start: {line!r} {self.proc.stderr.read()}")

    def stop(self):
        """Stops it; returns its statistics (sent, send_errors, late_resets, elapsed_s)."""
        status = stop_process(self.proc)
        out, err = self.proc.communicate()
        if status != 0:
            raise BenchError(f"source exited {status}: {err}")
        return json.loads(out.strip().splitlines()[-1])


class Snoopcast:
    """snoopcast run in scl-box (`ip netns exec` execs it: the Popen pid is the daemon's)."""

    def __init__(self, binary, label, extra_args=()):
        self.binary = binary
        self.args = ["run", "--upstream", "up0", "--downstream", "dn0", "--control", CONTROL,
                     "--querier", "on", *extra_args]
        self.log_path = os.path.join(WORKDIR, f"snoopcast-{label}.log")
        self.proc = None

    def start(self):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(CONTROL)
        with open(self.log_path, "w") as logf:
            self.proc = subprocess.Popen(["ip", "netns", "exec", NS_BOX, self.binary, *self.args],
                                         stdout=logf, stderr=subprocess.STDOUT)
        STARTED.append(self.proc)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"snoopcast exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.status()
                break
            except BenchError:
                if time.monotonic() > deadline:
                    raise BenchError(f"snoopcast status not answering after 10 s:\n"
                                     f"{self.log_tail()}") from None
                time.sleep(0.1)
        with open(f"/proc/{self.proc.pid}/comm") as f:
            comm = f.read().strip()
        if comm != "snoopcast":
            raise BenchError(f"pid {self.proc.pid} is {comm!r}, not snoopcast")

    @property
    def pid(self):
        return self.proc.pid

    def status(self):
        return json.loads(run(self.binary, "status", "--json", "--control", CONTROL,
                              timeout=10))

    def members(self, group_prefix):
        """(group, mac) pairs of the members of groups starting with group_prefix."""
        return {(g["group"], m["mac"]) for g in self.status()["groups"]
                if g["group"].startswith(group_prefix) for m in g["members"]}

    def stop(self):
        status = stop_process(self.proc)
        if status != 0:
            raise BenchError(f"snoopcast exited {status} on SIGTERM:\n{self.log_tail()}")

    def log_tail(self):
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-30:])


# ------------------------------------------------------------------------------------------
# Packets
# ------------------------------------------------------------------------------------------


def inet_sum(data):
    """Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac_bytes(mac):
    return bytes(int(x, 16) for x in mac.split(":"))


def capture_filter(mac):
    """Classic BPF: pass outgoing IPv4 IGMP, and IPv4 UDP whose destination MAC is `mac`."""
    m = mac_bytes(mac)
    hi, lo = struct.unpack("!IH", m)
    ld_h, ld_b, ld_w = 0x28, 0x30, 0x20  # BPF_LD|BPF_ABS with H, B, W sizes
    jeq, ret = 0x15, 0x06  # BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
    prog = [
        (ld_h, 0, 0, 12),  # 0: ethertype
        (jeq, 0, 10, 0x0800),  # 1: IPv4, else drop (12)
        (ld_b, 0, 0, 23),  # 2: IP protocol
        (jeq, 0, 2, 2),  # 3: IGMP -> 4, else 6
        (ld_w, 0, 0, SKF_AD_PKTTYPE),  # 4: packet type
        (jeq, 5, 6, PACKET_OUTGOING),  # 5: outgoing -> accept (11), else drop (12)
        (jeq, 0, 5, 17),  # 6: UDP -> 7, else drop (12)
        (ld_w, 0, 0, 0),  # 7: destination MAC, first 4 bytes
        (jeq, 0, 3, hi),  # 8: -> 9, else drop (12)
        (ld_h, 0, 0, 4),  # 9: destination MAC, last 2 bytes
        (jeq, 0, 1, lo),  # 10: -> accept (11), else drop (12)
        (ret, 0, 0, 0xFFFF),  # 11: accept
        (ret, 0, 0, 0),  # 12: drop
    ]
    insns = b"".join(struct.pack("HBBI", *i) for i in prog)
    buf = ctypes.create_string_buffer(insns)
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }; buf must outlive
    # the setsockopt call only (the kernel copies the program).
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    return fprog, buf


def open_capture(h):
    """The host's AF_PACKET socket on eth0, filtered, kernel-timestamped, non-blocking."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    fprog, _keep = capture_filter(h.mac)
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
    s.bind(("eth0", ETH_P_ALL))
    s.setblocking(False)
    return s


CMSG_TS = socket.CMSG_SPACE(16)


def read_frames(s):
    """Everything queued on capture socket s: [(kernel timestamp ns, pkttype, frame)]."""
    out = []
    while True:
        try:
            data, anc, _flags, addr = s.recvmsg(2048, CMSG_TS)
        except BlockingIOError:
            return out
        ts = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", cdata[:16])
                ts = sec * 1_000_000_000 + nsec
        if ts is None:
            raise BenchError("a captured frame has no kernel timestamp")
        out.append((ts, addr[2], data))


def capture_drops(s):
    """Frames the kernel dropped on s since the last call (PACKET_STATISTICS resets)."""
    _packets, drops = struct.unpack("II", s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    return drops


def igmp_events(frame, group):
    """Parses an IPv4 IGMP frame: [(kind, version)] with kind "join" or "leave" of `group`.
    v3: a record of `group` that is EXCLUDE (MODE_IS_EXCLUDE or CHANGE_TO_EXCLUDE: join) or
    an empty INCLUDE (MODE_IS_INCLUDE{} or CHANGE_TO_INCLUDE{}: leave); v1/v2 reports; v2
    leaves."""
    ihl = (frame[14] & 0x0F) * 4
    igmp = frame[14 + ihl:]
    gbytes = socket.inet_aton(group)
    kind = igmp[0]
    if kind == 0x22:
        events, nrec, off = [], struct.unpack("!H", igmp[6:8])[0], 8
        for _ in range(nrec):
            rtype, aux, nsrc = struct.unpack("!BBH", igmp[off:off + 4])
            if igmp[off + 4:off + 8] == gbytes:
                if rtype in (2, 4):
                    events.append(("join", 3))
                elif rtype in (1, 3) and nsrc == 0:
                    events.append(("leave", 3))
            off += 8 + 4 * nsrc + 4 * aux
        return events
    if igmp[4:8] == gbytes:
        if kind in (0x12, 0x16):
            return [("join", 1 if kind == 0x12 else 2)]
        if kind == 0x17:
            return [("leave", 2)]
    return []


def copy_seq(frame, group):
    """(sequence number, CLOCK_REALTIME ns at the source's send) if frame is a copy of our
    stream to `group`, else None."""
    if frame[23] != 17 or frame[30:34] != socket.inet_aton(group):
        return None
    ihl = (frame[14] & 0x0F) * 4
    udp = frame[14 + ihl:]
    if struct.unpack("!H", udp[2:4])[0] != PORT or udp[8:12] != b"SCLB":
        return None
    return struct.unpack("!QQ", udp[12:28])


def igmpv3_report(mac, src_ip, groups):
    """A complete Ethernet frame: IGMPv3 report, one CHANGE_TO_EXCLUDE{} record per group,
    IP with Router Alert, TTL 1, to 224.0.0.22 (01:00:5e:00:00:16), correct checksums."""
    records = b"".join(struct.pack("!BBH4s", 4, 0, 0, socket.inet_aton(g)) for g in groups)
    igmp = struct.pack("!BBHHH", 0x22, 0, 0, 0, len(groups)) + records
    igmp = igmp[:2] + struct.pack("!H", inet_sum(igmp)) + igmp[4:]
    router_alert = b"\x94\x04\x00\x00"
    total = 24 + len(igmp)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x46, 0xC0, total, 0, 0x4000, 1, 2, 0,
                      socket.inet_aton(src_ip), socket.inet_aton("224.0.0.22")) + router_alert
    hdr = hdr[:10] + struct.pack("!H", inet_sum(hdr)) + hdr[12:]
    eth = mac_bytes("01:00:5e:00:00:16") + mac_bytes(mac) + b"\x08\x00"
    return eth + hdr + igmp


# ------------------------------------------------------------------------------------------
# 1. Join / leave latency
# ------------------------------------------------------------------------------------------


def mreq(group, h):
    """struct ip_mreqn: group, any local address, eth0's ifindex."""
    return struct.pack("4s4si", socket.inet_aton(group), socket.inet_aton("0.0.0.0"), h.ifindex)


def latency_cycle(h, system, daemon):
    """One join/leave of LAT_GROUP by host h. Returns a dict with join_ms/leave_ms, or with
    "failure" naming the first check that failed, plus counts for the summary."""
    c = {"host": h.name}
    wait = h.last_cycle_end + HOST_SPACING_S - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    # Anything still queued arrived after the previous cycle's guard window: copies there
    # are copies that did not stop.
    stray = [f for f in read_frames(h.cap) if f[1] != PACKET_OUTGOING and
             copy_seq(f[2], LAT_GROUP) is not None]
    drops = capture_drops(h.cap)
    frames = []

    t_join = time.time_ns()  # CLOCK_REALTIME, the clock of the kernel timestamps
    h.joiner.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq(LAT_GROUP, h))
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while time.monotonic() < deadline:
        select.select([h.cap], [], [], 0.01)
        frames += read_frames(h.cap)
        if any(f[1] != PACKET_OUTGOING for f in frames):
            break
    # While joined: the daemon (or the bridge's mdb) must know the membership.
    if system == "snoopcast":
        c["state_joined"] = (LAT_GROUP, h.mac) in daemon.members(LAT_GROUP)
    else:
        c["state_joined"] = kernel_mdb_has(LAT_GROUP)
    time.sleep(HOLD_S)

    t_leave = time.time_ns()
    h.joiner.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq(LAT_GROUP, h))
    time.sleep(LEAVE_WINDOW_S + GUARD_S)
    frames += read_frames(h.cap)
    drops += capture_drops(h.cap)
    if system == "snoopcast":
        c["state_left"] = (LAT_GROUP, h.mac) not in daemon.members(LAT_GROUP)
    else:
        c["state_left"] = not kernel_mdb_has(LAT_GROUP)
    h.last_cycle_end = time.monotonic()

    joins, leaves, copies, versions = [], [], [], set()
    for ts, pkttype, frame in frames:
        if pkttype == PACKET_OUTGOING:
            for kind, version in igmp_events(frame, LAT_GROUP):
                versions.add(version)
                (joins if kind == "join" and ts < t_leave else
                 leaves if kind == "leave" and ts >= t_leave else []).append(ts)
        else:
            stamp = copy_seq(frame, LAT_GROUP)
            if stamp is not None:
                copies.append((ts, *stamp))
    c.update(stray=len(stray), capture_drops=drops, join_reports=len(joins),
             leave_reports=len(leaves), copies=len(copies), versions=sorted(versions))
    if copies:
        copies.sort()
        seqs = [seq for _, seq, _ in copies]
        c["lost"] = max(seqs) - min(seqs) + 1 - len(set(seqs))
        # Inter-arrival gaps of the copies: the timing resolution this cycle really had; and
        # the source-to-host transit of each copy, which tells a late source (big gap, normal
        # transit) from a late forwarder (big transit).
        c["gaps_ms"] = [(b[0] - a[0]) / 1e6 for a, b in zip(copies, copies[1:])]
        c["transit_ms"] = [(ts - tx) / 1e6 for ts, _, tx in copies]

    # The checks, in order; the first that fails names the failure.
    if stray:
        c["failure"] = "copies after the previous cycle's leave window"
    elif not joins or min(joins) < t_join:
        c["failure"] = "no join report on the wire"
    elif not leaves:
        c["failure"] = "no leave report on the wire"
    elif not copies:
        c["failure"] = f"no copy within {JOIN_TIMEOUT_S} s of the join"
    elif copies[0][0] < min(joins):
        c["failure"] = "a copy before the join report"
    elif copies[-1][0] > min(leaves) + LEAVE_WINDOW_S * 1e9:
        c["failure"] = f"a copy later than {LEAVE_WINDOW_S * 1000:.0f} ms after the leave"
    elif not c["state_joined"]:
        c["failure"] = "membership not in the state while joined"
    elif not c["state_left"]:
        c["failure"] = "membership still in the state after the leave"
    else:
        c["join_ms"] = (copies[0][0] - min(joins)) / 1e6
        c["leave_ms"] = (copies[-1][0] - min(leaves)) / 1e6
        # Where the source was when the join took effect: the first copy's frame was sent
        # this long after the join report (join_ms minus its transit).
        c["first_copy_sent_after_report_ms"] = (copies[0][2] - min(joins)) / 1e6
        # Likewise for the leave: <= 0 means every copy after the leave report was of a frame
        # the source had sent before it (data-path backlog, not a late removal).
        c["last_copy_sent_after_report_ms"] = (copies[-1][2] - min(leaves)) / 1e6
    return c


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def summarize(values):
    if not values:
        return {"p50": None, "p99": None, "max": None, "min": None, "n": 0}
    v = sorted(values)
    return {"p50": round(percentile(v, 50), 3), "p99": round(percentile(v, 99), 3),
            "max": round(v[-1], 3), "min": round(v[0], 3), "n": len(v)}


def measure_latency(hosts, system, daemon, joins):
    """`joins` cycles, hosts in turn. Returns (join summary, leave summary, details)."""
    cycles = []
    for i in range(joins):
        c = latency_cycle(hosts[i % len(hosts)], system, daemon)
        cycles.append(c)
        if "failure" in c:
            brief = {k: v for k, v in c.items() if k not in ("gaps_ms", "transit_ms")}
            log(f"{system} cycle {i + 1} ({c['host']}) failed: {c['failure']} {brief}")
        if (i + 1) % 25 == 0:
            log(f"{system}: {i + 1}/{joins} cycles")
    ok = [c for c in cycles if "failure" not in c]
    failures = {}
    for c in cycles:
        if "failure" in c:
            failures[c["failure"]] = failures.get(c["failure"], 0) + 1
    details = {
        "cycles": len(cycles),
        "failed": len(cycles) - len(ok),
        "failures": failures,
        "report_versions": sorted({v for c in cycles for v in c["versions"]}),
        "join_reports_per_cycle_max": max(c["join_reports"] for c in cycles),
        "leave_reports_per_cycle_max": max(c["leave_reports"] for c in cycles),
        "copies_per_cycle_median": statistics.median(c["copies"] for c in cycles),
        "lost_copies_while_joined": sum(c.get("lost", 0) for c in cycles),
        "capture_drops": sum(c["capture_drops"] for c in cycles),
        "copy_gap_ms": summarize([g for c in cycles for g in c.get("gaps_ms", [])]),
        "cycles_with_copy_gap_over_1ms": sum(1 for c in cycles
                                             if max(c.get("gaps_ms", [0])) > 1),
        "transit_ms": summarize([t for c in cycles for t in c.get("transit_ms", [])]),
        "first_copy_transit_ms": summarize([c["transit_ms"][0] for c in ok]),
        "last_copy_transit_ms": summarize([c["transit_ms"][-1] for c in ok]),
        "first_copy_sent_after_report_ms": summarize([c["first_copy_sent_after_report_ms"]
                                                      for c in ok]),
        "last_copy_sent_after_report_ms": summarize([c["last_copy_sent_after_report_ms"]
                                                     for c in ok]),
    }
    join = summarize([c["join_ms"] for c in ok])
    leave = summarize([c["leave_ms"] for c in ok])
    join["failed"] = leave["failed"] = details["failed"]
    return join, leave, details


# ------------------------------------------------------------------------------------------
# 2. Idle CPU, 3. memory
# ------------------------------------------------------------------------------------------


def proc_cpu(pid):
    """(utime+stime of process pid in seconds, {thread name: [on-CPU ns, context switches]}
    summed over its threads from /proc/PID/task/*/schedstat and status)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5): utime, stime
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            entry = threads.setdefault(f.read().strip(), [0, 0])
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            entry[0] += int(f.read().split()[0])
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    entry[1] += int(line.split()[1])
    return ticks / os.sysconf("SC_CLK_TCK"), threads


def proc_mem(pid):
    """{"VmRSS": KiB, "VmHWM": KiB} of process pid."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1])
    return out


def wait_members(daemon, prefix, want, timeout):
    deadline = time.monotonic() + timeout
    while True:
        members = daemon.members(prefix)
        if len(members) >= want or time.monotonic() > deadline:
            return members
        time.sleep(0.25)


def measure_idle(binary, hosts, window):
    daemon = Snoopcast(binary, "idle")
    daemon.start()
    sockets = []
    try:
        for h in hosts:
            with in_netns(h.ns):
                for g in IDLE_GROUPS:
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq(g, h))
                    sockets.append(s)
        want = len(hosts) * len(IDLE_GROUPS)
        members = wait_members(daemon, "239.78.", want, 15)
        if len(members) != want:
            raise BenchError(f"idle: {len(members)} members, expected {want}")
        time.sleep(IDLE_SETTLE_S)
        c0 = daemon.status()["counters"]
        t0 = time.monotonic()
        cpu0, threads0 = proc_cpu(daemon.pid)
        time.sleep(window)
        cpu1, threads1 = proc_cpu(daemon.pid)
        wall = time.monotonic() - t0
        st = daemon.status()
        c1 = st["counters"]
        members_after = sum(len(g["members"]) for g in st["groups"]
                            if g["group"].startswith("239.78."))
        # Per thread name (the sender workers share one): CPU and wake-ups in the window.
        per_thread = {name: {"cpu_ms": round((rt - threads0.get(name, [0, 0])[0]) / 1e6, 3),
                             "switches_per_s": round((sw - threads0.get(name, [0, 0])[1]) / wall,
                                                     2)}
                      for name, (rt, sw) in sorted(threads1.items())}
        rt_ms = sum(t["cpu_ms"] for t in per_thread.values())
        result = {
            "members": want,
            "window_s": round(wall, 3),
            "cpu_s": round(cpu1 - cpu0, 3),
            "cpu_pct_of_core": round(100 * (cpu1 - cpu0) / wall, 4),
            "clock_tick_s": 1 / os.sysconf("SC_CLK_TCK"),
            "schedstat_cpu_ms": round(rt_ms, 3),
            "schedstat_cpu_pct_of_core": round(100 * rt_ms / 1e3 / wall, 4),
            "context_switches_per_s": round(sum(t["switches_per_s"] for t in
                                                per_thread.values()), 2),
            "threads": per_thread,
            "members_after": members_after,
            "igmp_in_window": {k: c1[k] - c0[k] for k in
                               ("queries_sent", "reports_v1", "reports_v2", "reports_v3")},
            "frames_received_in_window": c1["frames_received"] - c0["frames_received"],
            "target_pct": IDLE_TARGET_PCT,
        }
        if threads0.keys() != threads1.keys():
            result["note"] = f"threads changed in the window: {sorted(threads0)} -> " \
                             f"{sorted(threads1)}"
    finally:
        for s in sockets:
            s.close()
        daemon.stop()
    return result


def measure_rss(binary):
    daemon = Snoopcast(binary, "rss", ["--max-members", "20000", "--max-groups-per-host", "128",
                                       "--query-interval", RSS_QUERY_INTERVAL])
    daemon.start()
    try:
        time.sleep(1.0)
        start_mem = proc_mem(daemon.pid)
        frames = []
        for i in range(1, RSS_HOSTS + 1):
            mac = f"02:5c:10:00:{i >> 8:02x}:{i & 0xFF:02x}"
            src = f"10.2.{100 + (i - 1) // 250}.{(i - 1) % 250 + 1}"
            frames.append(igmpv3_report(mac, src, RSS_GROUPS))
        with in_netns(NS_INJ):
            inj = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            inj.bind(("eth0", 0))
        want = RSS_HOSTS * len(RSS_GROUPS)
        rounds = 0
        with inj:
            # Re-sending is harmless (a member's report again); up to 3 rounds if the daemon's
            # socket overflowed.
            while rounds < 3:
                rounds += 1
                for n, frame in enumerate(frames, 1):
                    inj.send(frame)
                    if n % RSS_BATCH == 0:
                        time.sleep(RSS_BATCH_PAUSE_S)
                members = wait_members(daemon, "239.79.", want, 10)
                if len(members) == want:
                    break
        if len(members) != want:
            raise BenchError(f"rss: {len(members)} members after {rounds} rounds, want {want}")
        time.sleep(2.0)
        mem = proc_mem(daemon.pid)
        st = daemon.status()
        members_after = {(g["group"], m["mac"]) for g in st["groups"]
                         if g["group"].startswith("239.79.") for m in g["members"]}
        min_expiry = min(m["expires_in_ms"] for g in st["groups"] for m in g["members"])
        result = {
            "hosts": len({mac for _, mac in members_after}),
            "groups": len({g for g, _ in members_after}),
            "members": len(members_after),
            "upstream_joined": len(st["upstream"]["joined"]),
            "injection_rounds": rounds,
            "start_vmrss_kib": start_mem["VmRSS"],
            "start_vmhwm_kib": start_mem["VmHWM"],
            "vmrss_kib": mem["VmRSS"],
            "vmhwm_kib": mem["VmHWM"],
            "vmrss_mib": round(mem["VmRSS"] / 1024, 2),
            "vmhwm_mib": round(mem["VmHWM"] / 1024, 2),
            "min_expires_in_ms": min_expiry,
            "counters": {k: st["counters"][k] for k in
                         ("reports_v3", "igmp_malformed", "limit_members",
                          "limit_groups_per_host", "events_dropped", "upstream_join_errors")},
            "target_mib": RSS_TARGET_MIB,
        }
        if result["members"] != want:
            raise BenchError(f"rss: members fell to {result['members']} before the reading")
    finally:
        daemon.stop()
    return result


# ------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------


def fmt_lat(s):
    if not s["n"]:
        return "no successful cycle"
    return f"p50 {s['p50']:7.3f}  p99 {s['p99']:7.3f}  max {s['max']:7.3f}  (n={s['n']})"


def print_table(r):
    res = r["resolution_ms"]
    print(f"\nsnoopcast control plane (source {RATE} frames/s: timing resolution {res} ms; "
          f"hosts IGMPv3; latencies in ms, kernel timestamps on the host's eth0)")
    for what, key in (("join latency", "join_latency_ms"), ("leave latency", "leave_latency_ms")):
        for system, label in (("snoopcast", "snoopcast"), ("kernel", "kernel bridge")):
            s = r[key][system]
            failed = f", {s['failed']} cycles failed" if s["failed"] else ""
            print(f"  {what:14} {label:14} {fmt_lat(s)}{failed}")
    for system, label in (("snoopcast", "snoopcast"), ("kernel", "kernel bridge")):
        g = r["latency_details"][system]["copy_gap_ms"]
        print(f"  copy gaps      {label:14} p50 {g['p50']:7.3f}  p99 {g['p99']:7.3f}  "
              f"max {g['max']:7.3f}  (inter-arrival of the copies while joined)")
    for system, label in (("snoopcast", "snoopcast"), ("kernel", "kernel bridge")):
        t = r["latency_details"][system]["transit_ms"]
        print(f"  copy transit   {label:14} p50 {t['p50']:7.3f}  p99 {t['p99']:7.3f}  "
              f"max {t['max']:7.3f}  (source send -> host eth0)")
    i = r["idle"]
    print(f"  idle CPU       snoopcast      {i['cpu_pct_of_core']:.4f} % of one core "
          f"({i['cpu_s']:.2f} s utime+stime in {i['window_s']:.1f} s, {i['members']} members; "
          f"schedstat {i['schedstat_cpu_pct_of_core']:.4f} %, "
          f"{i['context_switches_per_s']} switches/s; target < {i['target_pct']} %)")
    busiest = sorted(i["threads"].items(), key=lambda t: -t[1]["cpu_ms"])
    print("                 by thread:     " + ", ".join(
        f"{name} {t['cpu_ms']:.1f} ms {t['switches_per_s']}/s" for name, t in busiest))
    m = r["rss"]
    print(f"  memory         snoopcast      start VmRSS {m['start_vmrss_kib'] / 1024:.2f} MiB; "
          f"{m['members']} members ({m['hosts']} hosts x {m['groups']} groups): "
          f"VmRSS {m['vmrss_mib']:.2f} MiB, VmHWM {m['vmhwm_mib']:.2f} MiB "
          f"(target < {m['target_mib']} MiB)")
    if not r["ok"]:
        print("  NOT OK: some cycles failed their checks; see the JSON (latency_details)")


def compile_source():
    """Builds control_plane_src.c (beside this script) into WORKDIR; returns the binary."""
    if not shutil.which("gcc"):
        raise BenchError("gcc is needed to build control_plane_src.c (apt-get install gcc)")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "control_plane_src.c")
    out = os.path.join(WORKDIR, "control_plane_src")
    run("gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, src, timeout=60)
    return out


def benchmark(args):
    snoopcast = os.path.abspath(args.snoopcast)
    if not os.access(snoopcast, os.X_OK):
        raise BenchError(f"--snoopcast {snoopcast}: not an executable")
    joins = args.joins if args.joins is not None else (20 if args.quick else 100)
    if joins < 1:
        raise BenchError("--joins must be at least 1")
    os.makedirs(WORKDIR, exist_ok=True)
    src_bin = compile_source()

    hosts = [Host(k) for k in range(1, HOSTS + 1)]
    log("building the topology")
    build_topology(hosts)
    for h in hosts:
        with in_netns(h.ns):
            h.ifindex = socket.if_nametoindex("eth0")
            h.cap = open_capture(h)
            h.joiner = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    result = {"join_latency_ms": {}, "leave_latency_ms": {}, "latency_details": {}}

    source = Source(src_bin)
    source.start()
    # The kernel bridge first (it needs the box without up0's address), then snoopcast.
    log("kernel bridge: latency")
    kernel_bridge_on()
    # The bridge floods every group until it counts a querier present: its own startup query
    # plus the query response interval (10 s).
    time.sleep(11)
    j, l, d = measure_latency(hosts, "kernel", None, joins)
    result["join_latency_ms"]["kernel"], result["leave_latency_ms"]["kernel"] = j, l
    result["latency_details"]["kernel"] = d
    kernel_bridge_off()

    log("snoopcast: latency")
    daemon = Snoopcast(snoopcast, "latency")
    daemon.start()
    j, l, d = measure_latency(hosts, "snoopcast", daemon, joins)
    result["join_latency_ms"]["snoopcast"], result["leave_latency_ms"]["snoopcast"] = j, l
    d["counters"] = {k: v for k, v in daemon.status()["counters"].items()
                     if k in ("copies_sent", "copies_dropped", "reports_v3", "queries_sent",
                              "frames_received", "frames_unwanted")}
    result["latency_details"]["snoopcast"] = d
    daemon.stop()
    src_stats = source.stop()
    for h in hosts:
        h.cap.close()
        h.joiner.close()

    log("snoopcast: idle CPU")
    result["idle"] = measure_idle(snoopcast, hosts, IDLE_QUICK_S if args.quick else IDLE_S)
    log("snoopcast: memory with 10,000 members")
    result["rss"] = measure_rss(snoopcast)

    result["resolution_ms"] = 1000 / RATE
    result["source"] = {"rate_pps": RATE, **src_stats,
                        "achieved_pps": round(src_stats["sent"] / src_stats["elapsed_s"])}
    result["ok"] = all(result["latency_details"][s]["failed"] == 0
                       for s in ("snoopcast", "kernel"))
    result["notes"] = [
        f"Source: one group ({LAT_GROUP}) at {RATE} frames/s (74-byte frames from an AF_PACKET "
        f"sender with precomputed checksums): a copy every {1000 / RATE} ms, so join and leave "
        f"latency are known to {1000 / RATE} ms.",
        "Hosts join and leave with real sockets; their kernels use IGMPv3 (the default), one "
        "state-change report at once and one retransmission within 1 s. Latency is measured "
        "on the host's eth0 with an AF_PACKET socket and kernel timestamps (SO_TIMESTAMPNS): "
        "join = first unicast copy (dst MAC = host MAC) - join report; leave = last unicast "
        "copy - leave report (TO_IN{}).",
        f"Per cycle: join, first copy, hold {HOLD_S * 1000:.0f} ms, leave, then "
        f"{LEAVE_WINDOW_S * 1000:.0f} ms in which copies must stop plus {GUARD_S * 1000:.0f} ms "
        "watched for late copies; the 4 hosts take turns, so one host's cycles are at least "
        f"{HOST_SPACING_S} s apart. Percentiles are nearest-rank over the successful cycles.",
        "Each frame carries the source's send time (CLOCK_REALTIME; same machine, same clock "
        "as the kernel timestamps): copy transit = arrival at the host - send, and copy gaps "
        "= inter-arrival while joined, tell a stalled source (big gap, normal transit) from a "
        "stalled forwarder (big transit).",
        "A leave latency <= 0 means no copy arrived after the leave report was timestamped "
        "leaving the host: the removal took less than the gap to the next source frame.",
        "Kernel bridge: br0 over up0+dn0 with mcast_snooping 1, mcast_querier 1, "
        "mcast_igmp_version 3 (v2 queries would put the hosts in IGMPv2 mode), dn0 "
        "mcast_to_unicast on, fastleave on. It floods groups nobody joined as L2 multicast "
        "(mcast_flood is on by default); those frames are not counted, only unicast copies.",
        f"Idle: {len(IDLE_GROUPS)} groups x {HOSTS} hosts with real sockets, source stopped; "
        "utime+stime from /proc/PID/stat (clock-tick resolution) and, finer, the sum of the "
        "threads' /proc/PID/task/*/schedstat run times.",
        f"Memory: {RSS_HOSTS} spoofed hosts x {len(RSS_GROUPS)} groups injected as IGMPv3 "
        f"reports from scl-inj; snoopcast with --max-members 20000 --max-groups-per-host 128 "
        f"--query-interval {RSS_QUERY_INTERVAL} so no member expires during the phase. VmHWM "
        "includes the daemon building the status JSON of all members (the count check).",
    ]
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--snoopcast", required=True, help="the snoopcast binary to measure")
    ap.add_argument("--json", required=True, help="where to write the results")
    ap.add_argument("--joins", type=int, default=None,
                    help="join/leave cycles per system (default 100, 20 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help=f"shorter run: idle window {IDLE_QUICK_S:.0f} s, 20 cycles")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("control_plane.py needs root (network namespaces)")

    def on_signal(signum, _frame):
        raise Interrupted(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    try:
        lock = take_lock(log)
    except Interrupted as e:
        sys.exit(f"interrupted ({e}) while waiting for {LOCK}; nothing to tear down")
    status = 1
    try:
        NAMESPACES.delete_all()  # leftovers of an interrupted run
        result = benchmark(args)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print_table(result)
        status = 0
    except BenchError as e:
        log(f"error: {e}")
    except Interrupted as e:
        log(f"interrupted ({e}); tearing down")
    finally:
        # No second signal may cut the teardown short.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for p in STARTED:
            stop_process(p)
        NAMESPACES.delete_all()
        lock.close()
    sys.exit(status)


if __name__ == "__main__":
    main()

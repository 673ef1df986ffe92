#!/usr/bin/env python3
"""Throughput benchmark of snoopcast: unicast copies per second out of the box.

Run it through bench/run.sh (root, packages, builds). For every N (subscribers) it
builds a virtual LAN in network namespaces:

   [scb-src] src0 ---- up0 [scb-box] dn0 ---- swup [scb-sw] br0 (dumb switch: no snooping)
                                                            |-- sw1 ---- eth0 [scb-h1]
                                                            |-- ...            subscribers 1..N
                                                            '-- swN+2 -- eth0 [scb-hN+2]
                                                                    2 non-subscribers

and measures up to five systems in scb-box, one after the other on the same LAN (--systems):
  snoopcast    the daemon under test (upstream up0, downstream dn0);
  kernel       a Linux bridge brk over up0 and dn0 with IGMP snooping, its own querier and
               mcast_to_unicast on dn0 (the kernel's per-host multicast-to-unicast);
  ceiling      bench/ceiling.c sending the very frames snoopcast would emit, flat out;
  cfwd         bench/cfwd.c, a minimal C forwarder: recvmmsg on an AF_PACKET socket on up0
               (the group's MAC through PACKET_ADD_MEMBERSHIP, no IP-level join), one copy
               per subscriber MAC given on its command line, sendmmsg on dn0;
  cfwd_joined  the same with the box kernel joined to the group on up0 (cfwd --kernel-join,
               as snoopcast joins upstream): every frame also enters the box's IP stack.
The source (bench/mcgen.c) runs on CPU 0, everything of the box on CPU 1. While cfwd runs
nothing queries the hosts, so the switch gets static fdb entries for the subscribers (their
learned entries would age out after 300 s).

Copies are counted at the switch (an nftables netdev ingress rule on swup counts and drops
UDP: the box's own output capacity, the primary number) or at the hosts (rx_packets of the
subscribers' eth0, which adds the hosts' receive work on the same two cores).

Per (N, payload size) and system: blast (source flat out), a short search for the highest
offered rate with loss <= 0.1 % at the switch, repetitions at that rate, snoopcast again at the
kernel's lossless rate, and one repetition of each counted at the hosts. Results: a table on
stdout and in OUT/latest.txt, raw data in OUT/latest.json, a plot in OUT/throughput.png.
"""

import argparse
import atexit
import contextlib
import datetime
import hashlib
import json
import os
import platform
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

import netns
from netns import BenchError, in_netns, ns_sh, run

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

CONTROL = "/tmp/scb-ctl.sock"
NAMESPACES = netns.Namespaces("scb-", files=[CONTROL])  # bench.py's and callgrind.py's
SRC, BOX, SW = (NAMESPACES.name(x) for x in ("src", "box", "sw"))
GROUP, PORT, TTL = "239.77.0.1", 5000, 16
SRC_IP, UP_IP, DN_IP = "10.78.0.1", "10.78.0.2", "10.77.0.1"
SRC_MAC, UP_MAC, DN_MAC = "02:5c:0b:01:00:01", "02:5c:0b:01:00:02", "02:5c:0b:01:00:03"
SNOOPCAST_LOG = "/tmp/scb-snoopcast.log"
CFWD_LOG = "/tmp/scb-cfwd.log"  # cfwd's stdout: one JSON line of counters per SIGUSR1
SRC_CPU, BOX_CPU = 0, 1
LOSS_OK = 0.001  # "lossless": at most 0.1 % of the copies missing at the switch
SETTLE = 0.3  # seconds after the source stops before counters are read (queues drain)
SYSTEMS = ("snoopcast", "kernel", "ceiling", "cfwd", "cfwd_joined")
CFWD_SYSTEMS = ("cfwd", "cfwd_joined")
DAEMONS = ("snoopcast",) + CFWD_SYSTEMS  # systems with a process whose counters are read
# Where up0's receive work (RPS) runs: the box CPU unless --rps-cpu says otherwise.
RPS_CPU = BOX_CPU


def pinning():
    text = (f"source mcgen on CPU {SRC_CPU} (taskset); snoopcast / ceiling / cfwd on CPU "
            f"{BOX_CPU} (taskset); RPS of up0 on CPU {RPS_CPU}")
    if RPS_CPU == BOX_CPU:
        return text + (", so the box's receive softirq (kernel bridge, snoopcast's capture) "
                       "runs there too")
    return text + (" (a variant: the box's receive softirq shares the source's CPU, not "
                   "snoopcast's)")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


delete_namespaces = NAMESPACES.delete_all


# --------------------------------------------------------------------------------------------
# The virtual LAN

def host_ns(i):
    return NAMESPACES.name(f"h{i}")


def host_mac(i):
    return f"02:5c:0b:00:{i >> 8:02x}:{i & 0xff:02x}"


def host_ip(i):
    return f"10.77.{1 + (i - 1) // 250}.{2 + (i - 1) % 250}"


class Lan:
    """N subscribers (hosts 1..N) and two non-subscribers (N+1, N+2) behind the dumb switch."""

    def __init__(self, n):
        self.n = n
        self.hosts = list(range(1, n + 3))
        self.subscribers = self.hosts[:n]
        self.others = self.hosts[n:]
        self.sockets = []  # the subscribers' joined sockets, held (and never read) here

    def build(self):
        namespaces = [SRC, BOX, SW] + [host_ns(i) for i in self.hosts]
        for ns in namespaces:
            NAMESPACES.add(ns)
        netns.veth(SRC, "src0", BOX, "up0", SRC_MAC, UP_MAC)
        netns.veth(BOX, "dn0", SW, "swup", DN_MAC)
        for i in self.hosts:
            netns.veth(host_ns(i), "eth0", SW, f"sw{i}", host_mac(i))
        ns_sh(SRC, f"ip addr add {SRC_IP}/24 dev src0\nip link set src0 up")
        # RPS: up0's receive work (bridge forwarding, snoopcast's capture) on the box CPU. GRO
        # off on the veths that receive floods, so every frame takes the plain backlog path.
        ns_sh(BOX, f"ip link set up0 up\nip link set dn0 up\n"
                   f"echo {1 << RPS_CPU:x} > /sys/class/net/up0/queues/rx-0/rps_cpus\n"
                   f"ethtool -K up0 gro off\nethtool -K dn0 gro off")
        self.box_addresses(True)
        netns.dumb_switch(SW, ["swup"] + [f"sw{i}" for i in self.hosts])
        ns_sh(SW, "ethtool -K swup gro off")
        for i in self.hosts:
            ns_sh(host_ns(i), f"ip addr add {host_ip(i)}/16 dev eth0\nip link set eth0 up")
        # The non-subscribers' rx_packets also count the IGMP the dumb switch floods (queries,
        # every host's reports): count their UDP frames exactly, with a rule that only counts.
        for i in self.others:
            run("ip", "netns", "exec", host_ns(i), "nft", "-f", "-",
                stdin=nft_udp_counter("eth0", ""))
        netns.wait_links_up(namespaces)

    def box_addresses(self, on):
        """Puts the box's addresses on up0 and dn0 (on) or takes them off (for the bridge)."""
        verb = "add" if on else "del"
        ns_sh(BOX, f"ip addr {verb} {UP_IP}/24 dev up0\nip addr {verb} {DN_IP}/16 dev dn0")

    def join(self):
        """Each subscriber's kernel joins GROUP through a real socket made in its namespace.

        The socket is bound to (GROUP, PORT) with the smallest receive buffer and never read:
        the hosts' eth0 rx counters are what we count, not what a program reads."""
        mreqn = socket.inet_aton(GROUP) + socket.inet_aton("0.0.0.0")
        for i in self.subscribers:
            with in_netns(host_ns(i)):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
                s.bind((GROUP, PORT))
                s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                             mreqn + struct.pack("i", socket.if_nametoindex("eth0")))
                self.sockets.append(s)

    def static_fdb(self, on):
        """Static fdb entries in the switch for the subscribers (on) or none (off). For cfwd:
        nothing queries the hosts then, and a learned entry would age out (300 s), turning the
        copies into floods to every port."""
        verb = "replace" if on else "del"
        lines = [f"fdb {verb} {host_mac(i)} dev sw{i} master" + (" static" if on else "")
                 for i in self.subscribers]
        run("bridge", "-n", SW, "-batch", "-", stdin="\n".join(lines) + "\n")

    def close(self):
        for s in self.sockets:
            s.close()
        self.sockets = []
        delete_namespaces()

    # Counting ---------------------------------------------------------------------------

    def switch_counting(self, on):
        """on: swup's ingress counts and drops UDP (IGMP passes); off: the hosts get it."""
        if on:
            run("ip", "netns", "exec", SW, "nft", "-f", "-", stdin=nft_udp_counter("swup", "drop"))
        else:
            run("ip", "netns", "exec", SW, "nft", "delete", "table", "netdev", "scb")

    def switch_count(self):
        return nft_count(SW)

    def host_rx(self):
        """rx_packets of every subscriber's eth0 and UDP frames of every non-subscriber
        ({host: frames}), read in parallel."""
        procs = {i: subprocess.Popen(["ip", "-n", host_ns(i), "-s", "-j", "link", "show", "eth0"],
                                     stdout=subprocess.PIPE, text=True) for i in self.subscribers}
        rx = {i: nft_count(host_ns(i)) for i in self.others}
        for i, p in procs.items():
            out, _ = p.communicate(timeout=30)
            if p.returncode != 0:
                raise BenchError(f"ip -s link show eth0 in {host_ns(i)} failed")
            rx[i] = json.loads(out)[0]["stats64"]["rx"]["packets"]
        return rx


def nft_udp_counter(dev, verdict):
    """nftables table 'scb' counting the UDP frames that enter `dev` (and then `verdict`)."""
    return ("table netdev scb {\n"
            "  counter udpcount { }\n"
            "  chain ingress {\n"
            f"    type filter hook ingress device \"{dev}\" priority 0; policy accept;\n"
            f"    ip protocol udp counter name \"udpcount\" {verdict}\n"
            "  }\n"
            "}\n")


def nft_count(ns):
    """The packets of the 'scb' table's UDP counter in namespace ns."""
    out = json.loads(run("ip", "netns", "exec", ns, "nft", "-j", "list", "counter", "netdev",
                         "scb", "udpcount"))
    return next(o["counter"]["packets"] for o in out["nftables"] if "counter" in o)


# --------------------------------------------------------------------------------------------
# The systems in the box

class Snoopcast:
    START_TIMEOUT = 10  # s until the control socket answers
    STOP_TIMEOUT = 5  # s from SIGTERM to exit, then SIGKILL

    def __init__(self, binary, extra_args, lan):
        self.binary, self.extra, self.lan = binary, extra_args, lan
        self.proc = None

    def start(self):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(CONTROL)
        argv = ["ip", "netns", "exec", BOX, "taskset", "-c", str(BOX_CPU), self.binary, "run",
                "--upstream", "up0", "--downstream", "dn0", "--control", CONTROL,
                "--querier", "on", "--query-interval", "5s", "--query-response-interval", "1s",
                "--log-level", "warn"] + self.extra
        log(f"  start: {' '.join(argv[4:])}")
        with open(SNOOPCAST_LOG, "w") as logf:
            # ip netns exec and taskset exec in place: the pid is snoopcast's.
            self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.START_TIMEOUT
        while True:
            try:
                self.status()
                return
            except BenchError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"snoopcast did not come up within {self.START_TIMEOUT} "
                                     f"s:\n{self.log_tail()}")
                time.sleep(0.1)

    def status(self):
        out = run("ip", "netns", "exec", BOX, self.binary, "status", "--json",
                  "--control", CONTROL, timeout=10)
        return json.loads(out)

    def members(self):
        st = self.status()
        return {m["mac"].lower() for g in st.get("groups", []) if g.get("group") == GROUP
                for m in g.get("members", [])}

    def wait_members(self, timeout=20):
        """Every subscriber a member of GROUP, and no non-subscriber, or BenchError."""
        want = {host_mac(i) for i in self.lan.subscribers}
        deadline = time.monotonic() + timeout
        while True:
            have = self.members()
            if want <= have:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"snoopcast: {len(want - have)} of {len(want)} subscribers "
                                 f"are not members of {GROUP} after {timeout} s")
            time.sleep(0.5)
        stray = have & {host_mac(i) for i in self.lan.others}
        if stray:
            raise BenchError(f"snoopcast: non-subscribers are members: {sorted(stray)}")
        log(f"  snoopcast: all {len(want)} subscribers are members")

    def counters(self):
        return self.status().get("counters", {})

    def cpu_seconds(self):
        """utime + stime of the daemon (all threads), in seconds."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def check_running(self):
        if self.proc.poll() is not None:
            raise BenchError(f"snoopcast exited ({self.proc.returncode}):\n{self.log_tail()}")

    def stop(self):
        """SIGTERM and wait STOP_TIMEOUT, then SIGKILL. Returns the exit status, None if it
        had to be killed or was not running."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(self.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log(f"  snoopcast did not stop within {self.STOP_TIMEOUT} s of SIGTERM: killed")
            self.proc.kill()
            self.proc.wait()
            return None

    @staticmethod
    def log_tail():
        with contextlib.suppress(OSError), open(SNOOPCAST_LOG) as f:
            return "".join(f.readlines()[-20:])
        return ""


class KernelBridge:
    """brk over up0 and dn0: IGMP snooping, querier (IGMPv3, 5 s), mcast_to_unicast on dn0."""

    def __init__(self, lan):
        self.lan = lan

    def up(self):
        self.lan.box_addresses(False)
        # Intervals in centiseconds. IGMPv3 queries, so the hosts stay in v3 mode (v2 queries
        # would put them in v2 compatibility, which snoopcast would then see). The querier is
        # switched on last: turning it on arms a delay (the query response interval then in
        # force) during which the bridge floods, as one multicast frame, instead of copying.
        ns_sh(BOX, "ip link add brk type bridge mcast_snooping 1 mcast_igmp_version 3 "
                   "mcast_query_interval 500 mcast_query_response_interval 100 "
                   "mcast_startup_query_interval 100\n"
                   "ip link set brk type bridge mcast_querier 1\n"
                   "ip link set up0 master brk\nip link set dn0 master brk\n"
                   "bridge link set dev dn0 mcast_to_unicast on fastleave on\n"
                   f"ip addr add {DN_IP}/16 dev brk\nip link set brk up")
        link = json.loads(run("ip", "netns", "exec", BOX, "bridge", "-d", "-j", "link", "show",
                              "dev", "dn0"))[0]
        if not (link.get("mcast_to_unicast") and link.get("fastleave")):
            raise BenchError(f"kernel bridge: flags on dn0 did not take: {link}")

    def members(self):
        """How many mdb entries of GROUP brk has on dn0 (one per host with mcast_to_unicast)."""
        out = json.loads(run("ip", "netns", "exec", BOX, "bridge", "-j", "mdb", "show",
                             "dev", "brk"))
        return sum(1 for block in out for e in block.get("mdb", [])
                   if e.get("grp") == GROUP and e.get("port") == "dn0")

    def wait_members(self, timeout=20):
        deadline = time.monotonic() + timeout
        while (have := self.members()) < self.lan.n:
            if time.monotonic() > deadline:
                raise BenchError(f"kernel bridge: {have} of {self.lan.n} subscribers in the "
                                 f"mdb of {GROUP} on dn0 after {timeout} s")
            time.sleep(0.5)
        if have > self.lan.n:
            raise BenchError(f"kernel bridge: {have} mdb entries on dn0 for {self.lan.n} "
                             f"subscribers (non-subscribers joined?)")
        log(f"  kernel bridge: all {have} subscribers in the mdb (mcast_to_unicast on dn0)")

    def down(self):
        ns_sh(BOX, "ip link del brk\nip link set up0 up\nip link set dn0 up")
        self.lan.box_addresses(True)


def box_kernel_groups(iface="up0"):
    """The IPv4 groups the box kernel has joined on `iface` (/proc/net/igmp of scb-box)."""
    groups, dev = set(), None
    for line in run("cat", "/proc/net/igmp", ns=BOX).splitlines()[1:]:
        if not line[:1].isspace():  # "Idx Device : Count Querier": an interface
            dev = line.split()[1]
        elif dev == iface:  # "\t\t\t\tGROUP Users Timer Reporter": GROUP as a native %08X
            groups.add(socket.inet_ntoa(struct.pack("=I", int(line.split()[0], 16))))
    return groups


class Cfwd:
    """bench/cfwd.c in the box: up0 -> dn0, the subscribers' MACs on its command line, pinned
    like snoopcast; joined: with --kernel-join (the box kernel a member of GROUP on up0)."""
    STOP_TIMEOUT = 5

    def __init__(self, binary, lan, joined):
        self.binary, self.lan, self.joined = binary, lan, joined
        self.name = "cfwd_joined" if joined else "cfwd"
        self.proc = None
        self.log = None
        self.kernel_groups = None  # the box kernel's groups on up0 while it runs

    def start(self):
        argv = ["ip", "netns", "exec", BOX, "taskset", "-c", str(BOX_CPU), self.binary,
                "--in", "up0", "--out", "dn0", "--group", GROUP]
        for i in self.lan.subscribers:
            argv += ["--mac", host_mac(i)]
        if self.joined:
            argv.append("--kernel-join")
        log(f"  start: {' '.join(argv[7:14])} --mac {host_mac(1)} ... ({self.lan.n} MACs)"
            + (" --kernel-join" if self.joined else ""))
        # Its stdout on a file description of its own (this one only reads, from a second).
        with open(CFWD_LOG, "w") as out:
            # ip netns exec and taskset exec in place: the pid is cfwd's.
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, text=True)
        self.log = open(CFWD_LOG)
        # Its one line on stderr comes once its signal handlers and sockets are set up (a
        # SIGUSR1 before that would kill it).
        ready, _, _ = select.select([self.proc.stderr], [], [], 10)
        line = self.proc.stderr.readline() if ready else ""
        if not line.startswith("cfwd: ") or "->" not in line:
            self.proc.kill()
            self.proc.wait()
            raise BenchError(f"{self.name} did not come up: {line.strip()}"
                             f"{self.proc.stderr.read().strip()}")
        log(f"  {line.strip()}")
        self.counters()  # it answers SIGUSR1: looping
        deadline = time.monotonic() + 5
        while not self.kernel_membership_right():
            if time.monotonic() > deadline:
                self.kernel_membership_right(fail=True)
            time.sleep(0.1)
        log(f"  {self.name}: box kernel groups on up0 (/proc/net/igmp): "
            f"{', '.join(self.kernel_groups) or 'none'}")

    def kernel_membership_right(self, fail=False):
        """The proof of the variant: the box kernel holds GROUP on up0 exactly when joined.
        Reads /proc/net/igmp into kernel_groups; fail: BenchError unless right."""
        self.kernel_groups = sorted(box_kernel_groups())
        right = (GROUP in self.kernel_groups) == self.joined
        if fail and not right:
            raise BenchError(f"{self.name}: the box kernel's groups on up0 are "
                             f"{self.kernel_groups} (/proc/net/igmp), expected {GROUP} "
                             f"{'in' if self.joined else 'not in'} them")
        return right

    def counters(self, timeout=5):
        """Its cumulative counters: SIGUSR1, then the JSON line it prints."""
        self.check_running()
        self.log.seek(0)
        lines = len(self.log.readlines())
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while True:
            self.log.seek(0)
            got = self.log.readlines()
            if len(got) > lines and got[-1].endswith("\n"):
                return json.loads(got[-1])
            self.check_running()
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: no counters within {timeout} s of SIGUSR1")
            time.sleep(0.02)

    cpu_seconds = Snoopcast.cpu_seconds

    def check_running(self):
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited ({self.proc.returncode}): "
                             f"{self.proc.stderr.read().strip()}")

    def stop(self):
        """SIGTERM (it prints its counters and exits 0), SIGKILL after STOP_TIMEOUT."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(self.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log(f"  {self.name} did not stop within {self.STOP_TIMEOUT} s of SIGTERM: killed")
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.log.close()
        self.proc.stderr.close()
        return rc


# --------------------------------------------------------------------------------------------
# One measurement

def backlog_drops():
    """Frames dropped because a CPU's receive backlog was full (/proc/net/softnet_stat, all
    CPUs): where an overloaded box loses input frames and the kernel bridge loses copies."""
    with open("/proc/net/softnet_stat") as f:
        return sum(int(line.split()[1], 16) for line in f)


def cpu_times(cpu):
    """(busy, softirq, steal, total) jiffies of one CPU from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                user, nice, system, idle, iowait, irq, softirq, steal = map(int, line.split()[1:9])
                busy = user + nice + system + irq + softirq
                return busy, softirq, steal, busy + idle + iowait + steal
    raise BenchError(f"cpu{cpu} not in /proc/stat")


class Bench:
    """Measurements on one LAN: counting mode, the generator, snapshots, search."""

    def __init__(self, args, lan, snoopcast):
        self.args, self.lan = args, lan
        # The running process of each daemon system: counters and CPU time per measurement.
        self.daemons = {"snoopcast": snoopcast}
        self.counting = "switch"
        self.mcgen = os.path.join(args.helpers, "mcgen")
        self.ceiling = os.path.join(args.helpers, "ceiling")

    def set_counting(self, mode):
        if mode != self.counting:
            self.lan.switch_counting(mode == "switch")
            self.counting = mode

    def snapshot(self, daemon):
        """Counters now; those of `daemon` (a Snoopcast or Cfwd) too, unless None."""
        s = {"cpu1": cpu_times(BOX_CPU), "backlog_drops": backlog_drops()}
        if self.counting == "switch":
            s["switch"] = self.lan.switch_count()
        else:
            s["hosts"] = self.lan.host_rx()
        if daemon:
            daemon.check_running()
            s["counters"] = daemon.counters()
            s["cpu"] = daemon.cpu_seconds()
        return s

    def generator_argv(self, system, size, rate, duration):
        common = ["--source", SRC_IP, "--group", GROUP, "--size", str(size),
                  "--duration", str(duration), "--port", str(PORT), "--ttl", str(TTL)]
        if system == "ceiling":
            macs = ",".join(host_mac(i) for i in self.lan.subscribers)
            return ["ip", "netns", "exec", BOX, "taskset", "-c", str(BOX_CPU), self.ceiling,
                    "--iface", "dn0", "--macs", macs] + common
        return ["ip", "netns", "exec", SRC, "taskset", "-c", str(SRC_CPU), self.mcgen,
                "--iface", "src0", "--rate", str(int(rate))] + common

    def measure(self, system, purpose, size, rate, duration):
        """Runs the source (or the ceiling) for `duration` s and returns what was counted.

        rate: offered input frames/s, 0 = blast (ignored by the ceiling)."""
        n = self.lan.n
        daemon = self.daemons.get(system)
        before = self.snapshot(daemon)
        out = run(*self.generator_argv(system, size, rate, duration), timeout=duration + 30)
        gen = json.loads(out.strip().splitlines()[-1])
        time.sleep(SETTLE)
        after = self.snapshot(daemon)

        m = {"system": system, "purpose": purpose, "counting": self.counting, "n": n,
             "size": size, "offered_rate": None if system == "ceiling" else rate,
             "duration": duration, "generator": gen, "elapsed": gen["elapsed"]}
        if self.counting == "switch":
            delivered = after["switch"] - before["switch"]
        else:
            delivered = sum(after["hosts"][i] - before["hosts"][i] for i in self.lan.subscribers)
            m["nonsubscriber_rx"] = {str(i): after["hosts"][i] - before["hosts"][i]
                                     for i in self.lan.others}
        # What should have arrived: N copies of every input frame, or every ceiling frame.
        expected = gen["sent"] if system == "ceiling" else gen["sent"] * n
        m.update(delivered=delivered, copies_per_s=delivered / gen["elapsed"],
                 loss=1 - delivered / expected if expected else None)
        if system != "ceiling":
            m["input_rate"] = gen["sent"] / gen["elapsed"]
        m["backlog_drops"] = after["backlog_drops"] - before["backlog_drops"]
        busy, soft, steal, total = (a - b for a, b in zip(after["cpu1"], before["cpu1"]))
        m.update(cpu1_busy=busy / total, cpu1_softirq=soft / total, cpu1_steal=steal / total,
                 cpu1_s_per_mcopies=(busy / os.sysconf("SC_CLK_TCK")) / (delivered / 1e6)
                 if delivered else None)
        if daemon:
            keys = ("frames_received", "frames_forwarded", "copies_sent", "copies_dropped",
                    "capture_drops") + (("ignored", "batches") if system != "snoopcast" else ())
            # snoopcast_counters / snoopcast_cpu_s, cfwd_counters / cfwd_cpu_s (cfwd_joined's
            # too: "cfwd" is the program, m["system"] says which variant).
            prog = "snoopcast" if system == "snoopcast" else "cfwd"
            m[f"{prog}_counters"] = {
                k: after["counters"][k] - before["counters"].get(k, 0)
                for k in keys if k in after["counters"]}
            cpu = after["cpu"] - before["cpu"]
            m[f"{prog}_cpu_s"] = cpu
            m["cpu_s_per_mcopies"] = cpu / (delivered / 1e6) if delivered else None
        return m

    # A system on one (N, size) case -------------------------------------------------------

    def show(self, m):
        extra = ""
        if m["system"] != "ceiling":
            extra = (f" offered {m['offered_rate'] or 'blast'} in {m['input_rate']:.0f}/s"
                     f" loss {100 * m['loss']:.3f}%")
        extra += f" backlog drops {m['backlog_drops']}"
        c = m.get("snoopcast_counters") or m.get("cfwd_counters")
        if c:
            extra += (f" dropped {c.get('copies_dropped', 0)}"
                      + (f" capture_drops {c['capture_drops']}" if "capture_drops" in c else ""))
        if "nonsubscriber_rx" in m:
            extra += f" non-subscribers UDP {sum(m['nonsubscriber_rx'].values())}"
        log(f"    {m['system']:9} {m['purpose']:14} {m['counting']:6} "
            f"{m['copies_per_s']:>11,.0f} copies/s{extra} cpu1 {100 * m['cpu1_busy']:.0f}%")

    def wait_delivery(self, system, timeout=30):
        """Waits until a short probe (1000 frames/s, 0.5 s) comes out as N copies per frame.

        A complete membership table is not enough: the kernel bridge floods (one multicast
        frame) until its querier counts as established."""
        start = time.monotonic()
        while True:
            m = self.measure(system, "probe", min(self.args.sizes), 1000, 0.5)
            if m["loss"] <= 0.01:
                log(f"  {system}: delivering {self.lan.n} copies per frame "
                    f"({time.monotonic() - start:.1f} s after the members were complete)")
                return
            if time.monotonic() - start > timeout:
                raise BenchError(f"{system}: {m['delivered'] / m['generator']['sent']:.2f} "
                                 f"copies per frame after {timeout} s, expected {self.lan.n}")

    def reps(self, system, purpose, size, rate, count=None):
        out = []
        for _ in range(count or self.args.reps):
            m = self.measure(system, purpose, size, rate, self.args.duration)
            self.show(m)
            out.append(m)
        return out

    def search(self, system, size, guess):
        """Highest offered input rate with loss <= LOSS_OK at the switch.

        Ramp from `guess` (x2 up while lossless, /2 down while lossy) until the limit is
        bracketed, then bisect (geometric mean); at most --search-steps short measurements.
        Stops early when the source cannot offer more than asked (source-limited) or the
        bracket is within 5 %. Returns (rate, source_limited, steps)."""
        lo, hi, rate, steps, limited = None, None, max(1000.0, guess), [], False
        duration = min(self.args.duration, 1.5)
        for _ in range(self.args.search_steps):
            m = self.measure(system, "search", size, int(rate), duration)
            self.show(m)
            steps.append(m)
            if m["loss"] <= LOSS_OK:
                lo = rate
                if m["input_rate"] < 0.9 * rate:
                    limited = True
                    break
            else:
                hi = rate
            if lo and hi:
                if hi / lo < 1.05:
                    break
                rate = (lo * hi) ** 0.5
            else:
                rate = rate * 2 if hi is None else rate / 2
        if lo is None:  # lossy even at the lowest rate tried: go on with that rate
            lo = min(m["offered_rate"] for m in steps)
            log(f"    {system}: no lossless rate found down to {lo}/s")
        return int(lo), limited, steps

    def lossless_system(self, system, size, ceiling):
        """blast, search, repetitions at the lossless rate: the switch-counted part.

        The search starts at the blast's copies/s or half the ceiling's (`ceiling`, copies/s
        or None), whichever is higher: under blast a system may collapse far below its
        lossless rate."""
        res = {"blast": self.reps(system, "blast", size, 0)}
        start = max(statistics.median(m["copies_per_s"] for m in res["blast"]),
                    ceiling / 2 if ceiling else 0)
        rate, limited, steps = self.search(system, size, start / self.lan.n)
        res.update(search=steps, lossless_rate=rate, source_limited=limited)
        log(f"    {system}: lossless input rate {rate}/s"
            + (" (source-limited)" if limited else ""))
        res["lossless"] = self.reps(system, "lossless", size, rate)
        return res

    def at_hosts(self, system, size, res):
        """One repetition counted at the hosts: at the lossless rate and blast."""
        self.set_counting("hosts")
        try:
            if system == "ceiling":
                res["hosts"] = self.reps(system, "ceiling", size, 0, 1)
            else:
                res["hosts"] = (self.reps(system, "lossless", size, res["lossless_rate"], 1)
                                + self.reps(system, "blast", size, 0, 1))
        finally:
            self.set_counting("switch")


# --------------------------------------------------------------------------------------------
# The whole run

def run_n(args, n, results):
    """Every size and system for N subscribers on one LAN."""
    log(f"N={n}: building the LAN ({n} subscribers + 2 non-subscribers)")
    lan = Lan(n)
    snoopcast = Snoopcast(args.snoopcast, args.snoopcast_arg, lan)
    cfwd = None
    try:
        lan.build()
        lan.join()
        lan.switch_counting(True)
        bench = Bench(args, lan, snoopcast)
        cases = {size: {"n": n, "size": size, "systems": {}} for size in args.sizes}
        ceiling = {}  # size: median copies/s, where the searches start
        # Ceiling first (it seeds the searches), then the kernel: snoopcast is also measured
        # at the kernel's lossless rate.
        if "ceiling" in args.systems:
            for size in args.sizes:
                log(f"  N={n} size={size} ceiling")
                res = {"runs": bench.reps("ceiling", "ceiling", size, 0)}
                ceiling[size] = med(res["runs"])[0]
                bench.at_hosts("ceiling", size, res)
                cases[size]["systems"]["ceiling"] = res
        if "kernel" in args.systems:
            log(f"N={n}: kernel bridge (mcast_to_unicast)")
            kernel = KernelBridge(lan)
            kernel.up()
            kernel.wait_members()
            bench.wait_delivery("kernel")
            for size in args.sizes:
                log(f"  N={n} size={size} kernel")
                res = bench.lossless_system("kernel", size, ceiling.get(size))
                bench.at_hosts("kernel", size, res)
                cases[size]["systems"]["kernel"] = res
            kernel.down()
        if "snoopcast" in args.systems:
            log(f"N={n}: snoopcast")
            snoopcast.start()
            snoopcast.wait_members()
            bench.wait_delivery("snoopcast")
            for size in args.sizes:
                log(f"  N={n} size={size} snoopcast")
                res = bench.lossless_system("snoopcast", size, ceiling.get(size))
                kres = cases[size]["systems"].get("kernel")
                if kres:
                    res["at_kernel_rate"] = bench.reps("snoopcast", "at_kernel_rate", size,
                                                       kres["lossless_rate"])
                bench.at_hosts("snoopcast", size, res)
                cases[size]["systems"]["snoopcast"] = res
            snoopcast.stop()
        cfwd_systems = [x for x in CFWD_SYSTEMS if x in args.systems]
        if cfwd_systems:
            lan.static_fdb(True)
        for name in cfwd_systems:
            log(f"N={n}: {name}")
            cfwd = Cfwd(os.path.join(args.helpers, "cfwd"), lan, name == "cfwd_joined")
            cfwd.start()
            bench.daemons[name] = cfwd
            bench.wait_delivery(name)
            for size in args.sizes:
                log(f"  N={n} size={size} {name}")
                res = bench.lossless_system(name, size, ceiling.get(size))
                bench.at_hosts(name, size, res)
                # Still as at the start, after the measurements (the membership held).
                cfwd.kernel_membership_right(fail=True)
                res["box_kernel_groups_up0"] = cfwd.kernel_groups
                cases[size]["systems"][name] = res
            cfwd.stop()
        if cfwd_systems:
            lan.static_fdb(False)
        results["cases"] += cases.values()
    finally:
        snoopcast.stop()
        if cfwd:
            cfwd.stop()
        lan.close()


def machine_info(args):
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    digest = None  # the binary need not exist when snoopcast is not among the systems
    with contextlib.suppress(OSError), open(args.snoopcast, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return {"nproc": os.cpu_count(), "kernel": platform.release(), "cpu_model": model,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "pinning": pinning(), "snoopcast_binary": os.path.abspath(args.snoopcast),
            "snoopcast_sha256": digest}


def run_control_plane(args, path):
    """The control-plane benchmark (another script): its JSON, or an error entry."""
    script = os.path.join(HERE, "control_plane.py")
    if not os.path.exists(script):
        log("--control-plane: bench/control_plane.py does not exist (yet): skipped")
        return {"error": "bench/control_plane.py not found"}
    log("control plane: running bench/control_plane.py")
    argv = [sys.executable, script, "--json", path, "--snoopcast", args.snoopcast]
    if args.quick:
        argv.append("--quick")
    p = subprocess.run(argv)
    if p.returncode != 0:
        return {"error": f"control_plane.py exited {p.returncode}"}
    with open(path) as f:
        return json.load(f)


# Output ---------------------------------------------------------------------------------------

def med(ms, key="copies_per_s"):
    vals = [m[key] for m in ms if m.get(key) is not None]
    return (statistics.median(vals), min(vals), max(vals)) if vals else None


def k(x):
    return f"{x / 1000:.1f}k"


def spread(t, ms=None):
    """median [min-max] of copies/s; '*' when the median loss of measurements ms > LOSS_OK."""
    if not t:
        return "-"
    lossy = ms and statistics.median(m["loss"] for m in ms) > LOSS_OK
    return f"{k(t[0])} [{k(t[1])}-{k(t[2])}]" + ("*" if lossy else "")


def ratio(a, b):
    return f"{a[0] / b[0]:.2f}" if a and b and b[0] else "-"


def table(results):
    a = results["config"]
    mi = results["machine"]
    lines = [
        f"snoopcast throughput benchmark, {mi['date']}",
        f"machine: {mi['nproc']} CPUs, {mi['cpu_model']}, kernel {mi['kernel']}",
        f"pinning: {mi['pinning']}",
        f"counting: at the switch (nftables on swup counts and drops UDP: the box's output); "
        f"'hosts' columns: rx_packets of the subscribers' eth0 (adds the hosts' receive work "
        f"on the same 2 CPUs)",
        f"duration {a['duration']} s per measurement, {a['reps']} repetitions, median "
        f"[min-max]; lossless = loss <= {100 * LOSS_OK:g} % at the highest offered rate found; "
        f"snoopcast args: {' '.join(a['snoopcast_args']) or '(none)'}",
        "systems: " + ", ".join(a.get("systems", SYSTEMS)) + "; cfwd = bench/cfwd.c (minimal C "
        "forwarder, no IP-level join), cfwd_joined = cfwd with the box kernel joined on up0",
        "",
        "Lossless copies/s (switch); * = median loss of the repetitions above 0.1 % (the "
        "noisy machine moved the edge); ratios: s/k snoopcast / kernel, s/c snoopcast / "
        "ceiling, s/f snoopcast / cfwd, s/fj snoopcast / cfwd_joined",
        f"{'N':>3} {'size':>5}  {'snoopcast':>24} {'kernel':>24} {'ceiling':>24} "
        f"{'cfwd':>24} {'cfwd_joined':>24} {'s/k':>5} {'s/c':>5} {'s/f':>5} {'s/fj':>5}  "
        f"{'snoopcast@kernel rate':>24}",
    ]
    for case in results["cases"]:
        s = case["systems"]
        sn, kn, ce, cf, cj = (s.get(x, {}) for x in SYSTEMS)
        ls, lk, lc, lf, lj = (med(sn.get("lossless", [])), med(kn.get("lossless", [])),
                              med(ce.get("runs", [])), med(cf.get("lossless", [])),
                              med(cj.get("lossless", [])))
        at_k = med(sn.get("at_kernel_rate", []))
        lines.append(f"{case['n']:>3} {case['size']:>5}  "
                     f"{spread(ls, sn.get('lossless')):>24} {spread(lk, kn.get('lossless')):>24} "
                     f"{spread(lc):>24} {spread(lf, cf.get('lossless')):>24} "
                     f"{spread(lj, cj.get('lossless')):>24} {ratio(ls, lk):>5} "
                     f"{ratio(ls, lc):>5} {ratio(ls, lf):>5} {ratio(ls, lj):>5}  "
                     f"{spread(at_k, sn.get('at_kernel_rate')):>24}")
    lines += [
        "",
        "Blast (source flat out) copies/s (switch), blast/lossless",
        f"{'N':>3} {'size':>5}  {'snoopcast':>24} {'b/l':>5} {'kernel':>24} {'b/l':>5} "
        f"{'cfwd':>24} {'b/l':>5} {'cfwd_joined':>24} {'b/l':>5}",
    ]
    for case in results["cases"]:
        s = case["systems"]
        cols = []
        for name in ("snoopcast", "kernel", "cfwd", "cfwd_joined"):
            b, lo = med(s.get(name, {}).get("blast", [])), med(s.get(name, {}).get("lossless", []))
            cols.append(f"{spread(b):>24} {ratio(b, lo):>5}")
        lines.append(f"{case['n']:>3} {case['size']:>5}  " + " ".join(cols))
    lines += [
        "",
        "Under the blast, per repetition (median): copies_dropped (snoopcast: its own queue; "
        "cfwd: sends refused), "
        "capture_drops (capture socket full), input frames never received (sent - "
        "frames_received);",
        "CPU-s per million copies at the lossless rate: the process (snoopcast, cfwd, "
        "cfwd_joined), and CPU1 busy from /proc/stat (tick-sampled: it misses softirq work",
        "done while the CPU would otherwise idle, so the kernel's figure is a lower bound) "
        "for snoopcast/kernel/ceiling/cfwd/cfwd_joined",
        f"{'N':>3} {'size':>5} {'system':>11}  {'dropped':>9} {'capture':>9} {'unrecv':>9}  "
        f"{'process':>7}",
    ]
    for case in results["cases"]:
        s = case["systems"]
        for name in DAEMONS:
            sys_res = s.get(name, {})
            if not sys_res:
                continue
            drops = ["-"] * 3
            if sys_res.get("blast"):
                key = "snoopcast_counters" if name == "snoopcast" else "cfwd_counters"
                c = [m[key] for m in sys_res["blast"]]
                sent = [m["generator"]["sent"] for m in sys_res["blast"]]
                unrecv = statistics.median(t - x["frames_received"] for t, x in zip(sent, c))
                drops = [f"{statistics.median(x.get('copies_dropped', 0) for x in c):.0f}",
                         f"{statistics.median(x['capture_drops'] for x in c):.0f}"
                         if all("capture_drops" in x for x in c) else "n/a",
                         f"{unrecv:.0f}"]
            cpu = med(sys_res.get("lossless", []), "cpu_s_per_mcopies")
            lines.append(f"{case['n']:>3} {case['size']:>5} {name:>11}  {drops[0]:>9} "
                         f"{drops[1]:>9} {drops[2]:>9}  {f'{cpu[0]:.2f}' if cpu else '-':>7}")
        cpu1 = [med(s.get(x, {}).get("runs" if x == "ceiling" else "lossless", []),
                    "cpu1_s_per_mcopies") for x in SYSTEMS]
        lines.append(f"{case['n']:>3} {case['size']:>5} {'CPU1 s/k/c/f/fj':>15}  "
                     + "/".join(f"{c[0]:.2f}" if c else "-" for c in cpu1))
    lines += [
        "",
        "Counted at the hosts (1 repetition): copies/s at the lossless rate / blast; "
        "non-subscribers' UDP frames, all systems (must be 0)",
        f"{'N':>3} {'size':>5}  {'snoopcast':>17} {'kernel':>17} {'ceiling':>8} "
        f"{'cfwd':>17} {'cfwd_joined':>17} {'non-sub':>8}",
    ]
    widths = {"snoopcast": 17, "kernel": 17, "ceiling": 8, "cfwd": 17, "cfwd_joined": 17}
    for case in results["cases"]:
        s = case["systems"]
        cols, nonsub = [], 0
        for name in SYSTEMS:
            hs = s.get(name, {}).get("hosts", [])
            nonsub += sum(sum(m["nonsubscriber_rx"].values()) for m in hs)
            cols.append(f"{'/'.join(k(m['copies_per_s']) for m in hs) or '-':>{widths[name]}}")
        lines.append(f"{case['n']:>3} {case['size']:>5}  {' '.join(cols)} {nonsub:>8}")
    lines += control_plane_lines(results.get("control_plane"))
    return "\n".join(lines) + "\n"


def control_plane_lines(cp):
    """The control-plane summary (bench/control_plane.py's JSON), if it ran."""
    if not cp:
        return []
    if "error" in cp:
        return ["", f"Control plane: {cp['error']}"]
    lines = ["", f"Control plane (bench/control_plane.py; source at "
                 f"{cp['source']['rate_pps']} frames/s, resolution {cp['resolution_ms']} ms; "
                 f"ms on the host's wire, kernel timestamps)"]
    for what in ("join_latency_ms", "leave_latency_ms"):
        for name in ("snoopcast", "kernel"):
            x = cp[what].get(name)
            if x:
                lines.append(f"  {what[:-11]:<5} latency {name:<9} p50 {x['p50']:7.3f}  "
                             f"p99 {x['p99']:7.3f}  max {x['max']:7.3f}  (n={x['n']}, "
                             f"failed {x['failed']})")
    idle, rss = cp["idle"], cp["rss"]
    lines.append(f"  idle: {idle['members']} members, {idle['cpu_pct_of_core']:.3f} % of a core "
                 f"(schedstat {idle['schedstat_cpu_pct_of_core']:.3f} %), "
                 f"{idle['context_switches_per_s']} wake-ups/s")
    lines.append(f"  memory: {rss['members']} members ({rss['hosts']} hosts x {rss['groups']} "
                 f"groups): VmRSS {rss['vmrss_mib']} MiB, peak {rss['vmhwm_mib']} MiB")
    return lines


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({c["size"] for c in results["cases"]})
    size = 1316 if 1316 in sizes else sizes[0]
    cases = sorted((c for c in results["cases"] if c["size"] == size), key=lambda c: c["n"])
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {"snoopcast": "tab:blue", "kernel": "tab:orange", "ceiling": "tab:green",
              "cfwd": "tab:red", "cfwd_joined": "tab:purple"}
    for name, key, style, label in [
            ("snoopcast", "lossless", "-", "snoopcast, lossless rate"),
            ("kernel", "lossless", "-", "kernel bridge mcast_to_unicast, lossless rate"),
            ("ceiling", "runs", "-", "ceiling (raw AF_PACKET sender)"),
            ("cfwd", "lossless", "-", "cfwd (minimal C forwarder), lossless rate"),
            ("cfwd_joined", "lossless", "-", "cfwd, box kernel joined upstream, lossless rate"),
            ("snoopcast", "blast", "--", "snoopcast, blast"),
            ("kernel", "blast", "--", "kernel bridge, blast")]:
        pts = [(c["n"], med(c["systems"][name][key])) for c in cases
               if c["systems"].get(name, {}).get(key)]
        if not pts:
            continue
        ns = [p[0] for p in pts]
        mid = [p[1][0] for p in pts]
        err = [[p[1][0] - p[1][1] for p in pts], [p[1][2] - p[1][0] for p in pts]]
        ax.errorbar(ns, mid, yerr=err, linestyle=style, marker="o", capsize=3,
                    color=colors[name], label=label)
    ns = sorted({c["n"] for c in cases})
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.set_xlabel("subscribers N")
    ax.set_ylabel("copies/s (counted at the switch)")
    ax.set_ylim(bottom=0)
    mi = results["machine"]
    ax.set_title(f"snoopcast copies/s, {size} B UDP payload\n{mi['nproc']} CPUs, "
                 f"kernel {mi['kernel']}, box on 1 CPU", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# Main -----------------------------------------------------------------------------------------

def parse_args():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--snoopcast", default=os.path.join(target, "release", "snoopcast"),
                   help="snoopcast binary (default: the release build)")
    p.add_argument("--snoopcast-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for 'snoopcast run' (repeatable), e.g. "
                        "--snoopcast-arg=--workers --snoopcast-arg=1")
    p.add_argument("--helpers", default=os.path.join(target, "bench"),
                   help="directory of the compiled mcgen, ceiling and cfwd")
    p.add_argument("--ns", default="1,4,16,64", help="subscriber counts N (default 1,4,16,64)")
    p.add_argument("--sizes", default="1316,64", help="UDP payload bytes (default 1316,64)")
    p.add_argument("--reps", type=int, default=3, help="repetitions per measurement (3)")
    p.add_argument("--duration", type=float, default=2.0, help="seconds per measurement (2)")
    p.add_argument("--search-steps", type=int, default=7,
                   help="measurements in each lossless-rate search (7)")
    p.add_argument("--quick", action="store_true", help="N=16, 1316 B, 1 repetition")
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help=f"which systems run, comma-separated (default all: "
                        f"{','.join(SYSTEMS)}); they run in that order whatever the order "
                        f"given")
    p.add_argument("--out", default=os.path.join(HERE, "results"),
                   help="results directory (default bench/results/, which git ignores; the "
                        "committed summary is bench/RESULTS.md)")
    p.add_argument("--no-plot", action="store_true", help="no throughput.png")
    p.add_argument("--rps-cpu", type=int, default=BOX_CPU, choices=(SRC_CPU, BOX_CPU),
                   help="CPU for up0's receive work (RPS); default the box's CPU. The "
                        "source's CPU shows snoopcast without the receive softirq beside it")
    p.add_argument("--no-control-plane", dest="control_plane", action="store_false",
                   help="skip bench/control_plane.py (join/leave latency, idle CPU, "
                        "memory), which otherwise runs after the throughput cases")
    a = p.parse_args()
    if a.quick:
        a.ns, a.sizes, a.reps = "16", "1316", 1
    try:
        a.ns = [int(x) for x in a.ns.split(",")]
        a.sizes = [int(x) for x in a.sizes.split(",")]
    except ValueError:
        p.error("--ns and --sizes take comma-separated integers")
    a.systems = [s for s in a.systems.split(",") if s]
    if not a.systems or set(a.systems) - set(SYSTEMS):
        p.error(f"--systems: a subset of {','.join(SYSTEMS)}")
    if min(a.ns) < 1 or max(a.ns) > 1000 or min(a.sizes) < 8 or max(a.sizes) > 1472:
        p.error("N must be 1..1000, sizes 8..1472 (one Ethernet frame)")
    if a.reps < 1 or a.duration <= 0 or a.search_steps < 1:
        p.error("--reps, --duration and --search-steps must be positive")
    return a


def main():
    global RPS_CPU
    args = parse_args()
    RPS_CPU = args.rps_cpu
    if os.geteuid() != 0:
        print("bench.py: needs root (network namespaces); run sudo bench/run.sh",
              file=sys.stderr)
        return 2
    helpers = ["mcgen", "ceiling"] + ["cfwd"] * any(x in args.systems for x in CFWD_SYSTEMS)
    for path in [args.snoopcast] * ("snoopcast" in args.systems) + \
            [os.path.join(args.helpers, h) for h in helpers]:
        if not os.access(path, os.X_OK):
            print(f"bench.py: {path} is missing or not executable (bench/run.sh builds "
                  f"it)", file=sys.stderr)
            return 2
    if os.cpu_count() < 2:
        print("bench.py: needs at least 2 CPUs (source on CPU 0, box on CPU 1)", file=sys.stderr)
        return 2

    try:
        lock = netns.take_lock(log)
    except KeyboardInterrupt:
        return 130

    # Teardown on every way out: normal end, exception, Ctrl-C, SIGTERM (turned into an
    # exception so the finally blocks run), and atexit as the last resort.
    atexit.register(delete_namespaces)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    delete_namespaces()  # leftovers of an earlier run killed outright

    results = {"machine": machine_info(args), "cases": [],
               "config": {"ns": args.ns, "sizes": args.sizes, "reps": args.reps,
                          "duration": args.duration, "search_steps": args.search_steps,
                          "systems": args.systems, "snoopcast_args": args.snoopcast_arg,
                          "loss_ok": LOSS_OK, "group": GROUP, "ttl": TTL,
                          "counting": "switch (nftables netdev ingress on swup counts and "
                                      "drops UDP); 'hosts' entries: subscribers' eth0 "
                                      "rx_packets"}}
    log(f"snoopcast benchmark: N={args.ns} sizes={args.sizes} reps={args.reps} "
        f"duration={args.duration}s systems={','.join(args.systems)}")
    log(f"pinning: {pinning()}")
    start = time.monotonic()
    try:
        for n in args.ns:
            run_n(args, n, results)
    except BenchError as e:
        log(f"FAILED: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        delete_namespaces()
        lock.close()
    results["wall_seconds"] = round(time.monotonic() - start, 1)

    os.makedirs(args.out, exist_ok=True)
    if args.control_plane:
        # After our lock is released: the script builds its own namespaces and takes the
        # lock itself if it needs it (holding ours would deadlock it).
        results["control_plane"] = run_control_plane(
            args, os.path.join(args.out, "control_plane.json"))
    text = table(results)
    print("\n" + text, end="")
    with open(os.path.join(args.out, "latest.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump(results, f, indent=1)
    if not args.no_plot:
        plot(results, os.path.join(args.out, "throughput.png"))
    log(f"done in {results['wall_seconds']:.0f} s: {args.out}/latest.txt, latest.json"
        + ("" if args.no_plot else ", throughput.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

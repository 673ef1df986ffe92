#!/usr/bin/python3
"""A multicast source behind a tun device (snoopcast e2e tests). Runs inside the box namespace.

    tun_source.py [--name tun0] [--addr 10.9.0.1/24] [--source 10.9.0.2] [--port 5000]

Opens /dev/net/tun as an L3 tun (IFF_TUN | IFF_NO_PI) called NAME, gives it ADDR and
brings it up. What is written to the tun descriptor the kernel receives on NAME as if it
came from the network, so to snoopcast NAME is an upstream without an Ethernet header.

Commands, one per line on stdin, each answered on stdout by `ok CMD` or `err CMD: why`:

    send --group G [--group G2 ...] [--count N] [--rate PPS] [--size BYTES] [--ttl T]
        writes N raw IPv4/UDP datagrams to every group, from SOURCE to (G, PORT), PPS over
        all groups, with valid IP and UDP checksums and the payload of mcast_send.py (so
        host_agent.py checks integrity); first prints one JSON line like mcast_send.py:
        {"sent", "per_group": {G: n}, "errors", "source", "elapsed"}
    report
        prints {"read": n, "igmp_read": n}: packets the kernel sent out of NAME (its IGMP
        reports when snoopcast joins upstream), read and dropped here
    quit

`ready` is printed once the device is up. Packets the kernel sends out of NAME are read
and counted all the time, so its queue never fills. On SIGTERM, `quit` or end of stdin
the device disappears with the process.

Only the Python standard library is used.
"""

import argparse
import fcntl
import ipaddress
import json
import os
import selectors
import shlex
import signal
import socket
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in tests/helpers from a root run
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mcast_send import build_payload, paced_send  # noqa: E402  (one payload format, one schedule)

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
SOURCE_PORT = 40000
IP_HEADER = struct.Struct("!BBHHHBBH4s4s")
UDP_HEADER = struct.Struct("!HHHH")


def inet_checksum(data):
    """RFC 1071 one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def ipv4_udp(source, group, sport, dport, ttl, ident, payload):
    """One IPv4 datagram with a UDP payload, both checksums valid."""
    udp_len = UDP_HEADER.size + len(payload)
    pseudo = source + group + struct.pack("!BBH", 0, socket.IPPROTO_UDP, udp_len)
    udp = UDP_HEADER.pack(sport, dport, udp_len, 0) + payload
    csum = inet_checksum(pseudo + udp)
    udp = UDP_HEADER.pack(sport, dport, udp_len, csum or 0xFFFF) + payload
    total = IP_HEADER.size + udp_len
    header = IP_HEADER.pack(0x45, 0, total, ident & 0xFFFF, 0, ttl, socket.IPPROTO_UDP, 0, source, group)
    header = header[:10] + struct.pack("!H", inet_checksum(header)) + header[12:]
    return header + udp


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    ifr = struct.pack("16sH", name.encode()[:15], IFF_TUN | IFF_NO_PI)
    fcntl.ioctl(fd, TUNSETIFF, ifr)
    return fd


def send_parser():
    ap = argparse.ArgumentParser(prog="send", add_help=False, exit_on_error=False)
    ap.add_argument("--group", action="append", required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=400.0)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--ttl", type=int, default=8)
    return ap


class Source:
    def __init__(self, args):
        self.args = args
        self.source = socket.inet_aton(args.source)
        self.fd = open_tun(args.name)
        for cmd in (
            ["ip", "addr", "add", args.addr, "dev", args.name],
            ["ip", "link", "set", args.name, "up"],
        ):
            subprocess.run(cmd, check=True)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.fd, selectors.EVENT_READ, "tun")
        os.set_blocking(sys.stdin.fileno(), False)
        self.sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
        self.stdin_buf = b""
        self.read = 0
        self.igmp_read = 0
        self.ident = 0
        self.stop = False

    def drain_tun(self):
        while True:
            try:
                pkt = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            self.read += 1
            if len(pkt) >= 20 and pkt[0] >> 4 == 4 and pkt[9] == 2:
                self.igmp_read += 1

    def write(self, pkt):
        while True:
            try:
                os.write(self.fd, pkt)
                return None
            except BlockingIOError:
                time.sleep(0.001)
            except OSError as e:
                return e

    def send(self, argv):
        try:
            opts = send_parser().parse_args(argv)
        except SystemExit:
            raise ValueError("bad send arguments (see the module doc)") from None
        groups = [ipaddress.IPv4Address(g) for g in opts.group]
        for g in groups:
            if not g.is_multicast:
                raise ValueError(f"{g} is not a multicast address")
        def send(seq, g):
            payload = build_payload(seq, g.packed, self.source, opts.size)
            self.ident += 1
            pkt = ipv4_udp(self.source, g.packed, SOURCE_PORT, self.args.port, opts.ttl, self.ident, payload)
            err = self.write(pkt)
            if err is not None:
                raise err

        def between(seq):
            if seq % 64 == 0:
                self.drain_tun()

        result = paced_send(groups, opts.count, opts.rate, send, "tun_source: write", between)
        result["source"] = self.args.source
        print(json.dumps(result), flush=True)

    def command(self, line):
        words = shlex.split(line)
        if not words:
            return
        try:
            if words[0] == "send":
                self.send(words[1:])
            elif words[0] == "report":
                print(json.dumps({"read": self.read, "igmp_read": self.igmp_read}), flush=True)
            elif words[0] == "quit":
                self.stop = True
            else:
                raise ValueError("unknown command")
        except (ValueError, argparse.ArgumentError, OSError) as e:
            print(f"err {line}: {e}", flush=True)
            return
        print(f"ok {line}", flush=True)

    def read_stdin(self):
        try:
            data = os.read(sys.stdin.fileno(), 4096)
        except BlockingIOError:
            return
        if not data:
            self.stop = True
            return
        self.stdin_buf += data
        while b"\n" in self.stdin_buf:
            line, self.stdin_buf = self.stdin_buf.split(b"\n", 1)
            self.command(line.decode(errors="replace").strip())

    def run(self):
        print("ready", flush=True)
        while not self.stop:
            for key, _ in self.sel.select(timeout=0.5):
                if key.data == "tun":
                    self.drain_tun()
                else:
                    self.read_stdin()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", default="tun0", help="tun device to create")
    ap.add_argument("--addr", default="10.9.0.1/24", help="address of the device (CIDR)")
    ap.add_argument("--source", default="10.9.0.2", help="source address of the datagrams")
    ap.add_argument("--port", type=int, default=5000, help="destination UDP port")
    args = ap.parse_args()

    src = Source(args)

    def on_signal(_signo, _frame):
        src.stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    src.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

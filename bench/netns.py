"""Network namespaces for the benchmark scripts (bench.py, control_plane.py, callgrind.py).

One copy of what each virtual LAN needs: running commands (in a namespace or not), creating
the namespaces of one script under its own name prefix (bench.py and callgrind.py: scb-,
control_plane.py: scl-; the e2e tests use others, so nothing collides), veth pairs created
directly inside two namespaces, a dumb switch (a bridge with snooping off), waiting for the
links, entering a namespace from this process (sockets made there stay in it), the lock shared
with the e2e suite, and the teardown: every process inside the script's namespaces killed,
the namespaces deleted, leftover files removed. The scripts call that teardown before they
build (leftovers of a run killed outright) and on every way out.

Python standard library only.
"""

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import subprocess
import time

LOCK = "/tmp/snoopcast-e2e.lock"  # the e2e suite's lock: one virtual LAN at a time
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


class BenchError(Exception):
    """A failed setup step or check: the run stops, after teardown."""


def run(*argv, ns=None, timeout=60, stdin=None, check=True):
    """Runs argv (inside namespace ns if given), returns its stdout; raises BenchError with
    its stderr when it fails (check) or times out."""
    full = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in argv]
    try:
        p = subprocess.run(full, input=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"{' '.join(full)}: timed out after {timeout} s") from e
    if check and p.returncode != 0:
        raise BenchError(f"{' '.join(full)}: exit {p.returncode}: "
                         f"{(p.stderr + p.stdout).strip()}")
    return p.stdout


def ns_sh(ns, script):
    """Runs a shell script (sh -e) inside namespace ns."""
    return run("sh", "-ec", script, ns=ns)


def ip(ns, *args, stdin=None):
    """`ip -n ns ARGS` (stdin for -batch -)."""
    return run("ip", "-n", ns, *args, stdin=stdin)


@contextlib.contextmanager
def in_netns(name):
    """Runs the body with this thread in network namespace `name` (sockets made there stay)."""
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{name}") as target:
        if _libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise BenchError(f"setns {name}: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if _libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise BenchError(f"setns back: {os.strerror(ctypes.get_errno())}")


class Namespaces:
    """The namespaces of one script: every name starts with `prefix`. `files` (control
    sockets) are removed with them."""

    def __init__(self, prefix, files=()):
        self.prefix = prefix
        self.files = list(files)

    def name(self, suffix):
        return self.prefix + suffix

    def existing(self):
        out = run("ip", "netns", "list", check=False)
        return [line.split()[0] for line in out.splitlines() if line.startswith(self.prefix)]

    def add(self, name):
        """Creates namespace `name` (prefix included): lo up, IPv6 off before any veth exists
        (no MLD or router solicitations), rp_filter off."""
        if not name.startswith(self.prefix):
            raise BenchError(f"namespace {name}: not under the prefix {self.prefix}")
        run("ip", "netns", "add", name)
        ns_sh(name, "ip link set lo up\n"
                    "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6\n"
                    "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6\n"
                    "echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter\n"
                    "echo 0 > /proc/sys/net/ipv4/conf/default/rp_filter")
        return name

    def delete_all(self):
        """SIGKILLs every process inside our namespaces, then deletes them (and their veths)
        and our files. Safe to call at any time, also twice."""
        for ns in self.existing():
            for pid in run("ip", "netns", "pids", ns, check=False).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            run("ip", "netns", "delete", ns, check=False)
        for path in self.files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def veth(a_ns, a, b_ns, b, a_mac=None, b_mac=None):
    """A veth pair a (in a_ns) -- b (in b_ns), created directly inside the two namespaces
    (nothing touches the root one), with the MAC addresses given."""
    argv = ["ip", "link", "add", a, "netns", a_ns]
    argv += ["address", a_mac] if a_mac else []
    argv += ["type", "veth", "peer", "name", b, "netns", b_ns]
    argv += ["address", b_mac] if b_mac else []
    run(*argv)


def dumb_switch(ns, ports, bridge="br0"):
    """A bridge in ns over `ports` that floods multicast (snooping off) and learns MACs."""
    lines = [f"link add {bridge} type bridge mcast_snooping 0"]
    for port in ports:
        lines += [f"link set {port} master {bridge}", f"link set {port} up"]
    lines.append(f"link set {bridge} up")
    ip(ns, "-batch", "-", stdin="\n".join(lines) + "\n")


def wait_links_up(namespaces, timeout=10.0):
    """Until every interface but lo in `namespaces` is operationally UP (linkwatch applies
    carrier late)."""
    deadline = time.monotonic() + timeout
    while True:
        down = [f"{ns}/{link['ifname']}" for ns in namespaces
                for link in json.loads(ip(ns, "-j", "link", "show"))
                if link["ifname"] != "lo" and link.get("operstate") != "UP"]
        if not down:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"links not up after {timeout} s: {down}")
        time.sleep(0.05)


def take_lock(log):
    """Holds LOCK (exclusive flock) for the life of the returned file: waits, saying so, while
    an e2e test or another netns experiment has it."""
    lock = open(LOCK, "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"waiting for {LOCK} (an e2e test or another netns experiment is running)")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except BaseException:
            lock.close()
            raise
    return lock

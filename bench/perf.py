#!/usr/bin/env python3
"""Where the box CPU goes while snoopcast (or the C forwarder) forwards: perf record on it.

callgrind.py counts snoopcast's user-space instructions per copy, exactly but without the
kernel; this script samples the box's CPU (CPU 1 in bench/bench.py's pinning: the daemon and
up0's receive softirq) with `perf record -a -C 1 -g` while the source sends, so kernel and
user space are seen side by side, for snoopcast and for bench/cfwd.c on the same LAN:

  for each system: start it in the box, wait until it forwards, start the source
  (bench/mcgen.c, --rate frames/s, 0 = as fast as it can: the blast), sample --duration s
  in the middle of the traffic, stop; then `perf report` by DSO (user space against the
  kernel) and by symbol (the top --top, self time), and the copies counted at the switch.

Run as root from the repository, after `cargo build --release` (and bench/run.sh once, or
gcc, for the helpers):

  sudo python3 bench/perf.py --n 1 --rate 0          # blast, N = 1
  sudo python3 bench/perf.py --n 4 --rate 150000 --systems snoopcast

Needs perf (Debian: linux-perf), plus the benchmark's tools (ip, nft, ethtool, taskset).
perf.data files and reports go to --out (default bench/results/perf/, untracked). It holds
/tmp/snoopcast-e2e.lock while its namespaces (scb-*) exist and deletes them on every way out.
"""

import argparse
import atexit
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench  # noqa: E402
import netns  # noqa: E402
from bench import log  # noqa: E402
from netns import BenchError, run  # noqa: E402

WARMUP = 1.0  # s of traffic before sampling starts
# The daemons' counters shown per second (snoopcast's status and cfwd's SIGUSR1 line share
# these names where they mean the same).
COUNTERS = ("frames_received", "frames_forwarded", "capture_drops", "copies_sent",
            "copies_dropped", "copies_refused")


def report(data, sort, top):
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio",
                          "--sort", sort, "-g", "none", "--percent-limit", "0.5"],
                         capture_output=True, text=True).stdout
    rows = [x for x in out.splitlines() if x.strip() and not x.lstrip().startswith("#")]
    return out, rows[:top]


def one(args, lan, system):
    if system == "snoopcast":
        daemon = bench.Snoopcast(os.path.abspath(args.snoopcast), args.snoopcast_arg, lan)
        daemon.start()
        daemon.wait_members()
    else:
        lan.static_fdb(True)
        daemon = bench.Cfwd(os.path.join(args.helpers, "cfwd"), lan, system == "cfwd_joined")
        daemon.start()
    data = os.path.join(args.out, f"perf-{system}-n{args.n}-r{args.rate}.data")
    try:
        sw0 = lan.switch_count()
        gen = subprocess.Popen(
            ["ip", "netns", "exec", bench.SRC, "taskset", "-c", str(bench.SRC_CPU),
             os.path.join(args.helpers, "mcgen"), "--iface", "src0", "--rate", str(args.rate),
             "--source", bench.SRC_IP, "--group", bench.GROUP, "--size", str(args.size),
             "--duration", str(args.duration + 2 * WARMUP), "--port", str(bench.PORT),
             "--ttl", str(bench.TTL)], stdout=subprocess.PIPE, text=True)
        time.sleep(WARMUP)
        c1, b1, sw1 = daemon.counters(), bench.backlog_drops(), lan.switch_count()
        t1 = time.monotonic()
        # perf stat inside perf record: its counts (CSV) come on stderr.
        rec = subprocess.run(
            ["perf", "record", "-q", "-a", "-C", str(bench.BOX_CPU), "-g", "-o", data, "--",
             "perf", "stat", "-x", ",", "-a", "-C", str(bench.BOX_CPU), "-e",
             "context-switches,cpu-migrations,task-clock", "--", "sleep", str(args.duration)],
            capture_output=True, text=True, timeout=args.duration + 60)
        if rec.returncode != 0:
            raise BenchError(f"perf record failed: {rec.stderr.strip()}")
        stat = rec.stderr
        t2 = time.monotonic()
        c2, b2, sw2 = daemon.counters(), bench.backlog_drops(), lan.switch_count()
        out, _ = gen.communicate(timeout=args.duration + 60)
        sent = json.loads(out.strip().splitlines()[-1])
        if gen.returncode != 0:
            raise BenchError(f"mcgen failed ({gen.returncode})")
    finally:
        daemon.stop()
        if system != "snoopcast":
            lan.static_fdb(False)
    secs = t2 - t1
    per_s = {k: (c2.get(k, 0) - c1.get(k, 0)) / secs for k in COUNTERS if k in c2}
    lines = [f"== {system}: N={args.n}, offered {args.rate or 'blast'} frames/s "
             f"(mcgen sent {sent.get('sent')} in all), {args.size} B; while sampled, per "
             f"second: copies at the switch {(sw2 - sw1) / secs / 1000:.1f}k, receive "
             f"backlog drops (all CPUs) {(b2 - b1) / secs / 1000:.1f}k, "
             + ", ".join(f"{k} {v / 1000:.1f}k" for k, v in per_s.items()),
             "-- perf stat on the box CPU: " + "; ".join(
                 f"{x.split(',')[2]} {x.split(',')[0]}" for x in stat.splitlines()
                 if x.count(",") >= 2 and not x.startswith("#"))]
    for sort in ("comm,dso", "sym"):
        full, rows = report(data, sort, args.top)
        with open(f"{data}.{sort.replace(',', '-')}.txt", "w") as f:
            f.write(full)
        lines += [f"-- by {sort} (self, % of CPU {bench.BOX_CPU}'s samples)"] + rows
    return "\n".join(lines)


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(bench.REPO, "target"))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--snoopcast", default=os.path.join(target, "release", "snoopcast"))
    p.add_argument("--snoopcast-arg", action="append", default=[],
                   help="extra argument for 'snoopcast run' (repeatable)")
    p.add_argument("--helpers", default=os.path.join(target, "bench"),
                   help="directory of the compiled mcgen and cfwd (bench/run.sh builds them)")
    p.add_argument("--systems", default="snoopcast,cfwd",
                   help="snoopcast, cfwd, cfwd_joined, comma-separated (snoopcast,cfwd)")
    p.add_argument("--n", type=int, default=1, help="subscribers (1)")
    p.add_argument("--rate", type=int, default=0, help="input frames/s; 0: blast (0)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds sampled (5)")
    p.add_argument("--size", type=int, default=1316, help="UDP payload bytes (1316)")
    p.add_argument("--top", type=int, default=25, help="rows listed per report (25)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "perf"))
    args = p.parse_args()
    if os.geteuid() != 0:
        print("perf.py: needs root (network namespaces, perf -a)", file=sys.stderr)
        return 2
    systems = [s for s in args.systems.split(",") if s]
    bad = set(systems) - {"snoopcast", "cfwd", "cfwd_joined"}
    if bad:
        print(f"perf.py: unknown systems {sorted(bad)}", file=sys.stderr)
        return 2
    for h in ["mcgen"] + ["cfwd"] * any(s != "snoopcast" for s in systems):
        path = os.path.join(args.helpers, h)
        if not os.access(path, os.X_OK):
            os.makedirs(args.helpers, exist_ok=True)
            subprocess.run(["gcc", "-O2", "-o", path, os.path.join(HERE, f"{h}.c")], check=True)
    os.makedirs(args.out, exist_ok=True)

    lock = netns.take_lock(log)
    atexit.register(bench.delete_namespaces)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench.delete_namespaces()
    lan = bench.Lan(args.n)
    texts = []
    try:
        log(f"building the LAN: N={args.n}")
        lan.build()
        lan.join()
        lan.switch_counting(True)
        for s in systems:
            texts.append(one(args, lan, s))
    except BenchError as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        lan.close()
        lock.close()
    text = "\n\n".join(texts) + "\n"
    print("\n" + text, end="")
    with open(os.path.join(args.out, f"results-n{args.n}-r{args.rate}.txt"), "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

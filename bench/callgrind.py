#!/usr/bin/env python3
"""User-space instructions per forwarded copy of snoopcast, counted by valgrind's callgrind.

Wall-clock throughput on a small shared machine is noisy; instruction counts are not. This
script runs two snoopcast binaries (typically the data path before and after a rewrite) under
`valgrind --tool=callgrind` in the benchmark's virtual LAN (bench/bench.py: N
subscribers behind a dumb switch, the switch's ingress counts and drops the copies) and reports
how many user-space instructions (callgrind's Ir, all threads of the daemon) each forwarded
copy costs:

  traffic run: start the daemon under callgrind, wait until every subscriber is a member,
               send FRAMES frames (--rate frames/s for --duration s, --size bytes of UDP
               payload) with bench/mcgen.c, wait, SIGTERM (callgrind writes its file);
  idle run:    the same, with a sleep of the same length instead of the traffic;

  Ir per copy = (Ir_traffic - Ir_idle) / copies_sent

so the daemon's fixed cost (startup under valgrind, timers, IGMP queries and reports, the
status requests this script makes) cancels out. Every run is checked: the daemon dropped
nothing (copies_dropped 0, capture_drops 0 where the binary has that counter, every frame the
generator sent received) and copies_sent = frames x N, also counted at the switch. Each
(binary, kind) is repeated (--reps, default 2) to show how stable the counts are, and
callgrind_annotate's top functions (exclusive and inclusive) of the first traffic run of each
binary are printed and saved.

Kernel work (syscalls, softirqs) is not counted: this is user space only. The rate must be low
enough for the daemon under valgrind (roughly 50x slower) to keep up: the default 300 frames/s
x 16 subscribers is.

Run as root from the repository (needs valgrind, gcc, and the benchmark's tools: ip, nft,
ethtool, taskset):

  sudo python3 bench/callgrind.py --before BIN [--after BIN]

e.g. with BIN built by `cargo build --release` of each commit (separate CARGO_TARGET_DIRs,
or another checkout's target/release/snoopcast). Without --after only --before is measured;
without --before too, this tree's release build ($CARGO_TARGET_DIR or target/). Results: a
table on stdout; callgrind files, annotations, results.txt and results.json in --out
(default bench/results/callgrind/, untracked). It holds /tmp/snoopcast-e2e.lock while its
namespaces (scb-*, bench/netns.py) exist and deletes them on every way out.
"""

import argparse
import atexit
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench  # noqa: E402  (bench/bench.py: the virtual LAN and the Snoopcast driver)
import netns  # noqa: E402
from bench import log  # noqa: E402
from netns import BenchError, run  # noqa: E402

START_TIMEOUT = 90  # s: snoopcast's start under valgrind (bench.py allows 10 s)
STOP_TIMEOUT = 60  # s: SIGTERM to exit, callgrind writing its file included
SETTLE = 2.0  # s after the traffic before the counters are read (valgrind is slow)


class CallgrindSnoopcast(bench.Snoopcast):
    """bench.Snoopcast whose `run` goes through a wrapper that execs valgrind, while `status`
    (the control client) runs the real binary, natively; longer timeouts (valgrind is slow to
    start and writes its file at exit)."""

    START_TIMEOUT = START_TIMEOUT
    STOP_TIMEOUT = STOP_TIMEOUT

    def __init__(self, wrapper, real_binary, lan):
        super().__init__(wrapper, [], lan)
        self.real = real_binary

    def status(self):
        out = run("ip", "netns", "exec", bench.BOX, self.real, "status", "--json",
                  "--control", bench.CONTROL, timeout=10)
        return json.loads(out)


def make_wrapper(path, binary, out_prefix):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                f"exec valgrind --tool=callgrind --callgrind-out-file={out_prefix}.%p "
                f"{binary} \"$@\"\n")
    os.chmod(path, 0o755)


def callgrind_total(path):
    """Total Ir of a callgrind output file (its 'totals:' or 'summary:' line)."""
    total = None
    with open(path) as f:
        for line in f:
            m = re.match(r"(totals|summary):\s+(\d+)", line)
            if m:
                total = int(m.group(2))
    if total is None:
        raise BenchError(f"{path}: no totals line (did callgrind finish writing it?)")
    return total


def one_run(args, lan, name, binary, kind, rep):
    """One daemon lifetime under callgrind; returns the measurement (dict)."""
    tag = f"{name}-{kind}-{rep}"
    prefix = os.path.join(args.out, f"callgrind.{tag}")
    wrapper = os.path.join(args.out, f"wrap-{tag}.sh")
    make_wrapper(wrapper, os.path.abspath(binary), prefix)
    snoop = CallgrindSnoopcast(wrapper, os.path.abspath(binary), lan)
    log(f"{tag}: start under callgrind")
    t0 = time.monotonic()
    try:
        snoop.start()
        snoop.wait_members(timeout=60)
        before = snoop.counters()
        sw_before = lan.switch_count()
        gen = None
        if kind == "traffic":
            argv = ["ip", "netns", "exec", bench.SRC, "taskset", "-c", str(bench.SRC_CPU),
                    args.mcgen, "--iface", "src0", "--rate", str(args.rate),
                    "--source", bench.SRC_IP, "--group", bench.GROUP, "--size", str(args.size),
                    "--duration", str(args.duration), "--port", str(bench.PORT),
                    "--ttl", str(bench.TTL)]
            out = run(*argv, timeout=args.duration + 60)
            gen = json.loads(out.strip().splitlines()[-1])
        else:
            time.sleep(args.duration)
        time.sleep(SETTLE)
        after = snoop.counters()
        switch = lan.switch_count() - sw_before
        snoop.check_running()
    finally:
        rc = snoop.stop()
    wall = time.monotonic() - t0
    pid = snoop.proc.pid
    path = f"{prefix}.{pid}"
    if rc != 0 or not os.path.exists(path):
        raise BenchError(f"{tag}: snoopcast exit status {rc}, callgrind file {path} "
                         f"{'exists' if os.path.exists(path) else 'missing'}:\n"
                         f"{snoop.log_tail()}")
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    m = {"binary": name, "kind": kind, "rep": rep, "file": path, "ir": callgrind_total(path),
         "wall_s": round(wall, 1), "counters_end": after, "counters_delta": delta,
         "switch_copies": switch, "generator": gen}
    # Checks: nothing dropped, every frame received, N copies of each counted at the switch.
    problems = []
    if after.get("copies_dropped", 0):
        problems.append(f"copies_dropped {after['copies_dropped']}")
    if after.get("capture_drops", 0):
        problems.append(f"capture_drops {after['capture_drops']}")
    if kind == "traffic":
        frames = gen["sent"]
        if gen.get("refused"):
            problems.append(f"generator: {gen['refused']} frames refused")
        if delta.get("frames_received") != frames:
            problems.append(f"frames_received {delta.get('frames_received')} != sent {frames}")
        if delta.get("copies_sent") != frames * lan.n:
            problems.append(f"copies_sent {delta.get('copies_sent')} != {frames} x {lan.n}")
        if switch != frames * lan.n:
            problems.append(f"switch counted {switch} != {frames} x {lan.n}")
    elif after.get("copies_sent", 0) or switch:
        problems.append(f"idle run forwarded copies ({after.get('copies_sent')}, switch "
                        f"{switch})")
    m["problems"] = problems
    log(f"{tag}: Ir {m['ir']:,}  copies_sent {after.get('copies_sent', 0)}  "
        f"switch {switch}  wall {wall:.0f} s" + (f"  PROBLEMS: {problems}" if problems else ""))
    return m


def annotate(path, inclusive, top):
    """The top `top` function lines of callgrind_annotate for one file."""
    out = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
                          "--threshold=100", path], capture_output=True, text=True).stdout
    lines = out.splitlines()
    # The function lines follow the header line containing 'file:function'.
    for i, line in enumerate(lines):
        if "file:function" in line:
            body = [x for x in lines[i + 1:] if x.strip() and not set(x.strip()) <= set("-")]
            return out, body[:top]
    return out, lines[-top:]


def per_function(path, inclusive):
    """{function: Ir} of one callgrind file, from callgrind_annotate (every function)."""
    full, _ = annotate(path, inclusive, 0)
    funcs, started = {}, False
    for line in full.splitlines():
        if "file:function" in line:
            started = True
            continue
        m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*\S)\s*$", line)
        if started and m:
            # The object in brackets: its path (the target dir) differs between binaries.
            name = re.sub(r"\s+\[[^\]]*\]$", "", m.group(2))
            funcs[name] = funcs.get(name, 0) + int(m.group(1).replace(",", ""))
    return funcs


def per_copy_table(traffic, idle, copies, inclusive, top):
    """The top functions by (Ir traffic - Ir idle) / copy."""
    t, i = per_function(traffic, inclusive), per_function(idle, inclusive)
    rows = sorted(((t.get(f, 0) - i.get(f, 0)) / copies, f) for f in set(t) | set(i))
    rows.reverse()
    return [f"{v:>9.1f}  {f}" for v, f in rows[:top]]


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(bench.REPO, "target"))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", default=os.path.join(target, "release", "snoopcast"),
                   help="snoopcast binary: before (default: this tree's release build, "
                        "$CARGO_TARGET_DIR/release/snoopcast)")
    p.add_argument("--after", help="snoopcast binary: after (default: none, only --before "
                                   "is measured)")
    p.add_argument("--mcgen", default=os.path.join(target, "bench", "mcgen"),
                   help="compiled bench/mcgen.c (built here with gcc if missing)")
    p.add_argument("--n", type=int, default=16, help="subscribers (16)")
    p.add_argument("--rate", type=int, default=300, help="input frames/s (300)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of traffic (10)")
    p.add_argument("--size", type=int, default=1316, help="UDP payload bytes (1316)")
    p.add_argument("--reps", type=int, default=2, help="repetitions of each run (2)")
    p.add_argument("--top", type=int, default=10, help="functions listed (10)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "callgrind"),
                   help="output directory (default bench/results/callgrind, untracked)")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("callgrind.py: needs root (network namespaces)", file=sys.stderr)
        return 2
    binaries = {"before": args.before}
    if args.after:
        binaries["after"] = args.after
    for b in binaries.values():
        if not os.access(b, os.X_OK):
            print(f"callgrind.py: {b} is not an executable", file=sys.stderr)
            return 2
    os.makedirs(args.out, exist_ok=True)
    if not os.access(args.mcgen, os.X_OK):
        os.makedirs(os.path.dirname(os.path.abspath(args.mcgen)), exist_ok=True)
        subprocess.run(["gcc", "-O2", "-o", args.mcgen, os.path.join(HERE, "mcgen.c")],
                       check=True)

    lock = netns.take_lock(log)
    atexit.register(bench.delete_namespaces)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench.delete_namespaces()  # leftovers of an earlier run killed outright

    runs = []
    lan = bench.Lan(args.n)
    try:
        log(f"building the LAN: N={args.n}")
        lan.build()
        lan.join()
        lan.switch_counting(True)
        # Interleaved, so a slow drift of anything affects both binaries alike.
        for rep in range(1, args.reps + 1):
            for name, binary in binaries.items():
                for kind in ("idle", "traffic"):
                    runs.append(one_run(args, lan, name, binary, kind, rep))
    except BenchError as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        lan.close()
        lock.close()

    # Results ------------------------------------------------------------------------------
    lines = [f"snoopcast under callgrind: N={args.n}, {args.size} B payload, {args.rate} "
             f"frames/s for {args.duration:g} s; Ir = user-space instructions, all threads",
             "",
             f"{'binary':<7} {'rep':>3} {'Ir idle':>15} {'Ir traffic':>15} {'copies':>7} "
             f"{'Ir/copy':>9} {'Ir/frame':>9}  checks"]
    summary = {}
    for name in binaries:
        per = []
        for rep in range(1, args.reps + 1):
            idle = next(r for r in runs if (r["binary"], r["kind"], r["rep"]) == (name, "idle", rep))
            traf = next(r for r in runs
                        if (r["binary"], r["kind"], r["rep"]) == (name, "traffic", rep))
            copies = traf["counters_end"]["copies_sent"]
            frames = traf["generator"]["sent"]
            diff = traf["ir"] - idle["ir"]
            per.append(diff / copies)
            ok = "ok" if not (idle["problems"] or traf["problems"]) else \
                "; ".join(idle["problems"] + traf["problems"])
            lines.append(f"{name:<7} {rep:>3} {idle['ir']:>15,} {traf['ir']:>15,} {copies:>7} "
                         f"{diff / copies:>9.0f} {diff / frames:>9.0f}  {ok}")
        summary[name] = per
    mean = {name: sum(per) / len(per) for name, per in summary.items() if per}
    lines.append("")
    lines.append("mean Ir per copy: " + ", ".join(f"{name} {v:.0f}" for name, v in mean.items())
                 + (f" (after/before {mean['after'] / mean['before']:.3f})"
                    if len(mean) == 2 else ""))
    for name in binaries:
        traf = next(r for r in runs if (r["binary"], r["kind"], r["rep"]) == (name, "traffic", 1))
        for inclusive in (False, True):
            full, top = annotate(traf["file"], inclusive, args.top)
            kind = "inclusive" if inclusive else "exclusive"
            with open(os.path.join(args.out, f"annotate-{name}-{kind}.txt"), "w") as f:
                f.write(full)
            lines += ["", f"{name}: top {args.top} functions by {kind} Ir (traffic run 1, "
                          f"whole lifetime: startup included)"] + top
    for name in binaries:
        idle, traf = (next(r for r in runs if (r["binary"], r["kind"], r["rep"]) ==
                           (name, kind, 1)) for kind in ("idle", "traffic"))
        copies = traf["counters_end"]["copies_sent"]
        for inclusive in (False, True):
            kind = "inclusive" if inclusive else "exclusive"
            lines += ["", f"{name}: top {args.top} functions by {kind} Ir per copy "
                          f"(traffic - idle) / copies_sent (run 1)"]
            lines += per_copy_table(traf["file"], idle["file"], copies, inclusive, args.top)
    text = "\n".join(lines) + "\n"
    print("\n" + text, end="")
    with open(os.path.join(args.out, "results.txt"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"config": vars(args), "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""S5's memory per idle mTLS connection, by glibc's in-use bytes, and by call site.

The bench's S5 (bench/README.md) divides the gateway's RSS while N idle
connections wait by N: its figure moves by about 0.2 KiB per connection from
run to run at 2,000 connections, with the RSS the process had before (what
the warm-up freed and kept). This runs S5's gateway side the same way (the
bench's GW-FULL, one worker on CPU 0, warmed with 1 s of S2, then N
connections that each made one request and wait: `opale-loadgen --hold`)
and also asks glibc, through gdb (`malloc_stats()`, all arenas), how many
bytes are in use before and while they wait: that difference divided by N
moves by about 20 bytes from run to run (docs/architecture.md, "What the
~25 KiB of an idle mTLS connection are").

    bench/s5_heap.py --build build [--conns 2000] [--runs 2]
    bench/s5_heap.py --build build --heaptrack /tmp/s5ht     # live bytes by call site

--heaptrack: the gateway runs under heaptrack and is killed (SIGKILL) while
the connections wait, so that heaptrack's "leaked" bytes are the live ones;
prints the bytes per connection of the call stacks that went through the
event loop, grouped by their first frames below it (requested sizes, without
glibc's chunk headers and rounding). Needs gdb (in-use bytes) or heaptrack.
"""
import argparse
import collections
import os
import re
import signal
import subprocess
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench as B  # noqa: E402
import benchlib.processes as P  # noqa: E402
from benchlib.common import HAB_FULL  # noqa: E402


def in_use(t, pid):
    """glibc's in-use bytes of <pid>, all arenas (malloc_stats() writes them
    to the gateway's stderr)."""
    errp = os.path.join(t.dir, "stderr")
    n0 = len(P.read_text(errp))
    subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (void)malloc_stats()"],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    m = re.findall(r"Total \(incl. mmap\):\s+system bytes\s+=\s+\d+\s+in use bytes\s+=\s+(\d+)",
                   P.read_text(errp)[n0:])
    return int(m[-1]) if m else None


def by_site(folded, n, depth=8, top=40):
    """Live bytes per connection by call stack below the event loop."""
    agg = collections.Counter()
    with open(folded) as f:
        for line in f:
            stack, _, size = line.rstrip("\n").rpartition(" ")
            if not size.isdigit() or int(size) == 0 or "event_base_loop" not in stack:
                continue
            fr = [re.sub(r" \(.*\)$", "", x) for x in stack.split(";") if x]
            i = max(k for k, x in enumerate(fr) if "event_base_loop" in x or "event_process_active" in x)
            agg[";".join(fr[i + 1:i + 1 + depth])] += int(size)
    for k, v in agg.most_common(top):
        print("%9.1f  %s" % (v / n, k))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--heaptrack", metavar="PREFIX", help="run under heaptrack; its output file prefix")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    if a.heaptrack:
        spawn0 = P.spawn

        def spawn(argv, **kw):
            if argv[0].endswith("opale-gateway") and "-t" not in argv:
                argv = ["heaptrack", "-o", a.heaptrack] + argv
            return spawn0(argv, **kw)
        P.spawn = spawn
    args = types.SimpleNamespace(quick=True, build=build, rounds=None, duration=None, only="S5", out=None,
                                 keep=False, s8_partners=None, profile=False, note=None)
    b = B.Bench(args)
    b.raw_dir = os.path.join(b.tmp, "raw")
    b.s5_conns, b.s5_hold = a.conns, 8.0
    b.check_binaries()
    b.make_pki()
    b.start_mock()
    b.start_redis()
    for r in range(1, (1 if a.heaptrack else a.runs) + 1):
        t = b.start_gateway("s5heap-%d" % r, policies={"commune-exemple.json": b.commune_policy(HAB_FULL, 1000000)},
                            quota=b.redis_quota())
        pid = t.proc.pid
        if a.heaptrack:
            kids = P.children_of(t.proc.pid)
            pid = kids[0] if kids else pid
        marks = []
        samples = b.rss_samples

        def rss_samples(tt, n=3, gap=0.4):
            v = samples(tt, n, gap)
            if a.heaptrack:
                if marks:  # the connections wait: heaptrack's leaks are the live bytes
                    os.kill(pid, signal.SIGKILL)
            else:
                marks.append(in_use(t, pid))
            marks.append(v)
            return v
        b.rss_samples = rss_samples
        try:
            rec = b.s5_one(r, "gw", t)
        finally:
            P.stop(t.proc, sig=signal.SIGTERM)
        b.rss_samples = samples
        held = rec["held"] or 1
        if a.heaptrack:
            break
        use = (marks[2] - marks[0]) / held if None not in marks[:3:2] and len(marks) >= 3 else None
        print("run %d: %d connections held; RSS %.2f KiB per connection; glibc in use %s bytes per connection%s"
              % (r, rec["held"], rec["per_conn_kb"] or 0, "%.0f" % use if use is not None else "?",
                 ("  [" + "; ".join(rec["flag_errors"]) + "]") if rec["flag_errors"] else ""))
    if a.heaptrack:
        data = next((a.heaptrack + ext for ext in (".zst", ".gz") if os.path.exists(a.heaptrack + ext)), None)
        if data is None:
            sys.exit("no heaptrack output at %s.zst" % a.heaptrack)
        folded = a.heaptrack + ".leaked.txt"
        subprocess.run(["heaptrack_print", "-f", data, "--print-leaks", "0", "--print-peaks", "0",
                        "--print-allocators", "0", "--print-temporary", "0", "--print-histogram", "0",
                        "--flamegraph-cost-type", "leaked", "-F", folded],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
        print("live bytes per connection by call site (%d connections; %s), one-off tables included:"
              % (held, data))
        by_site(folded, held)
    P.stop_all()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""S2 instructions per keep-alive request under callgrind (user space).

The bench's GW-FULL gateway (mTLS + CRL, the full chain, quota in Redis,
journal, backend assertion) is run twice under valgrind --tool=callgrind,
once for N1 and once for N2 full-chain requests from opale-loadgen (64
connections, the S2 paths and headers); the per-request figure is the
difference of the two totals divided by N2 - N1, so start-up, the token
request and the 64 handshakes cancel out. The Redis command timeout is
raised (quota.redis.timeout_ms) so that valgrind's slowness causes no
quota resync.

    bench/callgrind_s2.py --build build --out /tmp/cg [--n1 1000 --n2 6000]
    bench/callgrind_s2.py --build build --out /tmp/cg --native A B [--rounds 3]

Writes <out>/cg-<N>.out (callgrind files) and prints the totals, the
per-request figure and the inclusive/self per-request cost of the top
functions (callgrind_annotate over both files).
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from benchlib.common import CLIENT, HAB_FULL  # noqa: E402
from benchlib.processes import Stack, cpu_seconds, stop, stop_all  # noqa: E402
from benchlib.callgrind import annotate, tool_stack, totals  # noqa: E402
from benchlib.scenarios import Scenarios  # noqa: E402


class CG(Stack, Scenarios):
    def __init__(self, build, tmp):
        tool_stack(self, build, tmp)


def run_once(build, outdir, n, conns):
    tmp = tempfile.mkdtemp(prefix="opale-cg-")
    cg = CG(build, tmp)
    cgout = os.path.join(outdir, "cg-%d.out" % n)
    wrapper = os.path.join(tmp, "gw-valgrind.sh")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\ncase \" $* \" in *' -t '*) exec %s \"$@\";; esac\n"
                "exec valgrind --tool=callgrind --callgrind-out-file=%s %s \"$@\"\n"
                % (cg.gw_bin, cgout, cg.gw_bin))
    os.chmod(wrapper, 0o755)
    try:
        cg.make_pki()
        cg.start_mock()
        cg.start_redis()
        cg.gw_bin = wrapper
        t = cg.start_gateway("gw-full", policies={"commune-exemple.json": cg.commune_policy(HAB_FULL, 1000000)},
                             quota=dict(cg.redis_quota(), redis={"nodes": ["127.0.0.1:%d" % cg.redis_port], "timeout_ms": 5000}), cpu=None)
        args = [cg.lg_bin] + cg.full_chain_args(t) + ["-c", str(conns), "-t", "1", "-n", str(n), "-d", "3000",
                                                      "--timeout", "60"]
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        print(r.stdout[-1500:])
        stop(t.proc, signal.SIGTERM, timeout=120)
        with open(os.path.join(t.dir, "stderr")) as f:
            err = f.read()
        if "resync" in err or "timeout" in err:
            print("gateway stderr mentions resync/timeout:\n" + err[-2000:])
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return cgout


def native(build, bins, n, conns, rounds, perf=None):
    """Gateway CPU (utime + stime, all threads) per request, no valgrind:
    the binaries <bins> alternately against one PKI, mock and Redis, gateway
    on CPU 0, generator on CPU 1 (the bench's placement)."""
    tmp = tempfile.mkdtemp(prefix="opale-cgn-")
    cg = CG(build, tmp)
    res = {b: [] for b in bins}
    try:
        cg.make_pki()
        cg.start_mock()
        cg.start_redis()
        k = 0
        for r in range(rounds):
            for b in bins:
                k += 1
                cg.gw_bin = b
                t = cg.start_gateway("gw-%d" % k, policies={
                    "commune-exemple.json": cg.commune_policy(HAB_FULL, 1000000)}, quota=cg.redis_quota())
                args = ["taskset", "-c", "1", cg.lg_bin] + cg.full_chain_args(t) + [
                    "-c", str(conns), "-t", "1", "-n", str(n), "-d", "600"]
                pp = None
                if perf:
                    pp = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-p",
                                           str(t.proc.pid), "-o", "%s-%d.data" % (perf, k)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(1.0)
                c0 = cpu_seconds(t.proc.pid)
                r2 = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
                c1 = cpu_seconds(t.proc.pid)
                if pp is not None:
                    pp.send_signal(signal.SIGINT)
                    pp.wait(timeout=60)
                ok = re.search(r"2xx (\d+)", r2.stdout)
                stop(t.proc)
                us = (c1 - c0) / n * 1e6
                res[b].append(us)
                print("%s: %.2f us/request (2xx %s)" % (b, us, ok.group(1) if ok else "?"), flush=True)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    for b in bins:
        v = sorted(res[b])
        print("%s: median %.2f us/request over %d runs (%s)" % (b, v[len(v) // 2], len(v),
                                                                 ", ".join("%.2f" % x for x in res[b])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n1", type=int, default=1000)
    ap.add_argument("--n2", type=int, default=6000)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--top", type=int, default=60)
    ap.add_argument("--reuse", action="store_true", help="annotate existing cg files only")
    ap.add_argument("--native", nargs="+", metavar="GW_BIN",
                    help="no valgrind: gateway CPU per request of these binaries, alternately")
    ap.add_argument("--native-n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--perf", metavar="PREFIX", help="with --native: perf record -e cpu-clock of each run")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    if a.native:
        native(build, [os.path.abspath(b) for b in a.native], a.native_n, a.conns, a.rounds, a.perf)
        return
    os.makedirs(a.out, exist_ok=True)
    f1, f2 = os.path.join(a.out, "cg-%d.out" % a.n1), os.path.join(a.out, "cg-%d.out" % a.n2)
    if not a.reuse:
        f1 = run_once(build, a.out, a.n1, a.conns)
        f2 = run_once(build, a.out, a.n2, a.conns)
    d = a.n2 - a.n1
    t1, t2 = totals(f1), totals(f2)
    print("totals: %d (%d req), %d (%d req): %.1f instructions per request" % (t1, a.n1, t2, a.n2, (t2 - t1) / d))
    for inclusive in (True, False):
        x1, x2 = annotate(f1, inclusive), annotate(f2, inclusive)
        rows = sorted(((x2.get(k, 0) - x1.get(k, 0)) / d, k) for k in set(x1) | set(x2))
        rows.reverse()
        print("\n%s per request:" % ("inclusive" if inclusive else "self"))
        for v, k in rows[:a.top]:
            print("%10.0f  %s" % (v, k))


if __name__ == "__main__":
    main()

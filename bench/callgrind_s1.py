#!/usr/bin/env python3
"""S1 (pass-through) per request: the gateway (GW-S1) against nginx TLS-only.

Both proxies as the bench starts them (GW-S1: one worker, client_auth none,
access off, journal on; nginx from bench/nginx/genconf.py, one worker), the
S1 request (64 keep-alive connections, /opale/v1/etatSante, no client
certificate). Every figure is the difference of an N2- and an N1-request
run divided by N2 - N1, so start-up and the 64 handshakes cancel out.

    bench/callgrind_s1.py --build build --native [GW_BIN ...] [--rounds 2]
        per thread: CPU (schedstat), voluntary/involuntary context switches,
        system calls (perf stat --per-thread on raw_syscalls:sys_enter,
        and by name with --syscalls); the gateway binaries and nginx
        alternately, proxy on CPU 0, generator on CPU 1
    bench/callgrind_s1.py --build build --callgrind --out DIR [--n1 1000 --n2 6000]
        user-space instructions per request under valgrind --tool=callgrind,
        the gateway and nginx (master_process off), by DSO and function
"""
import argparse
import glob
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

from benchlib.common import ETAT  # noqa: E402
from benchlib.processes import Stack, Target, spawn, stop, stop_all, wait_tcp  # noqa: E402
from benchlib.callgrind import annotate, tool_stack, totals  # noqa: E402
from benchlib.scenarios import Scenarios  # noqa: E402
import genconf  # noqa: E402


class S1(Stack, Scenarios):
    def __init__(self, build, tmp):
        tool_stack(self, build, tmp)
        self.batch_ms = None

    def gw_conf(self, *args, **kw):
        conf = Stack.gw_conf(self, *args, **kw)
        if self.batch_ms is not None:
            conf["journal"]["batch_ms"] = self.batch_ms
        return conf

    def lg(self, port, n, timeout=30):
        args = ["taskset", "-c", "1", self.lg_bin, "-u", "https://localhost:%d%s" % (port, ETAT)] + \
            self.lg_tls(cert=False) + ["-c", "64", "-t", "1", "-n", str(n), "-d", "3000", "--timeout", str(timeout)]
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        ok = re.search(r"2xx (\d+)", r.stdout)
        if not ok or int(ok.group(1)) < n:
            print(r.stdout[-1500:])
        return r.stdout


def threads(pids):
    out = {}
    for pid in pids:
        for tdir in glob.glob("/proc/%d/task/*" % pid):
            tid = int(os.path.basename(tdir))
            try:
                with open(tdir + "/comm") as f:
                    comm = f.read().strip()
                with open(tdir + "/schedstat") as f:
                    ns = int(f.read().split()[0])
                vol = inv = 0
                with open(tdir + "/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            vol = int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches"):
                            inv = int(line.split()[1])
            except OSError:
                continue
            out[tid] = (comm, ns, vol, inv)
    return out


def syscalls_run(s, pids, port, n, byname, record=None):
    """Run <n> requests under perf stat --per-thread (and perf record -e
    cpu-clock into <record> when given); {tid: {event: count}}."""
    ev = "raw_syscalls:sys_enter"
    if byname:
        ev += "," + ",".join("syscalls:sys_enter_" + x for x in byname)
    outp = os.path.join(s.tmp, "perf-%d.txt" % n)
    pp = subprocess.Popen(["perf", "stat", "--per-thread", "-x", ";", "-e", ev, "-p", ",".join(map(str, pids)),
                           "-o", outp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pr = None
    if record:
        pr = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-p", ",".join(map(str, pids)),
                               "-o", record], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    t0 = threads(pids)
    s.lg(port, n)
    t1 = threads(pids)
    for x in (pp, pr):
        if x is not None:
            x.send_signal(signal.SIGINT)
            x.wait(timeout=60)
    counts = {}
    with open(outp) as f:
        for line in f:
            p = line.strip().split(";")
            if len(p) < 4 or not p[0] or p[0].startswith("#"):
                continue
            m = re.match(r"(.*)-(\d+)$", p[0])
            if not m:
                continue
            try:
                v = int(p[1])
            except ValueError:
                continue
            counts.setdefault(int(m.group(2)), {})[p[3]] = v
    delta = {}
    for tid, (comm, ns, vol, inv) in t1.items():
        c0 = t0.get(tid, (comm, 0, 0, 0))
        delta[tid] = {"comm": comm, "ns": ns - c0[1], "vol": vol - c0[2], "inv": inv - c0[3]}
        delta[tid].update(counts.get(tid, {}))
    return delta


def native(a, build):
    tmp = tempfile.mkdtemp(prefix="opale-s1-")
    s = S1(build, tmp)
    res = []
    try:
        s.make_pki()
        s.start_mock()
        roles = [("gw:" + b + ("@%d" % ms if ms is not None else "")) for b in a.native
                 for ms in (a.batch_ms or [None])] + (["nginx"] if not a.no_nginx else [])
        k = 0
        for r in range(a.rounds):
            for role in roles:
                k += 1
                if role == "nginx":
                    t = s.start_nginx("nginx-%d" % k)
                    port = t.port_tls
                else:
                    s.gw_bin, _, ms = role[3:].partition("@")
                    s.batch_ms = int(ms) if ms else None
                    t = s.start_gateway("gw-%d" % k, passthrough=True)
                    port = t.port
                s.lg(port, 500)  # connections, first requests
                pids = t.pids() if role == "nginx" else [t.proc.pid]
                if role == "nginx":
                    pids = [p for p in pids if p != t.proc.pid]  # the worker
                d1 = syscalls_run(s, pids, port, a.n1, a.syscalls)
                rec = "%s-%s-%d.data" % (a.perf, "nginx" if role == "nginx" else "gw", k) if a.perf else None
                d2 = syscalls_run(s, pids, port, a.n2, a.syscalls, rec)
                stop(t.proc)
                n = a.n2 - a.n1
                rows = {}
                for tid in d2:
                    x1 = d1.get(tid, {})
                    x2 = d2[tid]
                    name = x2["comm"]
                    row = rows.setdefault(name, {})
                    for key, v in x2.items():
                        if key == "comm":
                            continue
                        row[key] = row.get(key, 0) + (v - x1.get(key, 0)) / n
                print("== %s round %d" % (role, r + 1))
                tot = {}
                for name, row in sorted(rows.items()):
                    if row.get("ns", 0) / 1000 < 0.01 and row.get("raw_syscalls:sys_enter", 0) < 0.001:
                        continue
                    print("  %-16s cpu %6.2f us  vol %.4f  inv %.4f  syscalls %.3f  %s" % (
                        name, row.get("ns", 0) / 1000, row.get("vol", 0), row.get("inv", 0),
                        row.get("raw_syscalls:sys_enter", 0),
                        " ".join("%s %.3f" % (k2.replace("syscalls:sys_enter_", ""), v2)
                                 for k2, v2 in sorted(row.items()) if k2.startswith("syscalls:") and v2 > 0.0005)))
                    for key, v in row.items():
                        tot[key] = tot.get(key, 0) + v
                print("  %-16s cpu %6.2f us  vol %.4f  inv %.4f  syscalls %.3f" % (
                    "TOTAL", tot.get("ns", 0) / 1000, tot.get("vol", 0), tot.get("inv", 0),
                    tot.get("raw_syscalls:sys_enter", 0)), flush=True)
                res.append((role, tot.get("ns", 0) / 1000))
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    for role in sorted(set(r for r, _ in res)):
        v = sorted(x for r, x in res if r == role)
        print("%s: median %.2f us/request (%s)" % (role, v[len(v) // 2], ", ".join("%.2f" % x for x in v)))


def cg_run(build, outdir, role, n):
    tmp = tempfile.mkdtemp(prefix="opale-cg1-")
    s = S1(build, tmp)
    cgout = os.path.join(outdir, "%s-%d.out" % (role, n))
    vg = ["valgrind", "--tool=callgrind", "--separate-threads=yes", "--callgrind-out-file=" + cgout]
    try:
        s.make_pki()
        s.start_mock()
        if role == "gw":
            wrapper = os.path.join(tmp, "gw-valgrind.sh")
            with open(wrapper, "w") as f:
                f.write("#!/bin/sh\ncase \" $* \" in *' -t '*) exec %s \"$@\";; esac\nexec %s %s \"$@\"\n"
                        % (s.gw_bin, " ".join(vg), s.gw_bin))
            os.chmod(wrapper, 0o755)
            s.gw_bin = wrapper
            t = s.start_gateway("gw", passthrough=True, cpu=None)
            port = t.port
        else:
            d = os.path.join(tmp, "nginx")
            os.makedirs(d)
            from benchlib.processes import free_port
            port, port_m = free_port(), free_port()
            path = genconf.render(d, s.pki, s.mock_port, port, port_m, workers=1, worker_connections=2000,
                                  nofile=4096, upstream_keepalive=64)
            with open(path) as f:
                conf = f.read().replace("master_process on;", "master_process off;")
            with open(path, "w") as f:
                f.write(conf)
            p = spawn(vg + [s.nginx_bin, "-c", path], cwd=d, out=os.path.join(d, "stdout"),
                      err=os.path.join(d, "stderr"))
            wait_tcp(port, p, 120, "nginx")
            t = Target("nginx", p, "nginx-vg", port_tls=port, dir=d)
        out = s.lg(port, n, timeout=60)
        print(out[-600:])
        stop(t.proc, signal.SIGTERM, timeout=120)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    # --separate-threads: one file per thread (<out>-01, -02 ...)
    return sorted(glob.glob(cgout + "-*"))


def cg_sum(files, inclusive, dso):
    out = {}
    for f in files:
        for k, v in annotate(f, inclusive, dso).items():
            out[k] = out.get(k, 0) + v
    return out


def callgrind(a, build):
    os.makedirs(a.out, exist_ok=True)
    d = a.n2 - a.n1
    for role in a.roles:
        f1 = sorted(glob.glob(os.path.join(a.out, "%s-%d.out-*" % (role, a.n1))))
        f2 = sorted(glob.glob(os.path.join(a.out, "%s-%d.out-*" % (role, a.n2))))
        if not a.reuse:
            f1 = cg_run(build, a.out, role, a.n1)
            f2 = cg_run(build, a.out, role, a.n2)
        print("==== %s" % role)
        for x1, x2 in zip(f1, f2):
            print("  thread file %s: %.1f instructions per request" % (
                os.path.basename(x2), (totals(x2) - totals(x1)) / d))
        t1, t2 = sum(totals(x) for x in f1), sum(totals(x) for x in f2)
        print("  total: %.1f instructions per request" % ((t2 - t1) / d))
        for title, inclusive, dso in (("by DSO (self)", False, True), ("self", False, False),
                                      ("inclusive", True, False)):
            x1, x2 = cg_sum(f1, inclusive, dso), cg_sum(f2, inclusive, dso)
            rows = sorted(((x2.get(k, 0) - x1.get(k, 0)) / d, k) for k in set(x1) | set(x2))
            rows.reverse()
            print("\n  %s per request:" % title)
            for v, k in rows[:a.top]:
                print("%10.0f  %s" % (v, k))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--native", nargs="*", metavar="GW_BIN")
    ap.add_argument("--no-nginx", action="store_true")
    ap.add_argument("--batch-ms", type=int, nargs="*", help="with --native: each binary at these journal.batch_ms")
    ap.add_argument("--perf", metavar="PREFIX", help="with --native: perf record -e cpu-clock of the N2 runs")
    ap.add_argument("--syscalls", nargs="*", default=[], metavar="NAME")
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--roles", nargs="+", default=["gw", "nginx"])
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--n1", type=int)
    ap.add_argument("--n2", type=int)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--top", type=int, default=40)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    if a.callgrind:
        a.n1, a.n2 = a.n1 or 1000, a.n2 or 6000
        callgrind(a, build)
    else:
        a.n1, a.n2 = a.n1 or 3000, a.n2 or 33000
        a.native = [os.path.abspath(b) for b in (a.native or [os.path.join(build, "opale-gateway")])]
        native(a, build)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""S4 instructions per new mTLS connection under callgrind (user space).

S4 is a new mTLS connection per request (bench/README.md): a full TLS 1.3
handshake with the client certificate checked against the CA and the CRL,
then one full-chain request (`/opale/v1/etatSante` with the bearer). The
bench's GW-FULL gateway and its nginx (mTLS listener, bench/nginx, run with
`master_process off` so that the one process is the worker) are each run
twice under valgrind --tool=callgrind, for N1 and N2 such connections from
opale-loadgen (`--new-conn`, 16 connections at a time, as S4); the figure
per connection is the difference of the two totals divided by N2 - N1, so
start-up, the token request and the shutdown cancel out.

    bench/callgrind_s4.py --build build --out /tmp/cg4 [--n1 200 --n2 1200] [--only gw|nginx]
    bench/callgrind_s4.py --build build --out /tmp/cg4 --reuse       # annotate the files again
    bench/callgrind_s4.py --build build --out /tmp/cg4 --native A nginx B [--rounds 3]
    bench/callgrind_s4.py --build build --out /tmp/cg4 --strace [--only gw|nginx] [--gw-bin GW]

Writes <out>/{gw,nginx}-<N>.out (callgrind files) and prints, for each
side: the total per connection, the share of each shared object, the
inclusive and self cost of the top functions, and the calls to the
allocator (`malloc`, `calloc`, `realloc`) per connection, by calling
object. --native: no valgrind, the CPU (utime + stime, all threads; user
and system apart) per connection of each gateway binary, or of "nginx",
alternately, the proxy on CPU 0 and the generator on CPU 1 (the bench's
placement). --strace: `strace -c -f` attached to the target, system calls
per connection (the same difference of two runs); --gw-bin: another
gateway binary than the build's, to compare two.
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

from benchlib.common import CLK_TCK, ETAT, HAB_FULL, START_TIMEOUT  # noqa: E402
from benchlib.processes import (Stack, Target, free_port, read_text, spawn, stop,  # noqa: E402
                                stop_all, wait_tcp)
from benchlib.callgrind import annotate, tool_stack, totals  # noqa: E402
from benchlib.scenarios import Scenarios  # noqa: E402
import genconf  # noqa: E402  (found through benchlib.common's sys.path)

ALLOC = ("malloc", "calloc", "realloc")


class CG(Stack, Scenarios):
    def __init__(self, build, tmp):
        tool_stack(self, build, tmp)
        self.gw_native = self.gw_bin

    def gateway(self, name, prefix=None, cpu=None):
        """GW-FULL; <prefix>: the command that runs it (valgrind, strace)."""
        self.gw_bin = self.gw_native
        if prefix:
            wrapper = os.path.join(self.tmp, name + ".sh")
            with open(wrapper, "w") as f:
                f.write("#!/bin/sh\ncase \" $* \" in *' -t '*) exec %s \"$@\";; esac\nexec %s %s \"$@\"\n"
                        % (self.gw_native, " ".join(prefix), self.gw_native))
            os.chmod(wrapper, 0o755)
            self.gw_bin = wrapper
        try:
            # the Redis timeout raised: valgrind's slowness must cause no resync
            return self.start_gateway(name, policies={"commune-exemple.json": self.commune_policy(HAB_FULL, 1000000)},
                                      quota=dict(self.redis_quota(), redis={
                                          "nodes": ["127.0.0.1:%d" % self.redis_port], "timeout_ms": 5000}), cpu=cpu)
        finally:
            self.gw_bin = self.gw_native

    def nginx(self, name, prefix=None):
        """The bench's nginx, one process (master_process off), mTLS port."""
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        port_tls, port_mtls = free_port(), free_port()
        path = genconf.render(d, self.pki, self.mock_port, port_tls, port_mtls, workers=1,
                              worker_connections=1024, nofile=4096, upstream_keepalive=64)
        with open(path) as f:
            text = f.read()
        text = text.replace("master_process on;", "master_process off;").replace("user root root;", "")
        with open(path, "w") as f:
            f.write(text)
        p = spawn((prefix or []) + [self.nginx_bin, "-c", path], cwd=d, out=os.path.join(d, "stdout"),
                  err=os.path.join(d, "stderr"))
        wait_tcp(port_mtls, p, START_TIMEOUT * 3, "nginx")
        return Target(name, p, "nginx", port_tls=port_tls, port_mtls=port_mtls, dir=d)

    def s4_args(self, t, n, conns):
        return self.full_chain_args(t, [ETAT]) + ["--new-conn", "-c", str(conns), "-t", "1", "-n", str(n),
                                                  "-d", "3000", "--timeout", "60"]


def by_object(path):
    """Self cost per shared object (callgrind's ob= lines)."""
    out, names, ob = {}, {}, "?"
    cost_line = re.compile(r"^(?:[+\-]?\d+|\*) (\d+)")
    with open(path) as f:
        in_call = False
        for line in f:
            if line.startswith("ob="):
                m = re.match(r"ob=\((\d+)\)(?: (.*))?", line.strip())
                if m:
                    if m.group(2):
                        names[m.group(1)] = os.path.basename(m.group(2))
                    ob = names.get(m.group(1), "?")
                else:
                    ob = os.path.basename(line[3:].strip())
            elif line.startswith("cob="):
                m = re.match(r"cob=\((\d+)\) (.*)", line.strip())
                if m:
                    names[m.group(1)] = os.path.basename(m.group(2))
            elif line.startswith("calls="):
                in_call = True
            elif in_call:
                in_call = False  # the inclusive cost of a call: not self
            else:
                m = cost_line.match(line)
                if m:
                    out[ob] = out.get(ob, 0) + int(m.group(1))
    return out


def alloc_calls(path):
    """Calls to the allocator's entry points, by calling object file."""
    calls = {}
    names, fnames = {}, {}
    ob, cob, cfn = "?", None, None
    with open(path) as f:
        for line in f:
            if line.startswith("ob="):
                m = re.match(r"ob=\((\d+)\)(?: (.*))?", line.strip())
                if m and m.group(2):
                    names[m.group(1)] = os.path.basename(m.group(2))
                ob = names.get(m.group(1), "?") if m else "?"
            elif line.startswith("cob="):
                m = re.match(r"cob=\((\d+)\)(?: (.*))?", line.strip())
                if m and m.group(2):
                    names[m.group(1)] = os.path.basename(m.group(2))
            elif line.startswith("fn=") or line.startswith("cfn=") or line.startswith("cfi=") or \
                    line.startswith("cfl="):
                m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line.strip())
                if m:
                    if m.group(3):
                        fnames[m.group(2)] = m.group(3)
                    if m.group(1) == "cfn":
                        cfn = fnames.get(m.group(2))
            elif line.startswith("calls="):
                if cfn in ALLOC and ob not in ("libc.so.6", "vgpreload_memcheck-amd64-linux.so"):
                    n = int(line.split()[0][6:])
                    calls[ob] = calls.get(ob, 0) + n
                cfn = None
    return calls


def run_callgrind(cg, side, outdir, n, conns):
    out = os.path.join(outdir, "%s-%d.out" % (side, n))
    prefix = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out]
    if side == "gw":
        t = cg.gateway("gw-%d" % n, prefix)
    else:
        t = cg.nginx("nginx-%d" % n, prefix)
    r = subprocess.run([cg.lg_bin] + cg.s4_args(t, n, conns), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    print(r.stdout[-800:], flush=True)
    stop(t.proc, signal.SIGTERM, timeout=180)
    if side == "gw":
        err = read_text(os.path.join(t.dir, "stderr"))
        if "resync" in err or "timeout" in err:
            print("gateway stderr mentions resync/timeout:\n" + err[-2000:])
    return out


def run_strace(cg, side, outdir, n, conns):
    """strace -c -f attached to the target while <n> connections are served."""
    out = os.path.join(outdir, "strace-%s-%d.txt" % (side, n))
    t = cg.gateway("st-gw-%d" % n, cpu="0") if side == "gw" else cg.nginx("st-nginx-%d" % n, ["taskset", "-c", "0"])
    st = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(t.proc.pid)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    subprocess.run(["taskset", "-c", "1", cg.lg_bin] + cg.s4_args(t, n, conns), stdout=subprocess.DEVNULL,
                   stderr=subprocess.STDOUT)
    st.send_signal(signal.SIGINT)
    st.wait(timeout=60)
    stop(t.proc, signal.SIGTERM, timeout=60)
    calls = {}
    for line in read_text(out).splitlines():
        p = line.split()
        if len(p) >= 5 and p[0][0].isdigit() and p[-1] != "total":
            calls[p[-1]] = int(p[3])
    return calls


def report(outdir, side, n1, n2, top):
    f1, f2 = os.path.join(outdir, "%s-%d.out" % (side, n1)), os.path.join(outdir, "%s-%d.out" % (side, n2))
    d = n2 - n1
    t1, t2 = totals(f1), totals(f2)
    print("\n== %s: totals %d (%d connections), %d (%d): %.0f instructions per connection"
          % (side, t1, n1, t2, n2, (t2 - t1) / d))
    o1, o2 = by_object(f1), by_object(f2)
    print("by object (self, per connection):")
    for v, k in sorted((((o2.get(k, 0) - o1.get(k, 0)) / d, k) for k in set(o1) | set(o2)), reverse=True)[:12]:
        print("%12.0f  %s" % (v, k))
    a1, a2 = alloc_calls(f1), alloc_calls(f2)
    print("allocator calls per connection, by caller object: %.1f" %
          ((sum(a2.values()) - sum(a1.values())) / d))
    for v, k in sorted((((a2.get(k, 0) - a1.get(k, 0)) / d, k) for k in set(a1) | set(a2)), reverse=True):
        print("%12.1f  %s" % (v, k))
    for inclusive in (True, False):
        x1, x2 = annotate(f1, inclusive), annotate(f2, inclusive)
        rows = sorted((((x2.get(k, 0) - x1.get(k, 0)) / d, k) for k in set(x1) | set(x2)), reverse=True)
        print("\n%s %s per connection:" % (side, "inclusive" if inclusive else "self"))
        for v, k in rows[:top]:
            print("%12.0f  %s" % (v, k))


def ustime(pid):
    """(utime, stime) in seconds of <pid>, all its threads."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    st = st[st.rindex(")") + 2:].split()
    return int(st[11]) / CLK_TCK, int(st[12]) / CLK_TCK


def native(cg, bins, n, conns, rounds):
    """<bins>: gateway binaries, or "nginx" (the bench's, one process)."""
    res = {b: [] for b in bins}
    k = 0
    for _ in range(rounds):
        for b in bins:
            k += 1
            if b == "nginx":
                t = cg.nginx("nat-nginx-%d" % k, ["taskset", "-c", "0"])
            else:
                cg.gw_native = b
                t = cg.gateway("nat-%d" % k, cpu="0")
            u0, s0 = ustime(t.proc.pid)
            r = subprocess.run(["taskset", "-c", "1", cg.lg_bin] + cg.s4_args(t, n, conns),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
            u1, s1 = ustime(t.proc.pid)
            ok = re.search(r"2xx (\d+)", r.stdout)
            rate = re.search(r"TLS handshakes \(([\d.]+)/s", r.stdout)
            stop(t.proc)
            us, uu, su = (u1 + s1 - u0 - s0) / n * 1e6, (u1 - u0) / n * 1e6, (s1 - s0) / n * 1e6
            res[b].append(us)
            print("%s: %.1f us per connection (user %.1f, system %.1f; 2xx %s, %s handshakes/s)"
                  % (b, us, uu, su, ok.group(1) if ok else "?", rate.group(1) if rate else "?"), flush=True)
    for b in bins:
        v = sorted(res[b])
        print("%s: median %.1f us per connection over %d runs (%s)" %
              (b, v[len(v) // 2], len(v), ", ".join("%.1f" % x for x in res[b])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n1", type=int, default=200)
    ap.add_argument("--n2", type=int, default=1200)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--top", type=int, default=50)
    ap.add_argument("--only", choices=("gw", "nginx"))
    ap.add_argument("--reuse", action="store_true", help="annotate existing callgrind files only")
    ap.add_argument("--strace", action="store_true", help="system calls per connection (strace -c -f)")
    ap.add_argument("--native", nargs="+", metavar="GW_BIN", help="no valgrind: gateway CPU per connection")
    ap.add_argument("--native-n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gw-bin", metavar="GW_BIN", help="the gateway binary measured (default: <build>/opale-gateway)")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    os.makedirs(a.out, exist_ok=True)
    sides = [a.only] if a.only else ["gw", "nginx"]
    if a.reuse:
        for s in sides:
            report(a.out, s, a.n1, a.n2, a.top)
        return
    tmp = tempfile.mkdtemp(prefix="opale-cg4-")
    cg = CG(build, tmp)
    if a.gw_bin:
        cg.gw_native = cg.gw_bin = os.path.abspath(a.gw_bin)
    try:
        cg.make_pki()
        cg.start_mock()
        cg.start_redis()
        if "nginx" in sides or (a.native and "nginx" in a.native):
            # nginx is sent the same bytes, with a token of GW-FULL's
            t = cg.gateway("gw-token")
            cg.token = cg.get_token(t.port)
            stop(t.proc)
        if a.native:
            native(cg, [b if b == "nginx" else os.path.abspath(b) for b in a.native], a.native_n, a.conns, a.rounds)
            return
        for s in sides:
            if a.strace:
                c1 = run_strace(cg, s, a.out, a.n1, a.conns)
                c2 = run_strace(cg, s, a.out, a.n2, a.conns)
                d = a.n2 - a.n1
                rows = sorted((((c2.get(k, 0) - c1.get(k, 0)) / d, k) for k in set(c1) | set(c2)), reverse=True)
                print("\n== %s: system calls per connection %.2f" % (s, sum(v for v, _ in rows)))
                for v, k in rows:
                    if abs(v) >= 0.01:
                        print("%8.2f  %s" % (v, k))
            else:
                run_callgrind(cg, s, a.out, a.n1, a.conns)
                run_callgrind(cg, s, a.out, a.n2, a.conns)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    if not a.strace and not a.native:
        for s in sides:
            report(a.out, s, a.n1, a.n2, a.top)


if __name__ == "__main__":
    main()

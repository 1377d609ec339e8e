#!/usr/bin/env python3
"""The opale-gateway bench: the gateway side by side with nginx (Python 3 stdlib only).

Usage:
  bench/bench.py --build BUILD [--quick] [--profile] [--only S1,S3,...]
                 [--rounds N] [--duration S] [--out DIR] [--keep]

  make bench        = bench.py --build build-bench --profile   (about 20-25 min)
  make bench-quick  = bench.py --build build-bench --quick     (under 5 min)

BUILD holds the Release binaries: BUILD/opale-gateway,
BUILD/deploy/mock-opale/opale-mock and BUILD/bench/opale-loadgen. nginx,
redis-server, taskset and gnuplot come from the system (make installs them;
perf too for --profile).

Everything runs in a temporary directory (removed at the end unless --keep):
a dev PKI (deploy/sandbox/pki.sh), one opale-mock (plain HTTP, WITHOUT --jwks:
nginx cannot sign the X-JWT-Assertion the mock would then require, so the
mock checks no assertion for anybody), one redis-server, one nginx
(bench/nginx/genconf.py: a TLS-only and an mTLS server, proxying to the mock)
and the gateways, each with one worker, its own journal and admin port:
GW-S1 (listener client_auth "none", access "off": only the route stage),
GW-FULL (mTLS, one policy, Redis quota, hash-chained journal), GW-10K (as
GW-FULL with 10,000 policies) and GW-Q1..3 (S7: three instances, one Redis,
quota 50 per window). Every process is on a free loopback port and is
stopped at exit (SIGTERM, then SIGKILL), and every wait has a deadline.

CPU placement on the 2-core machine: every proxy (nginx master and worker,
each gateway) under `taskset -c 0`; the load generator, the mock and Redis
under `taskset -c 1`. All proxies stay up for the whole run; only the one
being measured gets load. For each measured run the CPU time (utime + stime
from /proc) of the proxy under test, of the generator (wait4 rusage), of the
mock and of Redis is recorded: proxy CPU % of one core, requests per proxy
CPU-second, and whether core 1 (the generator's) was saturated.

Scenarios (rounds alternate: for each round, each of S1, S2, S4, S6 runs A
then B, swapped on every other round; medians over rounds, min-max, ratios
pair by pair then their median):
  S1  pass-through: GW-S1 vs nginx TLS-only, closed loop, 64 connections
  S2  full chain: GW-FULL vs nginx mTLS, closed loop, 64 connections
  S3  open-loop latency at 50% of nginx's S2 median: GW-FULL, nginx, the mock
      directly; added p99 = p99(proxy) - p99(direct) (target <= 1 ms)
  S4  handshakes: a new mTLS connection per request, 16 connections
  S5  memory: RSS before and while holding 10,000 idle mTLS connections
      (quick: 2,000), fresh proxies each round; per connection, gw/nginx
      (target <= 1.0)
  S6  policy count: GW-FULL (1 policy) vs GW-10K, S2 load (target >= 0.98)
  S7  quota exactness: 3 gateways, one Redis, 50 per window, demand far
      above; max admissions in any rolling window (target: exactly 50)
  --profile: perf record of GW-FULL under S2 load, top symbols in the report.

Options:
  --build DIR     build tree with the binaries (required)
  --quick         R=2, 3 s runs, S5 2,000 connections x 1 round, S7 25 s, 10 s window
  --only LIST     comma-separated scenarios to run (S1..S7); default all
  --rounds N      rounds for S1-S4 and S6 (default 5, quick 2)
  --duration S    seconds per measured run (default 10, quick 3)
  --profile       profile GW-FULL under S2 load at the end (needs perf)
  --out DIR       where results go (default bench/results)
  --keep          keep the temporary directory (printed)
  --note TEXT     a line of text for the report's header

Outputs: OUT/<date>-<host>[-quick].md (the report), its PNG plots next to it
(-throughput.png, -latency.png), and OUT/<date>-<host>[-quick]/ with the raw
loadgen JSON of every run and summary.json. The summary table is printed on
stdout at the end. Exit status 0 when the bench ran (targets met or not), 1
when it could not run (setup failure), 2 for a bad command line.
"""

import argparse
import atexit
import copy
import datetime
import hashlib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "nginx"))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration"))
import genconf  # noqa: E402  (bench/nginx/genconf.py)
import harness  # noqa: E402  (tests/integration/harness.py: ROUTES, make_policy, make_siret)

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXY_CPU = "0"
LOAD_CPU = "1"
CLIENT = "client-commune"
TELESERVICE = "TS-0001"
SIREN = "732829320"
ANNEE = "2023"
PATHS = ["/opale/v1/entreprises/%s/declarations?annee=%s" % (SIREN, ANNEE),
         "/opale/v1/entreprises/%s/creances?annee=%s" % (SIREN, ANNEE)]
ETAT = "/opale/v1/etatSante"
SCOPES = ["api_opale_declarations", "api_opale_creances"]
HAB_FULL = "H9001"   # GW-FULL, GW-10K and the S5 gateways (quota 1,000,000/min)
HAB_S7 = "H9100"     # the S7 gateways (quota 50 per window): another Redis key
QUOTA_S7 = 50
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
SAT_PCT = 95.0       # a core at or above this share of one CPU is "saturated"

T0 = time.monotonic()


def log(msg):
    sys.stderr.write("[bench %6.1fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


class SetupError(Exception):
    pass


# --------------------------------------------------------------------------
# processes: registry, start, stop, CPU time and RSS from /proc

_procs = []


def _child_setup():
    """In the child, before exec: its own process group (so that stopping it
    also reaches what it forks, e.g. nginx's worker) and the file-descriptor
    limit raised to the hard limit (10,000 connections in S5)."""
    os.setpgrp()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


def spawn(argv, cpu=None, cwd=None, out=None, err=None):
    """Start <argv> (under `taskset -c <cpu>` when given: taskset execs the
    command, so the PID is the program's), registered for the cleanup."""
    if cpu is not None:
        argv = ["taskset", "-c", cpu] + list(argv)
    fo = open(out, "ab") if out else subprocess.DEVNULL
    fe = open(err, "ab") if err else subprocess.DEVNULL
    try:
        p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, cwd=cwd,
                             preexec_fn=_child_setup)
    finally:
        if out:
            fo.close()
        if err:
            fe.close()
    p.ru = None
    _procs.append(p)
    return p


def reap(p):
    """Non-blocking wait4: True once <p> has exited (its rusage in p.ru)."""
    if p.returncode is not None:
        return True
    try:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
    except ChildProcessError:
        p.returncode = -1
        return True
    if pid == 0:
        return False
    p.returncode = os.waitstatus_to_exitcode(status)
    p.ru = ru
    return True


def wait_exit(p, deadline):
    """Wait until <p> exits or <deadline> (monotonic); past it, SIGTERM then
    SIGKILL. Returns its rusage (None if unknown)."""
    while not reap(p):
        if time.monotonic() > deadline:
            log("pid %d still running past its deadline: stopping it" % p.pid)
            stop(p)
            break
        time.sleep(0.02)
    return p.ru


def stop(p, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
    """SIGTERM (or <sig>), wait up to <timeout> s, then SIGKILL; then SIGKILL
    what is left of its process group (a process we started)."""
    if p is None:
        return
    if not reap(p):
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while not reap(p) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not reap(p):
            try:
                p.kill()
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while not reap(p) and time.monotonic() < deadline:
                time.sleep(0.05)
    try:
        os.killpg(p.pid, signal.SIGKILL)  # leftovers of its own group (nginx worker)
    except (ProcessLookupError, PermissionError):
        pass
    if p in _procs:
        _procs.remove(p)


def stop_all():
    for p in reversed(list(_procs)):
        try:
            stop(p, timeout=5.0)
        except Exception:
            pass


def _proc_stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()


def cpu_seconds(pid):
    """utime + stime of process <pid> (all its threads, live and exited:
    /proc/PID/stat of the thread-group leader is their sum), in seconds."""
    st = _proc_stat(pid)
    if st is None:
        return 0.0
    return (int(st[11]) + int(st[12])) / CLK_TCK


def core_jiffies():
    """{"cpu0": (busy, total), ...} from /proc/stat (busy = all but idle and
    iowait): how busy each core was, whoever used it."""
    out = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3:4].isdigit():
                    parts = line.split()
                    vals = [int(v) for v in parts[1:9]]
                    out[parts[0]] = (sum(vals) - vals[3] - vals[4], sum(vals))
    except OSError:
        pass
    return out


def core_pct(j0, j1, cpu):
    a, b = j0.get(cpu), j1.get(cpu)
    if not a or not b or b[1] <= a[1]:
        return None
    return 100.0 * (b[0] - a[0]) / (b[1] - a[1])


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _proc_stat(int(d))
            if st is not None and int(st[1]) == pid:
                out.append(int(d))
    return out


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(port, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError("%s exited (rc=%s) during start-up" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SetupError("%s: port %d not accepting within %.0f s" % (what, port, timeout))


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class Target:
    """A process under test (or a helper): its CPU time and RSS. <kind>
    "nginx" counts the master and its children (the worker)."""

    def __init__(self, name, proc, kind, **info):
        self.name = name
        self.proc = proc
        self.kind = kind
        self.__dict__.update(info)

    def pids(self):
        if self.kind == "nginx":
            return [self.proc.pid] + children_of(self.proc.pid)
        return [self.proc.pid]

    def cpu(self):
        return sum(cpu_seconds(p) for p in self.pids())

    def rss(self):
        return sum(rss_kb(p) for p in self.pids())

    def alive(self):
        return self.proc.poll() is None


# --------------------------------------------------------------------------
# Redis (a minimal RESP client) and HTTPS (Python's ssl) for the checks


class Redis:
    def __init__(self, port):
        self.port = port
        self.sock = None
        self.f = None

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock = self.f = None

    def cmd(self, *args):
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            self.f = self.sock.makefile("rb")
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        self.sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in parts))
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("redis: connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError("redis: " + rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError("redis: unexpected reply %r" % line[:40])


def https(port, method, target, pki, headers=None, body=None, cert=True, timeout=10):
    """(status, body bytes) of one request over TLS to 127.0.0.1:<port>
    (server verified against the dev CA), with the commune's client
    certificate when <cert>."""
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
    if cert:
        ctx.load_cert_chain(os.path.join(pki, CLIENT + ".crt"), os.path.join(pki, CLIENT + ".key"))
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    try:
        c.request(method, target, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def plain_get(port, target, headers=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", target, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def journal_records(jdir):
    """Every complete JSON line of the access journal(s) in <jdir> (rotated
    files included), in file order."""
    out = []
    if not os.path.isdir(jdir):
        return out
    for name in sorted(os.listdir(jdir)):
        if not name.startswith("access.jsonl"):
            continue
        txt = read_text(os.path.join(jdir, name))
        for ln in txt.split("\n")[:-1]:
            if ln.strip():
                try:
                    rec = json.loads(ln)
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    out.append(rec)
    return out


def ts_ms(ts):
    """Journal "ts" (ISO 8601 UTC, milliseconds) -> epoch milliseconds."""
    d = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(round(d.timestamp() * 1000))


def max_in_window(times, w):
    """Max number of times in any half-open window [t, t + w), sliding over
    every time (the quota's window: an admission at t leaves at t + w), and
    the shortest span t[i+n] - t[i] for n = that limit."""
    t = sorted(times)
    best, j = 0, 0
    for i in range(len(t)):
        while j < len(t) and t[j] < t[i] + w:
            j += 1
        best = max(best, j - i)
    return best


def min_span(times, n):
    t = sorted(times)
    if len(t) <= n:
        return None
    return min(t[i + n] - t[i] for i in range(len(t) - n))


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def mn(xs):
    xs = [x for x in xs if x is not None]
    return min(xs) if xs else None


def mx(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def fmt(x, nd=0, unit=""):
    if x is None:
        return "—"
    if isinstance(x, float) and nd == 0:
        return "{:,.0f}".format(x).replace(",", " ") + unit
    return ("{:,.%df}" % nd).format(x).replace(",", " ") + unit


def fmt_us(us):
    if us is None:
        return "—"
    if us < 1000:
        return "%d µs" % us
    if us < 1000000:
        return "%.2f ms" % (us / 1000.0)
    return "%.2f s" % (us / 1e6)


def rng_txt(xs, nd=0, unit=""):
    a, b = mn(xs), mx(xs)
    if a is None:
        return "—"
    return "%s–%s" % (fmt(a, nd), fmt(b, nd, unit))


# --------------------------------------------------------------------------
# the bench


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.build = os.path.abspath(args.build)
        self.gw_bin = os.path.join(self.build, "opale-gateway")
        self.mock_bin = os.path.join(self.build, "deploy", "mock-opale", "opale-mock")
        self.lg_bin = os.path.join(self.build, "bench", "opale-loadgen")
        self.rounds = args.rounds or (2 if self.quick else 5)
        self.duration = args.duration or (3.0 if self.quick else 10.0)
        self.s3_duration = self.duration
        self.s5_conns = 2000 if self.quick else 10000
        self.s5_rounds = 1 if self.quick else 2
        self.s5_hold = 5.0 if self.quick else 10.0
        self.s7_window = 10 if self.quick else 60
        self.s7_duration = 25.0 if self.quick else 180.0
        self.s7_rate = 200.0
        self.only = set(s.strip().upper() for s in args.only.split(",")) if args.only else None
        self.runs = {}           # scenario -> [run records]
        self.s5 = []             # S5 records
        self.s7 = None           # S7 result
        self.profile_lines = None
        self.failures = {}       # scenario -> error text
        self.notes = []          # anomalies seen on the way
        self.targets = {}
        self.s4_path = None
        self.s3_rate = None
        self.token = None
        self.started_wall = datetime.datetime.now(datetime.timezone.utc)
        self.load_before = os.getloadavg()
        host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"
        self.stem = "%s-%s%s" % (datetime.date.today().isoformat(), host, "-quick" if self.quick else "")
        self.out_dir = os.path.abspath(args.out or os.path.join(HERE, "results"))
        self.raw_dir = os.path.join(self.out_dir, self.stem)
        self.tmp = tempfile.mkdtemp(prefix="opale-bench-")
        atexit.register(self.cleanup)

    def want(self, s):
        return self.only is None or s in self.only

    def cleanup(self):
        stop_all()
        if self.args.keep:
            sys.stderr.write("[bench] kept %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- setup

    def check_binaries(self):
        missing = [p for p in (self.gw_bin, self.mock_bin, self.lg_bin) if not os.access(p, os.X_OK)]
        for tool in ("nginx", "redis-server", "taskset", "openssl"):
            if not shutil.which(tool):
                missing.append(tool)
        if missing:
            raise SetupError("missing: " + ", ".join(missing))
        self.nginx_bin = shutil.which("nginx")
        if os.cpu_count() < 2:
            raise SetupError("the bench needs 2 CPUs (proxies on CPU 0, load on CPU 1)")

    def make_pki(self):
        self.pki = os.path.join(self.tmp, "pki")
        r = subprocess.run(["bash", os.path.join(SRCDIR, "deploy", "sandbox", "pki.sh"), self.pki],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if r.returncode != 0 or not os.path.exists(os.path.join(self.pki, "ca.crt")):
            raise SetupError("pki.sh failed:\n" + r.stdout.decode(errors="replace"))
        self.fp = {}
        with open(os.path.join(self.pki, "fingerprints.txt")) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    self.fp[parts[0]] = parts[1].lower()

    def start_mock(self):
        d = os.path.join(self.tmp, "mock")
        os.makedirs(d)
        pf = os.path.join(d, "port")
        p = spawn([self.mock_bin, "--listen", "127.0.0.1", "--port", "0", "--port-file", pf, "--quiet"],
                  cpu=LOAD_CPU, cwd=d, out=os.path.join(d, "stdout"), err=os.path.join(d, "stderr"))
        deadline = time.monotonic() + START_TIMEOUT
        while not (os.path.exists(pf) and read_text(pf).strip().isdigit()):
            if p.poll() is not None or time.monotonic() > deadline:
                raise SetupError("opale-mock did not start: " + read_text(os.path.join(d, "stderr")))
            time.sleep(0.02)
        self.mock_port = int(read_text(pf).strip())
        self.mock = Target("opale-mock", p, "mock", port=self.mock_port)

    def start_redis(self):
        d = os.path.join(self.tmp, "redis")
        os.makedirs(d)
        self.redis_port = free_port()
        p = spawn(["redis-server", "--port", self.redis_port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
                   "no", "--dir", d, "--daemonize", "no", "--logfile", os.path.join(d, "redis.log")],
                  cpu=LOAD_CPU, cwd=d)
        wait_tcp(self.redis_port, p, START_TIMEOUT, "redis-server")
        self.redis = Redis(self.redis_port)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if self.redis.cmd("PING") == "PONG":
                    break
            except (OSError, RuntimeError):
                self.redis.close()
            if time.monotonic() > deadline:
                raise SetupError("redis-server does not answer PING")
            time.sleep(0.1)
        self.redis_t = Target("redis-server", p, "redis", port=self.redis_port)

    def start_nginx(self, name):
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        port_tls, port_mtls = free_port(), free_port()
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        nofile = min(45000, hard)
        wc = min(20000, nofile - 500)
        path = genconf.render(d, self.pki, self.mock_port, port_tls, port_mtls, workers=1, worker_connections=wc,
                              nofile=nofile, upstream_keepalive=64)
        rc, out = genconf.check(self.nginx_bin, path)
        if rc != 0:
            raise SetupError("nginx -t failed:\n" + out)
        p = spawn([self.nginx_bin, "-c", path], cpu=PROXY_CPU, cwd=d, out=os.path.join(d, "stdout"),
                  err=os.path.join(d, "stderr"))
        try:
            wait_tcp(port_tls, p, START_TIMEOUT, "nginx")
            wait_tcp(port_mtls, p, START_TIMEOUT, "nginx")
        except SetupError as e:
            raise SetupError("%s\n%s\n%s" % (e, read_text(os.path.join(d, "stderr")),
                                             read_text(os.path.join(d, "error.log"))))
        t = Target(name, p, "nginx", port_tls=port_tls, port_mtls=port_mtls, dir=d,
                   worker_connections=wc, nofile=nofile)
        deadline = time.monotonic() + START_TIMEOUT
        while len(t.pids()) < 2:
            if time.monotonic() > deadline:
                raise SetupError("nginx: no worker process")
            time.sleep(0.05)
        return t

    def commune_policy(self, hid, per_minute):
        p = harness.make_policy(CLIENT, self.fp[CLIENT],
                                rights={"scopes": list(SCOPES), "years": {"from": 2019, "to": 2025}},
                                quota={"per_minute": per_minute})
        p["habilitation"]["id"] = hid
        p["habilitation"]["legal_basis"] = "Bench"
        p["consumer"]["ip_allowlist"] = ["127.0.0.1/32"]
        return p

    def fake_policies(self, n):
        """<n> made-up partners: distinct fingerprints, client ids,
        teleservices, habilitation ids (H100001...)."""
        out = {}
        for i in range(1, n + 1):
            out["zz-partner-%05d.json" % i] = {
                "habilitation": {"id": "H%d" % (100000 + i), "definition": "api_opale_sandbox", "state": "active",
                                 "valid_from": "2020-01-01", "valid_until": "2099-12-31"},
                "organization": {"siret": harness.make_siret(i), "name": "Partenaire fictif %d" % i},
                "consumer": {"client_id": "bench-partner-%05d" % i, "id_teleservice": "TS-B%05d" % i,
                             "certificates": [{"sha256": hashlib.sha256(b"opale-bench-cert-%d" % i).hexdigest()}],
                             "ip_allowlist": ["10.%d.%d.0/24" % ((i >> 8) & 255, i & 255)]},
                "rights": {"scopes": list(SCOPES), "years": {"from": 2019, "to": 2025}},
                "quota": {"per_minute": 500},
            }
        return out

    def gw_conf(self, port, admin_port, passthrough=False, quota=None):
        tls = {"certificates": [{"cert": "pki/server-ecdsa.crt", "key": "pki/server-ecdsa.key"},
                                {"cert": "pki/server-rsa.crt", "key": "pki/server-rsa.key"}]}
        # every bench client comes from 127.0.0.1: no per-address handshake limit
        listener = {"name": "bench", "address": "127.0.0.1", "port": port, "environment": "sandbox", "tls": tls,
                    "max_handshakes_per_source": 0}
        if passthrough:
            tls["client_auth"] = "none"
            listener["access"] = "off"
        else:
            tls.update({"client_ca": "pki/ca.crt", "crl": "pki/crl.pem", "client_auth": "required"})
        conf = {
            "workers": 1,
            "policies_dir": "policies",
            "listeners": [listener],
            "upstreams": [{"name": "opale", "servers": ["127.0.0.1:%d" % self.mock_port], "pool_size": 64}],
            "routes": copy.deepcopy(harness.ROUTES),
            # S5: 10,000 idle connections per worker, kept for longer than
            # the setup plus the hold. 10,500 fits a hard RLIMIT_NOFILE of
            # 20000 with one descriptor per connection (the gateway warns:
            # docs/configuration.md, "File descriptors").
            "limits": {"max_connections": 10500},
            "timeouts": {"keepalive_ms": 300000},
            "journal": {"path": "journal/access.jsonl"},
            "admin": {"address": "127.0.0.1", "port": admin_port, "token_file": "pki/admin.token"},
            "oauth": {"issuer": "https://localhost:%d" % port,
                      "signing_keys": [{"kid": "bench-es256", "file": "pki/token-es256.key", "alg": "ES256",
                                        "active": True}],
                      "token_requests_per_minute": 100000},
        }
        if quota is not None:
            conf["quota"] = quota
        return conf

    def redis_quota(self, **over):
        q = {"store": "redis", "redis": {"nodes": ["127.0.0.1:%d" % self.redis_port]}}
        q.update(over)
        return q

    def start_gateway(self, name, passthrough=False, policies=None, quota=None):
        d = os.path.join(self.tmp, name)
        os.makedirs(os.path.join(d, "journal"))
        os.makedirs(os.path.join(d, "policies"))
        os.symlink(self.pki, os.path.join(d, "pki"))
        for fname, pol in (policies or {}).items():
            with open(os.path.join(d, "policies", fname), "w") as f:
                json.dump(pol, f)
        port, admin_port = free_port(), free_port()
        conf = self.gw_conf(port, admin_port, passthrough=passthrough, quota=quota)
        cpath = os.path.join(d, "gateway.json")
        with open(cpath, "w") as f:
            json.dump(conf, f, indent=2)
        r = subprocess.run([self.gw_bin, "-t", "-c", cpath], cwd=d, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        if r.returncode != 0:
            raise SetupError("%s: opale-gateway -t failed:\n%s" % (name, r.stdout.decode(errors="replace")[-4000:]))
        errp = os.path.join(d, "stderr")
        p = spawn([self.gw_bin, "-c", cpath], cpu=PROXY_CPU, cwd=d, out=os.path.join(d, "stdout"), err=errp)
        deadline = time.monotonic() + START_TIMEOUT
        while not re.search(r"\bready\b", read_text(errp)):
            if p.poll() is not None:
                raise SetupError("%s exited (rc=%s) at start-up:\n%s" % (name, p.returncode, read_text(errp)[-4000:]))
            if time.monotonic() > deadline:
                raise SetupError("%s not ready within %.0f s:\n%s" % (name, START_TIMEOUT, read_text(errp)[-4000:]))
            time.sleep(0.05)
        return Target(name, p, "gateway", port=port, admin_port=admin_port, dir=d,
                      journal_dir=os.path.join(d, "journal"), npolicies=len(policies or {}),
                      passthrough=passthrough)

    def setup(self):
        self.check_binaries()
        log("PKI")
        self.make_pki()
        log("opale-mock, redis-server (CPU %s)" % LOAD_CPU)
        self.start_mock()
        self.start_redis()
        log("nginx (CPU %s)" % PROXY_CPU)
        self.targets["nginx"] = self.start_nginx("nginx")
        need = self.only is None or bool(self.only & {"S1", "S2", "S3", "S4", "S5", "S6"}) or self.args.profile
        if self.want("S1"):
            log("GW-S1 (pass-through)")
            self.targets["gw-s1"] = self.start_gateway("gw-s1", passthrough=True)
        if need:
            log("GW-FULL")
            self.targets["gw-full"] = self.start_gateway(
                "gw-full", policies={"commune-exemple.json": self.commune_policy(HAB_FULL, 1000000)},
                quota=self.redis_quota())
        if self.want("S6"):
            log("GW-10K (writing 10,000 policies)")
            pols = self.fake_policies(9999)
            pols["commune-exemple.json"] = self.commune_policy(HAB_FULL, 1000000)
            t_load = time.monotonic()
            self.targets["gw-10k"] = self.start_gateway("gw-10k", policies=pols, quota=self.redis_quota())
            log("GW-10K ready (%.1f s including `-t`)" % (time.monotonic() - t_load))
        if self.want("S7"):
            for i in (1, 2, 3):
                log("GW-Q%d (S7)" % i)
                self.targets["gw-q%d" % i] = self.start_gateway(
                    "gw-q%d" % i, policies={"commune-exemple.json": self.commune_policy(HAB_S7, QUOTA_S7)},
                    quota=self.redis_quota(window_s=self.s7_window, instances=3))
        self.preflight()

    # -- manual checks before measuring

    def https_retry(self, port, method, target, pki, **kw):
        """https() for the preflight: a request that gets no answer (or a
        broken connection) is noted as an anomaly and tried once more, so
        that one stuck first request does not hide whether the stack serves
        the bench's requests at all."""
        name = {t.port if t.kind != "nginx" else None: t.name for t in self.targets.values()}.get(port)
        if name is None:
            ng = self.targets.get("nginx")
            name = "nginx" if ng is not None and port in (ng.port_tls, ng.port_mtls) else "port %d" % port
        for attempt in (1, 2):
            try:
                return https(port, method, target, pki, timeout=5, **kw)
            except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                msg = ("preflight: %s %s on %s (a fresh connection, sent right after the handshake): %s: %s%s"
                       % (method, target, name, type(e).__name__, e or "no answer within 5 s",
                          "; retried" if attempt == 1 else "; failed twice"))
                self.notes.append(msg)
                log(msg)
                if attempt == 2:
                    raise SetupError(msg)
                time.sleep(0.2)

    def get_token(self, port):
        body = "grant_type=client_credentials&scope=" + "+".join(SCOPES)
        st, data = self.https_retry(port, "POST", "/token", self.pki, body=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                  "X-Correlation-ID": str(uuid.uuid4())})
        if st != 200:
            raise SetupError("POST /token on %d: %d %r" % (port, st, data[:300]))
        return json.loads(data)["access_token"]

    def full_headers(self, token, cid=None):
        return {"Authorization": "Bearer " + token, "X-Correlation-ID": cid or str(uuid.uuid4()),
                "ID_Teleservice": TELESERVICE}

    def preflight(self):
        """One request of each kind, by hand, before any measurement: every
        one must be 200. Decides the S4 path (etatSante only if it passes
        the whole chain, quota included)."""
        log("preflight: a request of each kind by hand")
        problems = []
        for path in PATHS + [ETAT]:
            st, body = plain_get(self.mock_port, path, {"X-Correlation-ID": str(uuid.uuid4())})
            if st != 200:
                problems.append("mock direct %s: %d %r" % (path, st, body[:200]))
        ng = self.targets["nginx"]
        st, body = self.https_retry(ng.port_tls, "GET", ETAT, self.pki, cert=False)
        if st != 200:
            problems.append("nginx TLS %s: %d %r" % (ETAT, st, body[:200]))
        if "gw-s1" in self.targets:
            st, body = self.https_retry(self.targets["gw-s1"].port, "GET", ETAT, self.pki, cert=False)
            if st != 200:
                problems.append("GW-S1 %s: %d %r" % (ETAT, st, body[:200]))
        full = self.targets.get("gw-full")
        if full is not None:
            self.token = self.get_token(full.port)
            for path in PATHS:
                st, body = self.https_retry(ng.port_mtls, "GET", path, self.pki, headers=self.full_headers(self.token))
                if st != 200:
                    problems.append("nginx mTLS %s: %d %r" % (path, st, body[:200]))
            for name in ("gw-full", "gw-10k"):
                t = self.targets.get(name)
                if t is None:
                    continue
                tok = self.get_token(t.port)
                for path in PATHS:
                    st, body = self.https_retry(t.port, "GET", path, self.pki, headers=self.full_headers(tok))
                    if st != 200:
                        problems.append("%s %s: %d %r" % (name, path, st, body[:200]))
            # etatSante: through the whole chain (the journal record has
            # the consumer and a quota decision)?
            cid = str(uuid.uuid4())
            st, body = self.https_retry(full.port, "GET", ETAT, self.pki, headers=self.full_headers(self.token, cid))
            rec = None
            deadline = time.monotonic() + 5
            while rec is None and time.monotonic() < deadline:
                for r in journal_records(full.journal_dir):
                    if r.get("correlation_id") == cid:
                        rec = r
                time.sleep(0.1)
            if st == 200 and rec is not None and "quota" in rec and rec.get("consumer"):
                self.s4_path = ETAT
                self.s4_why = ("`%s` with the token: 200, and its journal record names the consumer and "
                               "carries a quota decision, so it passes the whole chain" % ETAT)
            else:
                self.s4_path = PATHS[0]
                self.s4_why = ("`%s` answered %d and its journal record %s: it does not pass the whole chain "
                               "(the quota stage, or more, is skipped on a public route), so S4 uses `%s`"
                               % (ETAT, st, "has no quota decision" if rec is not None else "was not found",
                                  PATHS[0]))
            log("S4 path: %s" % self.s4_path)
        for i in (1, 2, 3):
            t = self.targets.get("gw-q%d" % i)
            if t is not None:
                tok = self.get_token(t.port)
                st, body = self.https_retry(t.port, "GET", ETAT, self.pki, headers=self.full_headers(tok))
                if st != 200:
                    problems.append("GW-Q%d %s: %d %r" % (i, ETAT, st, body[:200]))
        if problems:
            raise SetupError("preflight failed:\n  " + "\n  ".join(problems))

    # -- loadgen arguments

    def lg_tls(self, cert=True):
        a = ["--cacert", os.path.join(self.pki, "ca.crt")]
        if cert:
            a += ["--cert", os.path.join(self.pki, CLIENT + ".crt"), "--key", os.path.join(self.pki, CLIENT + ".key")]
        return a

    def full_chain_args(self, t, paths=None):
        """The full-chain request to <t>: a gateway fetches its token itself
        (--token-url); nginx gets the same headers, with a token from
        GW-FULL (it ignores them, but the requests are the same bytes)."""
        paths = paths or PATHS
        if t.kind == "nginx":
            a = ["-u", "https://localhost:%d/" % t.port_mtls] + self.lg_tls() + \
                ["-H", "Authorization: Bearer " + self.token]
        else:
            a = ["-u", "https://localhost:%d/" % t.port] + self.lg_tls() + \
                ["--token-url", "https://localhost:%d/token" % t.port, "--token-scope", " ".join(SCOPES)]
        a += ["--correlation-id", "-H", "ID_Teleservice: " + TELESERVICE]
        for p in paths:
            a += ["--path", p]
        return a

    def direct_args(self):
        a = ["--plain", "-u", "http://127.0.0.1:%d/" % self.mock_port, "--correlation-id",
             "-H", "ID_Teleservice: " + TELESERVICE]
        for p in PATHS:
            a += ["--path", p]
        return a

    # -- one measured run

    def run_lg(self, scenario, rnd, role, target, args, duration, allow_4xx=False, keep=True):
        """Run the generator (CPU 1) against <target> and record: its JSON,
        the CPU time of the proxy, the generator, the mock and Redis over the
        generator's lifetime, and the flags (errors, non-2xx, behind
        schedule, saturation)."""
        key = "%s-r%d-%s" % (scenario, rnd, role)
        os.makedirs(self.raw_dir, exist_ok=True)
        lgdir = os.path.join(self.tmp, "loadgen")
        os.makedirs(lgdir, exist_ok=True)
        jpath = os.path.join(self.raw_dir if keep else lgdir, key + ".json")
        if os.path.exists(jpath):
            os.unlink(jpath)
        helpers = [self.mock, self.redis_t]
        c0 = (target.cpu(), [h.cpu() for h in helpers])
        j0 = core_jiffies()
        alive0 = target.alive()
        t0 = time.monotonic()
        p = spawn([self.lg_bin] + args + ["--json", jpath], cpu=LOAD_CPU, out=os.path.join(lgdir, key + ".out"),
                  err=os.path.join(lgdir, key + ".err"))
        ru = wait_exit(p, t0 + duration + 90)
        wall = time.monotonic() - t0
        c1 = (target.cpu(), [h.cpu() for h in helpers])
        j1 = core_jiffies()
        res = None
        try:
            with open(jpath) as f:
                res = json.load(f)
        except (OSError, ValueError):
            pass
        gen_cpu = (ru.ru_utime + ru.ru_stime) if ru is not None else None
        rec = {"key": key, "scenario": scenario, "round": rnd, "role": role, "target": target.name,
               "rc": p.returncode, "wall_s": wall,
               "proxy_cpu_s": c1[0] - c0[0], "gen_cpu_s": gen_cpu,
               "mock_cpu_s": c1[1][0] - c0[1][0], "redis_cpu_s": c1[1][1] - c0[1][1]}
        rec["proxy_cpu_pct"] = 100.0 * rec["proxy_cpu_s"] / wall
        rec["gen_cpu_pct"] = 100.0 * gen_cpu / wall if gen_cpu is not None else None
        rec["mock_cpu_pct"] = 100.0 * rec["mock_cpu_s"] / wall
        rec["redis_cpu_pct"] = 100.0 * rec["redis_cpu_s"] / wall
        rec["core1_pct"] = (rec["gen_cpu_pct"] or 0) + rec["mock_cpu_pct"] + rec["redis_cpu_pct"]
        # How busy each core was, whoever used it: what the bench's own
        # processes did not use went to other work on the machine.
        rec["core0_busy_pct"] = core_pct(j0, j1, "cpu" + PROXY_CPU)
        rec["core1_busy_pct"] = core_pct(j0, j1, "cpu" + LOAD_CPU)
        proxy_on_0 = rec["proxy_cpu_pct"] if target.kind in ("gateway", "nginx") else 0.0
        rec["core0_other_pct"] = max(0.0, rec["core0_busy_pct"] - proxy_on_0) \
            if rec["core0_busy_pct"] is not None else None
        errors, notes = [], []
        if res is None:
            errors.append("no JSON from the generator (rc %s): %s" % (
                p.returncode, read_text(os.path.join(lgdir, key + ".err"))[-300:].strip()))
        else:
            lat = res["latency_us"]
            resp = res["responses"]
            rec.update({
                "throughput_rps": res["throughput_rps"], "handshake_rate": res["connections"]["handshake_rate"],
                "p50": lat["p50"], "p90": lat["p90"], "p99": lat["p99"], "p99_9": lat["p99_9"], "max": lat["max"],
                "completed": res["requests"]["completed"], "missed": res["requests"]["missed"],
                "responses": resp, "errors": res["errors"], "elapsed_s": res["elapsed_s"],
                "percentiles": lat.get("percentiles", []),
            })
            rec["req_per_proxy_cpu_s"] = (rec["completed"] / rec["proxy_cpu_s"]) if rec["proxy_cpu_s"] > 0 else None
            if res["errors"]["total"]:
                e = res["errors"]
                errors.append("errors %d (%s)" % (e["total"], ", ".join("%s %d" % (k, v) for k, v in e.items()
                                                                         if k != "total" and v)))
            bad = resp["3xx"] + resp["5xx"] + (0 if allow_4xx else resp["4xx"])
            if bad:
                errors.append("non-2xx responses: %d (3xx %d, 4xx %d, 5xx %d)" % (bad, resp["3xx"], resp["4xx"],
                                                                                   resp["5xx"]))
            if rec["completed"] == 0:
                errors.append("no response")
            if rec["missed"]:
                errors.append("open loop behind schedule: %d requests due but never started" % rec["missed"])
        if p.returncode not in (0, None):
            errors.append("generator exit status %s" % p.returncode)
        if alive0 and not target.alive():
            errors.append("%s EXITED during the run (rc %s)" % (target.name, target.proc.returncode))
            self.notes.append("%s exited during %s" % (target.name, key))
        if rec["gen_cpu_pct"] is not None and rec["gen_cpu_pct"] >= SAT_PCT:
            notes.append("generator CPU saturated (%.0f%%)" % rec["gen_cpu_pct"])
        elif rec["core1_pct"] >= SAT_PCT:
            notes.append("core 1 saturated (generator + mock + redis %.0f%%)" % rec["core1_pct"])
        if rec["core0_other_pct"] is not None and rec["core0_other_pct"] >= 15:
            notes.append("core 0 shared: other processes used %.0f%% of it" % rec["core0_other_pct"])
        rec["flag_errors"] = errors
        rec["flag_notes"] = notes
        if errors:
            log("  %s: FLAGGED: %s" % (key, "; ".join(errors)))
        tp = rec.get("throughput_rps")
        log("  %-22s %9s req/s  p99 %-9s proxy CPU %3.0f%%  gen CPU %3.0f%%%s" % (
            key, fmt(tp), fmt_us(rec.get("p99")), rec["proxy_cpu_pct"], rec["gen_cpu_pct"] or 0,
            ("  [" + "; ".join(errors + notes) + "]") if errors or notes else ""))
        time.sleep(0.3)  # let the journal writer / access log settle between runs
        return rec

    # -- scenarios

    def pair_args(self, scenario, role):
        d = "%g" % self.duration
        t = self.targets
        if scenario == "S1":
            tgt = t["gw-s1"] if role == "gw" else t["nginx"]
            port = tgt.port if role == "gw" else tgt.port_tls
            return tgt, ["-u", "https://localhost:%d%s" % (port, ETAT)] + self.lg_tls(cert=False) + \
                ["-c", "64", "-t", "1", "-d", d]
        if scenario == "S2":
            tgt = t["gw-full"] if role == "gw" else t["nginx"]
            return tgt, self.full_chain_args(tgt) + ["-c", "64", "-t", "1", "-d", d]
        if scenario == "S4":
            tgt = t["gw-full"] if role == "gw" else t["nginx"]
            return tgt, self.full_chain_args(tgt, [self.s4_path]) + ["--new-conn", "-c", "16", "-t", "1", "-d", d]
        if scenario == "S6":
            tgt = t["gw-full"] if role == "gw1" else t["gw-10k"]
            return tgt, self.full_chain_args(tgt) + ["-c", "64", "-t", "1", "-d", d]
        raise ValueError(scenario)

    PAIRS = {
        "S1": ("gw", "nginx"),
        "S2": ("gw", "nginx"),
        "S4": ("gw", "nginx"),
        "S6": ("gw1", "gw10k"),
    }

    def phase_pairs(self):
        scen = [s for s in ("S1", "S2", "S4", "S6") if self.want(s)]
        if not scen:
            return
        for s in scen:
            self.runs.setdefault(s, [])
        for r in range(1, self.rounds + 1):
            for s in scen:
                if s in self.failures:
                    continue
                a, b = self.PAIRS[s]
                order = (a, b) if r % 2 == 1 else (b, a)
                log("%s round %d/%d: %s then %s" % (s, r, self.rounds, order[0], order[1]))
                try:
                    for role in order:
                        tgt, args = self.pair_args(s, role)
                        self.runs[s].append(self.run_lg(s, r, role, tgt, args, self.duration))
                except Exception as e:
                    self.fail(s, e)

    def fail(self, s, e):
        self.failures[s] = "%s: %s" % (type(e).__name__, e)
        log("%s FAILED: %s\n%s" % (s, e, traceback.format_exc()))

    def phase_s3(self):
        self.runs["S3"] = []
        ng_s2 = [x.get("throughput_rps") for x in self.runs.get("S2", []) if x["role"] == "nginx"]
        if ng_s2 and med(ng_s2):
            base = med(ng_s2)
            self.s3_rate_src = "median nginx S2 throughput of this run (%s req/s)" % fmt(base)
        else:
            log("S3: no S2 in this run: calibrating on nginx mTLS (S2 load, %g s)" % self.duration)
            ng = self.targets["nginx"]
            cal = self.run_lg("S3cal", 0, "nginx", ng, self.full_chain_args(ng) + ["-c", "64", "-t", "1", "-d",
                                                                                  "%g" % self.duration],
                              self.duration)
            base = cal.get("throughput_rps") or 0
            self.s3_rate_src = "an nginx S2 calibration run made for S3 (%s req/s)" % fmt(base)
        if not base:
            raise RuntimeError("no nginx S2 throughput to set the S3 rate")
        self.s3_rate = round(base * 0.5)
        log("S3 rate: %d req/s" % self.s3_rate)
        roles = ["gw", "nginx", "direct"]
        for r in range(1, self.rounds + 1):
            k = (r - 1) % 3
            order = roles[k:] + roles[:k]
            log("S3 round %d/%d: %s" % (r, self.rounds, " ".join(order)))
            for role in order:
                common = ["-c", "64", "-t", "1", "-d", "%g" % self.s3_duration, "--rate", str(self.s3_rate)]
                if role == "direct":
                    self.runs["S3"].append(self.run_lg("S3", r, role, self.mock, self.direct_args() + common,
                                                       self.s3_duration))
                else:
                    tgt = self.targets["gw-full"] if role == "gw" else self.targets["nginx"]
                    self.runs["S3"].append(self.run_lg("S3", r, role, tgt, self.full_chain_args(tgt) + common,
                                                       self.s3_duration))

    def rss_samples(self, t, n=3, gap=0.4):
        out = []
        for i in range(n):
            out.append(t.rss())
            if i + 1 < n:
                time.sleep(gap)
        return statistics.median(out)

    def phase_s5(self):
        """Fresh proxies each round (a process that has already held 10,000
        connections keeps much of that memory in its allocator, which would
        hide the cost the second time), warmed with 1 s of S2 load, then
        RSS before, and while the generator holds the connections idle."""
        for r in range(1, self.s5_rounds + 1):
            order = ("gw", "nginx") if r % 2 == 1 else ("nginx", "gw")
            for role in order:
                log("S5 round %d/%d: %s, %d connections" % (r, self.s5_rounds, role, self.s5_conns))
                name = "s5-%s-r%d" % (role, r)
                if role == "gw":
                    t = self.start_gateway(name, policies={"commune-exemple.json": self.commune_policy(HAB_FULL,
                                                                                                  1000000)},
                                           quota=self.redis_quota())
                else:
                    t = self.start_nginx(name)
                try:
                    self.s5.append(self.s5_one(r, role, t))
                finally:
                    stop(t.proc, sig=signal.SIGTERM)

    def s5_one(self, r, role, t):
        warm = self.run_lg("S5warm", r, role, t, self.full_chain_args(t) + ["-c", "64", "-t", "1", "-d", "1"], 1,
                           keep=False)
        time.sleep(1.0)
        before = self.rss_samples(t)
        key = "S5-r%d-%s" % (r, role)
        jpath = os.path.join(self.raw_dir, key + ".json")
        errp = os.path.join(self.tmp, "loadgen", key + ".err")
        setup_timeout = 120 if self.s5_conns > 5000 else 60
        args = self.full_chain_args(t) + ["-c", str(self.s5_conns), "-t", "4", "--hold", "%g" % self.s5_hold,
                                          "--timeout", str(setup_timeout), "--json", jpath]
        t0 = time.monotonic()
        p = spawn([self.lg_bin] + args, cpu=LOAD_CPU, out=os.path.join(self.tmp, "loadgen", key + ".out"), err=errp)
        deadline = t0 + setup_timeout + 30
        m = None
        while m is None:
            m = re.search(r"holding (\d+) connections", read_text(errp))
            if m is None:
                if reap(p) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        during = peak = None
        if m is not None:
            time.sleep(min(2.0, self.s5_hold / 3))
            during = self.rss_samples(t)
            peak = t.rss()
        ru = wait_exit(p, time.monotonic() + self.s5_hold + 60)
        time.sleep(0.5)
        after = t.rss()
        res = None
        try:
            with open(jpath) as f:
                res = json.load(f)
        except (OSError, ValueError):
            pass
        errors = []
        held = res["hold"]["held"] if res and "hold" in res else (int(m.group(1)) if m else 0)
        if m is None:
            errors.append("the generator never reached its hold phase: %s" % read_text(errp)[-300:].strip())
        if res is None:
            errors.append("no JSON from the generator (rc %s)" % p.returncode)
        else:
            if res["errors"]["total"]:
                errors.append("errors %d (%s)" % (res["errors"]["total"], ", ".join(
                    "%s %d" % (k, v) for k, v in res["errors"].items() if k != "total" and v)))
            nb = res["responses"]["3xx"] + res["responses"]["4xx"] + res["responses"]["5xx"]
            if nb:
                errors.append("non-2xx responses: %d" % nb)
            if held != self.s5_conns:
                errors.append("held %d of %d connections" % (held, self.s5_conns))
            if res["hold"]["closed_during_hold"]:
                errors.append("%d connections closed by the server during the hold" % res["hold"]["closed_during_hold"])
        if not t.alive():
            errors.append("%s EXITED (rc %s)" % (t.name, t.proc.returncode))
            self.notes.append("%s exited during S5" % t.name)
        per = (during - before) / held if (during is not None and held) else None
        rec = {"round": r, "role": role, "target": t.name, "conns": self.s5_conns, "held": held,
               "rss_before_kb": before, "rss_with_kb": during, "rss_peak_kb": peak, "rss_after_kb": after,
               "per_conn_kb": per, "setup_s": res["hold"]["setup_s"] if res and "hold" in res else None,
               "gen_cpu_s": (ru.ru_utime + ru.ru_stime) if ru else None,
               "warm_flags": warm["flag_errors"], "flag_errors": errors}
        log("  %s: RSS %s -> %s KiB, %.2f KiB/conn%s" % (key, fmt(before), fmt(during), per or 0,
                                                         ("  [" + "; ".join(errors) + "]") if errors else ""))
        return rec

    def phase_s7(self):
        W, D = self.s7_window, self.s7_duration
        qs = [self.targets["gw-q%d" % i] for i in (1, 2, 3)]
        key = "opale:q:{%s}" % HAB_S7
        self.redis.cmd("DEL", key)
        # the preflight's etatSante calls went through the quota stage
        for t in qs:
            t.s7_start = len(journal_records(t.journal_dir))
        log("S7: 3 gateways x %g req/s open loop, %g s, window %d s, limit %d" % (self.s7_rate, D, W, QUOTA_S7))
        procs = []
        lgdir = os.path.join(self.tmp, "loadgen")
        os.makedirs(lgdir, exist_ok=True)
        for i, t in enumerate(qs, 1):
            jpath = os.path.join(self.raw_dir, "S7-gw-q%d.json" % i)
            args = self.full_chain_args(t) + ["-c", "4", "-t", "1", "-d", "%g" % D, "--rate", "%g" % self.s7_rate,
                                              "--json", jpath]
            p = spawn([self.lg_bin] + args, cpu=LOAD_CPU, out=os.path.join(lgdir, "S7-%d.out" % i),
                      err=os.path.join(lgdir, "S7-%d.err" % i))
            procs.append((t, p, jpath))
        # Redis's own admission times: the window holds every admission of
        # the last W seconds, so polling it twice a second sees them all.
        admitted = {}
        deadline = time.monotonic() + D + 90
        polls = 0
        while True:
            done = all(reap(p) for _, p, _ in procs)
            try:
                z = self.redis.cmd("ZRANGE", key, 0, -1, "WITHSCORES") or []
                for m, s in zip(z[0::2], z[1::2]):
                    admitted[m.decode()] = int(float(s))
                polls += 1
            except (OSError, RuntimeError) as e:
                self.redis.close()
                self.notes.append("S7: a Redis poll failed: %s" % e)
            if done:
                break
            if time.monotonic() > deadline:
                for _, p, _ in procs:
                    stop(p)
                break
            time.sleep(0.5)
        time.sleep(1.5)  # the journals' writer threads
        per_gw = []
        allow_ts, allow_ids, deny_quota, other = [], set(), 0, []
        lag = []
        for i, (t, p, jpath) in enumerate(procs, 1):
            res = None
            try:
                with open(jpath) as f:
                    res = json.load(f)
            except (OSError, ValueError):
                pass
            recs = [x for x in journal_records(t.journal_dir)[t.s7_start:]
                    if str(x.get("path", "")).startswith("/opale/v1/entreprises/")]
            a, dq, o = [], [], []
            for x in recs:
                if x.get("decision") == "allow" and x.get("status") == 200:
                    a.append(x)
                elif x.get("status") == 429 and str(x.get("reason", "")).startswith("quota"):
                    dq.append(x)
                else:
                    o.append(x)
            for x in a:
                ms = ts_ms(x["ts"])
                allow_ts.append(ms)
                allow_ids.add(x.get("request_id"))
                if x.get("request_id") in admitted:
                    lag.append(ms - admitted[x["request_id"]])
            deny_quota += len(dq)
            other += o
            gen_err = []
            if res is None:
                gen_err.append("no JSON (rc %s)" % p.returncode)
            else:
                if res["errors"]["total"]:
                    gen_err.append("errors %d" % res["errors"]["total"])
                r5 = res["responses"]["3xx"] + res["responses"]["5xx"]
                if r5:
                    gen_err.append("3xx/5xx responses: %d" % r5)
                if res["requests"]["missed"]:
                    gen_err.append("behind schedule: %d missed" % res["requests"]["missed"])
            per_gw.append({"gateway": t.name, "requests": len(recs), "admitted": len(a), "refused_quota": len(dq),
                           "other": len(o), "generator": {
                               "completed": res["requests"]["completed"] if res else None,
                               "responses": res["responses"] if res else None,
                               "errors": res["errors"]["total"] if res else None},
                           "flag_errors": gen_err})
        rtimes = sorted(admitted.values())
        members = set(m.split("#")[0] for m in admitted)
        res = {
            "window_s": W, "duration_s": D, "limit": QUOTA_S7, "rate_per_gateway": self.s7_rate, "polls": polls,
            "per_gateway": per_gw,
            "admitted_journal": len(allow_ts), "admitted_redis": len(admitted),
            "refused_quota": deny_quota, "other": len(other),
            "other_examples": [{k: x.get(k) for k in ("decision", "reason", "status", "code")} for x in other[:5]],
            "max_window_redis": max_in_window(rtimes, W * 1000) if rtimes else None,
            "max_window_journal": max_in_window(allow_ts, W * 1000) if allow_ts else None,
            "min_span_redis_ms": min_span(rtimes, QUOTA_S7),
            "min_span_journal_ms": min_span(allow_ts, QUOTA_S7),
            "journal_not_in_redis": len([i for i in allow_ids if i not in members]),
            "redis_not_in_journal": len([m for m in members if m not in allow_ids]),
            "lag_ms_median": med(lag), "lag_ms_max": mx(lag),
            "span_s": ((rtimes[-1] - rtimes[0]) / 1000.0) if rtimes else None,
        }
        # the most a sliding window can admit over the span of the admissions
        if rtimes:
            res["ceiling"] = QUOTA_S7 * (int((rtimes[-1] - rtimes[0]) // (W * 1000)) + 1)
        res["met"] = res["max_window_redis"] == QUOTA_S7
        self.s7 = res
        with open(os.path.join(self.raw_dir, "S7-analysis.json"), "w") as f:
            json.dump(dict(res, admissions_redis_ms=rtimes, admissions_journal_ms=sorted(allow_ts)), f)
        log("S7: admitted %d (Redis) / %d (journals), max in any %d s window: %s (Redis), %s (journals)" % (
            len(admitted), len(allow_ts), W, res["max_window_redis"], res["max_window_journal"]))

    def phase_profile(self):
        if not shutil.which("perf"):
            self.failures["profile"] = "perf not installed"
            return
        t = self.targets["gw-full"]
        D = 10.0
        data = os.path.join(self.tmp, "perf.data")
        perr = os.path.join(self.tmp, "perf.err")
        log("profile: perf record of GW-FULL (pid %d) under S2 load, %g s" % (t.proc.pid, D))
        pp = spawn(["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-p", t.proc.pid, "-o", data,
                    "--", "sleep", "%g" % (D + 2)], cpu=LOAD_CPU, out=os.path.join(self.tmp, "perf.out"), err=perr)
        time.sleep(1.0)
        self.profile_run = self.run_lg("profile", 1, "gw", t, self.full_chain_args(t) +
                                       ["-c", "64", "-t", "1", "-d", "%g" % D], D)
        wait_exit(pp, time.monotonic() + 60)
        if not os.path.exists(data):
            self.failures["profile"] = "perf record failed: " + read_text(perr)[-500:]
            return
        r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol",
                            "-g", "none"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=300)
        lines = [re.sub(r"(\s+-)+\s*$", "", ln.rstrip()) for ln in r.stdout.decode(errors="replace").splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        self.profile_lines = lines[:30]
        self.profile_samples = re.findall(r"# Samples: (\S+)", r.stdout.decode(errors="replace"))
        # The same samples by library: Debian's libcrypto has no symbols, so
        # its share (the assertion signature, TLS records, hashes) is spread
        # over anonymous addresses above and only readable per library.
        r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso",
                            "-g", "none"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=300)
        lines = [re.sub(r"(\s+-)+\s*$", "", ln.rstrip()) for ln in r.stdout.decode(errors="replace").splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        self.profile_dso_lines = lines[:12]

    # -- the whole run

    def run(self):
        self.setup()
        os.makedirs(self.raw_dir, exist_ok=True)
        self.phase_pairs()
        for s, fn in (("S3", self.phase_s3), ("S5", self.phase_s5), ("S7", self.phase_s7)):
            if self.want(s):
                try:
                    fn()
                except Exception as e:
                    self.fail(s, e)
        if self.args.profile:
            try:
                self.phase_profile()
            except Exception as e:
                self.fail("profile", e)
        for name, t in self.targets.items():
            if not t.alive():
                self.notes.append("%s is not running at the end (rc %s); stderr tail: %s" % (
                    name, t.proc.returncode, read_text(os.path.join(t.dir, "stderr"))[-500:]))
            elif t.kind == "gateway":
                errs = [ln for ln in read_text(os.path.join(t.dir, "stderr")).splitlines()
                        if re.search(r"error|fail|drop|assert|abort", ln, re.I)]
                if errs:
                    self.notes.append("%s stderr: %d line(s) mentioning error/fail/drop, e.g. `%s`" % (
                        name, len(errs), errs[0][:200]))
        ng = self.targets.get("nginx")
        if ng is not None:
            el = [ln for ln in read_text(os.path.join(ng.dir, "error.log")).splitlines()
                  if "[error]" in ln or "[crit]" in ln or "[alert]" in ln or "[emerg]" in ln]
            if el:
                self.notes.append("nginx error.log: %d error line(s), e.g. `%s`" % (len(el), el[0][:200]))
        self.load_after = os.getloadavg()
        self.ended_wall = datetime.datetime.now(datetime.timezone.utc)
        self.report()

    # ----------------------------------------------------------------------
    # analysis and report

    def pair_summary(self, s, metric):
        runs = self.runs.get(s, [])
        a_role, b_role = self.PAIRS[s]
        by = {}
        for x in runs:
            by.setdefault(x["round"], {})[x["role"]] = x
        A = [x.get(metric) for x in runs if x["role"] == a_role]
        B = [x.get(metric) for x in runs if x["role"] == b_role]
        ratios = []
        for rd in sorted(by):
            pa, pb = by[rd].get(a_role), by[rd].get(b_role)
            if pa and pb and pa.get(metric) and pb.get(metric):
                if s == "S6":
                    ratios.append(pb[metric] / pa[metric])
                else:
                    ratios.append(pa[metric] / pb[metric])
        flagged = sum(1 for x in runs if x["flag_errors"])
        return {"a": A, "b": B, "ratios": ratios, "flagged": flagged, "runs": len(runs),
                "others0": med([x.get("core0_other_pct") for x in runs])}

    def summary_rows(self):
        rows = []

        def row(s, what, a_label, a, b_label, b, ratio_label, ratios, target, met, flagged, nd=0, unit=""):
            rows.append({"scenario": s, "what": what, "a_label": a_label, "a_med": med(a), "a_min": mn(a),
                         "a_max": mx(a), "b_label": b_label, "b_med": med(b), "b_min": mn(b), "b_max": mx(b),
                         "ratio_label": ratio_label, "ratio_med": med(ratios), "ratio_min": mn(ratios),
                         "ratio_max": mx(ratios), "target": target, "met": met, "flagged": flagged, "nd": nd,
                         "unit": unit})

        titles = {"S1": "pass-through, TLS, keep-alive, 64 conns", "S2": "full chain, mTLS, keep-alive, 64 conns",
                  "S4": "new mTLS connection per request, 16 conns", "S6": "policy count, S2 load"}
        for s in ("S1", "S2", "S4", "S6"):
            if s not in self.runs or not self.runs[s]:
                continue
            metric = "handshake_rate" if s == "S4" else "throughput_rps"
            ps = self.pair_summary(s, metric)
            eff = self.pair_summary(s, "req_per_proxy_cpu_s")
            fl = "%d of %d runs flagged" % (ps["flagged"], ps["runs"]) if ps["flagged"] else ""
            if ps["others0"] is not None:
                fl = (fl + "; " if fl else "") + "others on core 0: %.0f%% (median)" % ps["others0"]
            if s == "S6":
                r = med(ps["ratios"])
                met = None if r is None else ("met" if r >= 0.98 else "NOT met (%.3f, %.1f%% short)" % (
                    r, 100 * (0.98 - r) / 0.98))
                row(s, titles[s] + ": req/s", "GW-FULL (1 policy)", ps["a"], "GW-10K", ps["b"], "10k / 1",
                    ps["ratios"], "≥ 0.98", met, fl)
                row(s, "requests per proxy CPU-second", "GW-FULL", eff["a"], "GW-10K", eff["b"], "10k / 1",
                    eff["ratios"], "", None, fl)
            else:
                unit = "handshakes/s" if s == "S4" else "req/s"
                row(s, titles[s] + ": " + unit, "gateway", ps["a"], "nginx", ps["b"], "gw / nginx", ps["ratios"],
                    "— (reported)", None, fl)
                row(s, "requests per proxy CPU-second", "gateway", eff["a"], "nginx", eff["b"], "gw / nginx",
                    eff["ratios"], "", None, fl)
        if self.runs.get("S3"):
            runs = self.runs["S3"]
            by = {}
            for x in runs:
                by.setdefault(x["round"], {})[x["role"]] = x
            add_gw, add_ng = [], []
            for rd in sorted(by):
                d = by[rd].get("direct")
                if d and d.get("p99") is not None:
                    if by[rd].get("gw") and by[rd]["gw"].get("p99") is not None:
                        add_gw.append(by[rd]["gw"]["p99"] - d["p99"])
                    if by[rd].get("nginx") and by[rd]["nginx"].get("p99") is not None:
                        add_ng.append(by[rd]["nginx"]["p99"] - d["p99"])
            self.s3_added = (add_gw, add_ng)
            m = med(add_gw)
            met = None if m is None else ("met" if m <= 1000 else "NOT met (+%s over)" % fmt_us(m - 1000))
            fl = sum(1 for x in runs if x["flag_errors"])
            fl = "%d of %d runs flagged" % (fl, len(runs)) if fl else ""
            o0 = med([x.get("core0_other_pct") for x in runs if x["role"] != "direct"])
            if o0 is not None:
                fl = (fl + "; " if fl else "") + "others on core 0: %.0f%% (median)" % o0
            row("S3", "open loop at %s req/s: added p99 vs direct (µs)" % fmt(self.s3_rate), "gateway", add_gw,
                "nginx", add_ng, "", [], "gateway ≤ 1 ms", met, fl)
        if self.s5:
            g = [x["per_conn_kb"] for x in self.s5 if x["role"] == "gw"]
            n = [x["per_conn_kb"] for x in self.s5 if x["role"] == "nginx"]
            by = {}
            for x in self.s5:
                by.setdefault(x["round"], {})[x["role"]] = x
            ratios = [by[r]["gw"]["per_conn_kb"] / by[r]["nginx"]["per_conn_kb"] for r in sorted(by)
                      if "gw" in by[r] and "nginx" in by[r] and by[r]["gw"]["per_conn_kb"] is not None
                      and by[r]["nginx"]["per_conn_kb"]]
            r = med(ratios)
            met = None if r is None else ("met" if r <= 1.0 else "NOT met (%.2f×, %.0f%% over)" % (r, 100 * (r - 1)))
            fl = sum(1 for x in self.s5 if x["flag_errors"])
            row("S5", "RSS per idle mTLS connection (KiB), %s conns" % fmt(self.s5_conns), "gateway", g, "nginx", n,
                "gw / nginx", ratios, "≤ 1.0", met, "%d of %d runs" % (fl, len(self.s5)) if fl else "", nd=2)
        if self.s7:
            s7 = self.s7
            met = "met" if s7["met"] else "NOT met (max %s, expected %d)" % (s7["max_window_redis"], QUOTA_S7)
            fl = sum(1 for x in s7["per_gateway"] if x["flag_errors"]) + (1 if s7["other"] else 0)
            row("S7", "quota: max admissions in any rolling %d s window (Redis admission times)" % s7["window_s"],
                "3 gateways", [s7["max_window_redis"]], "expected", [QUOTA_S7], "", [], "= 50 exactly", met,
                "%d flags" % fl if fl else "")
        return rows

    def summary_table(self, rows):
        out = ["| scenario | figure | A: median (min–max) | B: median (min–max) | ratio: median of pairs (min–max) "
               "| target | verdict | flags, noise |", "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            nd = r["nd"]
            a = "%s: **%s** (%s)" % (r["a_label"], fmt(r["a_med"], nd), rng_txt([r["a_min"], r["a_max"]], nd)) \
                if r["a_med"] is not None else "—"
            b = "%s: **%s** (%s)" % (r["b_label"], fmt(r["b_med"], nd), rng_txt([r["b_min"], r["b_max"]], nd)) \
                if r["b_med"] is not None else "—"
            if r["ratio_med"] is not None:
                ratio = "%s: **%.3f** (%.3f–%.3f)" % (r["ratio_label"], r["ratio_med"], r["ratio_min"], r["ratio_max"])
            else:
                ratio = "—"
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["scenario"], r["what"], a, b, ratio, r["target"] or "", r["met"] or "", r["flagged"] or ""))
        return out

    def detail_table(self, s, roles, metric_label="req/s", metric="throughput_rps"):
        out = ["| round | target | %s | p50 | p99 | proxy CPU %% | req / proxy CPU-s | generator CPU %% "
               "| core 1 %% (gen+mock+redis) | core 0 %% used by others | non-2xx | errors | flags |" % metric_label,
               "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for x in sorted(self.runs.get(s, []), key=lambda x: (x["round"], self.runs[s].index(x))):
            resp = x.get("responses") or {}
            nb = resp.get("3xx", 0) + resp.get("4xx", 0) + resp.get("5xx", 0) if resp else "—"
            err = x.get("errors", {}).get("total", "—") if x.get("errors") else "—"
            flags = "; ".join(["**%s**" % e for e in x["flag_errors"]] + x["flag_notes"])
            out.append("| %d | %s | %s | %s | %s | %.0f | %s | %s | %.0f | %s | %s | %s | %s |" % (
                x["round"], roles.get(x["role"], x["role"]), fmt(x.get(metric)), fmt_us(x.get("p50")),
                fmt_us(x.get("p99")), x["proxy_cpu_pct"], fmt(x.get("req_per_proxy_cpu_s")),
                fmt(x.get("gen_cpu_pct")) if x.get("gen_cpu_pct") is not None else "—", x["core1_pct"],
                fmt(x.get("core0_other_pct")), nb, err, flags))
        return out

    def machine(self):
        def cmd(argv):
            try:
                r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=30)
                return r.stdout.decode(errors="replace").strip().splitlines()[0]
            except (OSError, subprocess.SubprocessError, IndexError):
                return "?"
        model = "?"
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        mem = "?"
        try:
            with open("/proc/meminfo") as f:
                mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1048576)
        except (OSError, ValueError, IndexError):
            pass
        git = cmd(["git", "-C", SRCDIR, "rev-parse", "--short", "HEAD"])
        dirty = subprocess.run(["git", "-C", SRCDIR, "status", "--porcelain", "--untracked-files=no"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode().strip()
        return {
            "hostname": socket.gethostname(), "nproc": os.cpu_count(), "cpu_model": model, "memory": mem,
            "kernel": os.uname().release, "os": cmd(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
            "nginx": cmd([self.nginx_bin, "-v"]), "openssl": cmd(["openssl", "version"]),
            "redis": cmd(["redis-server", "--version"]), "gateway": cmd([self.gw_bin, "-v"]),
            "loadgen": cmd([self.lg_bin, "-V"]), "gnuplot": cmd(["gnuplot", "--version"]),
            "git": git + (" (with uncommitted changes)" if dirty else ""),
            "load_before": self.load_before, "load_after": self.load_after,
        }

    # -- plots

    def plots(self, stem_path):
        made = {}
        if not shutil.which("gnuplot"):
            self.notes.append("gnuplot not installed: no plots")
            return made
        term = "pngcairo size %d,%d font 'Sans,10'"
        if subprocess.run(["gnuplot", "-e", "set terminal pngcairo"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            term = "png size %d,%d"
        pdir = os.path.join(self.tmp, "plots")
        os.makedirs(pdir, exist_ok=True)
        # (1) throughput
        panels = []
        for s, title, ylabel, la, lb in (
                ("S1", "S1 pass-through (TLS)", "requests/s", "opale-gateway", "nginx"),
                ("S2", "S2 full chain (mTLS)", "requests/s", "opale-gateway", "nginx"),
                ("S4", "S4 new mTLS connection per request", "handshakes/s", "opale-gateway", "nginx"),
                ("S6", "S6 policy count (S2 load)", "requests/s", "1 policy", "10,000 policies")):
            if not self.runs.get(s):
                continue
            ps = self.pair_summary(s, "handshake_rate" if s == "S4" else "throughput_rps")
            if med(ps["a"]) is None or med(ps["b"]) is None:
                continue
            panels.append((s, title, ylabel, la, lb, ps))
        if panels:
            dat = os.path.join(pdir, "throughput.dat")
            with open(dat, "w") as f:
                for s, title, ylabel, la, lb, ps in panels:
                    f.write('"%s" %f %f %f %f %f %f\n\n\n' % (
                        s, med(ps["a"]), mn(ps["a"]), mx(ps["a"]), med(ps["b"]), mn(ps["b"]), mx(ps["b"])))
            png = stem_path + "-throughput.png"
            gp = ["set terminal " + term % (max(820, 360 * len(panels) + 100), 540), "set output '%s'" % png,
                  "set multiplot layout 1,%d title 'Throughput, proxy on 1 core: medians over %d rounds, "
                  "bars = min-max'" % (len(panels), self.rounds),
                  "set style data histogram", "set style histogram errorbars gap 1 lw 1.5",
                  "set style fill solid 0.85 border -1", "set boxwidth 0.9", "set yrange [0:*]", "set grid ytics",
                  "set key top left Left reverse samplen 2", "set offsets 0,0,graph 0.25,0", "set format y '%.0f'"]
            for i, (s, title, ylabel, la, lb, ps) in enumerate(panels):
                gp += ["set title '%s'" % title, "set ylabel '%s'" % ylabel,
                       "plot '%s' index %d using 2:3:4:xtic(1) title '%s' lc rgb '#1f77b4', "
                       "'' index %d using 5:6:7 title '%s' lc rgb '#ff7f0e'" % (dat, i, la, i, lb)]
            gp.append("unset multiplot")
            if self.gnuplot(gp, os.path.join(pdir, "throughput.gp")):
                made["throughput"] = png
        # (2) latency curves from S3: pointwise median over rounds
        if self.runs.get("S3"):
            series = []
            for role, label in (("gw", "opale-gateway (GW-FULL)"), ("nginx", "nginx (mTLS)"),
                                ("direct", "mock directly")):
                curves = [x.get("percentiles") for x in self.runs["S3"] if x["role"] == role and x.get("percentiles")]
                if not curves:
                    continue
                pts = []
                for i, (p, _) in enumerate(curves[0]):
                    if p >= 100:
                        continue
                    vals = [c[i][1] for c in curves if len(c) > i]
                    pts.append((1.0 / (1.0 - p / 100.0), statistics.median(vals)))
                series.append((label, pts))
            if series:
                dat = os.path.join(pdir, "latency.dat")
                with open(dat, "w") as f:
                    for label, pts in series:
                        for x, y in pts:
                            f.write("%g %g\n" % (x, y))
                        f.write("\n\n")
                png = stem_path + "-latency.png"
                gp = ["set terminal " + term % (1000, 600), "set output '%s'" % png,
                      "set title 'S3 open loop at %s req/s, 64 connections: latency by percentile (median of %d "
                      "rounds), from the scheduled time'" % (fmt(self.s3_rate), self.rounds),
                      "set logscale x", "set logscale y", "set grid xtics ytics mytics",
                      "set xlabel 'percentile'", "set ylabel 'latency (µs)'",
                      # tic labels are formats for gnuplot: %% is a percent sign
                      "set xtics ('0%%' 1, '50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, "
                      "'99.999%%' 100000, '99.9999%%' 1000000)",
                      "set xrange [1:3e6]", "set key top left"]
                plots = []
                colors = ["#1f77b4", "#ff7f0e", "#2ca02c"]
                for i, (label, _) in enumerate(series):
                    plots.append("'%s' index %d using 1:2 with linespoints pt 7 ps 0.6 lw 2 lc rgb '%s' title '%s'"
                                 % (dat, i, colors[i], label))
                gp.append("plot " + ", ".join(plots))
                if self.gnuplot(gp, os.path.join(pdir, "latency.gp")):
                    made["latency"] = png
        return made

    def gnuplot(self, lines, path):
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = subprocess.run(["gnuplot", path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            self.notes.append("gnuplot %s failed: %s" % (os.path.basename(path), r.stdout.decode(errors="replace")[-300:]))
            return False
        return True

    # -- the report

    def report(self):
        os.makedirs(self.out_dir, exist_ok=True)
        os.makedirs(self.raw_dir, exist_ok=True)
        stem_path = os.path.join(self.out_dir, self.stem)
        mach = self.machine()
        rows = self.summary_rows()
        pngs = self.plots(stem_path)
        elapsed = time.monotonic() - T0
        mode = "quick" if self.quick else "full"
        L = []
        L.append("# opale-gateway bench, %s (%s run)" % (self.started_wall.strftime("%Y-%m-%d"), mode))
        L.append("")
        L.append("Generated by `bench/bench.py %s`. Started %s UTC, ended %s UTC: **%.1f min** "
                 "end to end (setup, every scenario, report)." % (
                     " ".join(a if re.fullmatch(r"[\w./,=:-]+", a) else "'%s'" % a for a in sys.argv[1:]),
                     self.started_wall.strftime("%H:%M:%S"), self.ended_wall.strftime("%H:%M:%S"), elapsed / 60))
        L.append("Rounds: %d (S1–S4, S6), %g s per measured run; S5: %d round(s) of %s connections; S7: %g s, "
                 "window %d s.%s" % (self.rounds, self.duration, self.s5_rounds, fmt(self.s5_conns),
                                     self.s7_duration, self.s7_window,
                                     " Only: %s." % ", ".join(sorted(self.only)) if self.only else ""))
        src = None
        try:
            with open(os.path.join(self.build, "CMakeCache.txt")) as f:
                m = re.search(r"^CMAKE_HOME_DIRECTORY:INTERNAL=(.*)$", f.read(), re.M)
                src = m.group(1) if m else None
        except OSError:
            pass
        L.append("Binaries: `%s`%s." % (self.build, " (built from `%s`)" % src if src else ""))
        if self.args.note:
            L.append("")
            L.append("**Note:** " + self.args.note)
        L.append("")
        L.append("## Machine")
        L.append("")
        L.append("| | |")
        L.append("|---|---|")
        for k, label in (("hostname", "host"), ("cpu_model", "CPU"), ("nproc", "CPUs (nproc)"), ("memory", "memory"),
                         ("os", "OS"), ("kernel", "kernel"), ("nginx", "nginx"), ("openssl", "OpenSSL"),
                         ("redis", "Redis"), ("gateway", "gateway"), ("loadgen", "load generator"),
                         ("git", "source (git)")):
            L.append("| %s | %s |" % (label, mach[k]))
        L.append("| load average before | %s |" % " ".join("%.2f" % x for x in mach["load_before"]))
        L.append("| load average after | %s |" % " ".join("%.2f" % x for x in mach["load_after"]))
        L.append("")
        L.append("The machine is shared with other work: the load average says how much. Runs alternate "
                 "(A B, then B A) so that drift hits both sides, and ratios are taken pair by pair.")
        L.append("")
        L.append("## Placement and method")
        L.append("")
        L.append("| process | CPU (`taskset -c`) |")
        L.append("|---|---|")
        L.append("| nginx (master + 1 worker), every gateway (1 worker each) | 0 |")
        L.append("| opale-loadgen, opale-mock, redis-server | 1 |")
        L.append("")
        L.append("- All proxies stay up for the whole run; only the one being measured gets load.")
        L.append("- **opale-mock runs without `--jwks`**: with it, the mock would serve only requests carrying the "
                 "gateway's signed `X-JWT-Assertion`, which nginx cannot produce. So the gateway still signs an "
                 "assertion for each request (its cost is measured), but nobody verifies it.")
        L.append("- nginx: `bench/nginx/nginx.conf.in` (1 worker, TLS 1.3, keep-alive upstream pool of 64, buffered "
                 "JSON access log); a TLS-only server (S1) and an mTLS server with the CRL (S2–S5). "
                 "worker_connections %s, worker_rlimit_nofile %s (the hard limit)." % (
                     fmt(float(self.targets["nginx"].worker_connections)),
                     fmt(float(self.targets["nginx"].nofile))))
        L.append("- Gateways: 1 worker, upstream pool 64, journal on (hash-chained), admin listener, OAuth signing "
                 "key ES256; GW-S1: `client_auth: none`, `access: off` (route stage only), no policy; GW-FULL: mTLS "
                 "+ CRL, one policy (client-commune, TS-0001, 127.0.0.1/32, scopes declarations + creances, "
                 "2019–2025, quota 1,000,000/min, so it runs on every request and is never hit), quota store "
                 "Redis; GW-10K: the same plus 9,999 made-up partners.")
        L.append("- Full-chain requests: client certificate, a bearer token (the generator fetches it from the "
                 "gateway's `/token`; nginx gets the same `Authorization` header with a token from GW-FULL), a "
                 "fresh `X-Correlation-ID`, `ID_Teleservice: TS-0001`, alternating `%s` and `%s`." % tuple(PATHS))
        if self.s4_path:
            L.append("- S4 path: %s." % self.s4_why)
        L.append("- CPU: utime + stime from `/proc/PID/stat` (nginx: master + worker) of the proxy under test, of "
                 "the mock and Redis, and the generator's own (wait4), over the generator's lifetime (its 64 "
                 "connections' handshakes and the token request included: < 2%% of a 10 s run). "
                 "*Proxy CPU %%* is of one core; *requests per proxy CPU-second* = responses / proxy CPU time, an "
                 "efficiency figure that stays meaningful when the proxy is not saturated. *Core 1 %%* = generator "
                 "+ mock + Redis: at ≥ %.0f%% the load side, not the proxy, may be the limit. *Core 0 %% used by others* "
                 "= how busy core 0 was (`/proc/stat`) minus the proxy under test: CPU that other work on the "
                 "machine took from the proxy during the run (noted when ≥ 15%%)." % SAT_PCT)
        L.append("- A run is **flagged** (bold in the tables) when the generator saw an error, a non-2xx answer "
                 "(429 allowed only in S7), fell behind its open-loop schedule, or the proxy died. Flagged runs "
                 "stay in the medians; the summary says how many there were.")
        L.append("")
        L.append("## Summary")
        L.append("")
        L.extend(self.summary_table(rows))
        L.append("")
        for s, e in sorted(self.failures.items()):
            L.append("- **%s failed**: %s" % (s, e))
        if self.failures:
            L.append("")
        if pngs:
            L.append("## Plots")
            L.append("")
            for k in ("throughput", "latency"):
                if k in pngs:
                    L.append("![%s](%s)" % (k, os.path.basename(pngs[k])))
                    L.append("")
        names = {"gw": "gateway", "nginx": "nginx", "direct": "mock directly", "gw1": "GW-FULL (1 policy)",
                 "gw10k": "GW-10K"}
        sections = (("S1", "S1 pass-through: GW-S1 vs nginx TLS-only (closed loop, keep-alive, 64 connections, 1 "
                           "thread, `%s`, no client certificate)" % ETAT, "req/s", "throughput_rps"),
                    ("S2", "S2 full chain: GW-FULL vs nginx mTLS (closed loop, keep-alive, 64 connections)", "req/s",
                     "throughput_rps"),
                    ("S4", "S4 handshakes: a new mTLS connection per request, 16 connections", "handshakes/s",
                     "handshake_rate"),
                    ("S6", "S6 policy count: GW-FULL (1 policy) vs GW-10K (10,000 policies), S2 load", "req/s",
                     "throughput_rps"))
        for s, title, ml, metric in sections:
            if not self.runs.get(s):
                continue
            L.append("## " + title)
            L.append("")
            L.extend(self.detail_table(s, names, ml, metric))
            L.append("")
            if s == "S4":
                sat = [x for x in self.runs[s] if x.get("gen_cpu_pct") and x["gen_cpu_pct"] >= SAT_PCT]
                gen = med([x.get("gen_cpu_pct") for x in self.runs[s]])
                L.append("The generator pays about 1 ms of CPU per mTLS handshake (docs/loadgen.md). Its median "
                         "CPU here: %s%% of core 1%s." % (
                             fmt(gen), "; **it was saturated in %d of %d runs: there the figure is a floor set by the "
                                       "generator, not the proxy's maximum**" % (len(sat), len(self.runs[s]))
                             if sat else "; it was not saturated, so the proxy (core 0) set the rate"))
                L.append("")
        if self.runs.get("S3"):
            L.append("## S3 open-loop latency")
            L.append("")
            L.append("Rate %s req/s (50%% of %s), 64 connections, %g s per run, latency from the scheduled time "
                     "(no coordinated omission). Order rotated each round. Medians over %d rounds (min–max)." % (
                         fmt(self.s3_rate), self.s3_rate_src, self.s3_duration, self.rounds))
            L.append("")
            L.append("| target | p50 | p90 | p99 | p99.9 | max | proxy CPU % | flagged |")
            L.append("|---|---|---|---|---|---|---|---|")
            for role in ("gw", "nginx", "direct"):
                rs = [x for x in self.runs["S3"] if x["role"] == role]
                if not rs:
                    continue
                cells = []
                for k in ("p50", "p90", "p99", "p99_9", "max"):
                    v = [x.get(k) for x in rs]
                    cells.append("%s (%s–%s)" % (fmt_us(med(v)), fmt_us(mn(v)), fmt_us(mx(v))))
                fl = sum(1 for x in rs if x["flag_errors"])
                L.append("| %s | %s | %s | %s |" % (names[role], " | ".join(cells),
                                                     fmt(med([x["proxy_cpu_pct"] for x in rs])) if role != "direct"
                                                     else "—", fl or ""))
            L.append("")
            add_gw, add_ng = getattr(self, "s3_added", ([], []))
            L.append("Added p99 = p99(proxy) − p99(direct), per round then median: gateway **%s** (%s–%s), nginx "
                     "**%s** (%s–%s). Target: gateway ≤ 1 ms." % (
                         fmt_us(med(add_gw)), fmt_us(mn(add_gw)), fmt_us(mx(add_gw)), fmt_us(med(add_ng)),
                         fmt_us(mn(add_ng)), fmt_us(mx(add_ng))))
            L.append("")
            L.extend(self.detail_table("S3", names))
            L.append("")
        if self.s5:
            L.append("## S5 memory: idle mTLS keep-alive connections")
            L.append("")
            L.append("Each round starts a **fresh** proxy of each kind (a process that has held 10,000 connections "
                     "keeps much of that memory in its allocator, which would hide the cost the second time), warms "
                     "it with 1 s of S2 load, then: RSS before (VmRSS, nginx = master + worker, median of 3 "
                     "samples); `opale-loadgen --hold` opens the connections (≤ 256 being set up at once, 4 threads), "
                     "each completes its handshake and one full-chain request, then all stay idle; RSS while held "
                     "(median of 3 samples, ~%.1f s into the hold). Per connection = (with − before) / held." %
                     min(2.0, self.s5_hold / 3))
            L.append("")
            L.append("| round | proxy | connections held | setup (s) | RSS before (KiB) | RSS while held (KiB) | "
                     "RSS after close (KiB) | per connection (KiB) | flags |")
            L.append("|---|---|---|---|---|---|---|---|---|")
            for x in self.s5:
                L.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    x["round"], names[x["role"]], fmt(float(x["held"])), fmt(x["setup_s"], 1), fmt(x["rss_before_kb"]),
                    fmt(x["rss_with_kb"]), fmt(x["rss_after_kb"]), fmt(x["per_conn_kb"], 2),
                    "; ".join("**%s**" % e for e in x["flag_errors"])))
            L.append("")
        if self.s7:
            s7 = self.s7
            L.append("## S7 quota exactness")
            L.append("")
            L.append("Three gateways (GW-Q1..3, 1 worker each, CPU 0), one Redis, `quota.instances: 3`, window "
                     "`quota.window_s` = %d s, one policy for client-commune (`%s`) with `quota.per_minute: %d` "
                     "(the limit per window). Demand: %g req/s open loop on each gateway (4 connections), for "
                     "%g s: far above the limit." % (s7["window_s"], HAB_S7, QUOTA_S7, s7["rate_per_gateway"],
                                                     s7["duration_s"]))
            L.append("")
            L.append("| gateway | requests journalled | admitted (200) | refused 429 (quota) | other | flags |")
            L.append("|---|---|---|---|---|---|")
            for g in s7["per_gateway"]:
                L.append("| %s | %d | %d | %d | %d | %s |" % (g["gateway"], g["requests"], g["admitted"],
                                                               g["refused_quota"], g["other"],
                                                               "; ".join("**%s**" % e for e in g["flag_errors"])))
            L.append("")
            L.append("| figure | value |")
            L.append("|---|---|")
            L.append("| total admitted: Redis (its window log, polled every 0.5 s) / journals | %d / %d |" % (
                s7["admitted_redis"], s7["admitted_journal"]))
            L.append("| admissions in the journals but not seen in Redis / in Redis but not in the journals | "
                     "%d / %d |" % (s7["journal_not_in_redis"], s7["redis_not_in_journal"]))
            L.append("| the most a %d s sliding window can admit over the %s s the admissions span | %s |" % (
                s7["window_s"], fmt(s7["span_s"], 1), s7.get("ceiling", "—")))
            L.append("| **max admissions in any rolling %d s window, Redis admission times** (authoritative) | "
                     "**%s** (expected %d: %s) |" % (s7["window_s"], s7["max_window_redis"], QUOTA_S7,
                                                     "met" if s7["met"] else "NOT met"))
            L.append("| shortest span of %d consecutive admissions, Redis (must be ≥ %d ms) | %s ms |" % (
                QUOTA_S7 + 1, s7["window_s"] * 1000, s7["min_span_redis_ms"]))
            L.append("| max admissions in any rolling %d s window, journal `ts` (completion time) | %s |" % (
                s7["window_s"], s7["max_window_journal"]))
            L.append("| shortest span of %d consecutive admissions, journal `ts` | %s ms |" % (
                QUOTA_S7 + 1, s7["min_span_journal_ms"]))
            L.append("| journal `ts` − Redis admission time, same request: median / max | %s / %s ms |" % (
                s7["lag_ms_median"], s7["lag_ms_max"]))
            L.append("")
            L.append("How the window is measured: the journal's `quota` object carries `{limit, remaining, store}` "
                     "but no decision time (docs/journal.md), and its `ts` is the time the response *completed*, "
                     "in milliseconds. The authoritative admission time is the one the quota itself uses: the "
                     "Redis Function stamps each admission with the Redis server's `TIME` (ms) as the score of the "
                     "request id in the sorted set `opale:q:{%s}`, and an admission at t leaves the window at "
                     "exactly t + window (docs/quotas.md). The bench polls that set twice a second during the run "
                     "(an entry stays %d s, so none is missed) and keeps every (request id, score). The maximum is "
                     "taken over every window [t, t + %d s) starting at an admission (the count can only rise at an "
                     "admission). The journals give the same figure from completion times, which lag the decision "
                     "by the upstream round trip and the journal queue (median and max lag above): since a slot "
                     "that frees at a window's edge is taken again within milliseconds (the demand is far above "
                     "the limit), a jitter of a few ms in completion times moves admissions across the edge, and a "
                     "window of completion times can hold a few more than the limit although no decision window "
                     "did. So the journals are a cross-check (same request ids, same count), not the verdict." % (
                         HAB_S7, s7["window_s"], s7["window_s"]))
            if s7["other"]:
                L.append("")
                L.append("**Other outcomes in the S7 journals**: %d, e.g. %s." % (s7["other"], s7["other_examples"]))
            L.append("")
        if self.args.profile:
            L.append("## Profile of S2")
            L.append("")
            if self.profile_lines:
                pr = getattr(self, "profile_run", {})
                L.append("GW-FULL under S2 load (64 connections, 10 s, %s req/s), `perf record -e cpu-clock -F 999 -g "
                         "-p PID` (no hardware counters on this VM: cpu-clock sampling), then `perf report --stdio "
                         "--no-children --sort symbol -g none` (self time per symbol, call chains omitted), top 30:"
                         % fmt(pr.get("throughput_rps")))
                L.append("")
                L.append("```")
                L.extend(self.profile_lines)
                L.append("```")
                if getattr(self, "profile_dso_lines", None):
                    L.append("")
                    L.append("The same samples per library (`--sort dso`): Debian's libcrypto carries no symbols, "
                             "so its share (the ES256 signature of each `X-JWT-Assertion`, TLS records, SHA-256) "
                             "is readable only here; `[kernel.kallsyms]` is the loopback TCP path and the "
                             "hypervisor's interrupt handling (`pvm_irq_enable`).")
                    L.append("")
                    L.append("```")
                    L.extend(self.profile_dso_lines)
                    L.append("```")
            else:
                L.append("No profile: %s" % self.failures.get("profile", "perf gave nothing"))
            L.append("")
        L.append("## Anomalies")
        L.append("")
        flagged = [x for s in self.runs.values() for x in s if x["flag_errors"]]
        if not flagged and not self.notes and not self.failures and not any(x["flag_errors"] for x in self.s5):
            L.append("None: every measured run had 2xx answers only (429 in S7), no generator error, and every "
                     "process stayed up.")
        for x in flagged:
            L.append("- %s: %s" % (x["key"], "; ".join(x["flag_errors"])))
        for x in self.s5:
            if x["flag_errors"]:
                L.append("- S5 round %d %s: %s" % (x["round"], x["role"], "; ".join(x["flag_errors"])))
        for n in self.notes:
            L.append("- " + n)
        L.append("")
        L.append("Raw data: [`%s/`](%s/) (one loadgen JSON per run, `summary.json`)." % (self.stem, self.stem))
        L.append("")
        md_path = stem_path + ".md"
        with open(md_path + ".tmp", "w") as f:
            f.write("\n".join(L))
        os.rename(md_path + ".tmp", md_path)
        summary = {"mode": mode, "started": self.started_wall.isoformat(), "elapsed_s": elapsed, "machine": mach,
                   "rounds": self.rounds, "duration_s": self.duration, "summary": rows, "failures": self.failures,
                   "notes": self.notes, "s3_rate": self.s3_rate, "s4_path": self.s4_path, "s5": self.s5, "s7": self.s7,
                   "runs": {s: [{k: v for k, v in x.items() if k != "percentiles"} for x in rs]
                            for s, rs in self.runs.items()},
                   "profile": self.profile_lines, "plots": pngs, "report": md_path}
        with open(os.path.join(self.raw_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1, default=str)
        print("\n".join(self.summary_table(rows)))
        for s, e in sorted(self.failures.items()):
            print("%s failed: %s" % (s, e))
        print("\nReport: %s (%.1f min)" % (md_path, elapsed / 60))
        for k, v in pngs.items():
            print("Plot:   %s" % v)


def main():
    ap = argparse.ArgumentParser(description="opale-gateway vs nginx bench (see the docstring of bench/bench.py)")
    ap.add_argument("--build", required=True, help="build tree with opale-gateway, opale-mock, opale-loadgen")
    ap.add_argument("--quick", action="store_true", help="short run (under 5 minutes)")
    ap.add_argument("--profile", action="store_true", help="perf profile of GW-FULL under S2 load")
    ap.add_argument("--only", help="comma-separated scenarios, e.g. S1,S3")
    ap.add_argument("--rounds", type=int, help="rounds for S1-S4, S6")
    ap.add_argument("--duration", type=float, help="seconds per measured run")
    ap.add_argument("--out", help="results directory (default bench/results)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--note", help="a line of text for the report's header (e.g. which build was measured)")
    args = ap.parse_args()
    if args.only:
        bad = [s for s in args.only.split(",") if s.strip().upper() not in ("S1", "S2", "S3", "S4", "S5", "S6", "S7")]
        if bad:
            ap.error("--only: unknown scenario(s) %s (S1..S7)" % ", ".join(bad))
    if args.rounds is not None and args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.duration is not None and not 0.5 <= args.duration <= 3600:
        ap.error("--duration must be between 0.5 and 3600 s")

    def on_signal(sig, frame):
        raise SystemExit(128 + sig)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    atexit.register(stop_all)
    bench = Bench(args)
    try:
        bench.run()
    except SetupError as e:
        sys.stderr.write("bench: setup failed: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

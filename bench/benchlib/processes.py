"""Processes of the bench: start (pinned with taskset), stop, CPU time and RSS
from /proc, the minimal Redis and HTTPS clients used by the checks, and the
Stack mixin of the Bench class, which sets up the PKI, the mock, Redis,
nginx and the gateways."""

import copy
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
import subprocess
import time
import uuid

from benchlib.common import (
    CLIENT, CLK_TCK, ETAT, HAB_FULL, HAB_S7, LOAD_CPU, PATHS, PROXY_CPU, QUOTA_S7, SCOPES, SRCDIR,
    START_TIMEOUT, STOP_TIMEOUT, SetupError, log)
import genconf  # noqa: E402  (found through benchlib.common's sys.path)
import harness  # noqa: E402  (found through benchlib.common's sys.path)


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
                    # irq + softirq + steal: busy time no process is charged with
                    out[parts[0] + "-nonproc"] = (vals[5] + vals[6] + vals[7], sum(vals))
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


_ports_given = set()


def free_port():
    """A loopback port free now and not handed out before by this process:
    bind(port 0) gives a port back as soon as the probe closes, so two calls
    made before the first service binds could otherwise get the same one."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise SetupError("no free loopback port left")


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


def set_affinity(pid, cpus):
    """Every thread of <pid> onto <cpus> ("1", "0,1"): S2W and S8 run on
    the whole machine, then the helpers go back to core 1."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


def load_json(path):
    """The JSON document in <path>, or None (missing, unreadable, invalid)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


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
        self.pinned = True
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




def port_from_file(path, p, what, errpath):
    """The port <p> writes to <path> once it listens (--port-file), through
    the harness' wait; SetupError with <p>'s stderr if it does not."""
    try:
        return int(harness._wait_file(path, p, START_TIMEOUT, what))
    except RuntimeError as e:
        raise SetupError("%s did not start: %s\n%s" % (what, e, read_text(errpath)))


class Stack:
    """Bench mixin: the processes under test (self.targets) and their setup."""

    # the upstream of every proxy: "canned" (opale-backend, bench.py's
    # default) or "mock" (opale-mock itself, as the callgrind tools keep)
    backend = "mock"

    def backend_name(self):
        return "opale-mock" if self.backend == "mock" else "opale-backend"

    # -- setup

    def check_binaries(self):
        bins = (self.gw_bin, self.mock_bin, self.lg_bin) + (() if self.backend == "mock" else (self.backend_bin,))
        missing = [p for p in bins if not os.access(p, os.X_OK)]
        for tool in ("nginx", "redis-server", "taskset", "openssl", "haproxy"):
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
        self.mock_port = port_from_file(pf, p, "opale-mock", os.path.join(d, "stderr"))
        self.mock = Target("opale-mock", p, "mock", port=self.mock_port)

    def start_backend(self):
        """opale-backend (bench/backend.c) in the mock's place, on the load
        side's core: the mock's own answer to each bench target (PATHS and
        ETAT: status 200, its body) is fetched once and served as is, then
        the mock is stopped. From here on self.mock and self.mock_port name
        the backend, whichever it is (bench/README.md, "The backend")."""
        d = os.path.join(self.tmp, "backend")
        os.makedirs(d)
        pf = os.path.join(d, "port")
        argv = [self.backend_bin, "--listen", "127.0.0.1", "--port", "0", "--port-file", pf]
        self.backend_bodies = {}
        for i, target in enumerate(PATHS + [ETAT]):
            st, body = plain_get(self.mock_port, target, {"X-Correlation-ID": str(uuid.uuid4())})
            if st != 200 or not body:
                raise SetupError("opale-mock %s: %d %r" % (target, st, body[:200]))
            path = os.path.join(d, "body-%d.json" % i)
            with open(path, "wb") as f:
                f.write(body)
            self.backend_bodies[target] = body
            argv += [target, path]
        p = spawn(argv, cpu=LOAD_CPU, cwd=d, out=os.path.join(d, "stdout"), err=os.path.join(d, "stderr"))
        port = port_from_file(pf, p, "opale-backend", os.path.join(d, "stderr"))
        stop(self.mock.proc)
        self.mock_port = port
        self.mock = Target("opale-backend", p, "mock", port=self.mock_port)

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

    def gw_conf(self, port, admin_port, passthrough=False, quota=None, workers=1, max_connections=10500):
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
            "workers": workers,
            "policies_dir": "policies",
            "listeners": [listener],
            "upstreams": [{"name": "opale", "servers": ["127.0.0.1:%d" % self.mock_port], "pool_size": 64,
                           "max_connections": 64}],
            "routes": copy.deepcopy(harness.ROUTES),
            # S5: 10,000 idle connections per worker, kept for longer than
            # the setup plus the hold. 10,500 fits a hard RLIMIT_NOFILE of
            # 20000 with one descriptor per connection (the gateway warns:
            # docs/configuration.md, "File descriptors").
            "limits": {"max_connections": max_connections},
            "timeouts": {"keepalive_ms": 300000},
            "journal": {"path": "journal/access.jsonl"},
            "admin": {"address": "127.0.0.1", "port": admin_port, "token_file": "pki/admin.token"},
            "oauth": {"issuer": "https://localhost:%d" % port,
                      "signing_keys": [{"kid": "bench-es256", "file": "pki/token-es256.key", "alg": "ES256",
                                        "active": True}],
                      "token_requests_per_minute": 100000,
                      # the default assertion (grant + per-request MAC) needs
                      # the key it shares with the backend (pki.sh makes it);
                      # the mock runs without --jwks, so nothing checks it
                      "assertion_mac_key_file": "pki/assertion-mac.key"},
        }
        if quota is not None:
            conf["quota"] = quota
        return conf

    def redis_quota(self, **over):
        q = {"store": "redis", "redis": {"nodes": ["127.0.0.1:%d" % self.redis_port]}}
        q.update(over)
        return q

    def start_gateway(self, name, passthrough=False, policies=None, quota=None, workers=1, cpu=PROXY_CPU,
                      port=None, max_connections=10500):
        """Start a gateway in its own directory; <cpu> None: not pinned (S2W,
        S8); <port> chosen beforehand when tokens must name its issuer."""
        d = os.path.join(self.tmp, name)
        os.makedirs(os.path.join(d, "journal"))
        os.makedirs(os.path.join(d, "policies"))
        os.symlink(self.pki, os.path.join(d, "pki"))
        for fname, pol in (policies or {}).items():
            with open(os.path.join(d, "policies", fname), "w") as f:
                json.dump(pol, f)
        port, admin_port = port or free_port(), free_port()
        conf = self.gw_conf(port, admin_port, passthrough=passthrough, quota=quota, workers=workers,
                            max_connections=max_connections)
        cpath = os.path.join(d, "gateway.json")
        with open(cpath, "w") as f:
            json.dump(conf, f, indent=2)
        r = subprocess.run([self.gw_bin, "-t", "-c", cpath], cwd=d, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        if r.returncode != 0:
            raise SetupError("%s: opale-gateway -t failed:\n%s" % (name, r.stdout.decode(errors="replace")[-4000:]))
        errp = os.path.join(d, "stderr")
        p = spawn([self.gw_bin, "-c", cpath], cpu=cpu, cwd=d, out=os.path.join(d, "stdout"), err=errp)
        deadline = time.monotonic() + START_TIMEOUT
        while not re.search(r"\bready\b", read_text(errp)):
            if p.poll() is not None:
                raise SetupError("%s exited (rc=%s) at start-up:\n%s" % (name, p.returncode, read_text(errp)[-4000:]))
            if time.monotonic() > deadline:
                raise SetupError("%s not ready within %.0f s:\n%s" % (name, START_TIMEOUT, read_text(errp)[-4000:]))
            time.sleep(0.05)
        return Target(name, p, "gateway", port=port, admin_port=admin_port, dir=d,
                      journal_dir=os.path.join(d, "journal"), npolicies=len(policies or {}),
                      passthrough=passthrough, pinned=cpu is not None, workers=workers,
                      issuer="https://localhost:%d" % port)

    def setup(self):
        self.check_binaries()
        log("PKI")
        self.make_pki()
        log("%s, redis-server (CPU %s)" % (self.backend_name(), LOAD_CPU))
        self.start_mock()
        if self.backend != "mock":
            self.start_backend()
        self.start_redis()
        log("nginx (CPU %s)" % PROXY_CPU)
        self.targets["nginx"] = self.start_nginx("nginx")
        need = self.only is None or bool(self.only & {"S1", "S2", "S2H", "S3", "S3B", "S3L", "S4", "S5", "S6"}) or \
            self.args.profile
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
        if self.want("S2H"):
            log("HAProxy (CPU %s)" % PROXY_CPU)
            self.targets["haproxy"] = self.start_haproxy("haproxy")
        if self.want("S2W"):
            for w in (1, 2):
                log("GW-W%d (workers %d, not pinned)" % (w, w))
                self.targets["gw-w%d" % w] = self.start_gateway(
                    "gw-w%d" % w, policies={"commune-exemple.json": self.commune_policy(HAB_FULL, 1000000)},
                    quota=self.redis_quota(), workers=w, cpu=None, max_connections=4000)
        if self.want("S7"):
            for i in (1, 2, 3):
                log("GW-Q%d (S7)" % i)
                self.targets["gw-q%d" % i] = self.start_gateway(
                    "gw-q%d" % i, policies={"commune-exemple.json": self.commune_policy(HAB_S7, QUOTA_S7)},
                    quota=self.redis_quota(window_s=self.s7_window, instances=3))
        self.preflight()
        if "haproxy" in self.targets:
            self.functional_check()

"""Quotas end to end (issue 5, docs/quotas.md): the exact sliding window of a
habilitation, with the embedded memory store, with one real redis-server
shared by three gateway instances, with a real 3-master Redis Cluster, and
what the gateway does when Redis is stopped, paused or gone while a request
waits for it.

Every Redis process is a real `redis-server` started here on a free loopback
port (no persistence) and killed at teardown at the latest. The window is
short (WINDOW_S = 4 s) and the partners' quota.per_minute small (N = 20), so
that "more than two windows" takes about ten seconds.

Exactness is checked twice:
- on the Redis log itself: the members of the quota key (request ids) with
  their scores (the Redis server's TIME, in ms, when the function admitted
  them), polled every 0.2 s during the run (an entry stays WINDOW_S in the
  key, so every admission is seen). The rule is checked exactly: any N + 1
  consecutive admissions span at least the window (an entry stamped t
  leaves at t + window), so no half-open window [x, x + w) holds more than N;
  and each full window aligned to the first admission holds exactly N while
  demand exceeds it;
- on the merged journals of the instances, where an admission is only known
  to lie in [ts - ms - 1, ts + 1] (ts: the record's time, taken when the
  response is written; ms: the request's duration; 1 ms for the truncations).
  "Proven" counts use exactly that tolerance: k admissions whose intervals
  all fit in a span shorter than the window certainly lie in one window, so
  the proven count never exceeds the true one and must be <= N too.

Tests: TestMemoryStore (one instance, memory store: N admitted, 429 900804
with RateLimit-* and Retry-After, re-admission exactly when the oldest
admission leaves, refusals not extending the refusal); TestRedisThreeInstances
and TestRedisClusterThreeInstances (three instances, concurrent keep-alive
clients, more than two windows; the cluster case with two habilitations whose
keys live on two different masters); TestRedisFaults (on_store_failure local
with Redis stopped mid-load and restarted empty, deny, allow, a paused Redis
with timeout_ms 50, a client gone while its quota command is in flight).

Only the binaries (opale-gateway, opale-mock, openssl) and redis-server /
redis-cli may be missing for a skip (the harness's rule).
"""

import datetime
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest
import uuid

import harness
from harness import (PARTNERS, GatewayTestCase, PeerClosed, Stack, read_response, require_binaries,
                     send_raw)

WINDOW_S = 4
WINDOW_MS = WINDOW_S * 1000
N = 20
SIREN = "732829320"
TARGET = "/opale/v1/entreprises/%s/comptes-bancaires" % SIREN  # a guarded route (scope api_opale_bancaires)
COMMUNE = "client-commune"
DEPT = "client-departement"
REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
REDIS_START_TIMEOUT = 10.0
POLL_S = 0.2


def require_redis():
    require_binaries()
    if not REDIS_SERVER or not REDIS_CLI:
        raise unittest.SkipTest("prerequisite missing: redis-server / redis-cli")


def quota_key(habilitation):
    return "opale:q:{%s}" % habilitation


def resp_len(args):
    """The bytes of a RESP array of the bulk strings <args>."""
    return len(b"*%d\r\n" % len(args)) + sum(len(b"$%d\r\n" % len(a)) + len(a) + 2 for a in args)


def unread_by_server(port):
    """(bytes received and not yet read, connections) over the established
    TCP sockets whose local port is <port> (/proc/net/tcp: a stopped Redis's
    receive queues)."""
    total = n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if int(parts[1].rsplit(":", 1)[1], 16) != port or parts[3] != "01":
                continue
            n += 1
            total += int(parts[4].split(":")[1], 16)
    return total, n


def per_minute_hook(n):
    def hook(pols, stack):
        for pol in pols.values():
            pol["quota"]["per_minute"] = n
    return hook


def redis_quota(nodes, cluster=False, on_store_failure="deny", instances=1, **redis_over):
    r = {"nodes": list(nodes), "timeout_ms": 1000, "backoff_min_ms": 100, "backoff_max_ms": 1000}
    if cluster:
        r["cluster"] = True
    r.update(redis_over)
    return {"store": "redis", "window_s": WINDOW_S, "on_store_failure": on_store_failure,
            "instances": instances, "redis": r}


# --------------------------------------------------------------------------
# a minimal RESP client (one connection, blocking, with a timeout)


class RespError(Exception):
    pass


class RedisConn:
    def __init__(self, port, timeout=2.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        for _ in range(100000):
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln, self.buf = self.buf[:i], self.buf[i + 2:]
                return ln
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        raise ValueError("unreachable")

    def _exact(self, n):
        for _ in range(100000):
            if len(self.buf) >= n + 2:
                data, self.buf = self.buf[:n], self.buf[n + 2:]
                return data
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        raise ValueError("unreachable")

    def _reply(self):
        ln = self._line()
        t, rest = ln[:1], ln[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ValueError("bad RESP line %r" % ln)

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        r = self._reply()
        if isinstance(r, RespError):
            raise r
        return r


def redis_call(port, *args, timeout=2.0):
    c = RedisConn(port, timeout=timeout)
    try:
        return c.call(*args)
    finally:
        c.close()


def redis_time_ms(port):
    s, us = redis_call(port, "TIME")
    return int(s) * 1000 + int(us) // 1000


def port_pair_free(p):
    """<p> and its cluster bus port p + 10000 both bindable on loopback."""
    for q in (p, p + 10000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", q))
            except OSError:
                return False
    return True


def cluster_port():
    for _ in range(500):
        p = random.randint(20000, 45000)
        if port_pair_free(p):
            return p
    raise RuntimeError("no free loopback port pair (p, p + 10000) found")


class RedisServer:
    """One redis-server on 127.0.0.1:<port>, no persistence unless
    <appendonly>; registered with
    the harness so that it is killed at exit at the latest."""

    def __init__(self, name, port=None, cluster=False, appendonly=False):
        self.name = name
        self.cluster = cluster
        self.appendonly = appendonly  # AOF (appendfsync everysec) in self.dir, kept across restarts
        self.port = port or (cluster_port() if cluster else harness.free_port())
        self.dir = harness.make_tmpdir("redis-%s" % name)
        self.log_path = os.path.join(self.dir, "redis-%d.log" % self.port)
        self.proc = None
        self.paused = False

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--dir", self.dir, "--logfile", self.log_path,
                "--enable-debug-command", "local"]  # DEBUG SLEEP (test_quota_faults.py)
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file",
                     os.path.join(self.dir, "nodes-%d.conf" % self.port), "--cluster-node-timeout", "5000"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=self.dir)
        harness._register(self.proc)
        self.paused = False
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server on port %d exited (rc=%s):\n%s"
                                   % (self.port, self.proc.returncode, self.log()[-2000:]))
            try:
                if redis_call(self.port, "PING", timeout=0.5) == "PONG":
                    return self
            except (OSError, RespError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server on port %d not answering within %.0f s" % (self.port, REDIS_START_TIMEOUT))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        harness.stop_process(self.proc, sig=sig, timeout=5.0)
        self.proc = None

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def call(self, *args, timeout=2.0):
        return redis_call(self.port, *args, timeout=timeout)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


class RedisCluster:
    """Three cluster-enabled masters, no replicas, made a cluster with
    `redis-cli --cluster create` and waited for (cluster_state:ok everywhere,
    bounded)."""

    def __init__(self, name):
        self.nodes = [RedisServer("%s-%d" % (name, i), cluster=True) for i in range(3)]

    @property
    def seeds(self):
        return ["127.0.0.1:%d" % n.port for n in self.nodes]

    def start(self):
        for n in self.nodes:
            n.start()
        r = subprocess.run([REDIS_CLI, "--cluster", "create", *self.seeds, "--cluster-replicas", "0",
                            "--cluster-yes"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("redis-cli --cluster create failed (rc=%d):\n%s"
                               % (r.returncode, r.stdout.decode(errors="replace")))
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            try:
                states = [n.call("CLUSTER", "INFO") for n in self.nodes]
                owners = [self.slot_owner_map(n) for n in self.nodes]
                if all("cluster_state:ok" in s for s in states) and all(o == owners[0] for o in owners) \
                        and len(set(owners[0].values())) == 3:
                    return self
            except (OSError, RespError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok with one map within 20 s")

    @staticmethod
    def slot_owner_map(node):
        """{(first, last): master port} from CLUSTER SLOTS on <node>."""
        out = {}
        for ent in node.call("CLUSTER", "SLOTS"):
            out[(int(ent[0]), int(ent[1]))] = int(ent[2][1])
        return out

    def owner(self, slot):
        for (a, b), port in self.slot_owner_map(self.nodes[0]).items():
            if a <= slot <= b:
                return port
        return None

    def node(self, port):
        return next(n for n in self.nodes if n.port == port)

    def stop(self):
        for n in self.nodes:
            n.stop(signal.SIGKILL)


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


class RedisLogPoller(threading.Thread):
    """Polls ZRANGE <key> 0 -1 WITHSCORES on <port> every POLL_S s and keeps
    the union {member: score}: every admission stays WINDOW_S in the key, so
    none is missed. Errors (e.g. a MOVED from a node that does not own the
    key) are kept in .errors."""

    def __init__(self, port, keys):
        super().__init__(daemon=True)
        self.port = port
        self.keys = list(keys)
        self.log = {k: {} for k in self.keys}
        self.errors = []
        self.polls = 0
        self.poll_times = []  # time.time() of each complete poll (diagnostics)
        self.poll_spans = []  # (sent, answered) of each complete poll
        self._halt = threading.Event()

    def poll_once(self, conn):
        t0 = time.time()
        for k in self.keys:
            r = conn.call("ZRANGE", k, 0, -1, "WITHSCORES")
            for i in range(0, len(r), 2):
                self.log[k][r[i]] = int(float(r[i + 1]))
        self.polls += 1
        self.poll_times.append(time.time())
        self.poll_spans.append((t0, self.poll_times[-1]))

    def max_gap_s(self):
        """The longest time between two complete polls (s): an entry lives
        WINDOW_S in the key, so a gap that long can miss one."""
        t = self.poll_times
        return max((b - a for a, b in zip(t, t[1:])), default=None)

    def run(self):
        conn = None
        for _ in range(100000):
            try:
                if conn is None:
                    conn = RedisConn(self.port)
                self.poll_once(conn)
            except (OSError, RespError, ValueError) as e:
                self.errors.append(repr(e))
                if conn is not None:
                    conn.close()
                    conn = None
            if self._halt.wait(POLL_S):
                break
        try:
            if conn is None:
                conn = RedisConn(self.port)
            self.poll_once(conn)
            conn.close()
        except (OSError, RespError, ValueError) as e:
            self.errors.append(repr(e))

    def finish(self):
        self._halt.set()
        self.join(timeout=10)

    def saw_window(self, score_ms, window_s):
        """Did a complete poll read the key while an entry of <score_ms>
        was still in it (the whole poll inside [score, score + window))?"""
        a = score_ms / 1000.0
        return any(t0 >= a and t1 < a + window_s for t0, t1 in self.poll_spans)

    def scores(self, key):
        return sorted(self.log[key].values())


class RedisMonitor(threading.Thread):
    """MONITOR on <port>, reconnected when Redis restarts: every ZADD a
    script makes on <keys> (the quota Function's admissions, opale2_restore's
    write-backs), {member: [(score, time.time()), ...]}. What Redis was
    asked to store, independent of RedisLogPoller's timing: a member the
    poller never saw (it polls what is still stored) tells, with this, a
    poller that was not looking from an entry Redis never got or lost."""

    ZADD = re.compile(r'^(\d+\.\d+) \[\d+ lua\] "ZADD" "([^"]*)" "NX" "([0-9.e+]+)" "([^"]*)"$')

    def __init__(self, port, keys):
        super().__init__(daemon=True)
        self.port = port
        self.keys = set(keys)
        self.zadds = {}
        self.errors = []
        self._halt = threading.Event()

    def run(self):
        conn = None
        for _ in range(100000):
            if self._halt.is_set():
                break
            try:
                if conn is None:
                    conn = RedisConn(self.port, timeout=0.2)
                    conn.sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
                for _ in range(10000):
                    try:
                        r = conn._reply()
                    except socket.timeout:
                        break  # idle: look at _halt
                    m = self.ZADD.match(r) if isinstance(r, str) else None
                    if m and m.group(2) in self.keys:
                        member = m.group(4).split("#")[0]
                        self.zadds.setdefault(member, []).append((int(float(m.group(3))), float(m.group(1))))
            except (OSError, RespError, ValueError) as e:
                self.errors.append(repr(e))
                if conn is not None:
                    conn.close()
                    conn = None
                self._halt.wait(0.05)
        if conn is not None:
            conn.close()

    def finish(self):
        time.sleep(0.3)  # the last commands' lines
        self._halt.set()
        self.join(timeout=10)


# --------------------------------------------------------------------------
# clients


class Loader(threading.Thread):
    """A keep-alive client hammering <stack> with <cert>'s token until
    <stop> is set or <deadline> (time.monotonic()) passes, at most
    <max_requests>, <pace> s apart. Records every answer: (t_send, t_recv) in wall-clock
    seconds, status, X-Request-ID, headers; and every failure (connect,
    send, read, timeout) in .errors. Reconnects when the gateway says
    "Connection: close" (not a failure)."""

    def __init__(self, stack, cert=COMMUNE, deadline=None, stop=None, max_requests=20000, tag=None,
                 timeout=harness.DEFAULT_TIMEOUT, pace=0.0):
        super().__init__(daemon=True)
        self.stack = stack
        self.cert = cert
        self.deadline = deadline
        self.stop = stop or threading.Event()
        self.max_requests = max_requests
        self.tag = tag
        self.timeout = timeout
        self.pace = pace  # seconds between two requests
        self.token = stack.token(cert)
        self.teleservice = PARTNERS[cert]["teleservice"]
        self.results = []
        self.errors = []
        self.connects = 0

    def run(self):
        s = None
        try:
            for _ in range(self.max_requests):
                if self.stop.is_set() or (self.deadline is not None and time.monotonic() >= self.deadline):
                    break
                try:
                    if s is None:
                        s = self.stack.tls_connect(self.cert)
                        self.connects += 1
                    data = harness.build_request(TARGET, teleservice=self.teleservice, bearer=self.token)
                    t0 = time.time()
                    send_raw(s, data)
                    r = read_response(s, timeout=self.timeout)
                    t1 = time.time()
                except (OSError, PeerClosed, ValueError) as e:
                    self.errors.append((time.time(), repr(e)))
                    if s is not None:
                        s.close()
                        s = None
                    time.sleep(0.05)
                    continue
                self.results.append({"t_send": t0, "t_recv": t1, "status": r.status,
                                     "rid": r.header("X-Request-ID"), "limit": r.header("RateLimit-Limit"),
                                     "remaining": r.header("RateLimit-Remaining"),
                                     "reset": r.header("RateLimit-Reset"), "retry_after": r.header("Retry-After"),
                                     "body": r.body if r.status != 200 else b"", "stack": self.tag})
                if (r.header("Connection") or "").lower() == "close":
                    s.close()
                    s = None
                if self.pace:
                    time.sleep(self.pace)
        finally:
            if s is not None:
                s.close()


def run_loaders(loaders, timeout):
    for ld in loaders:
        ld.start()
    for ld in loaders:
        ld.join(timeout=timeout)
    stuck = [ld for ld in loaders if ld.is_alive()]
    if stuck:
        for ld in loaders:
            ld.stop.set()
        for ld in stuck:
            ld.join(timeout=harness.DEFAULT_TIMEOUT + 2)
        raise AssertionError("%d client threads still running after %.0f s" % (len(stuck), timeout))


# --------------------------------------------------------------------------
# journal and window arithmetic


def ts_ms(ts):
    d = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(round(d.timestamp() * 1000))


def journal_by_rid(stack, rids, timeout=harness.JOURNAL_WAIT + 3):
    """{request_id: record} for <rids>, waiting (bounded) until the journal
    holds all of them; fails the caller with the missing ones otherwise."""
    want = set(rids)
    deadline = time.monotonic() + timeout
    while True:
        got = {r["request_id"]: r for r in stack.journal_lines() if r.get("request_id") in want}
        if len(got) == len(want) or time.monotonic() >= deadline:
            missing = want - set(got)
            if missing:
                raise AssertionError("%d request ids missing from %s's journal, e.g. %s"
                                     % (len(missing), stack.name, sorted(missing)[:3]))
            return got
        time.sleep(0.2)


def max_in_window(times, w):
    """The largest number of <times> in one half-open window [x, x + w)."""
    t = sorted(times)
    best, j = 0, 0
    for i in range(len(t)):
        while t[i] - t[j] >= w:
            j += 1
        best = max(best, i - j + 1)
    return best


def proven_max_in_window(intervals, w):
    """<intervals>: (lo, hi) per admission, the admission certainly in
    [lo, hi]. The largest k such that k admissions certainly lie in one
    window [x, x + w): k intervals inside [lo_i, lo_i + w) for some i."""
    iv = sorted(intervals)
    best = 0
    for i, (lo, _) in enumerate(iv):
        k = sum(1 for lo2, hi2 in iv[i:] if hi2 < lo + w)
        best = max(best, k)
    return best


def journal_interval(rec):
    t = ts_ms(rec["ts"])
    return (t - int(rec.get("ms") or 0) - 1, t + 1)


def aligned_counts(times, w, t0, t_end):
    """Counts per window [t0 + k w, t0 + (k + 1) w) that ends before <t_end>."""
    out = []
    k = 0
    while t0 + (k + 1) * w <= t_end:
        out.append(sum(1 for t in times if t0 + k * w <= t < t0 + (k + 1) * w))
        k += 1
    return out


def readyz_quota_store(stack):
    st, body = stack.admin_call("GET", "/readyz")
    return body.get("quota_store") if isinstance(body, dict) else None


wait_for = harness.wait_for


FIGURES = {}


def figure(name, value):
    FIGURES[name] = value
    print("[quota figures] %s: %s" % (name, value), flush=True)


# --------------------------------------------------------------------------
# 1. the memory store, one instance


SPACING = 0.18            # s between the first N admissions (N * SPACING < WINDOW_S)


class TestMemoryStore(GatewayTestCase):
    stack_kwargs = {"quota": {"store": "memory", "window_s": WINDOW_S}, "policy_hook": per_minute_hook(N)}

    def send(self, conns, i):
        """Request on keep-alive connection i % len(conns) (reopened when
        closed); (t_send, t_recv, Response) in monotonic seconds."""
        st = self.stack
        k = i % len(conns)
        if conns[k] is None:
            conns[k] = st.tls_connect(COMMUNE)
        t0 = time.monotonic()
        send_raw(conns[k], st.build_request(TARGET))
        r = read_response(conns[k])
        t1 = time.monotonic()
        if (r.header("Connection") or "").lower() == "close":
            conns[k].close()
            conns[k] = None
        return t0, t1, r

    def test_window_refusal_and_recovery(self):
        st = self.stack
        st.token(COMMUNE)
        st.mock_reset()
        conns = [None] * 4  # several connections: the log is shared by the workers
        sent = []
        try:
            # N admitted, remaining counting down; SPACING s apart, so that
            # a refusal that took the place of an admission in the log would
            # delay the next free slot by that much (checked below)
            for i in range(N):
                if i:
                    time.sleep(max(0.0, sent[0][0] + i * SPACING - time.monotonic()))
                t0, t1, r = self.send(conns, i)
                sent.append((t0, t1, r))
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("RateLimit-Limit"), str(N), r)
                self.assertEqual(r.header("RateLimit-Remaining"), str(N - 1 - i), r)
                reset = int(r.header("RateLimit-Reset"))
                self.assertTrue(1 <= reset <= WINDOW_S, r)
                self.assertIsNone(r.header("Retry-After"), r)
            t_first_admit_send, t_first_admit_recv = sent[0][0], sent[0][1]
            # N + 1: 429 900804 with the headers
            t_ref, _, r = self.send(conns, N)
            sent.append((t_ref, _, r))
            self.assertErrorBody(r, 429, "900804")
            self.assertEqual(r.json()["erreur"]["message"], "Message throttled out")
            self.assertEqual(r.header("RateLimit-Limit"), str(N), r)
            self.assertEqual(r.header("RateLimit-Remaining"), "0", r)
            ra = int(r.header("Retry-After"))
            self.assertTrue(1 <= ra <= WINDOW_S, r)
            self.assertEqual(int(r.header("RateLimit-Reset")), ra, r)
            # keep hammering while refused: the refusals must not move the
            # moment a slot frees
            ras = [ra]
            readmitted = None
            deadline = t_ref + ra + 3.0
            for i in range(N + 1, N + 1 + 2000):
                if time.monotonic() >= deadline:
                    break
                t0, t1, r = self.send(conns, i)
                sent.append((t0, t1, r))
                if r.status == 200:
                    readmitted = (t0, t1, r)
                    break
                self.assertErrorBody(r, 429, "900804")
                ras.append(int(r.header("Retry-After")))
                time.sleep(0.02)
            refusals = len(ras)
            self.assertIsNotNone(readmitted, "no admission within Retry-After (%d s) + 3 s of the first refusal"
                                 % ra)
            # a count, not a rate: 0.4 s of hammering under TSan on a loaded
            # machine is a handful of round trips
            self.assertGreaterEqual(refusals, 3, "the client did not hammer while refused")
            self.assertEqual(ras, sorted(ras, reverse=True), "Retry-After grew while refused: %r" % ras)
            self.assertTrue(all(x >= 1 for x in ras), ras)
            late = readmitted[1] - (t_ref + ra)
            figure("memory: first re-admission vs first refusal + Retry-After (s)", round(late, 3))
            self.assertLessEqual(readmitted[1], t_ref + ra + 1.0,
                                 "admission resumed %.3f s after the Retry-After of the first refusal" % late)
            # exactly when the oldest admission leaves the window: not
            # before, and not later than one hammering period + margin
            since_first = readmitted[1] - t_first_admit_send
            figure("memory: first re-admission after the first admission (s, window %d)" % WINDOW_S,
                   round(since_first, 3))
            self.assertGreaterEqual(readmitted[1], t_first_admit_send + WINDOW_S - 0.02,
                                    "re-admitted %.3f s after the first admission" % since_first)
            # not later: no request sent after the first admission's slot
            # freed was refused. The gateway reads CLOCK_MONOTONIC (as
            # time.monotonic) when the request has arrived, after t_send, and
            # the first admission was decided before t_first_admit_recv; 2 ms
            # for the millisecond truncation. Causal, so no scheduling margin:
            # a refusal that took the place of an admission in the log delays
            # the free slot by SPACING, ~6 hammering periods refused here.
            freed = t_first_admit_recv + WINDOW_S + 0.002
            late_refusals = [round(t0 - freed, 3) for t0, _, r in sent[N + 1:] if r.status == 429 and t0 > freed]
            self.assertEqual(late_refusals, [], "refused after the first admission left the window (s after it):"
                             " the refusals delayed it (re-admitted %.3f s after the first admission)" % since_first)
            self.assertEqual(readmitted[2].header("RateLimit-Limit"), str(N))
            # fill the window again (a few slots freed meanwhile): refused,
            # then admitted after waiting the Retry-After given, without
            # asking in between
            for i in range(5000, 5000 + N + 1):
                t0, _, r = self.send(conns, i)
                sent.append((t0, _, r))
                if r.status != 200:
                    break
            self.assertErrorBody(r, 429, "900804")
            ra2 = int(r.header("Retry-After"))
            self.assertTrue(1 <= ra2 <= WINDOW_S, r)
            time.sleep(max(0.0, t0 + ra2 - time.monotonic()))
            _, _, r = self.send(conns, 6000)
            sent.append((_, _, r))
            self.assertEqual(r.status, 200, "not admitted after waiting Retry-After %d s: %r" % (ra2, r))
        finally:
            for c in conns:
                if c is not None:
                    c.close()
        # journal: one record per request, the quota decision on each
        rids = {r.header("X-Request-ID"): r for _, _, r in sent}
        self.assertNotIn(None, rids)
        recs = journal_by_rid(st, rids)
        admitted = []
        for rid, r in rids.items():
            rec = recs[rid]
            self.assertEqual(rec["status"], r.status, rec)
            self.assertEqual(rec.get("habilitation"), PARTNERS[COMMUNE]["id"], rec)
            self.assertEqual(rec.get("quota"), {"limit": N, "remaining": int(r.header("RateLimit-Remaining")),
                                                "store": "memory"}, rec)
            if r.status == 429:
                self.assertEqual((rec.get("decision"), rec.get("reason"), rec.get("code")),
                                 ("deny", "quota.exceeded", "900804"), rec)
            else:
                self.assertEqual(rec.get("decision"), "allow", rec)
                admitted.append(journal_interval(rec))
        self.assertEqual(len(admitted), sum(1 for _, _, r in sent if r.status == 200))
        self.assertGreaterEqual(len(admitted), N + 2)
        self.assertLessEqual(proven_max_in_window(admitted, WINDOW_MS), N)
        # only admitted requests reached the backend
        self.assertEqual(st.mock_stats()["requests"], len(admitted))


# --------------------------------------------------------------------------
# 2./3. exactness across three instances


class ExactnessCase(unittest.TestCase):
    """Three gateway instances (three stacks: same PKI and policies, each
    its own ports, mock and journal) sharing one Redis store."""

    stacks = ()
    LOAD_S = 2 * WINDOW_S + 2.5  # more than two windows
    THREADS = 3                  # per stack and partner

    @classmethod
    def make_stacks(cls, quota, policy_hook):
        cls.stacks = []
        for i in range(3):
            st = Stack("%s-%d" % (cls.__name__, i), quota=quota, policy_hook=policy_hook)
            cls.stacks.append(st)
            cls.addClassCleanup(st.stop)
            st.start()
            for cert in (COMMUNE, DEPT):
                st.token(cert)
        # a new Redis has no marker: the first clients wait the sync grace
        # (docs/quotas.md) before Redis decides (bounded)
        for st in cls.stacks:
            if quota.get("store") == "redis" and not wait_for(lambda: readyz_quota_store(st) == "redis", 10):
                raise AssertionError("the Redis client of %s did not come up" % st.name)

    def run_load(self, partners, poll_port_of_key):
        """Concurrent keep-alive clients (THREADS per instance and partner,
        one request every 4 ms each) on the three instances for LOAD_S s;
        <partners>: the certificates; <poll_port_of_key>: {key: port of the
        Redis node to poll}. Returns (loaders, {key: poller}, {key: Redis
        TIME ms at the start}, {key: at the end})."""
        for st in self.stacks:
            st.mock_reset()
        pollers = {}
        for key, port in poll_port_of_key.items():
            redis_call(port, "DEL", key)
            pollers[key] = RedisLogPoller(port, [key])
            pollers[key].start()
        loaders = [Loader(st, cert=cert, tag=i, pace=0.004)
                   for i, st in enumerate(self.stacks) for cert in partners for _ in range(self.THREADS)]
        t_start = {k: redis_time_ms(p) for k, p in poll_port_of_key.items()}
        m0 = time.monotonic()
        for ld in loaders:
            ld.deadline = m0 + self.LOAD_S
        run_loaders(loaders, self.LOAD_S + 30)
        t_end = {k: redis_time_ms(p) for k, p in poll_port_of_key.items()}
        figure("%s: load %.2f s by the monotonic clock, %s ms by Redis TIME"
               % (self.__class__.__name__, time.monotonic() - m0, [t_end[k] - t_start[k] for k in t_end]), "")
        for p in pollers.values():
            p.finish()
        return loaders, pollers, t_start, t_end

    def check_exact(self, label, loaders, poller, key, habilitation, cert, t_start, t_end):
        # every answer is 200 or 429 900804, no failed connection
        errors = [e for ld in loaders for e in ld.errors]
        self.assertEqual(errors, [], "client failures")
        mine = [r for ld in loaders if ld.cert == cert for r in ld.results]
        statuses = {}
        for r in mine:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
            if r["status"] == 429:
                self.assertEqual(json.loads(r["body"])["erreur"]["code"], "900804", r)
                self.assertGreaterEqual(int(r["retry_after"]), 1, r)
            self.assertEqual(r["limit"], str(N), r)
        self.assertEqual(set(statuses), {200, 429}, statuses)
        # demand far above N: at least 5 N requests per window
        self.assertGreater(len(mine), 5 * N * self.LOAD_S / WINDOW_S, statuses)
        self.assertEqual(poller.errors, [], "polling the Redis log of %s" % key)
        # the journals of the three instances
        adm_rids, adm_iv, per_instance, degraded = set(), [], [0, 0, 0], set()
        for i, st in enumerate(self.stacks):
            rids = [r["rid"] for r in mine if r["stack"] == i]
            recs = journal_by_rid(st, rids)
            for r in mine:
                if r["stack"] != i:
                    continue
                rec = recs[r["rid"]]
                self.assertEqual(rec["status"], r["status"], rec)
                self.assertEqual(rec.get("habilitation"), habilitation, rec)
                q = rec.get("quota") or {}
                self.assertEqual(q.get("limit"), N, rec)
                if q.get("store") == "degraded":
                    degraded.add(rec["request_id"])
                if r["status"] == 200:
                    self.assertEqual(q.get("store"), "redis", rec)
                    adm_rids.add(rec["request_id"])
                    adm_iv.append(journal_interval(rec))
                    per_instance[i] += 1
        self.assertEqual(degraded, set(), "decisions taken without Redis (timeout_ms 1000)")
        # the Redis log: the server's time of every admission
        log = poller.log[key]
        scores = sorted(log.values())
        self.assertTrue(adm_rids <= set(log), "admitted but not in the Redis log: %s"
                        % sorted(adm_rids - set(log))[:5])
        extra = set(log) - adm_rids
        self.assertEqual(extra, set(), "admitted in Redis but not served (no timeout happened)")
        max_redis = max_in_window(scores, WINDOW_MS)
        # N + 1 consecutive admissions always span at least the window
        gaps = [scores[i + N] - scores[i] for i in range(len(scores) - N)]
        counts = aligned_counts(scores, WINDOW_MS, scores[0], t_end)
        proven = proven_max_in_window(adm_iv, WINDOW_MS)
        naive_ts = max_in_window([iv[1] - 1 for iv in adm_iv], WINDOW_MS)
        figure("%s %s: admitted %d of %d requests, per instance %s" % (label, key, len(scores), len(mine),
                                                                       per_instance), "")
        figure("%s %s: max admissions in any rolling %d s window (Redis scores) vs N=%d"
               % (label, key, WINDOW_S, N), max_redis)
        figure("%s %s: min span of N+1 consecutive admissions (ms, >= %d required)" % (label, key, WINDOW_MS),
               min(gaps) if gaps else None)
        figure("%s %s: per aligned window (Redis)" % (label, key), counts)
        figure("%s %s: admissions (Redis ms after the load started; load ended at %d)"
               % (label, key, t_end - t_start), [s - t_start for s in scores])
        figure("%s %s: journals: proven max %d, naive max by ts %d" % (label, key, proven, naive_ts), "")
        self.assertLessEqual(max_redis, N)
        self.assertTrue(all(g >= WINDOW_MS for g in gaps), gaps)
        self.assertLessEqual(proven, N)
        self.assertGreaterEqual(len(counts), 2, "fewer than two full windows in the run")
        self.assertEqual(counts, [N] * len(counts), "each full window admits exactly N while demand exceeds it")
        # the first admission came right after the start (demand from the
        # first moment), and the total is N per started window
        self.assertLess(scores[0] - t_start, 1500)
        started = math.ceil((t_end - scores[0]) / WINDOW_MS)
        self.assertLessEqual(len(scores), N * started)
        self.assertGreaterEqual(len(scores), N * (started - 1))
        # a shared window: with three separate ones, 3 N per window
        self.assertEqual(sum(per_instance), len(scores))
        self.assertTrue(all(n > 0 for n in per_instance), "an instance admitted nothing: %s" % per_instance)
        return len(scores)


class TestRedisThreeInstances(ExactnessCase):

    @classmethod
    def setUpClass(cls):
        require_redis()
        cls.redis = RedisServer("standalone")
        cls.addClassCleanup(cls.redis.stop)
        cls.redis.start()
        cls.make_stacks(redis_quota(["127.0.0.1:%d" % cls.redis.port]), per_minute_hook(N))

    def test_exact_across_three_instances(self):
        key = quota_key(PARTNERS[COMMUNE]["id"])
        loaders, pollers, t_start, t_end = self.run_load([COMMUNE], {key: self.redis.port})
        admitted = self.check_exact("standalone", loaders, pollers[key], key, PARTNERS[COMMUNE]["id"], COMMUNE,
                                    t_start[key], t_end[key])
        # only admitted requests reached the backends
        self.assertEqual(sum(st.mock_stats()["requests"] for st in self.stacks), admitted)
        for st in self.stacks:
            self.assertEqual(readyz_quota_store(st), "redis")


class TestRedisClusterThreeInstances(ExactnessCase):
    THREADS = 2

    @classmethod
    def setUpClass(cls):
        require_redis()
        cls.cluster = RedisCluster("cluster")
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        # the commune's key and the departement's on two different masters
        cls.hab = {COMMUNE: PARTNERS[COMMUNE]["id"]}
        own_c = cls.cluster.owner(crc16(cls.hab[COMMUNE].encode()) % 16384)
        for n in range(9002, 9100):
            h = "H%d" % n
            if cls.cluster.owner(crc16(h.encode()) % 16384) not in (own_c, None):
                cls.hab[DEPT] = h
                break
        else:
            raise RuntimeError("no habilitation id found on another master")

        def hook(pols, stack):
            per_minute_hook(N)(pols, stack)
            pols[PARTNERS[DEPT]["file"]]["habilitation"]["id"] = cls.hab[DEPT]

        cls.make_stacks(redis_quota(cls.cluster.seeds, cluster=True), hook)

    def test_exact_on_a_cluster_two_masters(self):
        cl = self.cluster
        keys = {cert: quota_key(h) for cert, h in self.hab.items()}
        owner = {}
        for cert, key in keys.items():
            slot = cl.nodes[0].call("CLUSTER", "KEYSLOT", key)
            self.assertEqual(slot, crc16(self.hab[cert].encode()) % 16384, key)
            owner[key] = cl.owner(slot)
        self.assertNotEqual(owner[keys[COMMUNE]], owner[keys[DEPT]], "both keys on one master")
        loaders, pollers, t_start, t_end = self.run_load([COMMUNE, DEPT], owner)
        total = 0
        for cert, key in keys.items():
            total += self.check_exact("cluster", loaders, pollers[key], key, self.hab[cert], cert,
                                      t_start[key], t_end[key])
        self.assertEqual(sum(st.mock_stats()["requests"] for st in self.stacks), total)
        # each key lives on its master only: the third master holds nothing,
        # the other master answers MOVED for it
        third = [n for n in cl.nodes if n.port not in owner.values()]
        self.assertEqual(len(third), 1)
        self.assertEqual(third[0].call("DBSIZE"), 0)
        for key, port in owner.items():
            other = next(p for p in owner.values() if p != port)
            with self.assertRaisesRegex(RespError, "^MOVED "):
                cl.node(other).call("EXISTS", key)
            # the function is on every master
            for n in cl.nodes:
                libs = n.call("FUNCTION", "LIST", "LIBRARYNAME", "opale2")
                self.assertEqual(len(libs), 1, "function not loaded on %d" % n.port)
        for st in self.stacks:
            self.assertEqual(readyz_quota_store(st), "redis")


# --------------------------------------------------------------------------
# 4./5. faults


NF = 21                      # odd: ceil(NF / 2) = 11, floor would be 10
SHARE = math.ceil(NF / 2)


class TestRedisFaults(GatewayTestCase):
    """One instance (configured as one of two: "instances": 2), one Redis
    that the tests stop, restart and pause. Each test sets its quota
    section and restarts the gateway."""

    @classmethod
    def setUpClass(cls):
        require_redis()
        cls.redis = RedisServer("faults")
        cls.addClassCleanup(cls.redis.stop)
        cls.redis.start()
        cls.node = "127.0.0.1:%d" % cls.redis.port
        cls.stack = Stack(cls.__name__, quota=redis_quota([cls.node]), policy_hook=per_minute_hook(NF))
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def setUp(self):
        r = self.redis
        if r.paused:
            r.resume()
        if not r.running():
            r.start()
        r.call("FLUSHALL")

    def tearDown(self):
        if self.redis.paused:
            self.redis.resume()

    def configure(self, **kw):
        st = self.stack
        st.quota = redis_quota([self.node], **kw)
        # Redis is emptied once the previous test's gateway has exited: one
        # still running (or draining) sees its marker gone within a probe
        # and writes its window back (docs/quotas.md), which filled the key
        # before the next test began (TSan round: 429 on test_b's first call)
        st.stop_gateway()
        self.redis.call("FLUSHALL")
        st.restart_gateway(st.build_conf())
        st.tokens.clear()
        st.token(COMMUNE)
        self.assertIsNone(st.gw.poll())
        # Redis answers for this gateway (bounded)
        ok = wait_for(lambda: readyz_quota_store(st) == "redis", 10)
        self.assertTrue(ok, "the gateway's Redis client did not come up")

    def one(self, timeout=harness.DEFAULT_TIMEOUT, **kw):
        t0 = time.monotonic()
        r = self.stack.request(TARGET, timeout=timeout, **kw)
        return r, time.monotonic() - t0

    def store_of(self, resp):
        rec = self.assertJournal(self.assertRequestId(resp))
        return rec, (rec.get("quota") or {}).get("store")

    def wait_back_to_redis(self, timeout=12.0):
        """Requests (bounded, one every 0.1 s) until one is decided with the
        full limit again (RateLimit-Limit NF: Redis; SHARE when degraded)
        and /readyz says "redis"; the seconds it took. The journal
        confirms it afterwards."""
        t0 = time.monotonic()
        st = self.stack

        def back():
            r = st.request(TARGET)
            return r.status in (200, 429) and r.header("RateLimit-Limit") == str(NF) \
                and readyz_quota_store(st) == "redis"

        self.assertTrue(wait_for(back, timeout, step=0.1), "not back to the Redis store within %.0f s" % timeout)
        return time.monotonic() - t0

    def test_a_local_fallback_when_redis_stops_mid_load(self):
        st = self.stack
        self.configure(on_store_failure="local", instances=2, timeout_ms=200)
        stop = threading.Event()
        loaders = [Loader(st, stop=stop, pace=0.004) for _ in range(3)]
        for ld in loaders:
            ld.start()
        try:
            time.sleep(1.5)
            self.redis.stop(signal.SIGTERM)
            t_stop = time.time()  # Redis has exited: no decision of its after this
            seen_degraded = wait_for(lambda: readyz_quota_store(st) == "degraded", 3.0)
            time.sleep(WINDOW_S + 2.0)
            t_restart = time.time()
            self.redis.start()  # same port, empty: no function, no key
            back_s = self.wait_back_to_redis()
            # the restarted Redis got the function again, without operator
            # action, and counts again
            libs = self.redis.call("FUNCTION", "LIST", "LIBRARYNAME", "opale2")
            zcard = self.redis.call("ZCARD", quota_key(PARTNERS[COMMUNE]["id"]))
            time.sleep(0.5)
        finally:
            stop.set()
            for ld in loaders:
                ld.join(timeout=harness.DEFAULT_TIMEOUT + 5)
        self.assertFalse(any(ld.is_alive() for ld in loaders), "client threads stuck")
        self.assertIsNone(st.gw.poll(), "the gateway died")
        self.assertTrue(seen_degraded, "/readyz never said quota_store degraded while Redis was down")
        self.assertEqual([e for ld in loaders for e in ld.errors], [], "failed connections or requests")
        res = [r for ld in loaders for r in ld.results]
        self.assertEqual({r["status"] for r in res}, {200, 429})
        recs = journal_by_rid(st, [r["rid"] for r in res])
        by_store = {}
        deg_adm = []
        for r in res:
            rec = recs[r["rid"]]
            q = rec["quota"]
            by_store[q["store"]] = by_store.get(q["store"], 0) + 1
            self.assertEqual(q["limit"], int(r["limit"]), rec)
            if q["store"] == "degraded":
                self.assertEqual(q["limit"], SHARE, rec)
                self.assertEqual(r["limit"], str(SHARE), r)
                if r["status"] == 200:
                    deg_adm.append(rec)
            else:
                self.assertEqual(q["store"], "redis", rec)
                self.assertEqual(q["limit"], NF, rec)
            t = ts_ms(rec["ts"]) / 1000.0
            if r["status"] == 200 and t_stop + 0.3 < t < t_restart:
                self.assertEqual(q["store"], "degraded", rec)
            if r["status"] == 200 and t > t_restart + back_s + 1.0:
                self.assertEqual(q["store"], "redis", rec)
        figure("local: records by store", by_store)
        self.assertIn("degraded", by_store)
        # the share: ceil(NF / instances) in any rolling window, exactly
        # SHARE in the first degraded burst
        iv = [journal_interval(r) for r in deg_adm]
        proven = proven_max_in_window(iv, WINDOW_MS)
        first = min(ts_ms(r["ts"]) for r in deg_adm)
        burst = sum(1 for r in deg_adm if ts_ms(r["ts"]) < first + WINDOW_MS - 300)
        figure("local: degraded admissions %d (first %.2f s after the stop, outage %.2f s), first window %d, "
               "proven max %d (share %d of %d)" % (len(deg_adm), first / 1000.0 - t_stop, t_restart - t_stop,
                                                  burst, proven, SHARE, NF), "")
        self.assertLessEqual(proven, SHARE)
        self.assertEqual(burst, SHARE)
        self.assertEqual(len(libs), 1, "the function was not loaded again")
        self.assertGreaterEqual(zcard, 1)
        # back to Redis: the first record decided by Redis after the restart
        back_rec = min((ts_ms(recs[r["rid"]]["ts"]) for r in res if recs[r["rid"]]["quota"]["store"] == "redis"
                        and ts_ms(recs[r["rid"]]["ts"]) > t_restart * 1000), default=None)
        self.assertIsNotNone(back_rec, "no decision by Redis after its restart")
        figure("local: first Redis decision after the restart (s)", round(back_rec / 1000.0 - t_restart, 2))

    def test_b_deny_when_redis_is_down(self):
        st = self.stack
        self.configure(on_store_failure="deny")
        r, _ = self.one()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.store_of(r)[1], "redis")
        self.redis.stop(signal.SIGKILL)
        st.mock_reset()
        recs = []
        for _ in range(5):
            r, dt = self.one()
            self.assertErrorBody(r, 503, "910230")
            self.assertGreaterEqual(int(r.header("Retry-After")), 1, r)
            self.assertLess(dt, 2.0)
            rec, store = self.store_of(r)
            self.assertEqual((rec.get("status"), rec.get("code"), rec.get("reason")),
                             (503, "910230", "quota.store_unavailable"), rec)
            self.assertNotEqual(rec.get("decision"), "allow", rec)
            recs.append(rec)
        self.assertEqual(st.mock_stats()["requests"], 0, "a request reached the backend without a quota decision")
        self.assertEqual(readyz_quota_store(st), "degraded")
        self.assertIsNone(st.gw.poll())
        # journalled as a degraded quota decision, like the other modes
        # (docs/quotas.md: quota {limit, remaining, store} on every request
        # that reached the quota stage)
        for rec in recs:
            self.assertEqual((rec.get("quota") or {}).get("store"), "degraded",
                             "the deny-mode 503 is journalled without its quota decision: %r" % rec)

    def test_c_allow_when_redis_is_down(self):
        st = self.stack
        self.configure(on_store_failure="allow")
        self.redis.stop(signal.SIGKILL)
        st.mock_reset()
        for i in range(NF + 5):  # beyond the limit: "allow" is unsafe by design
            r, _ = self.one()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("RateLimit-Limit"), str(NF), r)
            rec, store = self.store_of(r)
            self.assertEqual(store, "degraded", rec)
            self.assertEqual(rec.get("decision"), "allow", rec)
        self.assertEqual(st.mock_stats()["requests"], NF + 5)
        self.assertEqual(readyz_quota_store(st), "degraded")

    def test_d_paused_redis_timeout_honoured(self):
        st = self.stack
        timeout_ms = 50
        self.configure(on_store_failure="local", instances=2, timeout_ms=timeout_ms)
        r, _ = self.one()
        self.assertEqual(self.store_of(r)[1], "redis")
        self.redis.pause()
        try:
            loaders = [Loader(st, deadline=time.monotonic() + 2.5, max_requests=2000, timeout=3.0)
                       for _ in range(3)]
            run_loaders(loaders, 20)
            readyz_during = readyz_quota_store(st)
        finally:
            self.redis.resume()
        back_s = self.wait_back_to_redis()
        figure("pause: back to redis after SIGCONT (s)", round(back_s, 2))
        self.assertEqual([e for ld in loaders for e in ld.errors], [], "failed or hung requests")
        res = [r for ld in loaders for r in ld.results]
        self.assertGreater(len(res), 10)
        self.assertEqual({r["status"] for r in res} - {200, 429}, set())
        lat = [r["t_recv"] - r["t_send"] for r in res]
        recs = journal_by_rid(st, [r["rid"] for r in res])
        stores = {}
        gw_ms = []
        for r in res:
            rec = recs[r["rid"]]
            stores[rec["quota"]["store"]] = stores.get(rec["quota"]["store"], 0) + 1
            gw_ms.append(rec["ms"])
        figure("pause: %d requests, client latency max %.3f s, gateway ms max %d, stores %s"
               % (len(res), max(lat), max(gw_ms), stores), "")
        self.assertEqual(set(stores), {"degraded"}, "decided while Redis was paused?")
        # waiting for Redis would take the whole 2.5 s pause; the slack is
        # the machine's (a stop of a busy core lasts 100 ms, a sanitizer
        # build is slower), taken by the worst of ~2,000 requests
        slack = harness.time_bound(st.gw.pid, 0.2) + 0.3
        self.assertLessEqual(max(gw_ms), timeout_ms + slack * 1000)
        self.assertLessEqual(max(lat), timeout_ms / 1000.0 + 0.35 + slack)
        self.assertIsNone(st.gw.poll())
        self.assertEqual(readyz_during, "degraded")

    def test_e_client_gone_while_quota_in_flight(self):
        st = self.stack
        self.configure(on_store_failure="local", instances=2, timeout_ms=8000)
        r, _ = self.one()
        self.assertEqual(self.store_of(r)[1], "redis")
        st.mock_reset()
        corrs = [str(uuid.uuid4()) for _ in range(4)]
        socks = [st.tls_connect(COMMUNE) for _ in corrs]
        # the bytes of the smallest form the four quota calls can take (one
        # FCALL opale2_quota_n of four 36-character request ids, when they
        # are decided in one loop pass) and of the EXISTS probe each
        # connection may have pending
        fcall4 = resp_len([b"FCALL", b"opale2_quota_n", b"2", quota_key(PARTNERS[COMMUNE]["id"]).encode(),
                           b"opale:q:live", str(NF).encode(), str(WINDOW_MS).encode()] + [b"x" * 36] * 4)
        probe = resp_len([b"EXISTS", b"opale:q:live"])

        def sent_calls():
            status, text = st.admin_call("GET", "/metrics")
            self.assertEqual(status, 200, text)
            m = re.search(r'^opale_redis_commands_total\{outcome="sent"\} (\d+)$', text, re.M)
            self.assertIsNotNone(m, "no opale_redis_commands_total{outcome=\"sent\"} in /metrics")
            return int(m.group(1))
        sent0 = sent_calls()
        self.redis.pause()
        try:
            t_sent = time.monotonic()
            for s, corr in zip(socks, corrs):
                send_raw(s, st.build_request(TARGET, correlation_id=corr))
            # wait until the four calls are written (the gateway counts a
            # call sent when it hands its command to the socket, in the same
            # loop pass) and sit unread in the stopped Redis's socket buffers
            # (a fixed sleep was not enough on a loaded machine: the gateway
            # saw the close first, and no FCALL left)
            def all_sent():
                q, n = unread_by_server(self.redis.port)
                self.assertGreater(fcall4, n * probe)  # the probes alone cannot pass for the calls
                return sent_calls() - sent0 >= 4 and q >= fcall4
            self.assertTrue(wait_for(all_sent, 6, step=0.02),
                            "the four quota commands did not reach Redis: %d sent, %r unread bytes, "
                            "at least %d expected" % (sent_calls() - sent0, unread_by_server(self.redis.port), fcall4))
            time.sleep(0.1)
            for i, s in enumerate(socks):
                # quiet close for half, RST for the others
                if i % 2:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            time.sleep(0.4)
            in_flight = time.monotonic() - t_sent
        finally:
            self.redis.resume()
        self.assertLess(in_flight, 7.5, "the quota command may have timed out before the close")
        # the gateway keeps serving
        self.assertIsNone(st.gw.poll(), "the gateway died")
        r, _ = self.one()
        # the window's members now, before anything slow: the key lives
        # WINDOW_S (4 s) after this call's FCALL, and reading the journal
        # once per request below (thousands of records from the earlier
        # tests of the class) took longer than that under load: the key had
        # expired by the third request (seen in CI and here, 2 runs of 2
        # after test_d), the check said "never reached Redis"
        admitted = {m.decode() if isinstance(m, bytes) else m
                    for m in self.redis.call("ZRANGE", quota_key(PARTNERS[COMMUNE]["id"]), 0, -1)}
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.store_of(r)[1], "redis")
        for corr in corrs:
            rec = st.wait_journal(lambda x, c=corr: x.get("correlation_id") == c, timeout=harness.JOURNAL_WAIT)
            self.assertIsNotNone(rec, "no journal record for the request of a closed connection %s" % corr)
            ok = (rec.get("status") == 499 and rec.get("reason") == "client.closed") or \
                rec.get("status") in (200, 429)
            self.assertTrue(ok, rec)
            figure("disconnect in flight: journal", (rec.get("status"), rec.get("reason"),
                                                     (rec.get("quota") or {}).get("store")))
            # the FCALL had left: Redis ran it when resumed (its late reply
            # ignored by the gateway), admitting the request id
            self.assertIn(rec["request_id"], admitted,
                          "the quota command of %s never reached Redis" % rec["request_id"])
        self.assertEqual(st.mock_stats()["requests"], 1, "a closed request reached the backend")
        self.assertIsNone(st.gw.poll())


if __name__ == "__main__":
    unittest.main()

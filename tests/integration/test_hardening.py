"""Issue 12, sections 2, 3 (journal bound) and 6 (admin, half-close): what an
unauthenticated or misbehaving client may cost the gateway, against the real
processes.

- file descriptors: the configuration's need against RLIMIT_NOFILE at start
  (refused with both numbers, or the soft limit raised), and an accept()
  flood past the limit (no spinning, one log line per interval, a metric,
  service back once the flood ends);
- TLS handshakes in progress per source address;
- bounded journal lines;
- admin API authentication failures: journalled, then rate-limited;
- a client that half-closes after its request still gets the response.
"""
import json
import os
import re
import resource
import socket
import ssl
import subprocess
import time
import unittest

import harness

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of <pid> (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def soft_nofile(pid):
    return resource.prlimit(pid, resource.RLIMIT_NOFILE)[0]


def metric(stack, name, required=True):
    status, text = stack.admin_call("GET", "/metrics")
    assert status == 200, (status, text)
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    assert m or not required, "no metric %s" % name
    return int(m.group(1)) if m else None


def connect_from(port, source, cert_name=None, pki=None, timeout=harness.DEFAULT_TIMEOUT):
    """A TLS socket to 127.0.0.1:<port> from the local address <source>."""
    ctx = harness.tls_context(pki=pki, cert_name=cert_name)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    try:
        s = ctx.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise
    s.settimeout(timeout)
    return s


class LimitedStack(harness.Stack):
    """A Stack whose gateway starts with RLIMIT_NOFILE = <nofile> (soft,
    hard), set in the child before exec."""

    def __init__(self, name, nofile=None, **kw):
        super().__init__(name, **kw)
        self.nofile = nofile

    def _preexec(self):
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)

    def start_gateway(self, extra_args=()):
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        self._stderr_start = os.path.getsize(self.stderr_path)
        try:
            self.gw = subprocess.Popen([harness.GW_BIN, "-c", self.conf_path, *extra_args],
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.dir,
                                       preexec_fn=self._preexec)
        finally:
            out.close()
            err.close()
        harness._register(self.gw)
        self.wait_ready()

    def prepare(self):
        """Config and policies written, the mock started, no gateway."""
        self.port = harness.free_port()
        self.admin_port = harness.free_port()
        if self.use_mock:
            self.start_mock()
        self.conf = self.build_conf()
        self.write_conf()
        self.policies = self.build_policies()
        self.write_policies(self.policies)

    def run_gateway(self, *args):
        """Run the gateway in the foreground with <args> (e.g. -t) under the
        limit; (exit code, stderr)."""
        r = subprocess.run([harness.GW_BIN, *args, "-c", self.conf_path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.dir, timeout=30,
                           preexec_fn=self._preexec)
        return r.returncode, r.stderr.decode(errors="replace")


def hard_nofile():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


class TestDescriptorLimit(unittest.TestCase):
    """The configuration's descriptor need against RLIMIT_NOFILE at start."""

    @classmethod
    def setUpClass(cls):
        harness.require_binaries()

    def stack(self, name, nofile, limits=None, workers=2):
        def hook(conf, st):
            conf["workers"] = workers
            if limits:
                conf["limits"].update(limits)
        st = LimitedStack(name, nofile=nofile, conf_hook=hook)
        self.addCleanup(st.stop)
        st.prepare()
        return st

    NEED_RE = re.compile(r"needs (\d+) file descriptors \(.*\), and at least (\d+) with one per client "
                         r"connection, but the RLIMIT_NOFILE hard limit is (\d+)")

    def test_refuses_to_start_when_the_hard_limit_is_too_low(self):
        st = self.stack("nofile-low", (256, 256), limits={"max_connections": 5000})
        # 2 workers x 5000 x 2 descriptors alone: 20000
        for args in (("-t",), ()):
            rc, err = st.run_gateway(*args)
            self.assertEqual(rc, 1, err)
            m = self.NEED_RE.search(err)
            self.assertIsNotNone(m, err)
            self.assertGreaterEqual(int(m.group(1)), 20000, err)
            self.assertGreaterEqual(int(m.group(2)), 10000, err)
            self.assertEqual(int(m.group(3)), 256, err)
            self.assertIn("%s: limits.max_connections:" % st.conf_path, err)
            self.assertNotIn("ready", err)

    def test_raises_the_soft_limit_when_the_hard_one_allows(self):
        hard = hard_nofile()
        if hard != resource.RLIM_INFINITY and hard < 8192:
            self.skipTest("hard RLIMIT_NOFILE %d below what the test needs" % hard)
        st = self.stack("nofile-raise", (256, 8192), limits={"max_connections": 1000})
        rc, err = st.run_gateway("-t")
        self.assertEqual(rc, 0, err)
        st.start_gateway()
        err = st.gateway_stderr()
        m = re.search(r"RLIMIT_NOFILE raised from 256 to (\d+)", err)
        self.assertIsNotNone(m, err)
        need = int(m.group(1))
        self.assertGreaterEqual(need, 2 * 1000 * 2)
        self.assertLessEqual(need, 8192)
        self.assertEqual(soft_nofile(st.gw.pid), need)
        r = st.request("/opale/v1/etatSante")
        self.assertEqual(r.status, 200, r)

    def test_between_the_floor_and_the_need_starts_with_a_warning(self):
        """One descriptor per connection fits, the worst case (an upstream
        socket for each) does not: the soft limit goes to the hard one and
        the start says so with both numbers."""
        st = self.stack("nofile-warn", (256, 3000), limits={"max_connections": 1000})
        st.start_gateway()
        err = st.gateway_stderr()
        m = re.search(r"warning: limits\.max_connections: the configuration needs (\d+) file descriptors "
                      r"\(.*\) but the RLIMIT_NOFILE hard limit is 3000; soft limit set to 3000", err)
        self.assertIsNotNone(m, err)
        self.assertGreater(int(m.group(1)), 4000)
        self.assertEqual(soft_nofile(st.gw.pid), 3000)
        r = st.request("/opale/v1/etatSante")
        self.assertEqual(r.status, 200, r)

    def test_unset_max_connections_fits_the_hard_limit(self):
        st = self.stack("nofile-default", (256, 2048))
        st.start_gateway()
        err = st.gateway_stderr()
        m = re.search(r"limits\.max_connections not set: (\d+) per worker, what the RLIMIT_NOFILE hard "
                      r"limit 2048 allows", err)
        self.assertIsNotNone(m, err)
        per_worker = int(m.group(1))
        self.assertGreater(per_worker, 100)
        self.assertLess(per_worker, 512)
        soft = soft_nofile(st.gw.pid)
        self.assertGreater(soft, 256)
        self.assertLessEqual(soft, 2048)
        r = st.request("/opale/v1/etatSante")
        self.assertEqual(r.status, 200, r)


class TestAcceptFlood(unittest.TestCase):
    """Bare TCP connections past the descriptor limit: the workers pause
    accepting instead of spinning on EMFILE."""

    FLOOD = 300

    @classmethod
    def setUpClass(cls):
        harness.require_binaries()

        def hook(conf, st):
            conf["timeouts"]["handshake_ms"] = 20000  # the flood holds its descriptors
            conf["listeners"][0]["max_handshakes_per_source"] = 0  # one source here: no limit
        cls.stack = harness.Stack("flood", conf_hook=hook)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def test_emfile_flood_does_not_spin(self):
        st = self.stack
        pid = st.gw.pid
        before = metric(st, "opale_accept_fd_exhausted_total", required=False)
        # The limit falls below what is open plus the flood once started (as
        # when a deployment's limit is lower than its configuration thinks).
        soft0, hard0 = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (96, hard0))
        err_start = len(st.gateway_stderr())
        socks = []
        try:
            for i in range(self.FLOOD):
                try:
                    s = socket.create_connection(("127.0.0.1", st.port), timeout=5)
                except OSError as e:
                    ss = subprocess.run(["ss", "-ltn"], stdout=subprocess.PIPE).stdout.decode()
                    raise AssertionError("connect %d: %s\n%s" % (i, e, ss))
                socks.append(s)
            # and a local client of the admin listener (main thread), pending too
            socks.append(socket.create_connection(("127.0.0.1", st.admin_port), timeout=2))
            time.sleep(0.5)
            t0, c0 = time.monotonic(), cpu_seconds(pid)
            time.sleep(3.0)
            t1, c1 = time.monotonic(), cpu_seconds(pid)
            share = (c1 - c0) / (t1 - t0)
            harness_figure("CPU share of the gateway during the flood", "%.1f%%" % (100 * share))
            self.assertLess(share, 0.30, "the gateway used %.0f%% of a core during the flood" % (100 * share))
            self.assertIsNone(st.gw.poll(), "the gateway died")
        finally:
            for s in socks:
                s.close()
        emfile_lines = [ln for ln in st.gateway_stderr()[err_start:].splitlines()
                        if "Too many open files" in ln]
        self.assertGreaterEqual(len(emfile_lines), 1, "the shortage was never reported")
        self.assertLessEqual(len(emfile_lines), 4, "\n".join(emfile_lines[:10]))
        self.assertIn("accepting paused", emfile_lines[0])
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft0, hard0))
        # service is back quickly once the flood has gone
        t = time.monotonic()
        r = None
        for _ in range(20):
            try:
                r = st.request("/opale/v1/etatSante", timeout=2)
                break
            except (OSError, harness.PeerClosed):
                time.sleep(0.1)
        elapsed = time.monotonic() - t
        self.assertIsNotNone(r, "no answer after the flood")
        self.assertEqual(r.status, 200, r)
        self.assertLess(elapsed, 2.0)
        self.assertGreater(metric(st, "opale_accept_fd_exhausted_total"), before or 0)


def harness_figure(what, value):
    print("FIGURE %s: %s" % (what, value))


class TestHandshakesPerSource(unittest.TestCase):
    """One address cannot hold every handshake slot."""

    LIMIT = 4

    @classmethod
    def setUpClass(cls):
        harness.require_binaries()

        def hook(conf, st):
            conf["workers"] = 1
            conf["timeouts"]["handshake_ms"] = 8000
            conf["listeners"][0]["max_handshakes_per_source"] = cls.LIMIT

        def policies(pols, st):
            for p in pols.values():
                p["consumer"]["ip_allowlist"] = ["127.0.0.0/8", "::1/128"]
        cls.stack = harness.Stack("hs-per-source", conf_hook=hook, policy_hook=policies)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def test_slow_handshakes_from_one_address(self):
        st = self.stack
        before = metric(st, "opale_handshakes_refused_per_source_total")
        request = st.build_request("/opale/v1/etatSante")  # its token fetched now
        slow = []
        try:
            for _ in range(20):
                slow.append(socket.create_connection(("127.0.0.1", st.port), timeout=2,
                                                     source_address=("127.0.0.1", 0)))
            # beyond the limit, the gateway closes at once
            closed = 0
            for s in slow:
                s.settimeout(1.0)
                try:
                    if s.recv(1) == b"":
                        closed += 1
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    closed += 1
            self.assertEqual(closed, 20 - self.LIMIT)
            # another address is served meanwhile
            c = connect_from(st.port, "127.0.0.2", cert_name="client-commune", pki=st.pki)
            try:
                harness.send_raw(c, request)
                r = harness.read_response(c)
            finally:
                c.close()
            self.assertEqual(r.status, 200, r)
            # and the first one cannot start another handshake
            with self.assertRaises((ssl.SSLError, OSError)):
                c = connect_from(st.port, "127.0.0.1", cert_name="client-commune", pki=st.pki, timeout=2)
                c.close()
            self.assertGreaterEqual(metric(st, "opale_handshakes_refused_per_source_total") - before,
                                    20 - self.LIMIT + 1)
        finally:
            for s in slow:
                s.close()
        # once its handshakes are gone, the address is served again
        r = None
        for _ in range(20):
            try:
                r = st.request("/opale/v1/etatSante", timeout=2)
                break
            except (OSError, ssl.SSLError, harness.PeerClosed):
                time.sleep(0.1)
        self.assertIsNotNone(r)
        self.assertEqual(r.status, 200, r)

    def test_bad_config_value(self):
        st = self.stack
        conf = json.loads(json.dumps(st.conf))
        conf["listeners"][0]["max_handshakes_per_source"] = -1
        path = st.write_conf(conf, os.path.join(st.dir, "bad.json"))
        r = subprocess.run([harness.GW_BIN, "-t", "-c", path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=st.dir, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("listeners[0].max_handshakes_per_source", r.stderr.decode())


JOURNAL_LINE_MAX = 8192  # docs/journal.md, "Line size"


class TestJournalBound(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_binaries()

        def hook(conf, st):
            conf["limits"]["max_header_bytes"] = 65536
        cls.stack = harness.Stack("journal-bound", conf_hook=hook)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()
        harness.issue_client_cert("hardening-unknown", "hardening-unknown", pki=cls.stack.pki)

    def test_long_path_and_header_from_an_unknown_certificate(self):
        st = self.stack
        path = "/opale/v1/" + "a" * 16384
        tele = "T" * 16384
        corr = harness.new_uuid()
        data = harness.build_request(path, correlation_id=corr, teleservice=tele,
                                     headers=[("User-Agent", "U" * 16384)])
        s = st.tls_connect("hardening-unknown")
        try:
            harness.send_raw(s, data)
            r = harness.read_response(s)
        finally:
            s.close()
        self.assertEqual(r.status, 401, r)
        rec = st.wait_journal(lambda x: x.get("correlation_id") == corr)
        self.assertIsNotNone(rec, "no journal record")
        lines = [ln for ln in st.journal_text().splitlines() if corr in ln]
        self.assertEqual(len(lines), 1)
        harness_figure("journal line of a 16 KB path + 16 KB header", "%d bytes" % len(lines[0]))
        self.assertLessEqual(len(lines[0].encode()) + 1, JOURNAL_LINE_MAX)
        self.assertTrue(rec["path"].endswith("...[truncated]"), rec["path"][-40:])
        self.assertTrue(path.startswith(rec["path"][:-len("...[truncated]")]))
        self.assertTrue(rec["teleservice"].endswith("...[truncated]"))
        self.assertEqual(rec["truncated"], {"teleservice": len(tele), "path": len(path)})
        self.assertNotIn("U" * 300, lines[0])
        # the chain still verifies
        v = subprocess.run([harness.GW_BIN, "--verify-journal", st.journal_path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(v.returncode, 0, v.stdout.decode() + v.stderr.decode())

    def test_short_values_are_not_marked(self):
        st = self.stack
        corr = harness.new_uuid()
        r = st.request("/opale/v1/etatSante", correlation_id=corr)
        self.assertEqual(r.status, 200, r)
        rec = st.wait_journal(lambda x: x.get("correlation_id") == corr)
        self.assertIsNotNone(rec)
        self.assertNotIn("truncated", rec)
        self.assertEqual(rec["path"], "/opale/v1/etatSante")


class TestAdminAuthFailures(unittest.TestCase):
    MAX_FAILURES = 20  # docs/configuration.md, "admin"

    @classmethod
    def setUpClass(cls):
        harness.require_binaries()
        cls.stack = harness.Stack("admin-auth")
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def events(self):
        path = os.path.join(os.path.dirname(self.stack.journal_path), "events.jsonl")
        out = []
        try:
            with open(path) as f:
                for ln in f:
                    if ln.strip():
                        out.append(json.loads(ln))
        except FileNotFoundError:
            pass
        return out

    def call_from(self, source, method, path, token):
        import http.client

        class Conn(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.create_connection((self.host, self.port), self.timeout,
                                                     source_address=(source, 0))
        c = Conn("127.0.0.1", self.stack.admin_port, timeout=harness.DEFAULT_TIMEOUT)
        try:
            hdrs = {"Authorization": "Bearer " + token} if token else {}
            c.request(method, path, body=b"" if method == "POST" else None, headers=hdrs)
            r = c.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            c.close()

    def test_failures_journalled_then_rate_limited(self):
        st = self.stack
        with open(os.path.join(st.pki, "admin.token")) as f:
            good = f.read().strip()
        for i in range(self.MAX_FAILURES):
            status, _, _ = self.call_from("127.0.0.3", "GET" if i % 2 else "POST",
                                          "/metrics" if i % 2 else "/admin/reload",
                                          None if i == 0 else "wrong-%d" % i)
            self.assertEqual(status, 401, i)
        # blocked now, the right token included
        status, hdrs, body = self.call_from("127.0.0.3", "GET", "/metrics", good)
        self.assertEqual(status, 429, body)
        self.assertGreater(int(hdrs["retry-after"]), 0)
        status, _, _ = self.call_from("127.0.0.3", "POST", "/admin/reload", good)
        self.assertEqual(status, 429)
        # health checks need no token and stay open; other sources are served
        status, _, _ = self.call_from("127.0.0.3", "GET", "/healthz", None)
        self.assertEqual(status, 200)
        status, _, _ = self.call_from("127.0.0.4", "GET", "/metrics", good)
        self.assertEqual(status, 200)
        deadline = time.monotonic() + harness.JOURNAL_WAIT
        while time.monotonic() < deadline:
            evs = self.events()
            failed = [e for e in evs if e.get("event") == "admin.auth_failed"]
            blocked = [e for e in evs if e.get("event") == "admin.auth_blocked"]
            if len(failed) >= self.MAX_FAILURES and blocked:
                break
            time.sleep(0.1)
        self.assertEqual(len(failed), self.MAX_FAILURES, failed)
        for i, e in enumerate(failed):
            self.assertEqual(e["client_ip"], "127.0.0.3")
            self.assertEqual(e["failures"], i + 1)
            self.assertEqual(e["reason"], "admin.no_token" if i == 0 else "admin.bad_token")
            self.assertNotIn("wrong-", json.dumps(e), "the presented token was journalled")
        self.assertEqual(failed[0]["path"], "/admin/reload")
        self.assertEqual(failed[1]["path"], "/metrics")
        self.assertEqual(len(blocked), 1)
        self.assertEqual(blocked[0]["client_ip"], "127.0.0.3")
        self.assertEqual(blocked[0]["severity"], "high")
        self.assertGreater(blocked[0]["blocked_s"], 0)
        self.assertGreaterEqual(metric(st, "opale_admin_auth_failures_total"), self.MAX_FAILURES)
        self.assertGreaterEqual(metric(st, "opale_admin_auth_throttled_total"), 2)


def tls_halfclose_request(port, pki, cert_name, request, close_notify, timeout=5.0):
    """Send <request> over TLS, then half-close: a close_notify and FIN
    (<close_notify>) or a bare FIN; then read until the server closes.
    Returns the bytes received (application data)."""
    ctx = harness.tls_context(pki=pki, cert_name=cert_name)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    deadline = time.monotonic() + timeout

    def flush():
        data = out.read()
        if data:
            raw.sendall(data)

    def feed():
        chunk = raw.recv(65536)
        if not chunk:
            inc.write_eof()
        else:
            inc.write(chunk)
        return chunk

    try:
        for _ in range(100):
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                flush()
                feed()
        flush()
        obj.write(request)
        flush()
        if close_notify:
            try:
                obj.unwrap()
            except (ssl.SSLWantReadError, ssl.SSLError):
                pass
            flush()
        raw.shutdown(socket.SHUT_WR)
        got = b""
        while time.monotonic() < deadline:
            try:
                got += obj.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            raw.settimeout(max(0.05, deadline - time.monotonic()))
            if not feed():
                try:
                    got += obj.read(65536)
                except (ssl.SSLError, ValueError):
                    pass
                break
        return got
    finally:
        raw.close()


class TestHalfClose(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_binaries()
        cls.stack = harness.Stack("half-close")
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()
        # the half-close reaches the gateway while the backend is working
        cls.stack.mock_config(latency_ms=300)

    def check(self, close_notify):
        st = self.stack
        corr = harness.new_uuid()
        req = st.build_request("/opale/v1/etatSante", correlation_id=corr)
        before = st.mock_stats()["requests"]
        got = tls_halfclose_request(st.port, st.pki, "client-commune", req, close_notify)
        head, _, body = got.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), got[:300])
        m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
        self.assertIsNotNone(m, head)
        self.assertEqual(len(body), int(m.group(1)), "the response body was cut")
        self.assertIn(b"\r\nconnection: close", head.lower())
        json.loads(body)
        rec = st.wait_journal(lambda x: x.get("correlation_id") == corr)
        self.assertIsNotNone(rec)
        self.assertEqual(rec["status"], 200, rec)
        self.assertEqual(rec["decision"], "allow", rec)
        self.assertEqual(st.mock_stats()["requests"], before + 1)

    def test_bare_fin_after_request(self):
        self.check(close_notify=False)

    def test_close_notify_after_request(self):
        self.check(close_notify=True)

    def test_half_close_before_a_complete_request(self):
        """An incomplete request is never served: the connection closes."""
        st = self.stack
        before = st.mock_stats()["requests"]
        req = st.build_request("/opale/v1/etatSante")
        got = tls_halfclose_request(st.port, st.pki, "client-commune", req[:-2], False, timeout=3.0)
        self.assertEqual(got, b"")
        self.assertEqual(st.mock_stats()["requests"], before)


if __name__ == "__main__":
    unittest.main()

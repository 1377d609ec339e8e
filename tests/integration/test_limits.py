"""limits.max_connections: a worker at its limit stops accepting (the
connections wait in the kernel backlog, as with nginx) and accepts again as
soon as one of its connections closes."""

import socket
import ssl
import threading
import unittest

import harness
from harness import Stack, read_response, require_binaries, send_raw


def conf_limits(conf, stack):
    conf["workers"] = 1
    conf.setdefault("limits", {})["max_connections"] = 2
    conf.setdefault("timeouts", {})["keepalive_ms"] = 30000


class TestMaxConnections(unittest.TestCase):

    def test_third_connection_waits_until_one_closes(self):
        require_binaries()
        st = Stack("maxconn", conf_hook=conf_limits)
        self.addCleanup(st.stop)
        st.start()
        a = st.tls_connect()
        b = st.tls_connect()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        # the two accepted ones are served
        for s in (a, b):
            send_raw(s, st.build_request("/opale/v1/etatSante", token=None))
            self.assertEqual(read_response(s).status, 200)
        # the third TCP connection lands in the backlog: no TLS handshake
        ctx = harness.tls_context(pki=st.pki, cert_name="client-commune")
        raw = socket.create_connection(("127.0.0.1", st.port), timeout=5)
        self.addCleanup(raw.close)
        raw.settimeout(1.0)
        with self.assertRaises((socket.timeout, TimeoutError, ssl.SSLError)):
            ctx.wrap_socket(raw, server_hostname="localhost")
        # a held connection is still served
        send_raw(a, st.build_request("/opale/v1/etatSante", token=None))
        self.assertEqual(read_response(a).status, 200)
        # the waiting client gives up, one held connection closes: the
        # worker accepts again and a new connection is served
        raw.close()
        b.close()
        c = st.tls_connect()
        self.addCleanup(c.close)
        send_raw(c, st.build_request("/opale/v1/etatSante", token=None))
        self.assertEqual(read_response(c).status, 200)
        status, text = st.admin_call("GET", "/metrics")
        self.assertEqual(status, 200)
        line = [l for l in text.splitlines() if l.startswith("opale_connections_limit_reached_total ")]
        self.assertEqual(len(line), 1, text[:500])
        self.assertGreaterEqual(int(line[0].split()[1]), 1)


def listen_backlogs(port):
    """The Send-Q (the backlog, capped by somaxconn) of the sockets listening
    on <port>, from ss; None when ss is missing."""
    import shutil
    import subprocess
    if shutil.which("ss") is None:
        return None
    out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True, text=True,
                         timeout=10).stdout
    return [int(line.split()[2]) for line in out.splitlines() if line.strip()]


def somaxconn():
    with open("/proc/sys/net/core/somaxconn") as f:
        return int(f.read())


class TestListenBacklog(unittest.TestCase):
    """limits.listen_backlog: the backlog of every public listening socket
    (one per worker, SO_REUSEPORT), 4096 by default, capped by somaxconn."""

    def check(self, name, hook, want):
        require_binaries()
        st = Stack(name, conf_hook=hook)
        self.addCleanup(st.stop)
        st.start()
        got = listen_backlogs(st.port)
        if got is None:
            self.skipTest("ss not installed")
        self.assertEqual(got, [min(want, somaxconn())] * 2)

    def test_configured(self):
        def hook(conf, stack):
            conf["workers"] = 2
            conf.setdefault("limits", {})["listen_backlog"] = 100
        self.check("backlog100", hook, 100)

    def test_default(self):
        def hook(conf, stack):
            conf["workers"] = 2
        self.check("backlogdef", hook, 4096)


if __name__ == "__main__":
    unittest.main()


class TestMetrics(unittest.TestCase):

    def test_metric_families_count_what_happened(self):
        require_binaries()
        st = Stack("metrics")
        self.addCleanup(st.stop)
        st.start()
        ok = st.request("/opale/v1/entreprises/732829320/declarations?annee=2023")
        self.assertEqual(ok.status, 200)
        self.assertEqual(st.request("/opale/v1/nope").status, 404)
        with self.assertRaises((ssl.SSLError, OSError, harness.PeerClosed)):
            s = st.tls_connect(cert_name=None)
            send_raw(s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            read_response(s)
        status, text = st.admin_call("GET", "/metrics")
        self.assertEqual(status, 200)

        def value(prefix):
            lines = [l for l in text.splitlines() if l.startswith(prefix + " ")]
            self.assertEqual(len(lines), 1, prefix)
            return int(lines[0].rsplit(" ", 1)[1])
        self.assertEqual(value('opale_route_requests_total{route="declarations",class="2xx"}'), 1)
        self.assertGreaterEqual(value('opale_route_requests_total{route="token",class="2xx"}'), 1)
        self.assertEqual(value('opale_route_requests_total{route="(none)",class="4xx"}'), 1)
        self.assertGreaterEqual(
            value('opale_consumer_requests_total{consumer="commune-exemple-sandbox",class="2xx"}'), 2)
        self.assertEqual(
            value('opale_consumer_quota_decisions_total{consumer="commune-exemple-sandbox",outcome="admitted"}'), 1)
        self.assertEqual(value('opale_tls_refusals_total{reason="tls.no_cert"}'), 1)
        self.assertEqual(value("opale_upstream_duration_seconds_count"), 1)
        self.assertGreaterEqual(value("opale_journal_write_duration_seconds_count"), 1)

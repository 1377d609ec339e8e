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


if __name__ == "__main__":
    unittest.main()

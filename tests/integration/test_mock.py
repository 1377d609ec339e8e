"""opale-mock on its own (no gateway): what GET /__mock/last reports of the
last request, and what a keep-alive request costs the mock in system calls.

The mock records every request cheaply (its strings copied into one buffer)
and makes the JSON of /__mock/last only when asked: the tests that prove what
the backend received depend on that record being exact. In the bench the
mock shares the load generator's core, so its cost per request bounds the
throughput measured for the proxies in front of it (bench/README.md)."""

import collections
import os
import socket
import time
import unittest

import harness
from harness import Stack, read_response

DECL = "/opale/v1/entreprises/732829320/declarations?annee=2023"


class TestMock(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_binaries()
        cls.st = Stack("mock-alone", mock_jwks=False)
        cls.addClassCleanup(cls.st.stop)
        cls.st.start_mock()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.st.mock_port), timeout=harness.DEFAULT_TIMEOUT)
        self.addCleanup(s.close)
        return s

    def test_last_is_the_request_as_received(self):
        """Method, URI, request line, every header in order (a non-UTF-8
        byte shown as '?'), the body's size; a later request replaces it
        and a reset forgets it."""
        self.st.mock_stats()  # the control connection exists before the reset
        self.st.mock_reset()
        self.assertEqual(self.st._mock_call("GET", "/__mock/last", check=False)[0], 404)
        s = self.connect()
        s.sendall(b"GET " + DECL.encode() + b" HTTP/1.1\r\nHost: mock\r\nX-Request-ID: r-1\r\n"
                  b"X-Accent: \xc3\xa9t\xc3\xa9\r\nX-Raw: a\xffb\r\nX-Request-ID: r-2\r\n\r\n")
        self.assertEqual(read_response(s).status, 200)
        last = self.st.mock_last()
        self.assertEqual(last, {
            "method": "GET", "uri": DECL, "request_line": "GET %s HTTP/1.1" % DECL,
            "headers": [["Host", "mock"], ["X-Request-ID", "r-1"], ["X-Accent", "\u00e9t\u00e9"],
                        ["X-Raw", "a?b"], ["X-Request-ID", "r-2"]],
            "assertion": None, "body_len": 0})
        # a POST with a body on the same connection: refused (405), recorded
        s.sendall(b"POST /opale/v1/etatSante HTTP/1.1\r\nHost: mock\r\nContent-Length: 5\r\n\r\nhello")
        self.assertEqual(read_response(s).status, 405)
        last = self.st.mock_last()
        self.assertEqual((last["method"], last["uri"], last["body_len"]), ("POST", "/opale/v1/etatSante", 5), last)
        self.assertEqual(last["headers"], [["Host", "mock"], ["Content-Length", "5"]], last)
        stats = self.st.mock_stats()
        self.assertEqual(stats["requests"], 2, stats)
        self.assertEqual(stats["by_path"], {DECL.split("?")[0]: 1, "/opale/v1/etatSante": 1}, stats)
        self.st.mock_reset()
        self.assertEqual(self.st._mock_call("GET", "/__mock/last", check=False)[0], 404)
        self.assertEqual(self.st.mock_stats()["by_path"], {})

    def test_keepalive_request_system_calls(self):
        """20 requests on one keep-alive connection, the mock under strace:
        one epoll_wait and at most one epoll_ctl per request, no
        setsockopt. Before: four epoll_ctl (evhttp's disable and enable of
        reading, then writing added and removed), TCP_NODELAY set again on
        every request, and a second loop round trip to write the reply."""
        s = self.connect()
        req = b"GET " + DECL.encode() + b" HTTP/1.1\r\nHost: mock\r\n\r\n"
        s.sendall(req)
        self.assertEqual(read_response(s).status, 200)
        out = os.path.join(self.st.dir, "strace-mock.txt")
        with harness.strace_attached(self, self.st.mock_proc.pid, out):
            for _ in range(20):
                s.sendall(req)
                self.assertEqual(read_response(s).status, 200)
            time.sleep(0.2)
        with open(out) as f:
            calls = collections.Counter(ln.split("(")[0].split()[-1] for ln in f if "(" in ln)
        self.assertEqual(calls["writev"] + calls["write"], 20, calls)  # each reply in one write
        self.assertEqual(calls["setsockopt"], 0, calls)
        self.assertLessEqual(calls["epoll_ctl"], 20, calls)
        self.assertLessEqual(calls["epoll_wait"], 22, calls)


if __name__ == "__main__":
    unittest.main()

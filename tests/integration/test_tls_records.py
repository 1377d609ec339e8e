"""TLS records the gateway reads ahead (core/tls.c: SSL_CTX_set_read_ahead on
the listeners; core/bev.h: gw_bev_read_pending). One read() takes every
record that arrived, and records OpenSSL holds but has not decrypted are not
seen by bufferevent_openssl: each case below sends several records in ONE
send(), so that nothing is left on the socket to wake the gateway up, and
must be answered. Without the reads activated by hand (at the handshake's
end, after each read callback, when reading is enabled again, when a dormant
connection wakes) each of them waits forever.

The client is Python's ssl over memory BIOs: each SSLObject.write() is one
TLS record, and the bytes go out when and how the test says."""

import contextlib
import os
import re
import shutil
import socket
import ssl
import time
import unittest

import harness
from h2client import request_headers
from harness import GatewayTestCase, build_request

import h2.config
import h2.connection
import h2.events

OK_TARGET = "/opale/v1/etatSante"
PIPELINE_LIMIT = 300


def conf_hook(conf, stack):
    # a small pipeline limit: reading stops while a few requests wait
    conf.setdefault("limits", {})["max_pipeline_bytes"] = PIPELINE_LIMIT


class MemTLS:
    """A TLS client over memory BIOs on a real socket."""

    def __init__(self, case, version=ssl.TLSVersion.TLSv1_3, alpn=None, timeout=5.0):
        self.case = case
        ctx = harness.tls_context(pki=case.stack.pki, cert_name="client-commune", min_version=version,
                                  max_version=version)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        self.sock = socket.create_connection(("127.0.0.1", case.stack.port), timeout=timeout)
        case.addCleanup(self.sock.close)
        self.deadline = time.monotonic() + timeout
        self.plain = b""

    def handshake(self):
        """Until the client side is done. The client's last flight (TLS 1.3:
        its Finished) is left in the output: the next flush() sends it with
        whatever was written after it."""
        while True:
            self.case.assertLess(time.monotonic(), self.deadline, "handshake did not complete")
            try:
                self.tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                self.flush()
                chunk = self.sock.recv(65536)
                self.case.assertTrue(chunk, "the gateway closed during the handshake")
                self.inc.write(chunk)

    def first_request(self):
        """The handshake, then one request in its own send(): answered 200."""
        self.handshake()
        self.flush()
        self.records(request())
        self.flush()
        self.case.assertEqual(self.responses(1), [200])

    def records(self, *parts):
        """One TLS record per part (not sent yet)."""
        for p in parts:
            self.tls.write(p)

    def flush(self):
        """Everything written so far, in one send()."""
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def read_some(self, what):
        self.case.assertLess(time.monotonic(), self.deadline, "waiting for %s: %r" % (what, self.plain[-300:]))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            self.case.fail("no %s: records read ahead were never handled (got %r)" % (what, self.plain[-300:]))
        self.case.assertTrue(chunk, "closed while waiting for %s: %r" % (what, self.plain[-300:]))
        self.inc.write(chunk)
        try:
            while True:
                self.plain += self.tls.read(65536)
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass

    def responses(self, n):
        """The statuses of the next <n> HTTP/1.1 responses (Content-Length framed)."""
        out = []
        while len(out) < n:
            head, sep, rest = self.plain.partition(b"\r\n\r\n")
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head) if sep else None
            if m and len(rest) >= int(m.group(1)):
                out.append(int(head.split(b" ", 2)[1]))
                self.plain = rest[int(m.group(1)):]
                continue
            self.read_some("response %d of %d" % (len(out) + 1, n))
        return out


def request():
    return build_request(OK_TARGET, correlation_id=harness.new_uuid())


class TestTLSRecords(GatewayTestCase):
    stack_kwargs = {"conf_hook": conf_hook}

    def test_request_split_over_records_with_the_finished(self):
        """The client's Finished, then a request's head cut in three records,
        in one send() (TLS 1.3; TLS 1.2: the records alone, the client's
        Finished went before the server's)."""
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            with self.subTest(version=version.name):
                c = MemTLS(self, version)
                c.handshake()
                r = request()
                c.records(r[:7], r[7:40], r[40:])
                c.flush()
                self.assertEqual(c.responses(1), [200])

    def test_request_split_over_records_later(self):
        """Handshake over, then a request's head cut in two records in one
        send(): the first decrypted leaves an incomplete head."""
        c = MemTLS(self)
        c.handshake()
        c.flush()
        c.records(request())
        c.flush()
        self.assertEqual(c.responses(1), [200])
        r = request()
        c.records(r[:20], r[20:])
        c.flush()
        self.assertEqual(c.responses(1), [200])

    def test_pipelined_requests_one_record_each(self):
        """Three requests, one record each, one send(): three answers."""
        c = MemTLS(self)
        c.handshake()
        c.records(request(), request(), request())
        c.flush()
        self.assertEqual(c.responses(3), [200, 200, 200])

    def test_pipelined_records_beyond_the_pipeline_limit(self):
        """Seven requests, one record each, one send(): while the first is
        served, the waiting ones pass limits.max_pipeline_bytes and reading
        stops with records still in OpenSSL's buffer; reading enabled again
        after the response must read them."""
        reqs = [request() for _ in range(7)]
        self.assertGreater(sum(len(r) for r in reqs[1:]), 2 * PIPELINE_LIMIT)
        c = MemTLS(self)
        c.handshake()
        c.flush()
        c.records(*reqs)
        c.flush()
        self.assertEqual(c.responses(7), [200] * 7)

    def test_dormant_connection_wakes_for_split_records(self):
        """Idle past timeouts.dormant_ms (1 s), the connection is dormant; its
        next bytes, a request in two records in one send(), are answered."""
        c = MemTLS(self, timeout=8.0)
        c.handshake()
        c.flush()
        time.sleep(0.2)
        c.records(request())
        c.flush()
        self.assertEqual(c.responses(1), [200])
        time.sleep(1.6)
        r = request()
        c.records(r[:30], r[30:], request())
        c.flush()
        self.assertEqual(c.responses(2), [200, 200])

    def server_fd(self, sock):
        """The gateway's descriptor for the other end of <sock>."""
        port = sock.getsockname()[1]
        inode = None
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                p = line.split()
                if p[2].endswith(":%04X" % port) and p[1].endswith(":%04X" % self.stack.port):
                    inode = p[9]
        self.assertIsNotNone(inode, "the gateway's socket for port %d" % port)
        d = "/proc/%d/fd" % self.stack.gw.pid
        for fd in os.listdir(d):
            try:
                if os.readlink(os.path.join(d, fd)) == "socket:[%s]" % inode:
                    return int(fd)
            except OSError:
                pass
        self.fail("no descriptor of the gateway holds socket %s" % inode)

    @contextlib.contextmanager
    def strace_epoll_ctl(self, name):
        """The gateway under strace (epoll_ctl only, its output in
        strace-<name>.txt) while the block runs: the list it yields holds
        the epoll_ctl lines once the block is over. Skips the test when
        strace is missing or cannot attach."""
        out = os.path.join(self.stack.dir, "strace-%s.txt" % name)
        calls = []
        with harness.strace_attached(self, self.stack.gw.pid, out, "-e", "trace=epoll_ctl"):
            yield calls
        with open(out) as f:
            calls.extend(l.strip() for l in f if "epoll_ctl(" in l)

    def strace_dormant_wake(self, name, after_s, timeout):
        """A connection that made one request and went dormant, then one
        more request under strace (epoll_ctl only), <after_s> s of tracing
        after its answer: (client, its descriptor in the gateway, the
        epoll_ctl lines)."""
        c = MemTLS(self, timeout=timeout)
        c.first_request()
        fd = self.server_fd(c.sock)
        time.sleep(1.6)  # dormant (timeouts.dormant_ms 1 s)
        with self.strace_epoll_ctl(name) as calls:
            c.records(request())
            c.flush()
            self.assertEqual(c.responses(1), [200])
            time.sleep(after_s)
        return c, fd, calls

    def test_dormant_wake_does_not_poll_for_writability(self):
        """A dormant connection's wake-up enables reading only: writing is
        enabled with the response. bufferevent_openssl adds its EV_WRITE
        whenever writing is enabled, output empty or not: an epoll_ctl adding
        EPOLLOUT for the connection, a loop round trip and another epoll_ctl
        per wake-up (strace of the gateway while it serves the request)."""
        _, fd, calls = self.strace_dormant_wake("wake", 0.2, 8.0)
        mine = [l for l in calls if re.search(r"EPOLL_CTL_(ADD|MOD), %d, \{events=[A-Z|]*EPOLLOUT" % fd, l)]
        self.assertEqual(mine, [], "epoll_ctl calls of the woken connection (fd %d): %s" % (fd, calls))

    def test_dormant_transitions_leave_epoll_alone(self):
        """A dormant connection stays in epoll's set: going dormant adds the
        one-shot read event before the bufferevent's goes, and the wake-up
        removes it only once the new bufferevent reads. libevent's
        changelist made each delete-then-add of EV_READ on the socket an
        epoll_ctl(MOD) that changed nothing: two per request of a partner
        calling less often than timeouts.dormant_ms (strace of the gateway
        over a wake-up, the request and the next dormancy)."""
        c, fd, calls = self.strace_dormant_wake("dormant", 1.6, 10.0)  # 1.6 s: dormant again
        mine = [l for l in calls if re.search(r"epoll_ctl\(\d+, EPOLL_CTL_[A-Z]+, %d," % fd, l)]
        self.assertEqual(mine, [], "epoll_ctl calls of the connection (fd %d) woken and dormant again" % fd)
        # the connection still works after the second dormancy
        c.records(request())
        c.flush()
        self.assertEqual(c.responses(1), [200])

    def test_new_connection_never_polls_for_writability(self):
        """A new connection is registered for reading only, from its accept
        to its response (core/bev.h gw_bev_accept_reading_only).
        bufferevent_openssl enables writing at its creation and again at the
        handshake's end, output empty or not: EPOLLOUT added at accept,
        removed after the server's flight, added at the handshake's end (a
        loop round trip that finds nothing to write) and removed again: two
        epoll_ctl calls of five per connection more (strace of the gateway
        over the handshake and one request, TLS 1.3 and 1.2)."""
        if shutil.which("strace") is None:
            self.skipTest("strace not installed")
        warm = MemTLS(self)  # the upstream connection exists before the trace
        warm.first_request()
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            with self.subTest(version=version.name):
                with self.strace_epoll_ctl("new-%s" % version.name) as calls:
                    c = MemTLS(self, version)
                    c.first_request()
                    fd = self.server_fd(c.sock)
                    time.sleep(0.2)
                mine = [l for l in calls if re.search(r"epoll_ctl\(\d+, EPOLL_CTL_[A-Z]+, %d," % fd, l)]
                self.assertRegex(mine[0] if mine else "", r"EPOLL_CTL_ADD, %d, \{events=EPOLLIN," % fd)
                polled = [l for l in mine if "EPOLLOUT" in l]
                self.assertEqual(polled, [], "EPOLLOUT for the new connection (fd %d): %s" % (fd, mine))
                # the ADD, and the MOD that changes nothing at the handshake's end
                self.assertLessEqual(len(mine), 2, "epoll_ctl calls of the new connection (fd %d): %s" % (fd, mine))

    def test_h2_preface_and_request_with_the_finished(self):
        """HTTP/2 (ALPN h2): the client's Finished, the preface with its
        SETTINGS in one record and the request's HEADERS in another, in one
        send(): the stream is answered."""
        c = MemTLS(self, alpn=["h2"])
        c.handshake()
        self.assertEqual(c.tls.selected_alpn_protocol(), "h2")
        h = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding=None))
        h.initiate_connection()
        c.records(h.data_to_send())
        hdrs = [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", OK_TARGET)]
        h.send_headers(1, hdrs + request_headers(self.stack), end_stream=True)
        c.records(h.data_to_send())
        c.flush()
        status = None
        ended = False
        while not ended:
            c.read_some("the h2 response")
            for ev in h.receive_data(c.plain):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == 1:
                    status = dict(ev.headers).get(b":status")
                if isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)) and ev.stream_id == 1:
                    ended = True
            c.plain = b""
            # nothing more is sent (not even the SETTINGS ACK): a record the
            # client sends would wake the gateway up
        self.assertEqual(status, b"200")


if __name__ == "__main__":
    unittest.main()

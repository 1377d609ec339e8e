"""HTTP/1.1 strictness on the public side: every malformed request gets the
DGFIP error body (400/431/413), the connection is closed, and nothing reaches
the backend. Plus the header, body and keep-alive timeouts."""

import time
import unittest

import harness
from harness import GatewayTestCase, PeerClosed, build_request, read_response, send_raw

T = "/opale/v1/etatSante"
CRLF = "\r\n"


def req(*lines, body=""):
    """Raw request from header lines (CRLF-joined, blank line appended)."""
    return (CRLF.join(lines) + CRLF + CRLF + body).encode("latin-1")


def std(*extra, request_line="GET %s HTTP/1.1" % T, body=""):
    """A valid request with a few extra header lines."""
    return req(request_line, "Host: localhost", "X-Correlation-ID: %s" % harness.new_uuid(), *extra, body=body)


def conf_hook(conf, stack):
    conf["routes"].append({"name": "etatSante_post", "method": "POST", "path": T, "upstream": "opale",
                           "scope": None, "max_body_bytes": 4096})


# GET routes take no body (issue 12): the body rules are exercised on a POST
# route that takes up to limits.max_body_bytes (4096). The mock answers POST
# etatSante with its own 405, which proves the request was forwarded.
POST_LINE = "POST %s HTTP/1.1" % T


def post(*extra, body=""):
    return std(*extra, request_line=POST_LINE, body=body)


# name -> raw bytes; each must get 400 / 910400 and a closed connection.
BAD_REQUESTS = {
    "cl_and_te": std("Content-Length: 5", "Transfer-Encoding: chunked", body="0\r\n\r\n"),
    "te_and_cl": std("Transfer-Encoding: chunked", "Content-Length: 5", body="0\r\n\r\n"),
    "duplicate_cl_equal": std("Content-Length: 0", "Content-Length: 0"),
    "duplicate_cl_different": std("Content-Length: 0", "Content-Length: 3", body="abc"),
    "cl_list_equal": std("Content-Length: 3, 3", body="abc"),
    "cl_plus_sign": std("Content-Length: +3", body="abc"),
    "cl_minus_sign": std("Content-Length: -1"),
    "cl_inner_space": std("Content-Length: 1 2", body="abcdefghijkl"),
    "cl_non_digit": std("Content-Length: abc"),
    "cl_hex": std("Content-Length: 0x3", body="abc"),
    "cl_empty": std("Content-Length: "),
    "te_gzip_chunked": std("Transfer-Encoding: gzip, chunked", body="0\r\n\r\n"),
    "te_chunked_chunked": std("Transfer-Encoding: chunked, chunked", body="0\r\n\r\n"),
    "te_identity": std("Transfer-Encoding: identity"),
    "te_chunked_gzip": std("Transfer-Encoding: chunked, gzip", body="0\r\n\r\n"),
    "te_two_headers": std("Transfer-Encoding: chunked", "Transfer-Encoding: chunked", body="0\r\n\r\n"),
    "ws_before_colon_host": req("GET %s HTTP/1.1" % T, "Host : localhost",
                                "X-Correlation-ID: %s" % harness.new_uuid()),
    "ws_before_colon_other": std("X-Custom : value"),
    "tab_before_colon": std("X-Custom\t: value"),
    "space_in_field_name": std("X Custom: value"),
    "leading_ws_first_header": req("GET %s HTTP/1.1" % T, " Host: localhost",
                                   "X-Correlation-ID: %s" % harness.new_uuid()),
    "obs_fold": std("X-Custom: first", "  continued"),
    "obs_fold_tab": std("X-Custom: first", "\tcontinued"),
    "nul_in_value": std("X-Custom: a\x00b"),
    "bare_cr_in_value": std("X-Custom: a\rb"),
    "bare_lf_line_ending": ("GET %s HTTP/1.1\r\nHost: localhost\nX-Custom: a\r\n\r\n" % T).encode(),
    "bare_lf_everywhere": ("GET %s HTTP/1.1\nHost: localhost\n\n" % T).encode(),
    "invalid_method": std(request_line="G@T %s HTTP/1.1" % T),
    "space_in_method": std(request_line="GE T %s HTTP/1.1" % T),
    "target_without_slash": std(request_line="GET opale/v1/etatSante HTTP/1.1"),
    "absolute_form_target": std(request_line="GET http://localhost%s HTTP/1.1" % T),
    "asterisk_target": std(request_line="GET * HTTP/1.1"),
    "version_1_2": std(request_line="GET %s HTTP/1.2" % T),
    "version_2_0": std(request_line="GET %s HTTP/2.0" % T),
    "version_garbage": std(request_line="GET %s HTTX/1.1" % T),
    "double_space_request_line": std(request_line="GET  %s HTTP/1.1" % T),
    "missing_host_http11": req("GET %s HTTP/1.1" % T, "X-Correlation-ID: %s" % harness.new_uuid()),
    "duplicate_host": std("Host: localhost"),
    "duplicate_cl_mixed_case": std("Content-Length: 0", "content-length: 0"),
    "duplicate_host_mixed_case": std("HOST: localhost"),
    "te_xchunked": std("Transfer-Encoding: xchunked", body="0\r\n\r\n"),
    "empty_field_name": std(": value"),
    "line_without_colon": std("JustText"),
    "del_in_value": std("X-Custom: a\x7fb"),
    "ctl_in_value": std("X-Custom: a\x01b"),
    "nul_in_target": std(request_line="GET /opale/v1/etat\x00Sante HTTP/1.1"),
    "non_ascii_target": std(request_line="GET /opale/v1/\xe9tatSante HTTP/1.1"),
    "trailing_space_request_line": std(request_line="GET %s HTTP/1.1 " % T),
    # on the POST route (a body is allowed there), so that the chunk parser is reached
    "bad_chunk_size": post("Transfer-Encoding: chunked", body="zz\r\nabc\r\n0\r\n\r\n"),
    "chunk_size_overflow": post("Transfer-Encoding: chunked", body="ffffffffffffffffff1\r\nabc\r\n0\r\n\r\n"),
}


class TestStrict(GatewayTestCase):

    stack_kwargs = {"conf_hook": conf_hook}

    def _send_expect(self, data, status, code, check_journal=True):
        st = self.stack
        st.mock_reset()
        s = st.tls_connect("client-commune")
        with s:
            send_raw(s, data)
            try:
                resp = read_response(s)
            except PeerClosed as e:
                self.fail("connection closed without the %d error response (%s); request: %r" % (status, e, data[:200]))
            err = self.assertErrorBody(resp, status, code)
            self.assertIn("close", (resp.header("Connection") or "").lower(),
                          "a %d must carry Connection: close: %r" % (status, resp))
            self.assertTrue(harness.is_closed(s, timeout=3.0), "connection still open after the %d" % status)
        self.assertEqual(st.mock_stats()["requests"], 0, "the mock saw the request")
        if check_journal:
            rid = resp.header("X-Request-ID")
            rec = self.assertJournal(rid, status=status, code=code, decision="deny")
            self.assertTrue(str(rec.get("reason", "")).startswith("http."), rec)
            self.assertFalse(rec.get("upstream"), rec)
        return resp, err

    # -- positive controls: the same stack accepts what is valid

    def test_valid_request_ok(self):
        resp = self.stack.request(T)
        self.assertEqual(resp.status, 200, resp)

    def test_request_builders_make_valid_requests(self):
        # The 400 cases below are built with std()/req(): without the defect
        # they must pass, or the 400s would prove nothing.
        for data in (std(), req("GET %s HTTP/1.1" % T, "Host: localhost", "X-Correlation-ID: %s" % harness.new_uuid()),
                     std("X-Custom: value"),
                     std("X-Custom:\tvalue with  inner   spaces\t")):
            with self.subTest(data=data[:80]):
                with self.stack.tls_connect() as s:
                    send_raw(s, data)
                    resp = read_response(s)
                self.assertEqual(resp.status, 200, resp)
        # bodies, on the POST route: forwarded whole (the mock's 405 says it got them)
        for data in (post("Content-Length: 3", body="abc"),
                     post("Transfer-Encoding: Chunked", body="3\r\nabc\r\n0\r\n\r\n"),
                     post("Transfer-Encoding: chunked", body="3\r\nabc\r\n0\r\n\r\n")):
            with self.subTest(data=data[:80]):
                self.stack.mock_reset()
                with self.stack.tls_connect() as s:
                    send_raw(s, data)
                    resp = read_response(s)
                self.assertEqual(resp.status, 405, resp)
                self.assertEqual(self.stack.mock_last()["body_len"], 3)

    def test_http10_without_host_ok_then_closed(self):
        # Host is required in HTTP/1.1 only; HTTP/1.0 is not keep-alive by default.
        with self.stack.tls_connect() as s:
            send_raw(s, req("GET %s HTTP/1.0" % T, "X-Correlation-ID: %s" % harness.new_uuid()))
            resp = read_response(s)
            self.assertEqual(resp.status, 200, resp)
            self.assertTrue(harness.is_closed(s, timeout=3.0), "HTTP/1.0 connection left open")

    def test_valid_with_content_length_zero_ok(self):
        resp = self.stack.request(T, headers=[("Content-Length", "0")])
        self.assertEqual(resp.status, 200, resp)

    def test_headers_just_under_limits_ok(self):
        # 45 headers (limit 50) and about 7000 bytes (limit 8192).
        headers = [("X-Filler-%02d" % i, "v" * 140) for i in range(45)]
        data = build_request(T, headers=headers)
        self.assertLess(len(data), 8000)
        self.assertGreater(len(data), 6500)
        with self.stack.tls_connect() as s:
            send_raw(s, data)
            resp = read_response(s)
        self.assertEqual(resp.status, 200, resp)

    # -- 400s (generated below from BAD_REQUESTS)

    def test_bad_request_is_journaled(self):
        self._send_expect(BAD_REQUESTS["cl_and_te"], 400, "910400", check_journal=True)

    def test_bad_request_after_good_one_on_same_connection(self):
        # A valid request, then a smuggling attempt on the same connection.
        st = self.stack
        with st.tls_connect() as s:
            send_raw(s, build_request(T))
            self.assertEqual(read_response(s).status, 200)
            st.mock_reset()
            send_raw(s, BAD_REQUESTS["cl_and_te"])
            resp = read_response(s)
            self.assertErrorBody(resp, 400, "910400")
            self.assertTrue(harness.is_closed(s, timeout=3.0))
        self.assertEqual(st.mock_stats()["requests"], 0)

    def test_pipelined_request_after_connection_close_ignored(self):
        st = self.stack
        st.mock_reset()
        # The second request carries a valid token: were it served, the mock
        # would count it.
        data = build_request(T, headers=[("Connection", "close")]) + st.build_request(
            "/opale/v1/entreprises/732829320/habilitations")
        with st.tls_connect() as s:
            send_raw(s, data)
            resp = read_response(s)
            self.assertEqual(resp.status, 200, resp)
            self.assertTrue(harness.is_closed(s, timeout=3.0), "a second response followed Connection: close")
        stats = st.mock_stats()
        self.assertEqual(stats["requests"], 1, stats)

    def test_smuggled_second_request_not_forwarded(self):
        # CL+TE with a second request hidden in the body: nothing at all
        # may reach the backend.
        hidden = "GET /opale/v1/entreprises/732829320/habilitations HTTP/1.1\r\nHost: localhost\r\n\r\n"
        body = "0\r\n\r\n" + hidden
        data = std("Content-Length: %d" % len(body), "Transfer-Encoding: chunked", body=body)
        self._send_expect(data, 400, "910400")

    # -- 431

    def test_header_block_too_large(self):
        data = build_request(T, headers=[("X-Big", "a" * 9000)])
        self._send_expect(data, 431, "910431", check_journal=True)

    def test_too_many_headers(self):
        headers = [("X-H%02d" % i, "v") for i in range(60)]
        data = build_request(T, headers=headers)
        self.assertLess(len(data), 8192)
        self._send_expect(data, 431, "910431")

    # -- 413

    def test_body_too_large_content_length(self):
        data = post("Content-Length: 5000", body="x" * 5000)
        self._send_expect(data, 413, "910413", check_journal=True)

    def test_body_too_large_content_length_announced_only(self):
        # Refused on the announced length, without waiting for the body.
        st = self.stack
        st.mock_reset()
        with st.tls_connect() as s:
            send_raw(s, post("Content-Length: 1000000"))
            resp = read_response(s, timeout=3.0)
            self.assertErrorBody(resp, 413, "910413")
        self.assertEqual(st.mock_stats()["requests"], 0)

    def test_body_at_limit_accepted_and_one_over_refused(self):
        st = self.stack
        st.mock_reset()
        resp = st.request(T, method="POST", body=b"b" * 4096)
        self.assertEqual(resp.status, 405, "a body of exactly max_body_bytes, forwarded: %r" % resp)
        self.assertEqual(st.mock_last()["body_len"], 4096)
        self._send_expect(post("Content-Length: 4097", body="b" * 4097), 413, "910413")

    def test_request_line_too_long(self):
        # The request line counts in the header block (max_header_bytes 8192).
        data = build_request("/opale/v1/etatSante?" + "q" * 9000)
        self._send_expect(data, 431, "910431")

    def test_body_too_large_chunked(self):
        body = "".join("400\r\n" + "y" * 0x400 + "\r\n" for _ in range(5)) + "0\r\n\r\n"
        data = post("Transfer-Encoding: chunked", body=body)
        self._send_expect(data, 413, "910413")

    # -- timeouts (header_ms 1500, body_ms 1500, keepalive_ms 3000)

    def _expect_timeout_408_or_close(self, data, limit_s):
        st = self.stack
        st.mock_reset()
        with st.tls_connect() as s:
            send_raw(s, data)
            t0 = time.monotonic()
            try:
                resp = read_response(s, timeout=limit_s + 2.0)
            except PeerClosed:
                resp = None
            except (ConnectionError, OSError) as e:
                if isinstance(e, TimeoutError) or "timed out" in str(e):
                    self.fail("no 408 and no close within %.1f s" % (limit_s + 2.0))
                resp = None
            elapsed = time.monotonic() - t0
            if resp is not None:
                self.assertErrorBody(resp, 408, "910408")
                self.assertTrue(harness.is_closed(s, timeout=3.0), "open after the 408")
                self.assertJournal(resp.header("X-Request-ID"), status=408, code="910408", decision="deny")
            self.assertLess(elapsed, limit_s + 2.0)
            self.assertGreater(elapsed, limit_s * 0.5, "gave up too early (%.2f s)" % elapsed)
        self.assertEqual(st.mock_stats()["requests"], 0, "a partial request was forwarded")

    def test_header_timeout_partial_request_line(self):
        self._expect_timeout_408_or_close(b"GET /opale/v1/eta", 1.5)

    def test_header_timeout_partial_headers(self):
        self._expect_timeout_408_or_close(("GET %s HTTP/1.1\r\nHost: localhost\r\nX-Corr" % T).encode(), 1.5)

    def test_header_timeout_slowloris(self):
        # header_ms bounds the whole header block, not the gap between bytes.
        st = self.stack
        st.mock_reset()
        with st.tls_connect() as s:
            send_raw(s, ("GET %s HTTP/1.1\r\nHost: localhost\r\n" % T).encode())
            t0 = time.monotonic()
            closed_at = None
            for i in range(30):  # one header line every 0.25 s, up to 7.5 s
                try:
                    send_raw(s, ("X-Slow-%d: x\r\n" % i).encode())
                except (ConnectionError, OSError):
                    closed_at = time.monotonic() - t0
                    break
                if harness.is_closed(s, timeout=0.25):
                    closed_at = time.monotonic() - t0
                    break
                if harness._rbuf.get(s):  # a response (the 408) arrived
                    resp = read_response(s)
                    self.assertErrorBody(resp, 408, "910408")
                    closed_at = time.monotonic() - t0
                    break
            self.assertIsNotNone(closed_at, "slowloris headers kept the connection open for 7.5 s")
            self.assertLess(closed_at, 1.5 + 2.0)
        self.assertEqual(st.mock_stats()["requests"], 0)

    def test_body_timeout(self):
        self._expect_timeout_408_or_close(post("Content-Length: 100", body="only-a-part"), 1.5)

    def test_idle_keepalive_closed(self):
        with self.stack.tls_connect() as s:
            send_raw(s, build_request(T))
            resp = read_response(s)
            self.assertEqual(resp.status, 200, resp)
            self.assertNotIn("close", (resp.header("Connection") or "").lower())
            self.assertFalse(harness.is_closed(s, timeout=1.0), "closed right after a keep-alive response")
            waited = harness.wait_closed(s, timeout=3.0 + 2.5)
            self.assertIsNotNone(waited, "idle connection still open 6.5 s after the response (keepalive_ms=3000)")

    def test_keepalive_timer_restarts_after_each_request(self):
        # 3 requests 1.5 s apart (4.5 s > keepalive_ms) all succeed.
        with self.stack.tls_connect() as s:
            for i in range(3):
                if i:
                    time.sleep(1.5)
                send_raw(s, build_request(T))
                self.assertEqual(read_response(s).status, 200)

    def test_dormant_connection_wakes_for_pipelined_requests(self):
        # Idle past 1 s, a connection gives back its bufferevent and keeps
        # only its TLS session (core/conn.c, "dormant"). Its next bytes, two
        # pipelined requests in one write, are both answered in order, and
        # the keep-alive deadline still holds: not closed early, closed after
        # keepalive_ms.
        with self.stack.tls_connect() as s:
            send_raw(s, build_request(T))
            self.assertEqual(read_response(s).status, 200)
            time.sleep(1.6)
            send_raw(s, build_request(T) + build_request(T))
            r1 = read_response(s)
            r2 = read_response(s)
            self.assertEqual((r1.status, r2.status), (200, 200))
            self.assertNotEqual(r1.header("X-Request-ID"), r2.header("X-Request-ID"))
            time.sleep(1.6)  # dormant again
            send_raw(s, build_request(T))
            self.assertEqual(read_response(s).status, 200)
            self.assertFalse(harness.is_closed(s, timeout=2.0), "closed before keepalive_ms")
            waited = harness.wait_closed(s, timeout=3.0 + 2.5)
            self.assertIsNotNone(waited, "dormant connection still open 7.5 s after the response")


def _make_bad_test(raw):
    def test(self):
        self._send_expect(raw, 400, "910400")
    return test


for _name, _raw in BAD_REQUESTS.items():
    setattr(TestStrict, "test_400_" + _name, _make_bad_test(_raw))


if __name__ == "__main__":
    unittest.main()

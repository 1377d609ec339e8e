"""Forwarding: routes, re-serialised requests, ids, keep-alive on both sides,
pipelining, upstream failures (down, reset, slow, invalid) and the journal
record of each outcome."""

import json
import os
import threading
import time
import unittest

import harness
from harness import (GatewayTestCase, ScriptedUpstream, Stack, build_request, read_response,
                     require_binaries, send_raw)

SIREN = "732829320"
SIREN_B = "404833048"
SIREN_C = "356000000"
DECL = "/opale/v1/entreprises/%s/declarations?annee=%s"
BIG_BODY = bytes(range(256)) * (2 * 1024 * 1024 // 256)  # 2 MiB


def hdr_all(headers, name):
    """Values of header <name> in the mock's [[name, value], ...] list."""
    return [v for n, v in headers if n.lower() == name.lower()]


class TestProxy(GatewayTestCase):

    def setUp(self):
        # Every test starts with a well-behaved mock.
        self.stack.mock_config()
        self.addCleanup(self.stack.mock_config)

    # -- the nominal path

    def test_allowed_declarations(self):
        st = self.stack
        st.mock_reset()
        target = DECL % (SIREN, 2023)
        corr = harness.new_uuid()
        s = st.tls_connect("client-commune")
        with s:
            client_port = s.getsockname()[1]
            data = self.stack.build_request(target, correlation_id=corr)
            send_raw(s, data)
            resp = read_response(s)
        self.assertEqual(resp.status, 200, resp)
        mock_status, mock_body = st.mock_get(target)  # the reference mock: same data
        self.assertEqual(mock_status, 200)
        self.assertEqual(resp.json(), json.loads(mock_body), "the client did not get the mock's JSON")
        self.assertEqual(resp.header("X-Correlation-ID"), corr)
        rid = self.assertRequestId(resp)
        stats = st.mock_stats()
        self.assertEqual((stats["requests"], stats["assertion_refused"]), (1, 0), stats)
        # The backend got the gateway's assertion for this very request.
        self.assertBackendAssertion(st.mock_last(), rid, "commune-exemple-sandbox", "H9001")
        jti = harness.jwt_decode(st.token("client-commune"))[1]["jti"]

        rec = self.assertJournal(rid, status=200, decision="allow", route="declarations", method="GET",
                                 correlation_id=corr, env="sandbox", listener="public-sandbox",
                                 client_ip="127.0.0.1", client_port=client_port, token_jti=jti,
                                 client_id="commune-exemple-sandbox")
        self.assertEqual(str(rec.get("siren")), SIREN, rec)
        self.assertEqual(str(rec.get("annee")), "2023", rec)
        self.assertEqual(rec.get("path"), "/opale/v1/entreprises/%s/declarations" % SIREN, rec)
        self.assertIn("v", rec)
        self.assertIsInstance(rec.get("ts"), str, rec)
        self.assertFalse(rec.get("reason"), rec)
        up = rec.get("upstream") or {}
        self.assertEqual(up.get("status"), 200, rec)
        self.assertEqual(up.get("addr"), "127.0.0.1:%d" % st.mock_port, rec)
        self.assertIsInstance(up.get("ms"), (int, float), rec)
        self.assertGreaterEqual(up["ms"], 0)
        self.assertIsInstance(rec.get("ms"), (int, float), rec)
        # bytes_in: docs/journal.md says body bytes (0 here), the gateway
        # counts wire bytes; either is an integer >= 0.
        self.assertIsInstance(rec.get("bytes_in"), int, rec)
        self.assertGreaterEqual(rec["bytes_in"], 0, rec)
        self.assertGreaterEqual(rec.get("bytes_out", 0), len(resp.body), rec)
        tls = rec.get("tls") or {}
        self.assertEqual(tls.get("cert_sha256"), st.fp["client-commune"], rec)
        self.assertIn("commune-exemple-sandbox", tls.get("subject", ""), rec)
        self.assertIn(tls.get("version"), ("TLSv1.2", "TLSv1.3"), rec)

    def test_every_route_forwarded(self):
        st = self.stack
        cases = [("/opale/v1/etatSante", "etatSante")]
        for r in harness.ROUTES[1:]:
            path = r["path"].replace("{siren}", SIREN_B)
            if r.get("year_bound"):
                path += "?annee=2022"
            cases.append((path, r["name"]))
        for target, name in cases:
            with self.subTest(target=target):
                st.mock_reset()
                resp = st.request(target)
                self.assertEqual(resp.status, 200, resp)
                last = st.mock_last()
                self.assertEqual(last["uri"], target)
                self.assertEqual(st.mock_stats()["requests"], 1)
                self.assertBackendAssertion(last, resp.header("X-Request-ID"), "commune-exemple-sandbox", "H9001")
                self.assertJournal(resp.header("X-Request-ID"), route=name, status=200)

    def test_etat_sante_body(self):
        resp = self.stack.request("/opale/v1/etatSante")
        self.assertEqual(resp.status, 200, resp)
        self.assertIn("message", resp.json())

    def test_request_ids(self):
        st = self.stack
        corr = harness.new_uuid()
        r1 = st.request(correlation_id=corr)
        r2 = st.request(correlation_id=corr)
        id1, id2 = self.assertRequestId(r1), self.assertRequestId(r2)
        self.assertNotEqual(id1, id2, "X-Request-ID must be unique per request")
        self.assertEqual(r1.header("X-Correlation-ID"), corr)
        self.assertEqual(len(r1.header_all("X-Request-ID")), 1, r1)

    def test_client_request_id_not_trusted(self):
        st = self.stack
        st.mock_reset()
        forged = "00000000-0000-4000-8000-000000000000"
        resp = st.request(headers=[("X-Request-ID", forged)])
        self.assertEqual(resp.status, 200, resp)
        rid = self.assertRequestId(resp)
        self.assertNotEqual(rid, forged)
        last = st.mock_last()
        sent = hdr_all(last["headers"], "X-Request-ID")
        self.assertEqual(sent, [rid], "the backend must see only the gateway's X-Request-ID")
        a = self.assertBackendAssertion(last, rid, "commune-exemple-sandbox", "H9001")
        if st.assertion_mode == "per_request":
            self.assertEqual(a.get("jti"), rid, a)
        else:
            # the grant is the consumer's; the MAC binds it to the gateway's id
            mac = hdr_all(last["headers"], "X-Gateway-Request-MAC")[0]
            t = int(mac.split(";")[1][2:])
            grant = hdr_all(last["headers"], "X-JWT-Assertion")[0]
            self.assertEqual(mac, harness.request_mac(st.mac_key(), t, rid, "GET", last["uri"], grant))

    # -- the re-serialised request

    def test_forwarded_headers(self):
        st = self.stack
        st.mock_reset()
        corr = harness.new_uuid()
        token = st.token("client-commune")
        headers = [
            ("Authorization", "Bearer " + token),
            ("Connection", "keep-alive, X-Drop-Me"),
            ("X-Drop-Me", "must-not-pass"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0"),
            ("Proxy-Connection", "keep-alive"),
            ("Proxy-Foo", "bar"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("Accept", "application/json"),
        ]
        target = DECL % (SIREN, 2021)
        resp = st.request(target, headers=headers, correlation_id=corr)
        self.assertEqual(resp.status, 200, resp)
        rid = self.assertRequestId(resp)
        last = st.mock_last()
        self.assertEqual(last["method"], "GET")
        self.assertEqual(last["uri"], target)
        h = last["headers"]
        names = [n.lower() for n, _ in h]
        self.assertNotIn("authorization", names, h)
        self.assertNotIn(token, json.dumps(h), "the client's token reached the backend")
        self.assertBackendAssertion(last, rid, "commune-exemple-sandbox", "H9001")
        for name in ("keep-alive", "te", "trailer", "upgrade", "proxy-authorization", "proxy-connection",
                     "proxy-foo", "x-drop-me"):
            self.assertNotIn(name, names, "%s forwarded: %r" % (name, h))
        for v in hdr_all(h, "Connection"):
            self.assertNotIn("x-drop-me", v.lower(), h)
        self.assertNotIn("must-not-pass", json.dumps(h))
        self.assertEqual(hdr_all(h, "X-Forwarded-For"), ["127.0.0.1"], h)
        self.assertEqual(hdr_all(h, "X-Request-ID"), [rid], h)
        self.assertEqual(hdr_all(h, "X-Correlation-ID"), [corr], h)
        self.assertEqual(len(hdr_all(h, "Host")), 1, h)
        self.assertEqual(hdr_all(h, "Accept"), ["application/json"], h)

    def test_upgrade_header_not_forwarded(self):
        st = self.stack
        st.mock_reset()
        resp = st.request(headers=[("Upgrade", "h2c")])
        self.assertEqual(resp.status, 200, resp)
        last = st.mock_last()
        names = [n.lower() for n, _ in last["headers"]]
        self.assertNotIn("upgrade", names)
        self.assertBackendAssertion(last, resp.header("X-Request-ID"), "commune-exemple-sandbox", "H9001")

    def test_x_forwarded_for_replaced_not_appended(self):
        st = self.stack
        st.mock_reset()
        resp = st.request(headers=[("X-Forwarded-For", "10.0.0.1, 6.6.6.6"), ("X-Forwarded-For", "7.7.7.7")])
        self.assertEqual(resp.status, 200, resp)
        last = st.mock_last()
        self.assertEqual(hdr_all(last["headers"], "X-Forwarded-For"), ["127.0.0.1"])
        self.assertBackendAssertion(last, resp.header("X-Request-ID"), "commune-exemple-sandbox", "H9001")

    def test_authorization_never_in_journal_or_logs(self):
        st = self.stack
        token = st.token("client-commune")  # a real one, sent by default
        secret = "SECRET-TOKEN-123"
        resp = st.request(DECL % (SIREN, 2020))
        self.assertEqual(resp.status, 200, resp)
        self.assertJournal(resp.header("X-Request-ID"))
        self.assertNotIn(token, json.dumps(st.mock_last()), "the client's token reached the backend")
        # Refused requests with a token, too: an invalid one (401) and an unknown route (404).
        resp401 = st.request(DECL % (SIREN, 2020), headers=[("Authorization", "Bearer " + secret)])
        self.assertErrorBody(resp401, 401, "900901")
        self.assertJournal(resp401.header("X-Request-ID"))
        resp404 = st.request("/opale/v1/nope", headers=[("Authorization", "Bearer " + secret)])
        self.assertEqual(resp404.status, 404, resp404)
        self.assertJournal(resp404.header("X-Request-ID"))
        for text, where in ((st.journal_text(), "journal"), (st.gateway_stderr(), "stderr"),
                            (st._read(st.stdout_path), "stdout")):
            self.assertNotIn(secret, text, where)
            self.assertNotIn(token, text, where)
            self.assertNotIn(token.split(".")[2], text, where)  # not even the signature
        self.assertNotIn(secret.encode(), resp.body + resp401.body + resp404.body)

    def test_query_string_passed_verbatim(self):
        st = self.stack
        st.mock_reset()
        target = DECL % (SIREN, 2024)
        self.assertEqual(st.request(target).status, 200)
        self.assertEqual(st.mock_last()["uri"], target)

    # -- keep-alive and pipelining

    def test_keepalive_reuse_both_sides(self):
        # One client connection stays on one worker: its 10 requests need at
        # most one new upstream connection (none if one is pooled already).
        st = self.stack
        st.mock_reset()
        with st.tls_connect() as s:
            for i in range(10):
                send_raw(s, self.stack.build_request(DECL % (SIREN, 2015 + i)))
                resp = read_response(s)
                self.assertEqual(resp.status, 200, "request %d: %r" % (i, resp))
                self.assertNotIn("close", (resp.header("Connection") or "").lower(), resp)
            self.assertFalse(harness.is_closed(s, timeout=0.2), "client connection closed after 10 requests")
        stats = st.mock_stats()
        self.assertEqual(stats["requests"], 10, stats)
        self.assertLessEqual(stats["connections"], 1, "upstream connections not reused: %r" % stats)

    def test_pooled_upstream_request_sent_at_once(self):
        # A request to a pooled (established, idle) upstream connection
        # leaves in one send() from gw_proxy_send (core/proxy.c
        # write_direct), not through the bufferevent's output chain and its
        # write callback's writev() (strace of the gateway over two requests
        # of one keep-alive connection, the first having pooled one).
        st = self.stack
        with st.tls_connect() as s:
            send_raw(s, self.stack.build_request(DECL % (SIREN, 2015)))
            self.assertEqual(read_response(s).status, 200)
            out = os.path.join(st.dir, "strace-send.txt")
            with harness.strace_attached(self, st.gw.pid, out, "-s", "64", "-e", "trace=sendto,writev"):
                for year in (2016, 2017):
                    send_raw(s, self.stack.build_request(DECL % (SIREN, year)))
                    self.assertEqual(read_response(s).status, 200)
                time.sleep(0.2)
        with open(out) as f:
            calls = [l.strip() for l in f if "GET /opale/" in l]
        self.assertEqual(len([l for l in calls if "sendto(" in l]), 2, calls)
        self.assertEqual([l for l in calls if "writev(" in l], [], calls)

    def test_keepalive_request_state_starts_empty(self):
        # A worker reuses the memory of its finished requests (lib/util.h
        # gw_blk_get, zeroed for each request): a request without an
        # X-Correlation-ID after one with it, an error after a success and a
        # success after an error, on one connection, each answered for itself.
        st = self.stack
        st.mock_reset()
        corr = harness.new_uuid()
        with st.tls_connect() as s:
            for i in range(3):
                send_raw(s, self.stack.build_request(DECL % (SIREN, 2015 + i), correlation_id=corr))
                r1 = read_response(s)
                self.assertEqual(r1.status, 200, r1)
                self.assertEqual(r1.header("X-Correlation-ID"), corr)
                send_raw(s, self.stack.build_request("/opale/v1/nope", correlation_id=None))
                r2 = read_response(s)
                self.assertEqual(r2.status, 404, r2)
                self.assertIsNone(r2.header("X-Correlation-ID"), r2)
                send_raw(s, self.stack.build_request("/opale/v1/etatSante", correlation_id=None))
                r3 = read_response(s)
                self.assertIn(r3.status, (200, 400), r3)
                self.assertIsNone(r3.header("X-Correlation-ID"), r3)
                ids = {self.assertRequestId(r) for r in (r1, r2, r3)}
                self.assertEqual(len(ids), 3)

    def test_pipelining_three_requests_one_write(self):
        st = self.stack
        st.mock_reset()
        targets = ["/opale/v1/etatSante", DECL % (SIREN, 2023), DECL % (SIREN_B, 2022)]
        corrs = [harness.new_uuid() for _ in targets]
        data = b"".join(self.stack.build_request(t, correlation_id=c) for t, c in zip(targets, corrs))
        with st.tls_connect() as s:
            send_raw(s, data)
            resps = [read_response(s) for _ in targets]
        for i, r in enumerate(resps):
            self.assertEqual(r.status, 200, "response %d: %r" % (i, r))
            self.assertEqual(r.header("X-Correlation-ID"), corrs[i], "responses out of order")
        for t, r in zip(targets[1:], resps[1:]):
            self.assertEqual(r.json(), json.loads(st.mock_get(t)[1]), "body for %s" % t)
        self.assertEqual(len({self.assertRequestId(r) for r in resps}), 3)

    def test_pipelining_error_in_middle(self):
        # good, unknown route (404 keeps the connection), good.
        st = self.stack
        st.mock_reset()
        data = (self.stack.build_request("/opale/v1/etatSante") + self.stack.build_request("/opale/v1/nope")
                + self.stack.build_request(DECL % (SIREN, 2023)))
        with st.tls_connect() as s:
            send_raw(s, data)
            statuses = [read_response(s).status for _ in range(3)]
        self.assertEqual(statuses, [200, 404, 200])
        self.assertEqual(st.mock_stats()["requests"], 2)

    def test_client_connection_close_honoured(self):
        with self.stack.tls_connect() as s:
            send_raw(s, self.stack.build_request(headers=[("Connection", "close")]))
            resp = read_response(s)
            self.assertEqual(resp.status, 200, resp)
            self.assertIn("close", (resp.header("Connection") or "").lower(), resp)
            self.assertTrue(harness.is_closed(s, timeout=3.0))

    def test_concurrent_clients(self):
        # 8 clients x 5 keep-alive requests at once, over both workers.
        st = self.stack
        sirens = [SIREN, SIREN_B, SIREN_C]
        expected = {sr: json.loads(st.mock_get(DECL % (sr, 2023))[1]) for sr in sirens}
        errors = []

        def client(n):
            try:
                with st.tls_connect() as s:
                    for i in range(5):
                        sr = sirens[(n + i) % 3]
                        send_raw(s, self.stack.build_request(DECL % (sr, 2023)))
                        r = read_response(s)
                        if r.status != 200 or r.json() != expected[sr]:
                            errors.append("client %d request %d: %r" % (n, i, r))
            except Exception as e:
                errors.append("client %d: %r" % (n, e))

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        self.assertFalse([t for t in threads if t.is_alive()], "clients still running after 20 s")
        self.assertEqual(errors, [])

    def test_pipelining_fifty_requests(self):
        st = self.stack
        st.mock_reset()
        corrs = [harness.new_uuid() for _ in range(50)]
        data = b"".join(self.stack.build_request(DECL % (SIREN, 1990 + i % 30), correlation_id=c)
                        for i, c in enumerate(corrs))
        with st.tls_connect() as s:
            send_raw(s, data)
            got = []
            for _ in corrs:
                r = read_response(s, timeout=10)
                self.assertEqual(r.status, 200, r)
                got.append(r.header("X-Correlation-ID"))
        self.assertEqual(got, corrs, "responses out of order")
        self.assertEqual(st.mock_stats()["requests"], 50)

    def test_abrupt_clients_do_not_hurt(self):
        st = self.stack
        # TCP connect and close; TLS handshake then close; request then close
        # before the answer; request then close while the upstream is slow.
        for _ in range(5):
            harness.socket.create_connection(("127.0.0.1", st.port), timeout=2).close()
            st.tls_connect().close()
            with st.tls_connect() as s:
                send_raw(s, self.stack.build_request(DECL % (SIREN, 2023)))
            with st.tls_connect() as s:
                send_raw(s, self.stack.build_request(DECL % (SIREN, 2023))[:40])
        st.mock_config(latency_ms=500)
        for _ in range(3):
            with st.tls_connect() as s:
                send_raw(s, self.stack.build_request(DECL % (SIREN, 2023)))
                time.sleep(0.05)
        time.sleep(0.8)
        st.mock_config()
        self.assertIsNone(st.gw.poll(), "gateway died:\n" + st.gateway_stderr()[-2000:])
        for _ in range(3):
            self.assertEqual(st.request(DECL % (SIREN_B, 2023)).status, 200)

    def test_upstream_500_relayed(self):
        st = self.stack
        st.mock_config(error_rate=1.0)
        resp = st.request(DECL % (SIREN, 2023))
        st.mock_config()
        self.assertIn(resp.status, (500, 502), resp)
        self.assertRequestId(resp)
        rec = self.assertJournal(resp.header("X-Request-ID"), status=resp.status)
        if resp.status == 500:
            self.assertEqual((rec.get("upstream") or {}).get("status"), 500, rec)
        self.assertEqual(st.request(DECL % (SIREN, 2023)).status, 200)

    # -- routing errors

    def test_unknown_route_404(self):
        st = self.stack
        for target in ("/opale/v1/unknown", "/opale/v2/etatSante", "/opale/v1/etatSante/", "/",
                       "/opale/v1/entreprises/%s" % SIREN, "/opale/v1/entreprises/%s/declarations/x" % SIREN,
                       "/opale/v1/entreprises//declarations", "/OPALE/v1/etatSante"):
            with self.subTest(target=target):
                st.mock_reset()
                resp = st.request(target)
                self.assertErrorBody(resp, 404, "910404")
                self.assertEqual(st.mock_stats()["requests"], 0)

    def test_unknown_route_journaled(self):
        corr = harness.new_uuid()
        resp = self.stack.request("/opale/v1/unknown", correlation_id=corr)
        self.assertErrorBody(resp, 404, "910404")
        self.assertEqual(resp.header("X-Correlation-ID"), corr)
        rec = self.assertJournal(resp.header("X-Request-ID"), status=404, code="910404", decision="deny")
        self.assertFalse(rec.get("route"), rec)
        self.assertFalse(rec.get("upstream"), rec)

    def test_dot_segments_not_forwarded(self):
        st = self.stack
        st.mock_reset()
        resp = st.request("/opale/v1/entreprises/%s/../../etatSante" % SIREN)
        self.assertIn(resp.status, (400, 404), resp)
        self.assertEqual(st.mock_stats()["requests"], 0)

    def test_method_not_allowed_405(self):
        st = self.stack
        for method in ("POST", "DELETE", "PUT"):
            with self.subTest(method=method):
                st.mock_reset()
                resp = st.request("/opale/v1/etatSante", method=method, body=b"")
                self.assertErrorBody(resp, 405, "910405")
                self.assertEqual(st.mock_stats()["requests"], 0)

    # -- upstream failures (mock side)

    def test_upstream_reset_502_then_recovers(self):
        st = self.stack
        st.mock_config(reset_rate=1.0)
        resp = st.request(DECL % (SIREN, 2023))
        self.assertErrorBody(resp, 502, "910502")
        rec = self.assertJournal(resp.header("X-Request-ID"), status=502, code="910502", decision="error")
        self.assertEqual((rec.get("upstream") or {}).get("addr"), "127.0.0.1:%d" % st.mock_port, rec)
        st.mock_config()
        target = DECL % (SIREN_B, 2023)
        resp = st.request(target)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json(), json.loads(st.mock_get(target)[1]))

    def test_upstream_reset_on_keepalive_client_connection(self):
        # The client connection survives an upstream failure.
        st = self.stack
        with st.tls_connect() as s:
            send_raw(s, self.stack.build_request(DECL % (SIREN, 2023)))
            self.assertEqual(read_response(s).status, 200)
            st.mock_config(reset_rate=1.0)
            send_raw(s, self.stack.build_request(DECL % (SIREN, 2023)))
            self.assertErrorBody(read_response(s), 502, "910502")
            st.mock_config()
            if harness.is_closed(s, timeout=0.3):
                return  # closing after a 502 is allowed
            send_raw(s, self.stack.build_request(DECL % (SIREN_C, 2023)))
            self.assertEqual(read_response(s).status, 200)

    def test_upstream_slow_504_then_recovers(self):
        st = self.stack
        st.mock_config(latency_ms=3000)
        t0 = time.monotonic()
        resp = st.request(DECL % (SIREN, 2019), timeout=8.0)
        elapsed = time.monotonic() - t0
        self.assertErrorBody(resp, 504, "910514")
        self.assertGreater(elapsed, 1.0, "504 before response_timeout_ms")
        rec = self.assertJournal(resp.header("X-Request-ID"), status=504, code="910514", decision="error")
        # too late, by the gateway's own time for the request (not the
        # client's, which adds a handshake and this thread's scheduling)
        self.assertLess(rec["ms"], 1500 + 1300, "504 too late (response_timeout_ms=1500; client %.2f s)" % elapsed)
        # The late answer to the timed-out request must never be served to
        # anybody: the upstream connection it was on must not be pooled.
        st.mock_config()
        target = DECL % (SIREN_B, 2020)
        expected = json.loads(st.mock_get(target)[1])
        for i in range(4):  # across the 3 s of the pending late answer
            resp = st.request(target)
            self.assertEqual(resp.status, 200, "request %d after the 504: %r" % (i, resp))
            self.assertEqual(resp.json(), expected, "request %d got another request's answer" % i)
            time.sleep(0.8)

    def test_journal_lines_are_json_objects(self):
        self.stack.request()
        recs = self.stack.journal_lines()  # raises on a malformed line
        self.assertTrue(recs)
        for r in recs:
            self.assertIn("ts", r)
            self.assertIn("decision", r)
            self.assertIn(r["decision"], ("allow", "deny", "error"), r)


def _one_upstream_connection(conf, stack):
    conf["upstreams"][0].update({"pool_size": 1, "max_connections": 1, "queue_timeout_ms": 1000,
                                  "response_timeout_ms": 5000})


class TestUpstreamConnectionCap(GatewayTestCase):
    """upstreams[].max_connections: at most that many connections to the
    backend per worker; a request beyond them waits for one (in order) for
    at most queue_timeout_ms, then 504 with nothing sent."""

    stack_kwargs = {"conf_hook": _one_upstream_connection}
    WORKERS = 2  # the harness's gateway: max_connections 1 is 1 per worker

    def setUp(self):
        self.stack.mock_config()
        self.addCleanup(self.stack.mock_config)

    def burst(self, n):
        """<n> requests at once, each on its own connection: their responses."""
        st = self.stack
        out = [None] * n
        conns = [st.tls_connect() for _ in range(n)]
        for s in conns:
            self.addCleanup(s.close)

        def one(i):
            try:
                send_raw(conns[i], st.build_request(DECL % (SIREN, 2019 + i % 7)))
                out[i] = read_response(conns[i], timeout=10)
            except Exception as e:  # reported below with the others
                out[i] = e

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=15)
        self.assertFalse([t for t in threads if t.is_alive()], "requests still running after 15 s")
        return out

    def test_waiting_requests_share_the_connections(self):
        st = self.stack
        st.mock_reset()
        st.mock_config(latency_ms=100)  # the six overlap: without the cap, six connections;
        # with it, six in a row on one worker still end within queue_timeout_ms
        rs = self.burst(6)
        self.assertEqual([getattr(r, "status", r) for r in rs], [200] * 6)
        stats = st.mock_stats()
        self.assertEqual(stats["requests"], 6, stats)
        self.assertLessEqual(stats["connections"], self.WORKERS,
                             "more connections to the backend than max_connections per worker")
        for r in rs:
            rec = self.assertJournal(r.header("X-Request-ID"), status=200)
            self.assertEqual([a["outcome"] for a in rec["upstream"]["attempts"]], ["ok"], rec)

    def test_queue_timeout_504_nothing_sent(self):
        st = self.stack
        st.mock_reset()
        st.mock_config(latency_ms=3000)  # under response_timeout_ms (5000), over queue_timeout_ms (1000)
        rs = self.burst(6)
        served = [r for r in rs if getattr(r, "status", None) == 200]
        waited = [r for r in rs if getattr(r, "status", None) == 504]
        got = [getattr(r, "status", r) for r in rs]
        self.assertEqual(len(served) + len(waited), 6, got)
        # one request per worker that got any went out; the others waited
        self.assertGreaterEqual(len(served), 1, got)
        self.assertLessEqual(len(served), self.WORKERS, got)
        stats = st.mock_stats()
        self.assertEqual(stats["requests"], len(served), "a request that timed out waiting reached the backend")
        self.assertLessEqual(stats["connections"], self.WORKERS, stats)
        for r in waited:
            self.assertErrorBody(r, 504, "910514")
            rec = self.assertJournal(r.header("X-Request-ID"), status=504, code="910514", decision="error")
            self.assertEqual(rec.get("reason"), "upstream.queue_timeout", rec)
            self.assertNotIn("attempts", rec.get("upstream") or {}, "nothing was sent: no attempt")
            # the queue's timeout, not the backend's 3000 ms, and never before
            # its time: the worker's timers and the journal read the same
            # clock (CLOCK_MONOTONIC), and the timer counts from when it was
            # armed, not from the start of the loop's iteration
            self.assertGreaterEqual(rec["upstream"]["ms"], 1000, rec)
            self.assertGreaterEqual(rec["ms"], rec["upstream"]["ms"], rec)
            self.assertLess(rec["ms"], 3000, rec)
        _, text = st.admin_call("GET", "/metrics")
        counts = [ln.split()[1] for ln in text.splitlines() if ln.startswith("opale_upstream_queue_timeouts_total ")]
        self.assertEqual(counts, [str(len(waited))], "opale_upstream_queue_timeouts_total")
        # the connections stay usable: the next requests are served
        st.mock_config()
        for _ in range(3):
            self.assertEqual(st.request(DECL % (SIREN_B, 2020)).status, 200)


def _two_connections_one_worker(conf, stack):
    conf["workers"] = 1
    # the response timeout is above OVERLAP_WAIT_S: a first request waiting
    # for the other is never cut short by the gateway
    conf["upstreams"][0].update({"pool_size": 2, "max_connections": 2, "queue_timeout_ms": 1000,
                                  "response_timeout_ms": 20000})


OVERLAP_WAIT_S = 15  # how long a first request waits for the other (a bound, not a delay)


class TestRetryAtConnectionCap(GatewayTestCase):
    """A reused pooled connection that the backend closes on the request
    (before any byte of an answer) while max_connections are open: the
    request is retried on a fresh connection at once, never queued, and the
    backend never sees more than max_connections. A keep-alive scripted
    upstream; one worker, pool_size = max_connections = 2."""

    @classmethod
    def setUpClass(cls):
        require_binaries()

        first = threading.Condition()
        arrived = [0]

        def responder(head, n):
            if n == 0:
                # the first two requests overlap: each first request waits
                # (OVERLAP_WAIT_S at most) until the other's connection has
                # brought its own, so that the two connections are both open
                with first:
                    arrived[0] += 1
                    first.notify_all()
                    first.wait_for(lambda: arrived[0] >= 2, timeout=OVERLAP_WAIT_S)
                body = b'{"ok":true}'
                return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            return None  # a reused connection: closed on the request, unanswered

        cls.upstream = ScriptedUpstream(responder, keep_alive=True)
        cls.addClassCleanup(cls.upstream.stop)
        cls.stack = Stack(cls.__name__, mock=False, conf_hook=_two_connections_one_worker,
                          upstream_servers=["127.0.0.1:%d" % cls.upstream.port])
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def test_stale_pooled_connection_retried_fresh_at_the_cap(self):
        st, up = self.stack, self.upstream
        out = [None] * 2
        # the token first: the two threads then make the proxied requests only
        self.assertIsNotNone(st.default_token("client-commune"), st.last_token_error)

        def one(i):
            try:
                out[i] = st.request(DECL % (SIREN_C, 2020 + i), timeout=OVERLAP_WAIT_S + 10)
            except Exception as e:  # reported below
                out[i] = e

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=OVERLAP_WAIT_S + 15)
        got = [getattr(r, "status", r) for r in out]
        if got != [200, 200]:
            # what reached the backend and what the gateway journalled for
            # the two (a TSan run once timed out both requests, unexplained)
            def mine():
                return [{k: r.get(k) for k in ("query", "status", "code", "reason", "ms", "upstream")}
                        for r in st.journal_lines() if r.get("siren") == SIREN_C]
            harness.wait_for(lambda: len(mine()) >= 2, 5)
            self.fail("%r: backend: %d connections, requests %r; journal: %r" % (
                got, up.connections, [h.split("\r\n", 1)[0] for h in up.requests], mine()))
        self.assertEqual((up.connections, up.max_open), (2, 2), "two pooled connections expected")
        # both are idle in the pool; the next request reuses one, which the
        # backend closes unanswered: retried on a fresh one, the other idle
        resp = st.request(DECL % (SIREN_C, 2023))
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json(), {"ok": True})
        rec = self.assertJournal(resp.header("X-Request-ID"), status=200)
        self.assertEqual([a["outcome"] for a in rec["upstream"]["attempts"]], ["reset", "ok"], rec)
        self.assertLess(rec["ms"], 1000, "the retry waited (queue_timeout_ms is 1000): %r" % rec)
        self.assertEqual(up.connections, 3, "one fresh connection for the retry")
        self.assertLessEqual(up.max_open, 2, "more connections to the backend than max_connections")
        self.assertEqual(len(up.requests), 4, up.requests)


class TestUpstreamDown(GatewayTestCase):
    """The upstream's only server is a closed port."""

    stack_kwargs = {"mock": False}

    def test_upstream_down_502(self):
        for i in range(2):
            t0 = time.monotonic()
            resp = self.stack.request(DECL % (SIREN, 2023))
            self.assertErrorBody(resp, 502, "910502")
            self.assertLess(time.monotonic() - t0, 2.5)
            rec = self.assertJournal(resp.header("X-Request-ID"), status=502, code="910502", decision="error")
            self.assertEqual(rec.get("route"), "declarations", rec)
        self.assertIsNone(self.stack.gw.poll(), "gateway died")


class TestScriptedUpstream(GatewayTestCase):
    """A scripted upstream: valid, invalid and unusual responses chosen by
    the SIREN and year of the request."""

    @classmethod
    def setUpClass(cls):
        require_binaries()

        def responder(head):
            if SIREN in head:
                return b"garbage\r\n\r\n"
            if SIREN_B in head:
                return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
            if SIREN_C in head and "annee=2001" in head:
                # chunked, with hop-by-hop fields the gateway must not relay
                return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Connection: close, X-Hop-Secret\r\nX-Hop-Secret: internal\r\n"
                        b"Keep-Alive: timeout=99\r\nX-End-To-End: kept\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n"
                        b"5\r\n{\"a\":\r\n7\r\n\"chunk\"\r\n1\r\n}\r\n0\r\n\r\n")
            if SIREN_C in head and "annee=2002" in head:
                # truncated body, then close
                return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":"
            if SIREN_C in head and "annee=2006" in head:
                return b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n%s" % (
                    len(BIG_BODY), BIG_BODY)
            if SIREN_C in head and "annee=2005" in head:
                # keep-alive response, then the upstream closes anyway
                return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"n\":5}\n"
            if SIREN_C in head:
                body = b'{"ok":true}'
                return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            return None

        cls.upstream = ScriptedUpstream(responder)
        cls.addClassCleanup(cls.upstream.stop)
        cls.stack = Stack(cls.__name__, mock=False, upstream_servers=["127.0.0.1:%d" % cls.upstream.port])
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def test_control_valid_response_passes(self):
        resp = self.stack.request(DECL % (SIREN_C, 2023))
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json(), {"ok": True})

    def test_garbage_status_line_502_910512(self):
        resp = self.stack.request(DECL % (SIREN, 2023))
        self.assertErrorBody(resp, 502, "910512")
        self.assertJournal(resp.header("X-Request-ID"), status=502, code="910512", decision="error")

    def test_duplicate_content_length_502_910512(self):
        resp = self.stack.request(DECL % (SIREN_B, 2023))
        self.assertErrorBody(resp, 502, "910512")

    def test_chunked_response_relayed_without_hop_by_hop(self):
        resp = self.stack.request(DECL % (SIREN_C, 2001))
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json(), {"a": "chunk"})
        names = [n.lower() for n, _ in resp.headers]
        self.assertNotIn("x-hop-secret", names, "field named in the upstream's Connection relayed: %r" % resp)
        self.assertNotIn("keep-alive", names, resp)
        self.assertEqual(resp.header("X-End-To-End"), "kept", resp)
        self.assertEqual(sum(1 for n in names if n in ("content-length", "transfer-encoding")), 1, resp)

    def test_truncated_response_not_passed_as_complete(self):
        with self.stack.tls_connect() as s:
            send_raw(s, self.stack.build_request(DECL % (SIREN_C, 2002)))
            try:
                resp = read_response(s)
            except harness.PeerClosed:
                return  # streamed, then cut: the client can tell
            self.assertEqual(resp.status, 502, resp)
            self.assertIn(resp.json()["erreur"]["code"], ("910502", "910512"))

    def test_large_response_relayed_intact(self):
        resp = self.stack.request(DECL % (SIREN_C, 2006), timeout=20)
        self.assertEqual(resp.status, 200)
        self.assertEqual(len(resp.body), len(BIG_BODY))
        self.assertTrue(resp.body == BIG_BODY, "2 MiB body altered")

    def test_upstream_connection_close_not_relayed(self):
        # The upstream's "Connection: close" concerns the upstream hop only.
        with self.stack.tls_connect() as s:
            for i in range(3):
                send_raw(s, self.stack.build_request(DECL % (SIREN_C, 2023)))
                resp = read_response(s)
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(resp.json(), {"ok": True})
                self.assertFalse(harness.is_closed(s, timeout=0.2), "client connection closed after request %d" % i)

    def test_upstream_closing_idle_connections(self):
        # The upstream closes every connection after a keep-alive response:
        # the gateway must not serve the next request on a dead pooled one.
        for i in range(6):
            resp = self.stack.request(DECL % (SIREN_C, 2005))
            self.assertEqual(resp.status, 200, "request %d: %r" % (i, resp))
            self.assertEqual(resp.json(), {"n": 5})
            time.sleep(0.1)

    def test_close_without_answer_502(self):
        # etatSante carries no SIREN: the scripted upstream closes silently.
        resp = self.stack.request("/opale/v1/etatSante")
        self.assertEqual(resp.status, 502, resp)
        self.assertIn(resp.json()["erreur"]["code"], ("910502", "910512"))
        self.assertIsNone(self.stack.gw.poll(), "gateway died")


if __name__ == "__main__":
    unittest.main()

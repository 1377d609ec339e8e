"""TLS and mTLS on the public listener: versions, client certificates, CRL,
server certificate selection, handshake timeout, and the journal records of
refused handshakes."""

import os
import re
import socket
import ssl
import subprocess
import time
import unittest

import harness
from harness import GatewayTestCase, build_request, read_response, send_raw

OK_TARGET = "/opale/v1/etatSante"


class TestTLS(GatewayTestCase):

    # -- helpers

    def _assert_ok_over(self, sock, cert_name):
        # etatSante needs no ID_Teleservice; one sent must be the partner's
        tele = harness.PARTNERS[cert_name]["teleservice"]
        send_raw(sock, build_request(OK_TARGET, correlation_id=harness.new_uuid(), teleservice=tele))
        resp = read_response(sock)
        self.assertEqual(resp.status, 200, resp)
        rid = self.assertRequestId(resp)
        rec = self.assertJournal(rid, status=200, decision="allow")
        tls = rec.get("tls") or {}
        self.assertEqual(tls.get("version"), sock.version(), rec)
        self.assertEqual(tls.get("cert_sha256"), self.stack.fp[cert_name], rec)
        return rec

    def _assert_refused(self, cert_name, expected_reason, cert_presented=True, **ctx_kw):
        """The connection is refused before any HTTP response, the mock sees
        nothing and the gateway journals a deny record (with the client
        certificate's fingerprint when <cert_presented>)."""
        st = self.stack
        st.mock_reset()
        n0 = st.journal_count()
        kind, detail = st.refused_or_response(cert_name=cert_name, **ctx_kw)
        if kind == "response":
            self.fail("%s: got an HTTP response instead of a refusal: %r" % (cert_name, detail))
        self.assertEqual(kind, "refused", detail)
        self.assertNotIn("NO_PROTOCOLS_AVAILABLE", detail,
                         "the test client could not offer the protocol; test environment problem")
        self.assertEqual(st.mock_stats()["requests"], 0, "the mock saw a request")

        def match(r):
            if r.get("decision") != "deny" or not str(r.get("reason", "")).startswith("tls."):
                return False
            if cert_name is not None and cert_presented:
                return (r.get("tls") or {}).get("cert_sha256") == st.fp[cert_name]
            return True

        rec = st.wait_journal(match, since=n0)
        if rec is None:
            self.fail("no journal record (decision deny, reason tls.*%s) for the refused handshake; new records: %r"
                      % (", cert_sha256 of " + cert_name if cert_name and cert_presented else "", st.journal_lines()[n0:]))
        if expected_reason is not None:
            self.assertEqual(rec.get("reason"), expected_reason, rec)
        self.assertEqual(rec.get("client_ip"), "127.0.0.1", rec)
        self.assertNotEqual(rec.get("status"), 200, rec)
        return rec

    # -- versions

    def _same_flight_exchange(self, version):
        """Handshake through memory BIOs; the client's last handshake flight
        and the first request leave in ONE send(), so the gateway finds the
        request already in its socket buffer when the handshake completes.
        Returns the HTTP response bytes."""
        ctx = harness.tls_context(cert_name="client-commune", min_version=version, max_version=version)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
        sock = socket.create_connection(("127.0.0.1", self.stack.port), timeout=5)
        self.addCleanup(sock.close)
        deadline = time.monotonic() + 5
        while True:
            self.assertLess(time.monotonic(), deadline, "handshake did not complete")
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = out.read()
                if pending:
                    sock.sendall(pending)
                chunk = sock.recv(65536)
                self.assertTrue(chunk, "the gateway closed during the handshake")
                inc.write(chunk)
        tls.write(build_request(OK_TARGET, correlation_id=harness.new_uuid()))
        sock.sendall(out.read())  # client Finished (TLS 1.3) + the request
        data = b""
        while True:
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    return data
            self.assertLess(time.monotonic(), deadline, "no whole response within 5 s: %r" % data[:300])
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                self.fail("no response: the request sent with the handshake was never served")
            self.assertTrue(chunk, "closed before a whole response: %r" % data[:300])
            inc.write(chunk)
            try:
                while True:
                    data += tls.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                pass

    def test_request_in_the_handshake_flight_is_served(self):
        """Regression (bench S5 set-up): with OpenSSL read-ahead, a request
        that arrived with the client's Finished was read into OpenSSL's
        buffer during the handshake and never handed to HTTP."""
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            with self.subTest(version=version.name):
                resp = self._same_flight_exchange(version)
                self.assertTrue(resp.startswith(b"HTTP/1.1 200 "), resp[:200])

    def test_tls12_accepted(self):
        s = self.stack.tls_connect("client-commune", max_version=ssl.TLSVersion.TLSv1_2)
        with s:
            self.assertEqual(s.version(), "TLSv1.2")
            self._assert_ok_over(s, "client-commune")

    def test_tls13_accepted(self):
        s = self.stack.tls_connect("client-commune", min_version=ssl.TLSVersion.TLSv1_3)
        with s:
            self.assertEqual(s.version(), "TLSv1.3")
            self._assert_ok_over(s, "client-commune")

    def test_tls11_refused(self):
        # Refused at the ClientHello: no certificate was ever sent.
        self._assert_refused("client-commune", None, cert_presented=False, min_version=ssl.TLSVersion.TLSv1_1,
                             max_version=ssl.TLSVersion.TLSv1_1)

    def test_tls10_refused(self):
        self._assert_refused("client-commune", None, cert_presented=False, min_version=ssl.TLSVersion.TLSv1,
                             max_version=ssl.TLSVersion.TLSv1)

    # -- client certificates

    def test_second_partner_accepted(self):
        with self.stack.tls_connect("client-departement") as s:
            rec = self._assert_ok_over(s, "client-departement")
        self.assertIn("departement-test-sandbox", (rec.get("tls") or {}).get("subject", ""), rec)

    def test_journal_tls_fields_for_allowed_request(self):
        with self.stack.tls_connect("client-commune") as s:
            rec = self._assert_ok_over(s, "client-commune")
            port = s.getsockname()[1]
        self.assertIn("commune-exemple-sandbox", rec["tls"].get("subject", ""), rec)
        self.assertEqual(rec.get("client_ip"), "127.0.0.1", rec)
        self.assertEqual(rec.get("client_port"), port, rec)
        self.assertEqual(rec.get("listener"), "public-sandbox", rec)
        self.assertEqual(rec.get("env"), "sandbox", rec)

    def test_no_client_cert_refused(self):
        self._assert_refused(None, "tls.no_cert")

    def test_no_client_cert_refused_tls12(self):
        self._assert_refused(None, "tls.no_cert", max_version=ssl.TLSVersion.TLSv1_2)

    def test_expired_cert_refused(self):
        self._assert_refused("client-expired", "tls.cert_expired")

    def test_expired_cert_refused_tls12(self):
        self._assert_refused("client-expired", "tls.cert_expired", max_version=ssl.TLSVersion.TLSv1_2)

    def test_not_yet_valid_cert_refused(self):
        self._assert_refused("client-notyet", "tls.cert_not_yet_valid")

    def test_unknown_ca_cert_refused(self):
        self._assert_refused("client-unknown-ca", "tls.cert_unknown_ca")

    def test_revoked_cert_refused(self):
        self._assert_refused("client-revoked", "tls.cert_revoked")

    def test_revoked_cert_refused_tls12(self):
        self._assert_refused("client-revoked", "tls.cert_revoked", max_version=ssl.TLSVersion.TLSv1_2)

    def test_server_cert_as_client_cert_refused(self):
        # Chains to the right CA but has no clientAuth EKU.
        self._assert_refused("server-ecdsa", None)

    def test_tls_session_resumption_keeps_identity(self):
        # A resumed session (TLS 1.2 or 1.3) still carries the client
        # certificate: the journal identity must not be lost.
        st = self.stack
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = harness.tls_context(pki=st.pki, cert_name="client-commune", max_version=version)
            sess = None
            for i in range(2):
                raw = socket.create_connection(("127.0.0.1", st.port), timeout=5)
                with ctx.wrap_socket(raw, server_hostname="localhost", session=sess) as s:
                    send_raw(s, build_request(OK_TARGET))
                    resp = read_response(s)
                    self.assertEqual(resp.status, 200, resp)
                    rec = self.assertJournal(resp.header("X-Request-ID"))
                    self.assertEqual((rec.get("tls") or {}).get("cert_sha256"), st.fp["client-commune"],
                                     "%s connection %d (session_reused=%s): identity lost: %r"
                                     % (version.name, i, s.session_reused, rec))
                    sess = s.session

    def test_session_tickets_accepted_by_every_worker(self):
        # The listener's SSL_CTX, and with it the session-ticket keys, is
        # shared by the workers (docs/architecture.md, "The hot path"): a
        # ticket issued by one worker resumes on any other. The harness runs
        # 2 workers and the kernel spreads connections over them
        # (SO_REUSEPORT, a hash of each connection), so 8 resumptions in a
        # row are served by both.
        st = self.stack
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = harness.tls_context(pki=st.pki, cert_name="client-commune", max_version=version)
            sess = None
            reused = []
            for i in range(9):
                raw = socket.create_connection(("127.0.0.1", st.port), timeout=5)
                with ctx.wrap_socket(raw, server_hostname="localhost", session=sess) as s:
                    send_raw(s, build_request(OK_TARGET))
                    resp = read_response(s)
                    self.assertEqual(resp.status, 200, resp)
                    if i > 0:
                        reused.append(s.session_reused)
                    sess = s.session
            self.assertEqual(reused, [True] * 8, "%s: resumptions refused: %r" % (version.name, reused))

    def test_tls13_one_session_ticket_per_handshake(self):
        # One NewSessionTicket after a TLS 1.3 handshake (core/tls.c:
        # OpenSSL's default is two, and each costs a decoded copy of the
        # session); the session still resumes (the tests above).
        pki = self.stack.pki
        cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.stack.port, "-servername", "localhost",
               "-tls1_3", "-CAfile", os.path.join(pki, "ca.crt"), "-verify_return_error", "-ign_eof", "-msg",
               "-cert", os.path.join(pki, "client-commune.crt"), "-key", os.path.join(pki, "client-commune.key")]
        req = build_request(OK_TARGET, headers=[("Connection", "close")])
        r = subprocess.run(cmd, input=req, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
        out = r.stdout.decode(errors="replace")
        self.assertIn("HTTP/1.1 200 ", out, r.stderr.decode(errors="replace")[-500:])
        # -msg: every handshake message s_client reads, each ticket once
        self.assertEqual(out.count("Post-Handshake New Session Ticket arrived"), 1, out[-3000:])
        self.assertEqual(len(re.findall(r"<<< TLS 1.3, Handshake \[length [0-9a-f]+\], NewSessionTicket", out)), 1,
                         out[-3000:])

    # -- server certificate selection

    def _served_cert(self, **ctx_kw):
        with self.stack.tls_connect("client-commune", **ctx_kw) as s:
            return harness.der_sha256(s.getpeercert(binary_form=True)), s

    def test_server_cert_ecdsa_for_ecdsa_cipher_tls12(self):
        fp, s = self._served_cert(max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
        self.assertEqual(fp, self.stack.fp["server-ecdsa"])

    def test_server_cert_rsa_for_rsa_cipher_tls12(self):
        fp, s = self._served_cert(max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES128-GCM-SHA256")
        self.assertEqual(fp, self.stack.fp["server-rsa"])

    def _s_client_leaf(self, sigalgs):
        pki = self.stack.pki
        cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.stack.port, "-servername", "localhost",
               "-tls1_3", "-sigalgs", sigalgs, "-CAfile", os.path.join(pki, "ca.crt"), "-verify_return_error",
               "-cert", os.path.join(pki, "client-commune.crt"), "-key", os.path.join(pki, "client-commune.key"),
               "-showcerts"]
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=15)
        out = r.stdout.decode(errors="replace")
        m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
        self.assertIsNotNone(m, "s_client got no certificate (rc=%d):\n%s\n%s"
                             % (r.returncode, out, r.stderr.decode(errors="replace")))
        return harness.der_sha256(ssl.PEM_cert_to_DER_cert(m.group(0)))

    def test_server_cert_ecdsa_for_ecdsa_sigalgs_tls13(self):
        self.assertEqual(self._s_client_leaf("ecdsa_secp256r1_sha256"), self.stack.fp["server-ecdsa"])

    def test_server_cert_rsa_for_rsa_sigalgs_tls13(self):
        self.assertEqual(self._s_client_leaf("rsa_pss_rsae_sha256:rsa_pss_rsae_sha384"),
                         self.stack.fp["server-rsa"])

    def test_server_cert_verifies_as_localhost(self):
        # tls_connect verifies the chain and the name 'localhost'; also check
        # the served certificate is one of ours.
        fp, s = self._served_cert()
        self.assertIn(fp, (self.stack.fp["server-ecdsa"], self.stack.fp["server-rsa"]))

    # -- handshake timeout

    def test_handshake_timeout_closes_silent_connection(self):
        # handshake_ms is 2000: a client that never sends a ClientHello is
        # dropped within that (plus slack).
        raw = socket.create_connection(("127.0.0.1", self.stack.port), timeout=5)
        with raw:
            t0 = time.monotonic()
            closed = None
            for _ in range(20):
                try:
                    raw.settimeout(max(0.1, 5.0 - (time.monotonic() - t0)))
                    data = raw.recv(4096)
                except (socket.timeout, TimeoutError):
                    break
                except ConnectionError:
                    closed = time.monotonic() - t0
                    break
                if not data:
                    closed = time.monotonic() - t0
                    break
            self.assertIsNotNone(closed, "silent connection still open after 5 s (handshake_ms=2000)")
            self.assertGreater(closed, 1.0, "closed too early (%.2f s)" % closed)


if __name__ == "__main__":
    unittest.main()

"""Client certificate revocation that stays current (issue 19, part 2):
CRL refresh without restart (file change, SIGHUP), OCSP for partner
certificates with prefetch and background refresh (hard and soft fail,
revoked, stale, wrong signer, the open connection of a revoked partner), and
OCSP stapling of the gateway's own certificate.

The OCSP responder is `openssl ocsp` on a free loopback port, answering from
the dev CA's `openssl ca` index; it does not re-read its index, so a
revocation restarts it on the same port. The CA database is this module's
own (harness.pki_dir() is per process): revocations here touch nothing else.
"""
import os
import re
import shutil
import copy
import http.server
import signal
import socket
import subprocess
import threading
import time
import unittest

import harness
from harness import build_request, read_response, send_raw

OK_TARGET = "/opale/v1/etatSante"
WAIT = 25.0  # seconds: one refresh period (5 s) plus fetch and tick, on a loaded machine

_partner_n = [0]
_teleservice = {n: p["teleservice"] for n, p in harness.PARTNERS.items()}  # + the partners issued here


def openssl(*args, pki=None):
    pki = pki or harness.pki_dir()
    env = dict(os.environ, OPALE_PKI_DIR=pki)
    r = subprocess.run(["openssl", *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (" ".join(args), r.stdout.decode(errors="replace")))
    return r.stdout.decode(errors="replace")


def ca_cnf():
    return os.path.join(harness.pki_dir(), "ca-db", "openssl.cnf")


def revoke(cert_name):
    openssl("ca", "-config", ca_cnf(), "-revoke", os.path.join(harness.pki_dir(), cert_name + ".crt"))


def gen_crl(path):
    """A new CRL of the dev CA (every revocation so far) written to <path>
    atomically (a rename, as an operator's tooling would)."""
    tmp = path + ".new"
    openssl("ca", "-config", ca_cnf(), "-gencrl", "-crldays", "30", "-out", tmp)
    os.replace(tmp, path)


def new_partner(prefix):
    """A client certificate issued now by the dev CA, and its partner entry
    (for harness.make_policy). Returns (cert_name, fingerprint, partner)."""
    _partner_n[0] += 1
    n = _partner_n[0]
    name = "%s-%d-%d" % (prefix, os.getpid(), n)
    client_id = "rv-%s-%d" % (prefix, n)
    fp = harness.issue_client_cert(name, client_id)
    partner = {"file": name + ".json", "id": "H97%02d" % n, "client_id": client_id,
               "teleservice": "TS-97%02d" % n, "siret": harness.make_siret(9700 + n), "name": "Partenaire %d" % n}
    return name, fp, partner


CLIENT_EXT = ("basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
              "extendedKeyUsage = clientAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n")


def issue(prefix, extensions):
    """A certificate issued now by the dev CA with <extensions> (openssl
    x509v3 config lines), and a partner entry for it (harness.make_policy).
    Returns (cert_name, fingerprint, partner)."""
    _partner_n[0] += 1
    n = _partner_n[0]
    pki = harness.pki_dir()
    name = "%s-%d-%d" % (prefix, os.getpid(), n)
    client_id = "rv-%s-%d" % (prefix, n)
    ext = os.path.join(pki, name + ".ext")
    with open(ext, "w") as f:
        f.write("[ ext ]\n" + extensions)
    key, csr, crt = (os.path.join(pki, name + e) for e in (".key", ".csr", ".crt"))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    openssl("req", "-new", "-config", ca_cnf(), "-key", key, "-subj", "/O=Partenaire/CN=%s" % client_id, "-out", csr)
    openssl("ca", "-batch", "-notext", "-config", ca_cnf(), "-extfile", ext, "-extensions", "ext", "-in", csr,
            "-out", crt)
    os.chmod(key, 0o600)
    with open(crt) as f:
        fp = harness.der_sha256(harness.ssl.PEM_cert_to_DER_cert(f.read()))
    partner = {"file": name + ".json", "id": "H97%02d" % n, "client_id": client_id,
               "teleservice": "TS-97%02d" % n, "siret": harness.make_siret(9700 + n), "name": "Partenaire %d" % n}
    return name, fp, partner


class Responder:
    """`openssl ocsp` answering for the dev CA on a loopback port chosen at
    its first start and kept across restarts (the gateway's config names it)."""

    def __init__(self, signer="ca", nmin=None):
        self.port = None
        self.signer = signer
        self.nmin = nmin
        self.proc = None
        self.log = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _launch(self):
        """1 when listening, 0 when the port was taken, else raises."""
        pki = harness.pki_dir()
        cmd = ["openssl", "ocsp", "-index", os.path.join(pki, "ca-db", "index.txt"), "-port", str(self.port),
               "-CA", os.path.join(pki, "ca.crt"), "-rsigner", os.path.join(pki, self.signer + ".crt"),
               "-rkey", os.path.join(pki, self.signer + ".key")]
        if self.nmin is not None:
            cmd += ["-nmin", str(self.nmin)]
        open(self.log, "w").close()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        harness._register(self.proc)
        # wait for its "waiting for OCSP client connections" line: a TCP probe
        # would wedge it (it blocks on a connection that sends nothing)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(self.log) as f:
                text = f.read()
            if "waiting for OCSP client connections" in text:
                return 1
            if self.proc.poll() is not None:
                harness.stop_process(self.proc)
                if "Address already in use" in text:
                    return 0
                break
            time.sleep(0.05)
        with open(self.log) as f:
            raise RuntimeError("openssl ocsp did not listen on %d:\n%s" % (self.port, f.read()))

    def start(self):
        if self.log is None:
            self.log = os.path.join(harness.make_tmpdir("ocsp"), "ocsp.log")
        first = self.port is None
        for attempt in range(5):
            if first:
                self.port = harness.free_port()
            if self._launch():
                return
            time.sleep(0.5)  # a restart: the port is ours, wait for it
        raise RuntimeError("openssl ocsp: no port after 5 attempts (last %d)" % self.port)

    def stop(self):
        harness.stop_process(self.proc)
        self.proc = None

    def restart(self):
        """After a revocation: `openssl ocsp` reads its index once."""
        self.stop()
        self.start()


def metric(stack, name, **labels):
    """The value of the sample <name>{<labels>...} (the labels given must all
    match), or None."""
    status, text = stack.admin_call("GET", "/metrics")
    if status != 200:
        return None
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        m = re.match(r"^([a-z_]+)(\{([^}]*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


def wait_for(pred, timeout=WAIT, step=0.2):
    """The first true value of pred() within <timeout> s, else None."""
    return harness.wait_for(pred, timeout, step)


class RevocationCase(unittest.TestCase):
    """One stack per class; the subclasses set conf() and may add partners."""

    partners = ()     # prefixes of the partners issued for the class
    responder = None  # a Responder started before the stack, or None
    maxDiff = 4000

    @classmethod
    def revocation(cls, tls, stack):
        """Edit the listener's "tls" object."""

    @classmethod
    def more_partners(cls):
        """Partners issued otherwise than by new_partner()."""
        return []

    @classmethod
    def setUpClass(cls):
        harness.require_binaries()
        if cls.responder is not None:
            cls.responder.start()
            cls.addClassCleanup(cls.responder.stop)
        cls.issued = [new_partner(p) for p in cls.partners] + cls.more_partners()

        def policy_hook(pols, stack):
            for name, fp, partner in cls.issued:
                pols[partner["file"]] = harness.make_policy(name, fp, partner=partner)

        def conf_hook(conf, stack):
            conf["timeouts"]["keepalive_ms"] = 60000
            cls.revocation(conf["listeners"][0]["tls"], stack)

        cls.stack = harness.Stack(cls.__name__, conf_hook=conf_hook, policy_hook=policy_hook)
        cls.addClassCleanup(cls.stack.stop)
        for name, fp, partner in cls.issued:
            cls.stack.fp[name] = fp
            _teleservice[name] = partner["teleservice"]
        cls.stack.start()

    # -- helpers

    def exchange(self, sock, cert_name):
        tele = _teleservice.get(cert_name, "TS-0000")
        send_raw(sock, build_request(OK_TARGET, correlation_id=harness.new_uuid(), teleservice=tele))
        return read_response(sock)

    def assert_accepted(self, cert_name):
        with self.stack.tls_connect(cert_name) as s:
            resp = self.exchange(s, cert_name)
        self.assertEqual(resp.status, 200, resp)

    def attempt(self, cert_name):
        """("refused", detail) or ("response", Response) for one fresh connection."""
        tele = _teleservice.get(cert_name, "TS-0000")
        req = build_request(OK_TARGET, correlation_id=harness.new_uuid(), teleservice=tele)
        return self.stack.refused_or_response(cert_name=cert_name, request=req)

    def refusal_record(self, cert_name, reason, since=0, timeout=harness.JOURNAL_WAIT):
        fp = self.stack.fp[cert_name]
        return self.stack.wait_journal(
            lambda r: r.get("decision") == "deny" and r.get("reason") == reason
            and (r.get("tls") or {}).get("cert_sha256") == fp, since=since, timeout=timeout)

    def wait_refused(self, cert_name, reason, timeout=WAIT):
        """New connections with <cert_name> are refused within <timeout> s,
        journalled with <reason>."""
        n0 = self.stack.journal_count()
        kind = wait_for(lambda: self.attempt(cert_name)[0] == "refused" and "refused", timeout=timeout, step=0.5)
        self.assertEqual(kind, "refused", "%s still accepted after %.0f s" % (cert_name, timeout))
        rec = self.refusal_record(cert_name, reason, since=n0)
        self.assertIsNotNone(rec, "no deny record with reason %s for %s; stderr:\n%s"
                             % (reason, cert_name, self.stack.gateway_stderr()[-3000:]))
        return rec

    def revocation_events(self, alert):
        return [e for e in self.stack.security_events("tls.revocation") if e.get("alert") == alert]

    def assert_same_process(self, pid):
        self.assertIsNone(self.stack.gw.poll(), "the gateway exited")
        self.assertEqual(self.stack.gw.pid, pid, "the gateway was restarted")


# --------------------------------------------------------------------------
# CRL


def live_crl(tls, stack, poll_s):
    """The listener's CRL: a copy of the dev CA's in the stack's directory
    (crl-live.pem, which the tests replace), polled every <poll_s>."""
    live = os.path.join(stack.dir, "crl-live.pem")
    if not os.path.exists(live):
        shutil.copy(os.path.join(stack.pki, "crl.pem"), live)
    tls["crl"] = "crl-live.pem"
    tls["crl_refresh"] = {"poll_s": poll_s}


class TestCrlRefresh(RevocationCase):
    """The CRL file is polled (crl_refresh.poll_s 1): a CRL replaced on disk is
    used by the next handshake; a broken one keeps the last good CRL."""

    partners = ("crl", "crl-resume")

    @classmethod
    def revocation(cls, tls, stack):
        live_crl(tls, stack, 1)

    def test_d_resumed_session_after_the_crl_revoked_it(self):
        # a resumed session skips the chain check, and each resumption
        # brings a new ticket: a session of a certificate that a new CRL
        # revokes is not resumed, the full handshake refuses it
        st = self.stack
        name = self.issued[1][0]
        sessions = []
        for version in (harness.ssl.TLSVersion.TLSv1_2, harness.ssl.TLSVersion.TLSv1_3):
            ctx = harness.tls_context(pki=st.pki, cert_name=name, max_version=version)
            raw = socket.create_connection(("127.0.0.1", st.port), timeout=5)
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                self.assertEqual(self.exchange(s, name).status, 200)
                sess = s.session
            raw = socket.create_connection(("127.0.0.1", st.port), timeout=5)
            with ctx.wrap_socket(raw, server_hostname="localhost", session=sess) as s:
                self.assertTrue(s.session_reused, "%s: not resumed: the test proves nothing" % version.name)
                self.assertEqual(self.exchange(s, name).status, 200)
                sessions.append((version, ctx, s.session))
        revoke(name)
        gen_crl(os.path.join(st.dir, "crl-live.pem"))
        self.wait_refused(name, "tls.cert_revoked", timeout=10)
        for version, ctx, sess in sessions:
            n0 = st.journal_count()
            try:
                raw = socket.create_connection(("127.0.0.1", st.port), timeout=5)
                with ctx.wrap_socket(raw, server_hostname="localhost", session=sess) as s:
                    reused = s.session_reused
                    resp = self.exchange(s, name)
                outcome = "%s (resumed: %s)" % (resp.status, reused)
            except (harness.ssl.SSLError, harness.PeerClosed, ConnectionError, OSError) as e:
                outcome = "refused: %r" % (e,)
            self.assertTrue(outcome.startswith("refused"), "%s: a revoked certificate's session: %s"
                            % (version.name, outcome))
            self.assertIsNotNone(self.refusal_record(name, "tls.cert_revoked", since=n0),
                                 "%s: the refusal is not journalled as tls.cert_revoked" % version.name)

    def test_a_broken_crl_keeps_the_last_good_one(self):
        st = self.stack
        live = os.path.join(st.dir, "crl-live.pem")
        with open(live) as f:
            good = f.read()
        failed0 = metric(st, "opale_crl_reloads_total", outcome="failed")
        self.assertEqual(failed0, 0.0)
        try:
            with open(live + ".new", "w") as f:
                f.write("-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n")
            os.replace(live + ".new", live)
            self.assertTrue(wait_for(lambda: (metric(st, "opale_crl_reloads_total", outcome="failed") or 0) >= 1),
                            "the broken CRL was not seen: %s" % st.gateway_stderr()[-2000:])
            # the last good CRL is still used: revoked stays refused, good stays accepted
            self.assert_accepted("client-commune")
            n0 = st.journal_count()
            self.assertEqual(self.attempt("client-revoked")[0], "refused")
            self.assertIsNotNone(self.refusal_record("client-revoked", "tls.cert_revoked", since=n0))
            ev = wait_for(lambda: self.revocation_events("tls.crl_invalid"), timeout=harness.JOURNAL_WAIT)
            self.assertTrue(ev, "no tls.revocation security event for the broken CRL")
            self.assertEqual(ev[0].get("listener"), "public-sandbox", ev[0])
            self.assertIn("error", ev[0])
        finally:
            with open(live + ".new", "w") as f:
                f.write(good)
            os.replace(live + ".new", live)

    def test_b_crl_replaced_on_disk_used_without_restart(self):
        st = self.stack
        pid = st.gw.pid
        name = self.issued[0][0]
        self.assert_accepted(name)
        ok0 = metric(st, "opale_crl_reloads_total", outcome="ok") or 0
        revoke(name)
        gen_crl(os.path.join(st.dir, "crl-live.pem"))
        self.wait_refused(name, "tls.cert_revoked", timeout=10)
        self.assert_same_process(pid)
        self.assertGreater(metric(st, "opale_crl_reloads_total", outcome="ok"), ok0)
        age = metric(st, "opale_crl_age_seconds")
        self.assertIsNotNone(age)
        self.assertLess(age, 15)
        self.assertGreater(metric(st, "opale_crl_next_update_seconds"), 29 * 86400)
        # another partner is not affected
        self.assert_accepted("client-commune")


    def check(self, edit):
        """opale-gateway -t on the running config edited by <edit>(tls):
        (exit status, output)."""
        conf = copy.deepcopy(self.stack.conf)
        edit(conf["listeners"][0]["tls"])
        path = self.stack.write_conf(conf, os.path.join(self.stack.dir, "check.json"))
        r = subprocess.run([harness.GW_BIN, "-t", "-c", path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30, cwd=self.stack.dir)
        return r.returncode, r.stdout.decode(errors="replace")

    def test_c_config_check_errors(self):
        pki = self.stack.pki
        # a CRL signed by another CA than client_ca's
        foreign = os.path.join(self.stack.dir, "foreign-crl.pem")
        openssl("ca", "-config", ca_cnf(), "-gencrl", "-keyfile", os.path.join(pki, "unknown-ca.key"),
                "-cert", os.path.join(pki, "unknown-ca.crt"), "-out", foreign)
        rc, out = self.check(lambda t: t.update(crl="foreign-crl.pem"))
        self.assertEqual(rc, 1, out)
        self.assertIn("check.json: listeners[0].tls.crl: a CRL is not signed by a client CA", out)
        # stapling: the test PKI's server certificates have no AIA
        rc, out = self.check(lambda t: t.update(stapling={}))
        self.assertEqual(rc, 1, out)
        self.assertIn("check.json: listeners[0].tls.stapling: certificates[0] has no OCSP URL (AIA) and stapling.responder "
                      "is not set", out)
        rc, out = self.check(lambda t: t.update(stapling={"responder": "http://127.0.0.1:9"}))
        self.assertEqual(rc, 0, out)
        rc, out = self.check(lambda t: t.update(ocsp={"mode": "sometimes"}))
        self.assertEqual(rc, 1, out)
        self.assertIn('check.json: listeners[0].tls.ocsp.mode: must be "off", "soft" or "hard"', out)


class TestCrlSighup(RevocationCase):
    """Without polling (poll_s 0), the CRL file is re-read on SIGHUP only."""

    partners = ("hup",)

    @classmethod
    def revocation(cls, tls, stack):
        live_crl(tls, stack, 0)

    def test_crl_reread_on_sighup(self):
        st = self.stack
        pid = st.gw.pid
        name = self.issued[0][0]
        self.assert_accepted(name)
        revoke(name)
        gen_crl(os.path.join(st.dir, "crl-live.pem"))
        time.sleep(2.5)  # no polling: the old CRL is still the one used
        self.assert_accepted(name)
        st.gw.send_signal(signal.SIGHUP)
        self.wait_refused(name, "tls.cert_revoked", timeout=10)
        self.assert_same_process(pid)


class CrlServer:
    """A CRL distribution point: GET of any path answers the current CRL (DER)."""

    def __init__(self):
        self.der = b""
        self.gets = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.gets += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(outer.der)))
                self.end_headers()
                self.wfile.write(outer.der)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def publish(self, pem_path):
        self.der = subprocess.run(["openssl", "crl", "-in", pem_path, "-outform", "DER"], check=True,
                                  stdout=subprocess.PIPE, timeout=30).stdout

    def start(self):
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def expired_crl(path):
    """A CRL of the dev CA whose nextUpdate passed an hour ago, written over
    <path>."""
    now = time.time()
    fmt = "%Y%m%d%H%M%SZ"
    last = time.strftime(fmt, time.gmtime(now - 7200))
    nxt = time.strftime(fmt, time.gmtime(now - 3600))
    tmp = path + ".new"
    openssl("ca", "-config", ca_cnf(), "-gencrl", "-crl_lastupdate", last, "-crl_nextupdate", nxt, "-out", tmp)
    os.replace(tmp, path)


class TestCrlGrace(RevocationCase):
    """A CRL past its nextUpdate is still used within crl_refresh.grace_s,
    with an alert."""

    @classmethod
    def revocation(cls, tls, stack):
        live_crl(tls, stack, 1)
        tls["crl_refresh"]["grace_s"] = 7200

    def test_expired_crl_used_within_grace(self):
        st = self.stack
        expired_crl(os.path.join(st.dir, "crl-live.pem"))
        self.assertTrue(wait_for(lambda: (metric(st, "opale_crl_next_update_seconds") or 0) < 0),
                        st.gateway_stderr()[-2000:])
        self.assert_accepted("client-commune")
        n0 = st.journal_count()
        self.assertEqual(self.attempt("client-revoked")[0], "refused")  # the CRL is still applied
        self.assertIsNotNone(self.refusal_record("client-revoked", "tls.cert_revoked", since=n0))
        ev = wait_for(lambda: self.revocation_events("tls.crl_expired"), timeout=harness.JOURNAL_WAIT)
        self.assertTrue(ev, "no tls.crl_expired event")
        self.assertIs(ev[0].get("refusing"), False, ev[0])
        self.assertEqual(ev[0].get("grace_s"), 7200, ev[0])


class TestCrlExpired(RevocationCase):
    """Without grace (the default), a CRL past its nextUpdate refuses every
    handshake (tls.crl), with an alert."""

    @classmethod
    def revocation(cls, tls, stack):
        live_crl(tls, stack, 1)

    def test_expired_crl_refuses(self):
        st = self.stack
        self.assert_accepted("client-commune")
        expired_crl(os.path.join(st.dir, "crl-live.pem"))
        self.wait_refused("client-commune", "tls.crl", timeout=10)
        ev = wait_for(lambda: self.revocation_events("tls.crl_expired"), timeout=harness.JOURNAL_WAIT)
        self.assertTrue(ev, "no tls.crl_expired event")
        self.assertIs(ev[0].get("refusing"), True, ev[0])


class TestCrlFromUrl(RevocationCase):
    """crl_refresh.url and no file: the CRL is fetched at start, then on its
    schedule and at once on SIGHUP."""

    partners = ("url",)
    server = None

    @classmethod
    def revocation(cls, tls, stack):
        if cls.server is None:
            cls.server = CrlServer()
            cls.server.publish(os.path.join(stack.pki, "crl.pem"))
            cls.server.start()
            cls.addClassCleanup(cls.server.stop)
        del tls["crl"]
        tls["crl_refresh"] = {"url": "http://127.0.0.1:%d/ca.crl" % cls.server.port, "fetch_s": 3600}

    def test_crl_fetched_from_url(self):
        st = self.stack
        name = self.issued[0][0]
        # the CRL of the start is in use: the dev CA's revoked certificate is refused
        self.assertTrue(wait_for(lambda: (metric(st, "opale_crl_reloads_total", outcome="ok") or 0) >= 1))
        n0 = st.journal_count()
        self.assertEqual(self.attempt("client-revoked")[0], "refused")
        self.assertIsNotNone(self.refusal_record("client-revoked", "tls.cert_revoked", since=n0))
        self.assert_accepted(name)
        gets = self.server.gets
        revoke(name)
        tmp = os.path.join(st.dir, "next.crl.pem")
        gen_crl(tmp)
        self.server.publish(tmp)
        st.gw.send_signal(signal.SIGHUP)  # fetch_s is an hour: SIGHUP fetches now
        self.wait_refused(name, "tls.cert_revoked", timeout=10)
        self.assertGreater(self.server.gets, gets)
        self.assert_accepted("client-commune")


# --------------------------------------------------------------------------
# OCSP for partner certificates


def partners_dir(stack, names):
    d = os.path.join(stack.dir, "partners")
    os.makedirs(d, exist_ok=True)
    for n in names:
        shutil.copy(os.path.join(stack.pki, n + ".crt"), os.path.join(d, n + ".pem"))
    return "partners"


class TestOcspHard(RevocationCase):
    """Hard-fail, every partner certificate prefetched from
    ocsp.certificates_dir, refreshed every 5 s."""

    partners = ("ocsp", "late", "resume")
    responder = Responder()

    @classmethod
    def revocation(cls, tls, stack):
        tls["ocsp"] = {"mode": "hard", "responder": cls.responder.url, "refresh_s": 5,
                       "certificates_dir": partners_dir(stack, ["client-commune", cls.issued[0][0],
                                                                cls.issued[2][0]])}

    def setUp(self):
        def answered():  # the three prefetched certificates (some may be revoked by now)
            return sum(metric(self.stack, "opale_ocsp_certificates", state=s) or 0 for s in ("good", "revoked")) >= 3
        self.assertTrue(wait_for(answered), "the prefetch did not get two answers: %s" % self.stack.gateway_stderr()[-2000:])

    def test_prefetched_partner_accepted_and_metrics(self):
        self.assert_accepted("client-commune")
        self.assertGreaterEqual(metric(self.stack, "opale_ocsp_fetches_total", outcome="ok"), 2)
        age = metric(self.stack, "opale_ocsp_oldest_answer_age_seconds")
        self.assertIsNotNone(age)
        self.assertGreaterEqual(age, 0)
        self.assertLess(age, 60)

    def test_unknown_certificate_first_handshake_follows_hard_fail(self):
        # not in certificates_dir: the first handshake has no status (hard:
        # refused), the thread fetches it at once, then it is accepted
        name = self.issued[1][0]
        n0 = self.stack.journal_count()
        self.assertEqual(self.attempt(name)[0], "refused")
        self.assertIsNotNone(self.refusal_record(name, "tls.ocsp_unavailable", since=n0))
        ok = wait_for(lambda: self.attempt(name)[0] == "response", timeout=WAIT, step=0.5)
        self.assertTrue(ok, "never accepted once its status was fetched")
        self.assert_accepted(name)

    def test_resumed_session_of_a_revoked_partner_refused(self):
        # a resumed TLS session skips the certificate check of the handshake:
        # the mtls stage refuses its request
        st = self.stack
        name = self.issued[2][0]
        ctx = harness.tls_context(pki=st.pki, cert_name=name, max_version=harness.ssl.TLSVersion.TLSv1_2)
        raw = socket.create_connection(("127.0.0.1", st.port), timeout=5)
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            self.assertEqual(self.exchange(s, name).status, 200)
            sess = s.session
        self.assertIsNotNone(sess)
        revoke(name)
        self.responder.restart()
        self.assertTrue(wait_for(lambda: (metric(st, "opale_ocsp_certificates", state="revoked") or 0) >= 1),
                        "the revocation was not learnt")
        raw = socket.create_connection(("127.0.0.1", st.port), timeout=5)
        with ctx.wrap_socket(raw, server_hostname="localhost", session=sess) as s:
            self.assertTrue(s.session_reused, "the session was not resumed: the test proves nothing")
            resp = self.exchange(s, name)
        self.assertEqual(resp.status, 401, resp)
        self.assertEqual(resp.json()["erreur"]["code"], "910215", resp)

    def test_revoked_partner_refused_on_next_handshake_and_open_connection(self):
        st = self.stack
        name = self.issued[0][0]
        with st.tls_connect(name) as open_conn:
            self.assertEqual(self.exchange(open_conn, name).status, 200)
            revoke(name)
            self.responder.restart()
            self.wait_refused(name, "tls.ocsp_revoked")
            # the connection opened before the revocation: its next request is refused
            resp = self.exchange(open_conn, name)
            self.assertEqual(resp.status, 401, resp)
            self.assertEqual(resp.json()["erreur"]["code"], "910215", resp)
            rid = resp.header("X-Request-ID")
            rec = st.journal_by_request_id(rid)
            self.assertIsNotNone(rec)
            self.assertEqual(rec.get("reason"), "tls.ocsp_revoked", rec)
            self.assertEqual(rec.get("decision"), "deny", rec)
        self.assertGreaterEqual(metric(st, "opale_ocsp_certificates", state="revoked"), 1)
        self.assertGreaterEqual(metric(st, "opale_tls_refusals_total", reason="tls.ocsp_revoked"), 1)
        # the others are not affected
        self.assert_accepted("client-commune")


class TestOcspFromAia(RevocationCase):
    """No responder configured: the one in the certificate's AIA is asked,
    with a nonce; a certificate without AIA has no responder (hard: refused)."""

    responder = Responder(nmin=60)

    @classmethod
    def more_partners(cls):
        return [issue("aia", CLIENT_EXT + "authorityInfoAccess = OCSP;URI:%s\n" % cls.responder.url)]

    @classmethod
    def revocation(cls, tls, stack):
        tls["ocsp"] = {"mode": "hard", "refresh_s": 5, "nonce": True,
                       "certificates_dir": partners_dir(stack, [cls.issued[0][0], "client-commune"])}

    def test_responder_from_aia(self):
        st = self.stack
        self.assertTrue(wait_for(lambda: (metric(st, "opale_ocsp_certificates", state="good") or 0) >= 1),
                        st.gateway_stderr()[-2000:])
        self.assert_accepted(self.issued[0][0])
        with open(self.responder.log) as f:
            self.assertIn("Received request", f.read())
        # client-commune has no AIA and no responder is configured
        self.assertEqual(metric(st, "opale_ocsp_certificates", state="unavailable"), 1)
        n0 = st.journal_count()
        self.assertEqual(self.attempt("client-commune")[0], "refused")
        self.assertIsNotNone(self.refusal_record("client-commune", "tls.ocsp_unavailable", since=n0))
        ev = [e for e in self.revocation_events("tls.ocsp_fetch_failed") if e.get("cert_sha256") == st.fp["client-commune"]]
        self.assertTrue(ev)
        self.assertIn("no OCSP responder", ev[0].get("error", ""), ev[0])


class TestOcspDelegatedResponder(RevocationCase):
    """A responder certificate the CA issued for OCSP signing
    (id-kp-OCSPSigning) signs the answers: accepted."""

    responder = Responder(nmin=60)

    @classmethod
    def setUpClass(cls):
        signer = issue("ocsp-signer", "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, "
                                      "digitalSignature\nextendedKeyUsage = OCSPSigning\n")
        cls.responder.signer = signer[0]
        super().setUpClass()

    @classmethod
    def revocation(cls, tls, stack):
        tls["ocsp"] = {"mode": "hard", "responder": cls.responder.url, "refresh_s": 5,
                       "certificates_dir": partners_dir(stack, ["client-commune"])}

    def test_delegated_responder_accepted(self):
        st = self.stack
        self.assertTrue(wait_for(lambda: (metric(st, "opale_ocsp_certificates", state="good") or 0) >= 1),
                        st.gateway_stderr()[-2000:])
        self.assert_accepted("client-commune")
        self.assertEqual(metric(st, "opale_ocsp_fetches_total", outcome="failed"), 0)


class TestOcspUndelegatedSigner(RevocationCase):
    """A certificate of the same CA without id-kp-OCSPSigning (a partner's
    client certificate) signs the answers: rejected."""

    responder = Responder(signer="client-departement", nmin=60)

    @classmethod
    def revocation(cls, tls, stack):
        tls["ocsp"] = {"mode": "hard", "responder": cls.responder.url, "refresh_s": 5,
                       "certificates_dir": partners_dir(stack, ["client-commune"])}

    def test_undelegated_signer_rejected(self):
        st = self.stack
        ev = wait_for(lambda: self.revocation_events("tls.ocsp_fetch_failed"))
        self.assertTrue(ev, "no tls.ocsp_fetch_failed event: %s" % st.gateway_stderr()[-2000:])
        self.assertIn("signer not authorised", ev[0].get("error", ""), ev[0])
        self.assertEqual(metric(st, "opale_ocsp_certificates", state="good"), 0)
        n0 = st.journal_count()
        self.assertEqual(self.attempt("client-commune")[0], "refused")
        self.assertIsNotNone(self.refusal_record("client-commune", "tls.ocsp_unavailable", since=n0))


class TestOcspStale(RevocationCase):
    """An answer without nextUpdate is stale after 2 x refresh_s (10 s); hard
    mode then refuses."""

    responder = Responder()  # no -nmin/-ndays: no nextUpdate

    @classmethod
    def revocation(cls, tls, stack):
        tls["ocsp"] = {"mode": "hard", "responder": cls.responder.url, "refresh_s": 5,
                       "certificates_dir": partners_dir(stack, ["client-commune"])}

    def test_stale_answer_refused_in_hard_mode(self):
        st = self.stack
        self.assertTrue(wait_for(lambda: (metric(st, "opale_ocsp_certificates", state="good") or 0) >= 1))
        self.assert_accepted("client-commune")
        self.responder.stop()
        self.wait_refused("client-commune", "tls.ocsp_stale", timeout=30)
        self.assertGreaterEqual(metric(st, "opale_ocsp_certificates", state="stale"), 1)
        self.assertGreaterEqual(metric(st, "opale_ocsp_fetches_total", outcome="failed"), 1)


class TestOcspSoftResponderDown(RevocationCase):
    """Soft-fail: no responder answers; handshakes go on, each certificate's
    soft-fail is a security event, counted."""

    @classmethod
    def revocation(cls, tls, stack):
        tls["ocsp"] = {"mode": "soft", "responder": "http://127.0.0.1:%d" % harness.closed_port(),
                       "refresh_s": 5, "timeout_ms": 500}

    def test_soft_fail_accepts_and_journals(self):
        st = self.stack
        self.assert_accepted("client-commune")
        self.assert_accepted("client-commune")
        self.assertGreaterEqual(metric(st, "opale_ocsp_soft_fail_total"), 2)
        fp = st.fp["client-commune"]
        ev = wait_for(lambda: [e for e in self.revocation_events("tls.ocsp_soft_fail")
                               if e.get("cert_sha256") == fp], timeout=harness.JOURNAL_WAIT)
        self.assertTrue(ev, "no tls.ocsp_soft_fail security event")
        self.assertEqual(ev[0].get("reason"), "tls.ocsp_unavailable", ev[0])
        self.assertTrue(wait_for(lambda: (metric(st, "opale_ocsp_fetches_total", outcome="failed") or 0) >= 1))


class TestOcspHardResponderDown(RevocationCase):
    """Hard-fail: no responder answers; handshakes are refused."""

    @classmethod
    def revocation(cls, tls, stack):
        tls["ocsp"] = {"mode": "hard", "responder": "http://127.0.0.1:%d" % harness.closed_port(),
                       "refresh_s": 5, "timeout_ms": 500,
                       "certificates_dir": partners_dir(stack, ["client-commune"])}

    def test_hard_fail_refuses(self):
        self.assertTrue(wait_for(lambda: (metric(self.stack, "opale_ocsp_fetches_total", outcome="failed") or 0) >= 1))
        n0 = self.stack.journal_count()
        self.assertEqual(self.attempt("client-commune")[0], "refused")
        self.assertIsNotNone(self.refusal_record("client-commune", "tls.ocsp_unavailable", since=n0))
        self.assertEqual(metric(self.stack, "opale_ocsp_soft_fail_total"), 0)


class TestOcspWrongSigner(RevocationCase):
    """A responder signing with a key the client CA never delegated to (the
    unrelated unknown-ca): its answers are rejected, nothing is cached."""

    responder = Responder(signer="unknown-ca", nmin=60)

    @classmethod
    def revocation(cls, tls, stack):
        tls["ocsp"] = {"mode": "hard", "responder": cls.responder.url, "refresh_s": 5,
                       "certificates_dir": partners_dir(stack, ["client-commune"])}

    def test_wrong_signer_rejected(self):
        st = self.stack
        ev = wait_for(lambda: self.revocation_events("tls.ocsp_fetch_failed"))
        self.assertTrue(ev, "no tls.ocsp_fetch_failed event: %s" % st.gateway_stderr()[-2000:])
        self.assertIn("signature", ev[0].get("error", ""), ev[0])
        with open(self.responder.log) as f:
            self.assertIn("Received request", f.read(), "the responder was never asked")
        self.assertEqual(metric(st, "opale_ocsp_certificates", state="good"), 0)
        self.assertEqual(metric(st, "opale_ocsp_fetches_total", outcome="ok"), 0)
        n0 = st.journal_count()
        self.assertEqual(self.attempt("client-commune")[0], "refused")
        self.assertIsNotNone(self.refusal_record("client-commune", "tls.ocsp_unavailable", since=n0))


# --------------------------------------------------------------------------
# stapling


class TestStapling(RevocationCase):
    responder = Responder(nmin=60)

    @classmethod
    def revocation(cls, tls, stack):
        tls["stapling"] = {"responder": cls.responder.url, "refresh_s": 60}

    def s_client(self, sigalgs):
        pki = self.stack.pki
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.stack.port, "-status",
                            "-servername", "localhost", "-sigalgs", sigalgs,
                            "-cert", os.path.join(pki, "client-commune.crt"),
                            "-key", os.path.join(pki, "client-commune.key"),
                            "-CAfile", os.path.join(pki, "ca.crt")],
                           input=b"", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        return r.stdout.decode(errors="replace")

    def test_stapled_response_in_handshake(self):
        st = self.stack
        self.assertTrue(wait_for(lambda: (metric(st, "opale_ocsp_staple_fetches_total", outcome="ok") or 0) >= 2),
                        "no staple fetched: %s" % st.gateway_stderr()[-2000:])
        for sigalgs, cn in (("ECDSA+SHA256", "server-ecdsa"), ("RSA-PSS+SHA256:RSA+SHA256", "server-rsa")):
            with self.subTest(cert=cn):
                out = self.s_client(sigalgs)
                self.assertIn("OCSP Response Status: successful", out, out[-3000:])
                self.assertIn("Cert Status: good", out, out[-3000:])
                # the staple is for the certificate the handshake used
                serial = openssl("x509", "-in", os.path.join(st.pki, cn + ".crt"), "-noout", "-serial")
                serial = serial.strip().split("=", 1)[1].upper()
                m = re.search(r"Serial Number: ([0-9A-Fa-f]+)", out)
                self.assertIsNotNone(m, out[-3000:])
                self.assertEqual(m.group(1).upper().lstrip("0"), serial.lstrip("0"))
        age = metric(st, "opale_ocsp_staple_age_seconds", certificate="0")
        self.assertGreaterEqual(age, 0)

    def test_no_staple_without_status_request(self):
        pki = self.stack.pki
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.stack.port,
                            "-cert", os.path.join(pki, "client-commune.crt"),
                            "-key", os.path.join(pki, "client-commune.key"),
                            "-CAfile", os.path.join(pki, "ca.crt")],
                           input=b"", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        out = r.stdout.decode(errors="replace")
        self.assertNotIn("OCSP Response Status", out)


# --------------------------------------------------------------------------
# alerting rules


class TestAlertRules(unittest.TestCase):
    """deploy/prometheus/opale-revocation.rules.yml passes promtool and its
    unit tests, and names only families the gateway writes."""

    DIR = os.path.join(harness.SRCDIR, "deploy", "prometheus")

    def promtool(self, *args):
        tool = shutil.which("promtool")
        self.assertIsNotNone(tool, "promtool missing: apt-get install prometheus (in the Makefile's DEPS)")
        r = subprocess.run([tool, *args], cwd=self.DIR, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        return r.returncode, (r.stdout + r.stderr).decode(errors="replace")

    def test_rules_check_and_unit_tests(self):
        rc, out = self.promtool("check", "rules", "opale-revocation.rules.yml")
        self.assertEqual(rc, 0, out)
        self.assertIn("SUCCESS: 5 rules found", out)
        rc, out = self.promtool("test", "rules", "opale-revocation.test.yml")
        self.assertEqual(rc, 0, out)

    def test_rules_name_documented_families(self):
        with open(os.path.join(self.DIR, "opale-revocation.rules.yml")) as f:
            used = set(re.findall(r"\b(opale_[a-z_]+)", f.read()))
        with open(os.path.join(harness.SRCDIR, "docs", "metrics.md")) as f:
            doc = f.read()
        self.assertTrue(used)
        for fam in used:
            self.assertIn("| `%s` |" % fam, doc)


if __name__ == "__main__":
    unittest.main()

"""Public routes (no scope: etatSante) pass every identity control (issue 12,
section 5; docs/architecture.md, "What a public route goes through").

The certificate must name a habilitation that is active, within its dates
and for this environment; the operator's kill switch applies from the very
next request; the caller's IP is checked; an ID_Teleservice that is sent must
be the habilitation's. No bearer token is needed. Calls count toward the
habilitation's quota (with the RateLimit-* headers) unless the route says
"quota": false. Every refusal reaches nothing upstream and is journalled."""

import time
import unittest

import harness
from harness import GatewayTestCase, Stack, read_response, require_binaries, send_raw

ETAT = "/opale/v1/etatSante"
SIREN = "732829320"
DECL = "/opale/v1/entreprises/%s/declarations?annee=2023" % SIREN

# Extra partners, each with its own client certificate issued at run time.
EXTRA = {
    "client-pub-suspended": {"habilitation": {"state": "suspended"}},
    "client-pub-revoked": {"habilitation": {"state": "revoked"}},
    "client-pub-future": {"habilitation": {"valid_from": "2098-01-01", "valid_until": "2099-12-31"}},
    "client-pub-expired": {"habilitation": {"valid_from": "2020-01-01", "valid_until": "2021-12-31"}},
    "client-pub-prod": {"habilitation": {"definition": "api_opale"}},
    "client-pub-killswitch": {},
    "client-pub-quota": {},   # no "quota" section: the sandbox default, 50/min
    "client-pub-quota2": {},  # the same, for the keep-alive suspension test
}


def partner(name, i):
    return {"file": name + ".json", "id": "H97%02d" % i, "client_id": name[len("client-"):] + "-sandbox",
            "teleservice": "TS-97%02d" % i, "siret": harness.make_siret(300 + i), "name": "Public %d" % i}


PARTNERS = {name: partner(name, i) for i, name in enumerate(sorted(EXTRA))}


def policy_hook(pols, stack):
    for name, over in sorted(EXTRA.items()):
        p = PARTNERS[name]
        pol = harness.make_policy(name, stack.fp[name], partner=p, **over)
        if name.startswith("client-pub-quota"):
            del pol["quota"]
        pols[p["file"]] = pol


def issue_certs():
    fps = {}
    for name in EXTRA:
        fps[name] = harness.issue_client_cert(name, name[len("client-"):] + "-sandbox")
    return fps


class PublicRouteCase(GatewayTestCase):

    conf_hook = None

    @classmethod
    def setUpClass(cls):
        require_binaries()
        fps = issue_certs()
        st = cls.stack = Stack(cls.__name__, policy_hook=policy_hook, conf_hook=cls.conf_hook)
        st.fp.update(fps)
        cls.addClassCleanup(st.stop)
        st.start()

    def etat(self, cert, teleservice=None, **kw):
        """GET etatSante as <cert>, without a token and, by default, without
        ID_Teleservice."""
        return self.stack.request(ETAT, cert_name=cert, token=None, teleservice=teleservice, **kw)

    def denied(self, cert, status, code, reason, teleservice=None):
        st = self.stack
        st.mock_reset()
        resp = self.etat(cert, teleservice=teleservice)
        self.assertErrorBody(resp, status, code)
        self.assertEqual(st.mock_stats()["requests"], 0, "a refused etatSante reached the backend")
        rec = self.assertJournal(resp.header("X-Request-ID"), status=status, code=code, decision="deny")
        self.assertTrue((rec.get("path") or "").startswith(ETAT), rec)
        self.assertEqual(rec.get("reason"), reason, rec)
        return resp, rec


class TestPublicRouteIdentity(PublicRouteCase):

    def test_allowed_without_token_with_quota_headers(self):
        st = self.stack
        st.mock_reset()
        resp = self.etat("client-pub-quota2")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("RateLimit-Limit"), "50", resp)
        self.assertIsNotNone(resp.header("RateLimit-Remaining"), resp)
        self.assertIsNotNone(resp.header("RateLimit-Reset"), resp)
        p = PARTNERS["client-pub-quota2"]
        rid = resp.header("X-Request-ID")
        self.assertBackendAssertion(st.mock_last(), rid, p["client_id"], p["id"])
        rec = self.assertJournal(rid, decision="allow", status=200, route="etatSante")
        self.assertEqual(rec.get("consumer"), p["client_id"], rec)
        self.assertEqual((rec.get("quota") or {}).get("limit"), 50, rec)

    def test_habilitation_suspended(self):
        self.denied("client-pub-suspended", 403, "910205", "rights.suspended")

    def test_habilitation_revoked(self):
        self.denied("client-pub-revoked", 403, "910206", "rights.revoked")

    def test_habilitation_not_yet_valid(self):
        self.denied("client-pub-future", 403, "910207", "rights.not_yet_valid")

    def test_habilitation_expired(self):
        self.denied("client-pub-expired", 403, "910208", "rights.expired")

    def test_production_habilitation_on_sandbox(self):
        self.denied("client-pub-prod", 403, "910209", "rights.environment")

    def test_certificate_without_habilitation(self):
        fp = harness.issue_client_cert("client-pub-nopolicy", "pub-nopolicy-sandbox")
        self.stack.fp["client-pub-nopolicy"] = fp
        self.denied("client-pub-nopolicy", 401, "910201", "mtls.unknown_cert")

    def test_wrong_teleservice_refused_missing_allowed(self):
        self.denied("client-pub-quota2", 403, "910204", "teleservice.mismatch", teleservice="TS-0001")
        ok = self.etat("client-pub-quota2", teleservice=PARTNERS["client-pub-quota2"]["teleservice"])
        self.assertEqual(ok.status, 200, ok)

    def test_kill_switch_every_request(self):
        """The issue's case: suspended, etatSante was forwarded 200 times in a
        row. Now refused from the next request on, 20 times in a row, also on
        an open keep-alive connection, and allowed again after resume."""
        st = self.stack
        cert = "client-pub-killswitch"
        cid = PARTNERS[cert]["client_id"]
        self.addCleanup(st.admin_call, "POST", "/admin/consumers/%s/resume" % cid)
        with st.tls_connect(cert) as s:
            send_raw(s, st.build_request(ETAT, cert_name=cert, token=None, teleservice=None))
            self.assertEqual(read_response(s).status, 200)
            status, body = st.admin_call("POST", "/admin/consumers/%s/suspend" % cid, body={"reason": "test"})
            self.assertEqual(status, 200, body)
            st.mock_reset()
            for i in range(20):
                send_raw(s, st.build_request(ETAT, cert_name=cert, token=None, teleservice=None))
                resp = read_response(s)
                self.assertErrorBody(resp, 403, "910213")
            rec = self.assertJournal(resp.header("X-Request-ID"), decision="deny", code="910213")
            self.assertEqual(rec.get("reason"), "killswitch.suspended", rec)
        self.denied(cert, 403, "910213", "killswitch.suspended")  # on a new connection too
        self.assertEqual(st.mock_stats()["requests"], 0)
        status, body = st.admin_call("POST", "/admin/consumers/%s/resume" % cid, body={"reason": "test done"})
        self.assertEqual(status, 200, body)
        self.assertEqual(self.etat(cert).status, 200)


class TestPublicRouteQuota(PublicRouteCase):

    def test_51st_call_in_a_minute_is_429(self):
        """Sandbox default 50/min: 50 etatSante calls are admitted with
        RateLimit-Remaining counting down, the 51st is 429 (900804) with
        Retry-After and is not forwarded; a guarded call of the same
        habilitation is refused too (one window per habilitation)."""
        st = self.stack
        cert = "client-pub-quota"
        p = PARTNERS[cert]
        token = st.token(cert)  # before: /token does not count, but get it now
        self.assertTrue(token, st.last_token_error)
        st.mock_reset()
        start = time.monotonic()
        with st.tls_connect(cert) as s:
            for i in range(50):
                send_raw(s, st.build_request(ETAT, cert_name=cert, token=None, teleservice=None))
                r = read_response(s)
                self.assertEqual(r.status, 200, (i, r))
                self.assertEqual(r.header("RateLimit-Limit"), "50", r)
                self.assertEqual(r.header("RateLimit-Remaining"), str(49 - i), r)
            send_raw(s, st.build_request(ETAT, cert_name=cert, token=None, teleservice=None))
            r = read_response(s)
        self.assertLess(time.monotonic() - start, 55, "too slow to test a one-minute window")
        self.assertErrorBody(r, 429, "900804")
        self.assertEqual(r.header("RateLimit-Remaining"), "0", r)
        self.assertGreaterEqual(int(r.header("Retry-After")), 1, r)
        self.assertEqual(st.mock_stats()["requests"], 50)
        rec = self.assertJournal(r.header("X-Request-ID"), decision="deny", code="900804", route="etatSante")
        self.assertEqual(rec.get("reason"), "quota.exceeded", rec)
        g = st.request(DECL, cert_name=cert, token=token, teleservice=p["teleservice"])
        self.assertErrorBody(g, 429, "900804")
        self.assertEqual(st.mock_stats()["requests"], 50)


def _etat_not_counted(conf, stack):
    for r in conf["routes"]:
        if r["name"] == "etatSante":
            r["quota"] = False


class TestPublicRouteNotCounted(PublicRouteCase):
    """etatSante declared with "quota": false: neither counted nor limited."""

    conf_hook = staticmethod(_etat_not_counted)

    def test_quota_false_route_does_not_count(self):
        st = self.stack
        cert = "client-pub-quota"
        p = PARTNERS[cert]
        st.mock_reset()
        with st.tls_connect(cert) as s:
            for i in range(60):
                send_raw(s, st.build_request(ETAT, cert_name=cert, token=None, teleservice=None))
                r = read_response(s)
                self.assertEqual(r.status, 200, (i, r))
                self.assertIsNone(r.header("RateLimit-Limit"), r)
        self.assertEqual(st.mock_stats()["requests"], 60)
        # the habilitation's window is untouched: a guarded call has 49 left
        g = st.request(DECL, cert_name=cert, teleservice=p["teleservice"])
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.header("RateLimit-Remaining"), "49", g)
        # but the identity controls still apply
        self.denied("client-pub-revoked", 403, "910206", "rights.revoked")


if __name__ == "__main__":
    unittest.main()

"""The access stages of the CGU §4 order (mtls identity, route, ipallow,
correlation, teleservice, rights) and the operator's kill switch: each
refusal has its DGFIP error body and code (docs/errors.md), reaches nothing
upstream, and is journaled as a deny with its reason."""

import json
import os
import signal
import time
import unittest

import harness
from harness import GatewayTestCase, Stack, build_request, read_response, require_binaries, send_raw

SIREN = "732829320"
DECL = "/opale/v1/entreprises/%s/declarations?annee=%s"
HABIL = "/opale/v1/entreprises/%s/habilitations" % SIREN

# Extra partners, each with its own client certificate issued at run time:
# name -> (policy sections to override)
EXTRA = {
    "client-hab-suspended": {"habilitation": {"state": "suspended"}},
    "client-hab-revoked": {"habilitation": {"state": "revoked"}},
    "client-hab-future": {"habilitation": {"valid_from": "2098-01-01", "valid_until": "2099-12-31"}},
    "client-hab-expired": {"habilitation": {"valid_from": "2020-01-01", "valid_until": "2021-12-31"}},
    "client-hab-prod": {"habilitation": {"definition": "api_opale"}},
    "client-killswitch": {},
}


def partner(name, i):
    return {"file": name + ".json", "id": "H95%02d" % i, "client_id": name[len("client-"):] + "-sandbox",
            "teleservice": "TS-95%02d" % i, "siret": harness.make_siret(100 + i), "name": "Partenaire %d" % i}


def policy_hook(pols, stack, final=True):
    """The policies of the tests (<final>), or the same partners still active
    with every scope (not <final>): the stack starts with those, so that each
    partner gets its access token, then reloads the final set. A token lives
    on after a policy change; the access stages must refuse it at once."""
    commune = pols["commune-exemple.json"]
    if final:
        commune["rights"] = {"scopes": ["api_opale_declarations", "api_opale_creances"],
                             "years": {"from": 2019, "to": 2025}}
    pols["departement-test.json"]["consumer"]["ip_allowlist"] = ["10.0.0.0/8"]
    for i, (name, over) in enumerate(sorted(EXTRA.items())):
        p = partner(name, i)
        pols[p["file"]] = harness.make_policy(name, stack.fp[name], partner=p, **(over if final else {}))


class TestAccess(GatewayTestCase):

    @classmethod
    def setUpClass(cls):
        require_binaries()
        pki = harness.pki_dir()
        fps = {"client-nopolicy": harness.issue_client_cert("client-nopolicy", "nopolicy-sandbox")}
        for name in EXTRA:
            fps[name] = harness.issue_client_cert(name, name[len("client-"):] + "-sandbox")
        st = cls.stack = Stack(cls.__name__, policy_hook=lambda pols, stack: policy_hook(pols, stack, final=False))
        st.fp.update(fps)
        cls.addClassCleanup(st.stop)
        st.start()
        cls.partners = {name: partner(name, i) for i, name in enumerate(sorted(EXTRA))}
        assert pki == st.pki
        # Tokens while every habilitation is active and the commune has every
        # scope, then the final policies.
        cls.tokens = {name: st.token(name) for name in ["client-commune"] + sorted(EXTRA)}
        st.policy_hook = policy_hook
        st.policies = st.build_policies()
        st.write_policies(st.policies)
        status, body = st.admin_call("POST", "/admin/reload")
        if status != 200:
            raise RuntimeError("reload of the final policies: %d %r" % (status, body))

    def denied(self, target, status, code, reason=None, cert="client-commune", **kw):
        """The request is refused with <status>/<code>, nothing reaches the
        mock, and a deny record with <reason> is journaled."""
        st = self.stack
        st.mock_reset()
        corr = kw.get("correlation_id", True)
        if corr is True:
            corr = kw["correlation_id"] = harness.new_uuid()
        resp = st.request(target, cert_name=cert, **kw)
        self.assertErrorBody(resp, status, code)
        self.assertEqual(st.mock_stats()["requests"], 0, "refused request reached the backend")
        rec = self.assertJournal(resp.header("X-Request-ID"), status=status, code=code, decision="deny")
        if reason is not None:
            self.assertEqual(rec.get("reason"), reason, rec)
        self.assertEqual((rec.get("tls") or {}).get("cert_sha256"), st.fp[cert], rec)
        return resp, rec

    def allowed(self, target, cert="client-commune", **kw):
        resp = self.stack.request(target, cert_name=cert, **kw)
        self.assertEqual(resp.status, 200, resp)
        return resp

    # -- baseline

    def test_allowed_request_journals_identity(self):
        resp = self.allowed(DECL % (SIREN, 2023))
        rec = self.assertJournal(resp.header("X-Request-ID"), decision="allow", status=200)
        self.assertEqual(rec.get("consumer"), "commune-exemple-sandbox", rec)
        self.assertEqual(rec.get("habilitation"), "H9001", rec)
        self.assertEqual(rec.get("teleservice"), "TS-0001", rec)
        self.assertEqual(rec.get("scope"), "api_opale_declarations", rec)

    # -- 1. mtls identity

    def test_certificate_without_habilitation_401(self):
        # Chains to the CA, valid, not revoked, but no policy names it.
        self.denied(DECL % (SIREN, 2023), 401, "910201", "mtls.unknown_cert", cert="client-nopolicy")

    def test_unknown_certificate_learns_nothing_of_routes(self):
        self.denied("/opale/v1/does-not-exist", 401, "910201", cert="client-nopolicy")

    def test_unknown_certificate_on_etat_sante(self):
        self.denied("/opale/v1/etatSante", 401, "910201", cert="client-nopolicy")

    # -- 2. ipallow

    def test_ip_not_in_allowlist_403(self):
        self.denied(DECL % (SIREN, 2023), 403, "910202", "ipallow.denied", cert="client-departement",
                    teleservice="TS-0002")

    def test_ip_denial_before_correlation(self):
        self.denied(DECL % (SIREN, 2023), 403, "910202", cert="client-departement", teleservice="TS-0002",
                    correlation_id=None)

    def test_forged_x_forwarded_for_not_believed(self):
        self.denied(DECL % (SIREN, 2023), 403, "910202", cert="client-departement", teleservice="TS-0002",
                    headers=[("X-Forwarded-For", "10.1.2.3")])

    # -- correlation

    def test_correlation_missing_400_910000(self):
        resp, _ = self.denied(DECL % (SIREN, 2023), 400, "910000", correlation_id=None)
        self.assertEqual(resp.json()["erreur"]["message"],
                         "Le paramètre X-Correlation-ID n'est pas présent dans le header HTTP")

    def test_correlation_not_a_uuid_400_910000(self):
        resp, _ = self.denied(DECL % (SIREN, 2023), 400, "910000", correlation_id="not-a-uuid")
        self.assertNotEqual(resp.header("X-Correlation-ID"), "not-a-uuid", "an invalid id must not be echoed")

    def test_correlation_checked_on_etat_sante_too(self):
        self.denied("/opale/v1/etatSante", 400, "910000", correlation_id=None)

    # -- 3. teleservice

    def test_teleservice_missing_403(self):
        self.denied(DECL % (SIREN, 2023), 403, "910203", "teleservice.missing", teleservice=None)

    def test_teleservice_of_another_habilitation_403(self):
        self.denied(DECL % (SIREN, 2023), 403, "910204", "teleservice.mismatch", teleservice="TS-0002")

    def test_teleservice_not_needed_for_etat_sante(self):
        self.allowed("/opale/v1/etatSante", teleservice=None)

    def test_teleservice_checked_before_rights(self):
        self.denied(HABIL, 403, "910203", teleservice=None)

    # -- 5. rights

    def test_scope_not_granted_403_900910(self):
        # The commune's token (issued before its habilitation lost the scope)
        # still lists api_opale_habilitations: the rights stage refuses.
        self.assertIn("api_opale_habilitations",
                      harness.jwt_decode(self.tokens["client-commune"])[1]["scope"].split())
        self.denied(HABIL, 403, "900910", "rights.scope")

    def test_scope_not_in_token_403_900910(self):
        # A token narrowed to one scope: the bearer stage refuses the others,
        # even those the habilitation grants.
        tok = self.stack.token("client-commune", scope="api_opale_declarations")
        self.denied("/opale/v1/entreprises/%s/creances?annee=2019" % SIREN, 403, "900910", "bearer.scope",
                    token=tok)
        self.allowed(DECL % (SIREN, 2023), token=tok)

    def test_second_granted_scope_allowed(self):
        self.allowed("/opale/v1/entreprises/%s/creances?annee=2019" % SIREN)

    def test_year_bounds(self):
        self.allowed(DECL % (SIREN, 2019))
        self.allowed(DECL % (SIREN, 2025))
        self.denied(DECL % (SIREN, 2018), 403, "910210", "rights.year")
        self.denied(DECL % (SIREN, 2026), 403, "910210", "rights.year")

    def test_year_missing_or_malformed_400(self):
        base = "/opale/v1/entreprises/%s/declarations" % SIREN
        for target in (base, base + "?annee=23", base + "?annee=20233", base + "?annee=abcd",
                       base + "?annee=2023&annee=2023", base + "?annee="):
            with self.subTest(target=target):
                self.denied(target, 400, "910211")

    def test_invalid_siren_400(self):
        for siren in ("404833047", "000000000", "73282932", "7328293200", "73282932a"):
            with self.subTest(siren=siren):
                self.denied(DECL % (siren, 2023), 400, "910212", "rights.bad_siren")

    def test_valid_sirens_allowed(self):
        for siren in ("732829320", "404833048", "356000000"):
            with self.subTest(siren=siren):
                self.allowed(DECL % (siren, 2023))

    def _extra(self, name, target=None, **kw):
        p = self.partners[name]
        return dict(target=target or DECL % (SIREN, 2023), cert=name, teleservice=p["teleservice"], **kw)

    def test_habilitation_suspended_403(self):
        self.denied(status=403, code="910205", reason="rights.suspended", **self._extra("client-hab-suspended"))

    def test_habilitation_revoked_403(self):
        self.denied(status=403, code="910206", reason="rights.revoked", **self._extra("client-hab-revoked"))

    def test_habilitation_not_yet_valid_403(self):
        self.denied(status=403, code="910207", reason="rights.not_yet_valid", **self._extra("client-hab-future"))

    def test_habilitation_expired_403(self):
        self.denied(status=403, code="910208", reason="rights.expired", **self._extra("client-hab-expired"))

    def test_production_habilitation_refused_in_sandbox_403(self):
        self.denied(status=403, code="910209", reason="rights.environment", **self._extra("client-hab-prod"))

    # -- kill switch (admin API)

    def test_admin_requires_token(self):
        st = self.stack
        status, _ = st.admin_call("POST", "/admin/consumers/killswitch-sandbox/suspend", token=None)
        self.assertEqual(status, 401)
        status, _ = st.admin_call("POST", "/admin/consumers/killswitch-sandbox/suspend", token="wrong")
        self.assertEqual(status, 401)
        ex = self._extra("client-killswitch")
        self.allowed(ex["target"], cert=ex["cert"], teleservice=ex["teleservice"])

    def test_kill_switch_applies_to_open_keepalive_connection(self):
        st = self.stack
        ex = self._extra("client-killswitch")
        cid = self.partners["client-killswitch"]["client_id"]
        self.addCleanup(st.admin_call, "POST", "/admin/consumers/%s/resume" % cid, body={"reason": "test done"})
        with st.tls_connect(ex["cert"]) as s:
            send_raw(s, st.build_request(ex["target"], cert_name=ex["cert"], teleservice=ex["teleservice"]))
            self.assertEqual(read_response(s).status, 200)
            status, body = st.admin_call("POST", "/admin/consumers/%s/suspend" % cid, body={"reason": "test"})
            self.assertEqual(status, 200, body)
            st.mock_reset()
            send_raw(s, st.build_request(ex["target"], cert_name=ex["cert"], teleservice=ex["teleservice"]))
            resp = read_response(s)
            self.assertErrorBody(resp, 403, "910213")
            self.assertEqual(st.mock_stats()["requests"], 0)
            rec = self.assertJournal(resp.header("X-Request-ID"), decision="deny", code="910213")
            self.assertEqual(rec.get("reason"), "killswitch.suspended", rec)
            status, body = st.admin_call("POST", "/admin/consumers/%s/resume" % cid, body={"reason": "test done"})
            self.assertEqual(status, 200, body)
            if harness.is_closed(s, timeout=0.2):
                self.fail("a 403 must not close the connection")
            send_raw(s, st.build_request(ex["target"], cert_name=ex["cert"], teleservice=ex["teleservice"]))
            self.assertEqual(read_response(s).status, 200)

    def test_admin_unknown_consumer_not_200(self):
        status, _ = self.stack.admin_call("POST", "/admin/consumers/nobody-sandbox/suspend")
        self.assertIn(status, (400, 404), "suspending an unknown consumer must fail")

    def test_admin_consumers_lists_partners(self):
        status, body = self.stack.admin_call("GET", "/admin/consumers")
        self.assertEqual(status, 200, body)
        text = json.dumps(body)
        for cid in ("commune-exemple-sandbox", "departement-test-sandbox", "killswitch-sandbox"):
            self.assertIn(cid, text)

    def test_admin_token_never_logged(self):
        with open(self.stack.pki + "/admin.token") as f:
            token = f.read().strip()
        self.stack.admin_call("GET", "/admin/consumers")
        self.assertNotIn(token, self.stack.journal_text())
        self.assertNotIn(token, self.stack.gateway_stderr())


def _maintenance_now(conf, stack):
    now = time.time()
    fmt = "%Y-%m-%dT%H:%M"
    conf["access"] = {"maintenance": {
        "timezone": "UTC", "force": True,
        "slots": [
            # one past slot (ignored) and one around now, ending in 30 min
            {"from": time.strftime(fmt, time.gmtime(now - 7200)), "until": time.strftime(fmt, time.gmtime(now - 3600))},
            {"from": time.strftime(fmt, time.gmtime(now - 600)), "until": time.strftime(fmt, time.gmtime(now + 1800))},
        ]}}


class TestMaintenance(GatewayTestCase):
    """A maintenance slot in force: 503 + Retry-After, nothing forwarded."""

    stack_kwargs = {"conf_hook": _maintenance_now}

    def test_guarded_route_503_with_retry_after(self):
        st = self.stack
        st.mock_reset()
        resp = st.request(DECL % (SIREN, 2023))
        self.assertErrorBody(resp, 503, "910220")
        ra = resp.header("Retry-After")
        self.assertIsNotNone(ra, resp)
        self.assertTrue(ra.isdigit(), ra)
        self.assertTrue(1500 <= int(ra) <= 1860, "Retry-After %s does not point at the slot's end" % ra)
        self.assertEqual(st.mock_stats()["requests"], 0)
        rec = self.assertJournal(resp.header("X-Request-ID"), status=503, code="910220")
        self.assertEqual(rec.get("reason"), "maintenance.slot", rec)
        # The gateway records every status >= 499 as "error"; a scheduled
        # slot could be read as a "deny" as well.
        self.assertIn(rec.get("decision"), ("deny", "error"), rec)

    def test_etat_sante_reports_maintenance(self):
        st = self.stack
        st.mock_reset()
        resp = st.request("/opale/v1/etatSante")
        self.assertEqual(resp.status, 503, resp)
        self.assertIsNotNone(resp.header("Retry-After"), resp)
        self.assertEqual(st.mock_stats()["requests"], 0)

    def test_unknown_certificate_still_401(self):
        # mtls runs before maintenance.
        harness.issue_client_cert("client-nopolicy", "nopolicy-sandbox")
        resp = self.stack.request("/opale/v1/etatSante", cert_name="client-nopolicy")
        self.assertErrorBody(resp, 401, "910201")


class TestPolicyReload(unittest.TestCase):
    """SIGHUP and POST /admin/reload swap the policies atomically; the unit
    of failure is the file: a bad file is rejected, the others' edits apply
    (test_policy_units.py has the rest)."""

    def setUp(self):
        require_binaries()
        self.stack = Stack("reload")
        self.addCleanup(self.stack.stop)
        self.stack.start()

    def wait_status(self, target, status, timeout=5.0):
        deadline = time.monotonic() + timeout
        for _ in range(100):
            resp = self.stack.request(target)
            if resp.status == status or time.monotonic() > deadline:
                return resp
            time.sleep(0.1)
        return resp

    def test_sighup_reload_and_refusal(self):
        st = self.stack
        self.assertEqual(st.request(HABIL).status, 200)
        pols = st.build_policies()
        pols["commune-exemple.json"]["rights"]["scopes"].remove("api_opale_habilitations")
        st.write_policies(pols)
        st.gw.send_signal(signal.SIGHUP)
        resp = self.wait_status(HABIL, 403)
        self.assertEqual(resp.status, 403, "scope removal not applied after SIGHUP: %r" % resp)
        self.assertEqual(resp.json()["erreur"]["code"], "900910")
        # The token issued before the reload still lists the scope: the
        # habilitation (rights stage) refuses it, not the token.
        self.assertIn("api_opale_habilitations", harness.jwt_decode(st.token())[1]["scope"].split())
        rec = st.journal_by_request_id(resp.header("X-Request-ID"))
        self.assertEqual((rec or {}).get("reason"), "rights.scope", rec)

        # One bad file among good ones: that file is rejected (a new file,
        # so left out), the commune's edit (the scope back) applies.
        pols["commune-exemple.json"]["rights"]["scopes"].append("api_opale_habilitations")
        pols["zz-bad.json"] = {"habilitation": {"id": "H1"}, "unknown_section": 1}
        st.write_policies(pols)
        n0 = len(st.gateway_stderr())
        st.gw.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "zz-bad.json rejected" not in st.gateway_stderr()[n0:]:
            time.sleep(0.1)
        err = st.gateway_stderr()[n0:]
        self.assertIn("zz-bad.json: unknown_section: unknown key", err, "the reload must name the bad file: %r" % err)
        self.assertIn("zz-bad.json rejected, left out", err)
        self.assertIsNone(st.gw.poll(), "gateway died on a bad reload")
        self.assertEqual(self.wait_status(HABIL, 200).status, 200, "the good file's edit did not apply")
        self.assertEqual(st.request(DECL % (SIREN, 2023)).status, 200)

        # Fixed set through the admin API.
        del pols["zz-bad.json"]
        st.write_policies(pols)
        status, body = st.admin_call("POST", "/admin/reload")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["rejected"], [], body)
        self.assertEqual(self.wait_status(HABIL, 200).status, 200)

    def test_admin_reload_duplicate_certificate_keeps_policies(self):
        st = self.stack
        pols = st.build_policies()
        # The same certificate in two habilitations is ambiguous: both files
        # are rejected; the commune keeps its previous version, the new file
        # is left out.
        dup = json.loads(json.dumps(pols["departement-test.json"]))
        dup["consumer"]["certificates"] = pols["commune-exemple.json"]["consumer"]["certificates"]
        dup["consumer"]["client_id"] = "dup-sandbox"
        dup["habilitation"]["id"] = "H9999"
        pols["dup.json"] = dup
        st.write_policies(pols)
        status, body = st.admin_call("POST", "/admin/reload")
        self.assertEqual(status, 200, body)
        self.assertEqual(sorted((os.path.basename(r["file"]), r["kept_previous"]) for r in body["rejected"]),
                         [("commune-exemple.json", True), ("dup.json", False)], body)
        resp = st.request(DECL % (SIREN, 2023))
        self.assertEqual(resp.status, 200)
        rec = st.journal_by_request_id(resp.header("X-Request-ID"))
        self.assertEqual((rec or {}).get("consumer"), "commune-exemple-sandbox", rec)
        self.assertIsNone(st.gw.poll())


if __name__ == "__main__":
    unittest.main()

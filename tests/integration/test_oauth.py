"""Issue 4 (OAuth2) end to end over real mTLS: the token endpoint POST /token
(client_credentials, tls_client_auth) and every RFC 6749 §5.2 error, calls
with a bearer token (missing, invalid, replayed from another certificate,
out of scope, tampered, forged), key rotation without downtime, the JWKS
endpoint, the "oauth" config section, and opale-mock refusing any request
without the gateway's X-JWT-Assertion.

Every call is checked on the HTTP answer AND on its journal record; every
refused call must reach nothing at the mock (neither a served request nor a
refused assertion)."""

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

import harness
from harness import (GW_BIN, TOKEN_KEY, TOKEN_KID, GatewayTestCase, Stack, b64url_decode, b64url_encode,
                     cert_x5t_s256, jwt_decode, require_binaries)

SIREN = "732829320"
DECL = "/opale/v1/entreprises/%s/declarations?annee=2023" % SIREN
CREANCES = "/opale/v1/entreprises/%s/creances?annee=2023" % SIREN
HABIL = "/opale/v1/entreprises/%s/habilitations" % SIREN
COMMUNE = harness.PARTNERS["client-commune"]
DEPARTEMENT = harness.PARTNERS["client-departement"]

ED_KEY = {"kid": "it-ed25519", "file": "pki/token-ed25519.key", "alg": "EdDSA", "active": True}
RSA_KEY = {"kid": "it-ps256", "file": "pki/token-rsa.key", "alg": "PS256", "active": False}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

# Partners of this module, each with a client certificate issued at run time.
NARROW = {"cert": "client-oauth-narrow", "file": "oauth-narrow.json", "id": "H9701",
          "client_id": "oauth-narrow-sandbox", "teleservice": "TS-9701", "siret": harness.make_siret(9701),
          "name": "Partenaire aux droits restreints",
          "over": {"rights": {"scopes": ["api_opale_declarations", "api_opale_creances"],
                              "years": {"from": 1990, "to": 2030}}}}
SUSPENDED = {"cert": "client-oauth-suspended", "file": "oauth-suspended.json", "id": "H9702",
             "client_id": "oauth-suspended-sandbox", "teleservice": "TS-9702", "siret": harness.make_siret(9702),
             "name": "Partenaire suspendu", "over": {"habilitation": {"state": "suspended"}}}
KILL = {"cert": "client-oauth-kill", "file": "oauth-kill.json", "id": "H9703", "client_id": "oauth-kill-sandbox",
        "teleservice": "TS-9703", "siret": harness.make_siret(9703), "name": "Partenaire coupe", "over": {}}
SECRET_VALUE = "it-" + "5ecret-0123456789abcdef0123456789abcdef"
SECRET = {"cert": "client-oauth-secret", "file": "oauth-secret.json", "id": "H9704",
          "client_id": "oauth-secret-sandbox", "teleservice": "TS-9704", "siret": harness.make_siret(9704),
          "name": "Partenaire avec secret",
          "over": {"consumer": {"client_secret_sha256": hashlib.sha256(SECRET_VALUE.encode()).hexdigest()}}}
EXTRA = (NARROW, SUSPENDED, KILL, SECRET)

# certificate -> the client_id its policy names (None: no policy)
CLIENT_IDS = {"client-commune": COMMUNE["client_id"], "client-departement": DEPARTEMENT["client_id"],
              "client-nopolicy": None}
CLIENT_IDS.update({p["cert"]: p["client_id"] for p in EXTRA})

# journal "code" of a refusal at /token (the error table's closest row)
TOKEN_CODES = {400: "910400", 401: "900901", 429: "900804"}


def issue_certs():
    harness.issue_client_cert("client-nopolicy", "nopolicy-sandbox")
    for p in EXTRA:
        harness.issue_client_cert(p["cert"], p["client_id"])


def extra_policies(pols, stack):
    for p in EXTRA:
        pols[p["file"]] = harness.make_policy(p["cert"], stack.cert_fp(p["cert"]), partner=p,
                                              **json.loads(json.dumps(p["over"])))


# --------------------------------------------------------------------------
# JWS signing with the openssl CLI (forged tokens and assertions)


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _der_ecdsa_to_raw(der, n=32):
    """ECDSA-Sig-Value (DER SEQUENCE of two INTEGERs) -> R || S (RFC 7518 §3.4),
    S in its low form (S <= n/2): the gateway refuses the high-S twin of a
    signature (one token, one valid text), and the openssl CLI gives either."""
    if der[0] != 0x30:
        raise ValueError("not a DER sequence")
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        if der[i] != 0x02:
            raise ValueError("not a DER integer")
        ln = der[i + 1]
        v = der[i + 2:i + 2 + ln].lstrip(b"\x00")
        out += v.rjust(n, b"\x00")
        i += 2 + ln
    s = int.from_bytes(out[n:], "big")
    if s > P256_ORDER // 2:
        out = out[:n] + (P256_ORDER - s).to_bytes(n, "big")
    return out


def sign_jws(key_file, header, claims):
    """Compact JWS of <claims> under <header> (alg ES256 or EdDSA), signed
    with the private key in <key_file> by the openssl CLI."""
    h = b64url_encode(json.dumps(header, separators=(",", ":")))
    p = b64url_encode(json.dumps(claims, separators=(",", ":")))
    signing_input = (h + "." + p).encode()
    d = harness.make_tmpdir("jws")
    path = os.path.join(d, "si.txt")
    with open(path, "wb") as f:
        f.write(signing_input)
    if header["alg"] == "ES256":
        cmd = ["openssl", "dgst", "-sha256", "-sign", key_file, path]
    elif header["alg"] == "EdDSA":
        cmd = ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", key_file, "-in", path]
    else:
        raise ValueError(header["alg"])
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr.decode(errors="replace")))
    sig = _der_ecdsa_to_raw(r.stdout) if header["alg"] == "ES256" else r.stdout
    return h + "." + p + "." + b64url_encode(sig)


def ec_public_xy(key_file):
    """(x, y) base64url of a P-256 key's public point, from the openssl CLI."""
    r = subprocess.run(["openssl", "pkey", "-in", key_file, "-pubout", "-outform", "DER"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, check=True)
    xy = r.stdout[-64:]
    return b64url_encode(xy[:32]), b64url_encode(xy[32:])


def tamper(token, segment=1):
    """<token> with one character of <segment> changed (still base64url)."""
    parts = token.split(".")
    seg = parts[segment]
    i = len(seg) // 2
    parts[segment] = seg[:i] + ("A" if seg[i] != "A" else "B") + seg[i + 1:]
    return ".".join(parts)


# --------------------------------------------------------------------------


class OAuthCase(GatewayTestCase):

    def nothing_at_mock(self, call):
        """<call>() with the mock's counters reset; the mock must have seen
        nothing: neither a served request nor a refused assertion."""
        st = self.stack
        if st.mock_proc is not None:
            st.mock_reset()
        out = call()
        if st.mock_proc is not None:
            stats = st.mock_stats()
            self.assertEqual((stats["requests"], stats["assertion_refused"]), (0, 0),
                             "a refused call reached the mock: %r" % stats)
        return out

    def assertNoStore(self, resp):
        self.assertEqual(resp.header("Cache-Control"), "no-store", resp)
        self.assertEqual(resp.header("Pragma"), "no-cache", resp)

    def token_refused(self, status, error, reason, cert="client-commune", **kw):
        """POST /token (st.token_request(<cert>, **kw)) answers the RFC 6749
        §5.2 error <error> with <status>, journaled as a deny with <reason>
        and the certificate's consumer (if any); nothing reaches the mock."""
        resp = self.nothing_at_mock(lambda: self.stack.token_request(cert, **kw))
        self.assertEqual(resp.status, status, resp)
        ctype = (resp.header("Content-Type") or "").split(";")[0].strip().lower()
        self.assertEqual(ctype, "application/json", resp)
        body = resp.json()
        self.assertEqual(set(body), {"error", "error_description"}, body)
        self.assertEqual(body["error"], error, body)
        self.assertIsInstance(body["error_description"], str, body)
        self.assertTrue(body["error_description"], body)
        self.assertNoStore(resp)
        rid = self.assertRequestId(resp)
        rec = self.assertJournal(rid, route="token", path="/token", status=status, decision="deny", reason=reason,
                                 code=TOKEN_CODES[status])
        self.assertNotIn("token_jti", rec)
        self.assertEqual((rec.get("tls") or {}).get("cert_sha256"), self.stack.cert_fp(cert), rec)
        self.assertEqual(rec.get("consumer"), CLIENT_IDS[cert], rec)
        return resp, body, rec

    def token_ok(self, cert="client-commune", **kw):
        """POST /token succeeds: (response JSON, JWT header, claims, journal record)."""
        resp = self.nothing_at_mock(lambda: self.stack.token_request(cert, **kw))
        self.assertEqual(resp.status, 200, resp)
        body = resp.json()
        hdr, claims = jwt_decode(body["access_token"])
        rec = self.assertJournal(self.assertRequestId(resp), route="token", status=200, decision="allow",
                                 token_jti=claims["jti"])
        return resp, body, hdr, claims, rec

    def call_denied(self, target, status, code, reason, cert="client-commune", **kw):
        """A guarded call refused with the DGFIP body <status>/<code>, a
        deny record with <reason>, nothing at the mock."""
        resp = self.nothing_at_mock(lambda: self.stack.request(target, cert_name=cert, **kw))
        self.assertErrorBody(resp, status, code)
        rec = self.assertJournal(resp.header("X-Request-ID"), status=status, code=code, decision="deny",
                                 reason=reason)
        self.assertEqual(rec.get("tls", {}).get("cert_sha256"), self.stack.cert_fp(cert), rec)
        return resp, rec

    def call_allowed(self, target, token, cert="client-commune", partner=COMMUNE, **kw):
        """A call with <token> is served: 200, the backend got the gateway's
        assertion for it, the journal names the token's jti."""
        st = self.stack
        st.mock_reset()
        resp = st.request(target, cert_name=cert, token=token, teleservice=partner["teleservice"], **kw)
        self.assertEqual(resp.status, 200, resp)
        rid = self.assertRequestId(resp)
        stats = st.mock_stats()
        self.assertEqual((stats["requests"], stats["assertion_refused"]), (1, 0), stats)
        claims = jwt_decode(token)[1]
        last = st.mock_last()
        self.assertBackendAssertion(last, rid, partner["client_id"], partner["id"], scope=claims["scope"])
        self.assertNotIn(token, json.dumps(last), "the client's token reached the backend")
        self.assertJournal(rid, status=200, decision="allow", token_jti=claims["jti"],
                           client_id=partner["client_id"], consumer=partner["client_id"])
        return resp, last


# --------------------------------------------------------------------------
# POST /token


class TestTokenEndpoint(OAuthCase):

    @classmethod
    def setUpClass(cls):
        require_binaries()
        issue_certs()
        cls.stack = Stack(cls.__name__, policy_hook=extra_policies)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def test_token_issued(self):
        st = self.stack
        t0 = int(time.time())
        resp, body, hdr, claims, rec = self.token_ok()
        t1 = int(time.time())
        ctype = (resp.header("Content-Type") or "").split(";")[0].strip().lower()
        self.assertEqual(ctype, "application/json", resp)
        self.assertNoStore(resp)
        self.assertEqual(set(body), {"access_token", "token_type", "expires_in", "scope"}, body)
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["expires_in"], 3600)
        self.assertEqual(body["scope"].split(), harness.ALL_SCOPES, "all of the habilitation's scopes")
        # RFC 9068 access token, signed by the active key
        self.assertEqual(hdr.get("alg"), "ES256", hdr)
        self.assertEqual(hdr.get("kid"), TOKEN_KID, hdr)
        self.assertEqual(hdr.get("typ"), "at+jwt", hdr)
        self.assertEqual(claims["iss"], st.issuer)
        self.assertEqual(claims["sub"], COMMUNE["client_id"])
        self.assertEqual(claims["client_id"], COMMUNE["client_id"])
        self.assertIn(claims["aud"], (harness.TOKEN_AUDIENCE, [harness.TOKEN_AUDIENCE]))
        for k in ("exp", "iat", "nbf"):
            self.assertIsInstance(claims[k], int, claims)
        self.assertEqual(claims["exp"] - claims["iat"], 3600, claims)
        self.assertTrue(t0 - 5 <= claims["iat"] <= t1 + 5, (t0, claims["iat"], t1))
        self.assertLessEqual(claims["nbf"], claims["iat"], claims)
        self.assertRegex(claims["jti"], harness.UUID_RE)
        self.assertEqual(claims["scope"], body["scope"])
        self.assertEqual(claims["habilitation"], COMMUNE["id"])
        self.assertEqual(claims["keytype"], "SANDBOX")
        x5t = cert_x5t_s256("client-commune", st.pki)
        self.assertEqual(claims["cnf"], {"x5t#S256": x5t}, "not bound to the client certificate")
        self.assertNotEqual(x5t, cert_x5t_s256("client-departement", st.pki))
        # the journal names the token by its jti and the client, never the token
        self.assertEqual(rec.get("client_id"), COMMUNE["client_id"], rec)
        self.assertEqual(rec.get("consumer"), COMMUNE["client_id"], rec)
        self.assertEqual(rec.get("habilitation"), COMMUNE["id"], rec)
        self.assertEqual(rec.get("method"), "POST", rec)
        self.assertEqual(rec.get("path"), "/token", rec)
        self.assertEqual((rec.get("tls") or {}).get("cert_sha256"), st.fp["client-commune"], rec)
        tok = body["access_token"]
        time.sleep(0.3)  # journal sync_ms is 200
        for text, where in ((st.journal_text(), "journal"), (st.gateway_stderr(), "stderr"),
                            (st._read(st.stdout_path), "stdout")):
            self.assertNotIn(tok, text, "the token is in the gateway's %s" % where)
            self.assertNotIn(tok.split(".")[2], text, "the token's signature is in the gateway's %s" % where)
        # two tokens never share a jti
        self.assertNotEqual(self.token_ok()[3]["jti"], claims["jti"])

    def test_token_of_another_partner_bound_to_its_certificate(self):
        _, body, _, claims, rec = self.token_ok("client-departement")
        self.assertEqual((claims["client_id"], claims["habilitation"]), (DEPARTEMENT["client_id"], DEPARTEMENT["id"]))
        self.assertEqual(claims["cnf"], {"x5t#S256": cert_x5t_s256("client-departement", self.stack.pki)})
        self.assertEqual(rec.get("client_id"), DEPARTEMENT["client_id"], rec)

    def test_scope_parameter_narrows(self):
        want = "api_opale_declarations api_opale_creances"
        _, body, _, claims, _ = self.token_ok(form=[("grant_type", "client_credentials"), ("scope", want)])
        self.assertEqual(body["scope"], want)
        self.assertEqual(claims["scope"], want)
        # a scope asked twice is granted once
        _, body, _, _, _ = self.token_ok(form=[("grant_type", "client_credentials"),
                                               ("scope", "api_opale_declarations api_opale_declarations")])
        self.assertEqual(body["scope"], "api_opale_declarations")

    def test_positive_controls(self):
        # What the refusals below change, one thing at a time, is accepted.
        self.token_ok(form=[("grant_type", "client_credentials"), ("client_id", COMMUNE["client_id"])])
        self.token_ok(content_type="application/x-www-form-urlencoded; charset=UTF-8")
        _, body, _, _, _ = self.token_ok(NARROW["cert"])
        self.assertEqual(body["scope"], "api_opale_declarations api_opale_creances")

    # -- invalid_request

    def test_get_is_invalid_request(self):
        self.token_refused(400, "invalid_request", "token.invalid_request", method="GET", content_type=None)

    def test_wrong_content_type_is_invalid_request(self):
        for ctype in ("application/json", "text/plain", "application/x-www-form-urlencodedx", None):
            with self.subTest(content_type=ctype):
                body = '{"grant_type":"client_credentials"}' if ctype == "application/json" else None
                self.token_refused(400, "invalid_request", "token.invalid_request", content_type=ctype, body=body)

    def test_missing_grant_type_is_invalid_request(self):
        self.token_refused(400, "invalid_request", "token.invalid_request", form=[("scope", "api_opale_declarations")])
        self.token_refused(400, "invalid_request", "token.invalid_request", body="")

    def test_repeated_parameter_is_invalid_request(self):
        self.token_refused(400, "invalid_request", "token.invalid_request",
                           form=[("grant_type", "client_credentials"), ("grant_type", "client_credentials")])
        self.token_refused(400, "invalid_request", "token.invalid_request",
                           form=[("grant_type", "client_credentials"), ("scope", "api_opale_declarations"),
                                 ("scope", "api_opale_creances")])

    def test_client_secret_in_body_is_invalid_request(self):
        self.token_refused(400, "invalid_request", "token.invalid_request",
                           form=[("grant_type", "client_credentials"), ("client_secret", "s3cret")])

    # -- client_secret_basic, in addition to the certificate

    def basic(self, client_id, secret):
        return [("Authorization", "Basic " + base64.b64encode(("%s:%s" % (client_id, secret)).encode()).decode())]

    def test_client_secret_basic_in_addition_to_certificate(self):
        st = self.stack
        cid = SECRET["client_id"]
        # certificate + the right secret
        _, _, _, claims, _ = self.token_ok(SECRET["cert"], headers=self.basic(cid, SECRET_VALUE))
        self.assertEqual(claims["client_id"], cid)
        # certificate alone, or with a wrong secret: refused, with a Basic challenge
        for headers in ([], self.basic(cid, SECRET_VALUE + "x"), self.basic(COMMUNE["client_id"], SECRET_VALUE)):
            with self.subTest(headers=headers):
                resp, _, _ = self.token_refused(401, "invalid_client", "token.invalid_client", cert=SECRET["cert"],
                                                headers=headers)
                self.assertEqual(resp.header("WWW-Authenticate"), 'Basic realm="api-opale"', resp)
        # the secret never instead of the certificate: another certificate with it is refused
        self.token_refused(401, "invalid_client", "token.invalid_client", headers=self.basic(cid, SECRET_VALUE))
        time.sleep(0.3)
        for text in (st.journal_text(), st.gateway_stderr()):
            self.assertNotIn(SECRET_VALUE, text)

    # -- unsupported_grant_type

    def test_unsupported_grant_type(self):
        for grant in ("password", "authorization_code", "refresh_token", "CLIENT_CREDENTIALS"):
            with self.subTest(grant=grant):
                self.token_refused(400, "unsupported_grant_type", "token.unsupported_grant_type",
                                   form=[("grant_type", grant)])

    # -- invalid_client

    def test_certificate_without_policy_is_invalid_client(self):
        self.token_refused(401, "invalid_client", "token.invalid_client", cert="client-nopolicy")

    def test_client_id_of_another_is_invalid_client(self):
        self.token_refused(401, "invalid_client", "token.invalid_client",
                           form=[("grant_type", "client_credentials"), ("client_id", DEPARTEMENT["client_id"])])

    # -- invalid_scope

    def test_scope_outside_habilitation_is_invalid_scope(self):
        for scope in ("api_opale_habilitations", "api_opale_declarations api_opale_habilitations",
                      "api_opale_inexistant"):
            with self.subTest(scope=scope):
                self.token_refused(400, "invalid_scope", "token.invalid_scope", cert=NARROW["cert"],
                                   form=[("grant_type", "client_credentials"), ("scope", scope)])

    # -- invalid_grant

    def test_suspended_habilitation_is_invalid_grant(self):
        self.token_refused(400, "invalid_grant", "token.invalid_grant", cert=SUSPENDED["cert"])

    def test_kill_switch_is_invalid_grant(self):
        st = self.stack
        cid = KILL["client_id"]
        self.addCleanup(st.admin_call, "POST", "/admin/consumers/%s/resume" % cid)
        self.token_ok(KILL["cert"])
        status, body = st.admin_call("POST", "/admin/consumers/%s/suspend" % cid, body={"reason": "test"})
        self.assertEqual(status, 200, body)
        self.token_refused(400, "invalid_grant", "token.invalid_grant", cert=KILL["cert"])
        status, body = st.admin_call("POST", "/admin/consumers/%s/resume" % cid, body={"reason": "test done"})
        self.assertEqual(status, 200, body)
        self.token_ok(KILL["cert"])


class TestTokenRate(OAuthCase):
    """token_requests_per_minute = 3, per client."""

    stack_kwargs = {"oauth": {"token_requests_per_minute": 3}}

    def test_fourth_token_request_429(self):
        st = self.stack
        toks = [self.token_ok()[1]["access_token"] for _ in range(3)]
        resp, body, rec = self.token_refused(429, "invalid_request", "token.rate_limited")
        ra = resp.header("Retry-After")
        self.assertIsNotNone(ra, resp)
        self.assertRegex(ra, r"^\d+$")
        self.assertTrue(1 <= int(ra) <= 60, ra)
        # per client: another partner still gets its token
        self.token_ok("client-departement")
        # the limit is on /token only: the tokens already issued keep working
        self.call_allowed(DECL, toks[0])


# --------------------------------------------------------------------------
# calls with a token (the bearer stage)


class TestBearer(OAuthCase):

    @classmethod
    def setUpClass(cls):
        require_binaries()
        cls.stack = Stack(cls.__name__)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def test_call_with_token_allowed(self):
        st = self.stack
        tok = st.token(fresh=True)
        resp, last = self.call_allowed(DECL, tok)
        self.assertEqual(last["uri"], DECL)
        names = [n.lower() for n, _ in last["headers"]]
        self.assertNotIn("authorization", names)
        # the same token again (the verified-token cache) and on a keep-alive connection
        with st.tls_connect() as s:
            for i in range(3):
                harness.send_raw(s, st.build_request(HABIL, token=tok))
                r = harness.read_response(s)
                self.assertEqual(r.status, 200, "request %d: %r" % (i, r))
                self.assertJournal(r.header("X-Request-ID"), token_jti=jwt_decode(tok)[1]["jti"])

    def test_missing_token_401_900902(self):
        resp, rec = self.call_denied(DECL, 401, "900902", "bearer.missing", token=None)
        self.assertEqual(resp.header("WWW-Authenticate"), 'Bearer realm="api-opale"', resp)
        self.assertNotIn("token_jti", rec)
        # a route without a scope needs no token
        r = self.stack.request("/opale/v1/etatSante", token=None)
        self.assertEqual(r.status, 200, r)

    def test_garbage_token_401_900901(self):
        for garbage, reason in (("garbage", "jws.malformed"), ("a.b.c", "jws.malformed"),
                                ("e30.e30.", "jws.alg"),  # {} as header: no alg
                                ("Zm9v.YmFy.YmF6=", "jws.malformed")):
            with self.subTest(token=garbage):
                resp, rec = self.call_denied(DECL, 401, "900901", reason, token=garbage)
                self.assertIn('error="invalid_token"', resp.header("WWW-Authenticate") or "", resp)

    def test_other_scheme_401_900901(self):
        self.call_denied(DECL, 401, "900901", "bearer.scheme",
                         headers=[("Authorization", "Basic Y29tbXVuZTpzZWNyZXQ=")])

    def test_token_replayed_with_another_certificate_401(self):
        st = self.stack
        tok_a = st.token("client-commune")
        tok_b = st.token("client-departement")
        # A's token is verified and cached (in one worker at least) by A's use
        for _ in range(2):
            self.call_allowed(DECL, tok_a)
        # partner B presents partner A's token: on fresh connections, so on both workers
        for _ in range(4):
            _, rec = self.call_denied(DECL, 401, "900901", "bearer.cnf_mismatch", cert="client-departement",
                                      token=tok_a, teleservice=DEPARTEMENT["teleservice"])
            self.assertEqual(rec.get("consumer"), DEPARTEMENT["client_id"], rec)
        # ...while each token works with its own certificate
        self.call_allowed(DECL, tok_b, cert="client-departement", partner=DEPARTEMENT)
        self.call_allowed(DECL, tok_a)

    def test_scope_subset_403_900910(self):
        tok = self.stack.token(scope="api_opale_declarations")
        self.assertEqual(jwt_decode(tok)[1]["scope"], "api_opale_declarations")
        self.call_allowed(DECL, tok)
        _, rec = self.call_denied(HABIL, 403, "900910", "bearer.scope", token=tok)
        self.assertEqual(rec.get("token_jti"), jwt_decode(tok)[1]["jti"], rec)
        self.call_denied(CREANCES, 403, "900910", "bearer.scope", token=tok)

    def test_tampered_token_401(self):
        tok = self.stack.token()
        self.call_allowed(DECL, tok)
        for seg, name, reason in ((1, "payload", "jws.signature"), (0, "header", "jws.malformed"),
                                  (2, "signature", "jws.signature")):
            with self.subTest(segment=name):
                bad = tamper(tok, seg)
                self.assertNotEqual(bad, tok)
                self.call_denied(DECL, 401, "900901", reason, token=bad)
        # claims changed to another consumer's: the signature no longer matches
        h, p, s = tok.split(".")
        claims = jwt_decode(tok)[1]
        claims["scope"] += " api_opale_tout"
        self.call_denied(DECL, 401, "900901", "jws.signature",
                         token="%s.%s.%s" % (h, b64url_encode(json.dumps(claims)), s))

    def test_unsigned_and_foreign_key_tokens_401(self):
        st = self.stack
        tok = st.token()
        hdr, claims = jwt_decode(tok)
        # alg none
        none = "%s.%s." % (b64url_encode(json.dumps({"alg": "none", "kid": TOKEN_KID, "typ": "at+jwt"})),
                           tok.split(".")[1])
        self.call_denied(DECL, 401, "900901", "jws.alg", token=none)
        # the same claims signed with another P-256 key under the gateway's kid
        forged = sign_jws(os.path.join(st.pki, "client-commune.key"), hdr, claims)
        self.call_denied(DECL, 401, "900901", "jws.signature", token=forged)
        # positive control: re-signed with the gateway's own key, it passes
        self.call_allowed(DECL, sign_jws(os.path.join(st.pki, "token-es256.key"), hdr, claims))

    def test_claims_and_binding_of_gateway_signed_tokens(self):
        # Tokens signed with the gateway's own key (so the signature is good)
        # but whose claims are wrong, one at a time: each is refused with its
        # reason. The unchanged claims, re-signed, pass (positive control).
        st = self.stack
        hdr, claims = jwt_decode(st.token())
        key = os.path.join(st.pki, "token-es256.key")
        now = int(time.time())
        cases = [
            ("consumer of another", {"client_id": DEPARTEMENT["client_id"], "sub": DEPARTEMENT["client_id"]},
             "bearer.client_mismatch"),
            ("habilitation of another", {"habilitation": DEPARTEMENT["id"]}, "bearer.habilitation_mismatch"),
            ("cnf of another certificate", {"cnf": {"x5t#S256": cert_x5t_s256("client-departement", st.pki)}},
             "bearer.cnf_mismatch"),
            ("keytype PRODUCTION", {"keytype": "PRODUCTION"}, "bearer.keytype"),
            ("expired beyond the leeway", {"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}, "jwt.expired"),
            ("not yet valid", {"nbf": now + 3600}, "jwt.not_yet_valid"),
            ("wrong aud", {"aud": "another-api"}, "jwt.aud"),
            ("wrong iss", {"iss": "https://attacker.example"}, "jwt.iss"),
            ("no cnf", {"cnf": None}, "jwt.cnf"),
        ]
        for name, over, reason in cases:
            with self.subTest(case=name):
                c = dict(claims, jti=harness.new_uuid())
                for k, v in over.items():
                    if v is None:
                        c.pop(k)
                    else:
                        c[k] = v
                self.call_denied(DECL, 401, "900901", reason, token=sign_jws(key, hdr, c))
        self.call_allowed(DECL, sign_jws(key, hdr, dict(claims)))

    def test_tokens_never_logged(self):
        st = self.stack
        tok = st.token()
        self.call_allowed(DECL, tok)
        self.call_denied(DECL, 401, "900901", "bearer.cnf_mismatch", cert="client-departement", token=tok,
                         teleservice=DEPARTEMENT["teleservice"])
        time.sleep(0.3)
        for t in st.tokens.values():
            for text in (st.journal_text(), st.gateway_stderr(), st._read(st.stdout_path)):
                self.assertNotIn(t.split(".")[2], text)


# --------------------------------------------------------------------------
# known gateway gaps: each test states the expected behaviour and is marked
# expectedFailure; remove the decorator once the gateway is fixed (an
# unexpected success fails the run).


class TestKnownGatewayGaps(OAuthCase):

    @classmethod
    def setUpClass(cls):
        require_binaries()
        cls.stack = Stack(cls.__name__)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    # KNOWN GATEWAY GAP: with two Authorization headers, bearer.c takes the
    # first (gw_http_request_header) and ignores the other: "Bearer <valid>"
    # then "Bearer garbage" is served 200 (the reverse order gets 401
    # jws.malformed). Ambiguous credentials should be refused.
    def test_two_authorization_headers_refused(self):
        tok = self.stack.token()
        resp = self.nothing_at_mock(lambda: self.stack.request(DECL, headers=[
            ("Authorization", "Bearer " + tok), ("Authorization", "Bearer garbage")]))
        self.assertIn(resp.status, (400, 401), resp)

    # KNOWN GATEWAY GAP: issue 4 point 6 wants token_jti and client_id on
    # every record; a replayed token (bearer.cnf_mismatch, signature verified)
    # is journaled without them, so the journal does not say whose token was
    # replayed (conn.c journal_request() only names a token once bearer.c set
    # has_token, after the binding checks).
    def test_replay_record_names_the_replayed_token(self):
        tok = self.stack.token()
        _, rec = self.call_denied(DECL, 401, "900901", "bearer.cnf_mismatch", cert="client-departement",
                                  token=tok, teleservice=DEPARTEMENT["teleservice"])
        self.assertEqual((rec.get("token_jti"), rec.get("client_id")),
                         (jwt_decode(tok)[1]["jti"], COMMUNE["client_id"]), rec)


# --------------------------------------------------------------------------
# opale-mock and the backend assertion


class TestMockAssertion(OAuthCase):
    """The former scheme, still available: oauth.assertion_mode "per_request"
    (one JWS signed per request, bound by its request_id claim); the mock
    runs without --mac-key. The default scheme (grant + MAC) is
    test_assertion.py's."""

    @classmethod
    def setUpClass(cls):
        require_binaries()
        cls.stack = Stack(cls.__name__, oauth={"assertion_mode": "per_request"})
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def direct(self, assertion=None, request_id=None, consumer=COMMUNE["client_id"]):
        """GET etatSante straight to the mock (plain HTTP), bypassing the gateway."""
        hdrs = {"X-Request-ID": request_id or harness.new_uuid(), "X-Consumer-Id": consumer}
        if assertion is not None:
            hdrs["X-JWT-Assertion"] = assertion
        return self.stack.mock_direct("GET", "/opale/v1/etatSante", hdrs)

    def assertion_claims(self, request_id, **over):
        now = int(time.time())
        c = {"iss": self.stack.issuer, "aud": harness.ASSERTION_AUDIENCE, "iat": now, "exp": now + 60,
             "jti": request_id, "sub": COMMUNE["client_id"], "client_id": COMMUNE["client_id"],
             "habilitation": COMMUNE["id"], "scope": "", "keytype": "SANDBOX", "request_id": request_id}
        c.update(over)
        return c

    def assertRefusedByMock(self, status_headers_body):
        status, _, body = status_headers_body
        self.assertEqual(status, 401, body)
        err = json.loads(body)["erreur"]
        self.assertEqual(err["code"], "401001", body)

    def test_mock_refuses_calls_without_valid_assertion(self):
        st = self.stack
        st.mock_reset()
        rid = harness.new_uuid()
        es256 = {"alg": "ES256", "kid": TOKEN_KID}
        # no assertion at all
        self.assertRefusedByMock(self.direct(request_id=rid))
        # forged: signed with another P-256 key under the gateway's kid
        claims = self.assertion_claims(rid)
        forged = sign_jws(os.path.join(st.pki, "client-commune.key"), es256, claims)
        self.assertRefusedByMock(self.direct(forged, request_id=rid))
        # unsigned
        none = "%s.%s." % (b64url_encode(json.dumps({"alg": "none", "kid": TOKEN_KID})), forged.split(".")[1])
        self.assertRefusedByMock(self.direct(none, request_id=rid))
        # a well-signed one for another request id, or for another consumer
        good = sign_jws(os.path.join(st.pki, "token-es256.key"), es256, claims)
        self.assertRefusedByMock(self.direct(good, request_id=harness.new_uuid()))
        self.assertRefusedByMock(self.direct(good, request_id=rid, consumer=DEPARTEMENT["client_id"]))
        stats = st.mock_stats()
        self.assertEqual((stats["requests"], stats["assertion_refused"]), (0, 5), stats)
        # positive control: the same claims, signed with the gateway's key, for this request
        status, _, body = self.direct(good, request_id=rid)
        self.assertEqual(status, 200, body)
        self.assertEqual(st.mock_stats()["requests"], 1)

    def test_gateway_assertion_accepted_for_its_request(self):
        st = self.stack
        st.mock_reset()
        resp = st.request(DECL)
        self.assertEqual(resp.status, 200, resp)
        rid = self.assertRequestId(resp)
        last = st.mock_last()
        a = self.assertBackendAssertion(last, rid, COMMUNE["client_id"], COMMUNE["id"])
        self.assertEqual(a["request_id"], rid)
        self.assertEqual(a["scope"], jwt_decode(st.token())[1]["scope"], a)
        self.assertTrue(0 < a["exp"] - a["iat"] <= 60, a)
        hdr = jwt_decode([v for n, v in last["headers"] if n.lower() == "x-jwt-assertion"][0])[0]
        self.assertEqual(hdr.get("kid"), TOKEN_KID, hdr)
        self.assertJournal(rid, status=200, decision="allow")
        # the gateway's assertion replayed on another request is refused
        jwt = [v for n, v in last["headers"] if n.lower() == "x-jwt-assertion"][0]
        self.assertRefusedByMock(self.direct(jwt, request_id=harness.new_uuid()))


# --------------------------------------------------------------------------
# JWKS


class TestJWKS(OAuthCase):
    """Two keys: ES256 active and PS256 (RSA) published for verification."""

    stack_kwargs = {"oauth": {"signing_keys": [dict(TOKEN_KEY), dict(RSA_KEY)]}}

    def get_jwks(self, method="GET", cert="client-commune"):
        st = self.stack
        data = harness.build_request("/.well-known/jwks.json", method=method, teleservice=None,
                                     body=b"" if method == "POST" else None)
        with st.tls_connect(cert) as s:
            harness.send_raw(s, data)
            return harness.read_response(s, head_request=method == "HEAD")

    def test_jwks_published(self):
        st = self.stack
        resp = self.nothing_at_mock(self.get_jwks)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual((resp.header("Content-Type") or "").split(";")[0].strip(), "application/jwk-set+json")
        jwks = resp.json()
        self.assertEqual(set(jwks), {"keys"}, jwks)
        keys = {k.get("kid"): k for k in jwks["keys"]}
        self.assertEqual(set(keys), {TOKEN_KID, RSA_KEY["kid"]}, jwks)
        for k in jwks["keys"]:
            self.assertEqual(set(k) & PRIVATE_MEMBERS, set(), "private member in the JWKS: %r" % k)
            self.assertEqual(k.get("use"), "sig", k)
        ec = keys[TOKEN_KID]
        self.assertEqual(set(ec), {"kty", "crv", "x", "y", "kid", "use", "alg"}, ec)
        self.assertEqual((ec["kty"], ec["crv"], ec["alg"]), ("EC", "P-256", "ES256"), ec)
        self.assertEqual((ec["x"], ec["y"]), ec_public_xy(os.path.join(st.pki, "token-es256.key")),
                         "the published point is not the signing key's")
        self.assertEqual(len(b64url_decode(ec["x"])), 32)
        rsa = keys[RSA_KEY["kid"]]
        self.assertEqual(set(rsa), {"kty", "n", "e", "kid", "use", "alg"}, rsa)
        self.assertEqual((rsa["kty"], rsa["alg"], rsa["e"]), ("RSA", "PS256", "AQAB"), rsa)
        r = subprocess.run(["openssl", "rsa", "-in", os.path.join(st.pki, "token-rsa.key"), "-noout", "-modulus"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, check=True)
        modulus = int(r.stdout.decode().strip().split("=", 1)[1], 16)
        self.assertEqual(int.from_bytes(b64url_decode(rsa["n"]), "big"), modulus)
        # what --export-jwks prints for the same config (what the mock loads)
        self.assertEqual(jwks, st.export_jwks(st.conf))
        rec = self.assertJournal(self.assertRequestId(resp), route="jwks", status=200, decision="allow", method="GET")
        self.assertNotIn("token_jti", rec)

    def test_jwks_methods(self):
        resp = self.nothing_at_mock(lambda: self.get_jwks("HEAD"))
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.body, b"")
        resp = self.nothing_at_mock(lambda: self.get_jwks("POST"))
        self.assertErrorBody(resp, 405, "910405")
        self.assertEqual(resp.header("Allow"), "GET, HEAD", resp)
        self.assertJournal(resp.header("X-Request-ID"), route="jwks", status=405, decision="deny")

    def test_tokens_signed_by_the_active_key_only(self):
        hdr = jwt_decode(self.stack.token(fresh=True))[0]
        self.assertEqual((hdr.get("kid"), hdr.get("alg")), (TOKEN_KID, "ES256"), hdr)


# --------------------------------------------------------------------------
# key rotation


class TestKeyRotation(OAuthCase):
    """K1 = ES256 "it-es256", K2 = EdDSA "it-ed25519". Stage 1: K1 active;
    stage 2: K1 (verify only) + K2 active; stage 3: K2 only. The gateway is
    restarted between stages; the mock's JWKS is exported again and re-read
    (SIGHUP) each time."""

    @classmethod
    def setUpClass(cls):
        require_binaries()
        cls.stack = Stack(cls.__name__)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def kids(self):
        resp = self.stack.request("/.well-known/jwks.json", token=None, teleservice=None)
        self.assertEqual(resp.status, 200, resp)
        return sorted(k["kid"] for k in resp.json()["keys"])

    def assertion_kid(self, last):
        jwt = [v for n, v in last["headers"] if n.lower() == "x-jwt-assertion"][0]
        return jwt_decode(jwt)[0].get("kid")

    def restart(self, keys):
        st = self.stack
        conf = json.loads(json.dumps(st.conf))
        conf["oauth"]["signing_keys"] = keys
        rc = st.restart_gateway(conf)
        self.assertEqual(rc, 0, st.gateway_stderr()[-2000:])

    def test_rotation_without_downtime(self):
        st = self.stack
        # stage 1
        t1 = st.token(fresh=True)
        self.assertEqual(jwt_decode(t1)[0]["kid"], TOKEN_KID)
        _, last = self.call_allowed(DECL, t1)
        self.assertEqual(self.assertion_kid(last), TOKEN_KID)
        self.assertEqual(self.kids(), [TOKEN_KID])

        # stage 2: K2 signs, K1 still verifies
        self.restart([dict(TOKEN_KEY, active=False), dict(ED_KEY)])
        self.assertEqual(self.kids(), sorted([TOKEN_KID, ED_KEY["kid"]]), "the JWKS must list both keys")
        _, last = self.call_allowed(DECL, t1)  # the old token keeps working
        self.assertEqual(self.assertion_kid(last), ED_KEY["kid"], "assertions are signed by the active key")
        t2 = st.token(fresh=True)
        hdr = jwt_decode(t2)[0]
        self.assertEqual((hdr["kid"], hdr["alg"]), (ED_KEY["kid"], "EdDSA"), hdr)
        self.call_allowed(DECL, t2)
        okp = [k for k in st.export_jwks(st.conf)["keys"] if k["kid"] == ED_KEY["kid"]][0]
        self.assertEqual((okp["kty"], okp["crv"]), ("OKP", "Ed25519"), okp)
        self.assertNotIn("d", okp)

        # stage 3: K1 removed
        self.restart([dict(ED_KEY)])
        self.assertEqual(self.kids(), [ED_KEY["kid"]])
        _, rec = self.call_denied(DECL, 401, "900901", "jws.unknown_kid", token=t1)
        self.assertNotIn("token_jti", rec)
        self.call_allowed(DECL, t2)
        t3 = st.token(fresh=True)
        self.assertEqual(jwt_decode(t3)[0]["kid"], ED_KEY["kid"])
        self.call_allowed(DECL, t3)
        # the mock dropped K1 too: an assertion signed with it is refused
        rid = harness.new_uuid()
        now = int(time.time())
        # (a grant, as the default assertion_mode sends, with the MAC of the
        # request made with the key the stack shares with its mock)
        claims = {"aud": harness.ASSERTION_AUDIENCE, "iss": st.issuer, "iat": now, "exp": now + 60,
                  "client_id": COMMUNE["client_id"], "mac": "v1"}

        def direct(grant):
            mac = harness.request_mac(st.mac_key(), now, rid, "GET", "/opale/v1/etatSante", grant)
            return st.mock_direct("GET", "/opale/v1/etatSante", {
                "X-Request-ID": rid, "X-Consumer-Id": COMMUNE["client_id"], "X-JWT-Assertion": grant,
                "X-Gateway-Request-MAC": mac})
        old = sign_jws(os.path.join(st.pki, "token-es256.key"), {"alg": "ES256", "kid": TOKEN_KID}, claims)
        status, _, body = direct(old)
        self.assertEqual(status, 401, body)
        new = sign_jws(os.path.join(st.pki, "token-ed25519.key"), {"alg": "EdDSA", "kid": ED_KEY["kid"]}, claims)
        status, _, body = direct(new)
        self.assertEqual(status, 200, body)


# --------------------------------------------------------------------------
# the "oauth" config section


class TestOAuthConfig(unittest.TestCase):
    """-t / --export-jwks on configs built by the harness (no process kept)."""

    @classmethod
    def setUpClass(cls):
        require_binaries(mock=False)
        cls.stack = Stack(cls.__name__, mock=False)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.port = harness.free_port()
        cls.stack.admin_port = harness.free_port()
        cls.good = cls.stack.build_conf()
        cls.stack.write_policies(cls.stack.build_policies())

    def run_gw(self, conf, *args):
        path = os.path.join(self.stack.dir, "conf-%s.json" % harness.new_uuid()[:8])
        self.stack.write_conf(conf, path)
        r = subprocess.run([GW_BIN, *args, "-c", path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=15)
        return path, r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

    def test_oauth_section_required(self):
        conf = json.loads(json.dumps(self.good))
        del conf["oauth"]
        for args in (("-t",), ()):
            with self.subTest(args=args):
                path, rc, out, err = self.run_gw(conf, *args)
                self.assertEqual(rc, 1, err)
                self.assertRegex(err, re.compile(r"^%s: oauth: required" % re.escape(path), re.M))

    def test_exactly_one_active_key(self):
        conf = json.loads(json.dumps(self.good))
        conf["oauth"]["signing_keys"] = [dict(TOKEN_KEY), dict(ED_KEY)]
        path, rc, out, err = self.run_gw(conf, "-t")
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, re.compile(r"^%s: oauth\.signing_keys: " % re.escape(path), re.M))
        conf["oauth"]["signing_keys"][1]["active"] = False
        path, rc, out, err = self.run_gw(conf, "-t")
        self.assertEqual(rc, 0, err)

    def test_export_jwks(self):
        conf = json.loads(json.dumps(self.good))
        conf["oauth"]["signing_keys"] = [dict(TOKEN_KEY), dict(ED_KEY, active=False), dict(RSA_KEY)]
        path, rc, out, err = self.run_gw(conf, "--export-jwks")
        self.assertEqual(rc, 0, err)
        jwks = json.loads(out)
        self.assertEqual([k["kid"] for k in jwks["keys"]], [TOKEN_KID, ED_KEY["kid"], RSA_KEY["kid"]])
        for k in jwks["keys"]:
            self.assertEqual(set(k) & PRIVATE_MEMBERS, set(), k)
        # a bad config prints no JWKS
        conf["oauth"]["signing_keys"][0]["file"] = "pki/nope.key"
        path, rc, out, err = self.run_gw(conf, "--export-jwks")
        self.assertEqual((rc, out), (1, ""), err)


if __name__ == "__main__":
    unittest.main()

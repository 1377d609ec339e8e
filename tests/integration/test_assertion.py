"""Issue 15, the backend assertion (docs/oauth2.md, "Backend assertion"): the
real gateway forwards to the real opale-mock run with --jwks and --mac-key.

In the default mode (oauth.assertion_mode "grant_mac") the backend gets a
grant (X-JWT-Assertion, signed once per consumer, habilitation, scope and
minute, cached per worker) and X-Gateway-Request-MAC, an HMAC-SHA256 of this
request. The MAC is recomputed here, in Python, from the documented wire
format; a captured header pair replayed straight to the mock is refused, on
the same request (409, the request id was served) or moved to another one
(401). The former mode ("per_request") still works when configured."""

import json
import os
import re
import subprocess
import time
import unittest

import harness
from harness import GW_BIN, GatewayTestCase, Stack, jwt_decode, require_binaries

SIREN = "732829320"
DECL = "/opale/v1/entreprises/%s/declarations?annee=2023" % SIREN
COMMUNE = harness.PARTNERS["client-commune"]
DEPARTEMENT = harness.PARTNERS["client-departement"]
MAC_RE = re.compile(r"^v1;t=(0|[1-9][0-9]{0,17});mac=([A-Za-z0-9_-]{43})$")


def header(last, name):
    """The values of header <name> in the mock's recorded request."""
    return [v for n, v in last["headers"] if n.lower() == name.lower()]


class TestGrantMac(GatewayTestCase):
    """The default mode, gateway -> mock with --jwks and --mac-key."""

    @classmethod
    def setUpClass(cls):
        require_binaries()
        cls.stack = Stack(cls.__name__)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()
        cls.key = cls.stack.mac_key()

    def forwarded(self, target=DECL, cert="client-commune"):
        """One request through the gateway; (its X-Request-ID, /__mock/last)."""
        partner = harness.PARTNERS[cert]
        resp = self.stack.request(target, cert_name=cert, teleservice=partner["teleservice"])
        self.assertEqual(resp.status, 200, resp)
        rid = self.assertRequestId(resp)
        last = self.stack.mock_last()
        self.assertEqual(header(last, "X-Request-ID"), [rid], last["headers"])
        return rid, last

    def direct(self, last, method="GET", target=None, **over):
        """Replay <last>'s gateway headers straight to the mock (plain HTTP,
        as someone on the backend network would), <over> replacing some."""
        hdrs = {n: header(last, n)[0] for n in ("X-JWT-Assertion", "X-Gateway-Request-MAC",
                                                   "X-Request-ID", "X-Consumer-Id")}
        hdrs.update(over)
        return self.stack.mock_direct(method, target or last["uri"], hdrs)

    def assertMockError(self, answer, status, code):
        st, _, body = answer
        self.assertEqual(st, status, body)
        self.assertEqual(json.loads(body)["erreur"]["code"], code, body)

    def test_grant_and_mac_verified_by_the_mock(self):
        st = self.stack
        st.mock_reset()
        rid, last = self.forwarded()
        # the mock verified the grant and the MAC of this very request
        self.assertEqual(last.get("request_mac"), "verified", last)
        self.assertBackendAssertion(last, rid, COMMUNE["client_id"], COMMUNE["id"],
                                    scope=jwt_decode(st.token())[1]["scope"])
        grants, macs = header(last, "X-JWT-Assertion"), header(last, "X-Gateway-Request-MAC")
        self.assertEqual((len(grants), len(macs)), (1, 1), last["headers"])
        hdr, claims = jwt_decode(grants[0])[:2]
        self.assertEqual((hdr["alg"], hdr["typ"], hdr["kid"]), ("ES256", "JWT", harness.TOKEN_KID), hdr)
        self.assertEqual(claims["mac"], "v1", claims)
        self.assertRegex(claims["jti"], harness.UUID_RE)
        self.assertTrue(0 < claims["exp"] - claims["iat"] <= 60, claims)
        # the MAC, recomputed from the documented format with the shared key
        m = MAC_RE.match(macs[0])
        self.assertIsNotNone(m, macs[0])
        t = int(m.group(1))
        self.assertLessEqual(abs(t - time.time()), 30)
        self.assertEqual(last["method"], "GET")
        self.assertEqual(last["uri"], DECL)
        self.assertEqual(macs[0], harness.request_mac(self.key, t, rid, "GET", DECL, grants[0]))
        self.assertJournal(rid, status=200, decision="allow")
        stats = st.mock_stats()
        self.assertEqual((stats["requests"], stats["assertion_refused"]), (1, 0), stats)

    def test_grant_reused_mac_per_request(self):
        """Within a minute the grant is the same (cached by the worker, no
        new signature) while each request has its own MAC; another consumer
        gets its own grant. A pair of requests that straddles the grant's
        window boundary (a minute shifted per key) may see two grants:
        retried once (boundaries are 60 s apart)."""
        st = self.stack
        for attempt in range(2):
            if 58 <= time.time() % 60 or time.time() % 60 < 1:
                time.sleep(2.5)
            # one connection, so one worker (the cache is per worker)
            with st.tls_connect("client-commune") as s:
                lasts = []
                for _ in range(2):
                    harness.send_raw(s, st.build_request(DECL, cert_name="client-commune"))
                    resp = harness.read_response(s)
                    self.assertEqual(resp.status, 200, resp)
                    lasts.append(st.mock_last())
            g = [header(x, "X-JWT-Assertion")[0] for x in lasts]
            if g[0] == g[1] or attempt == 1:
                break
        self.assertEqual(g[0], g[1], "the grant must be reused within its minute")
        self.assertNotEqual(header(lasts[0], "X-Gateway-Request-MAC"), header(lasts[1], "X-Gateway-Request-MAC"))
        _, other = self.forwarded(cert="client-departement")
        og = header(other, "X-JWT-Assertion")[0]
        self.assertNotEqual(og, g[0])
        self.assertEqual(jwt_decode(og)[1]["client_id"], DEPARTEMENT["client_id"])

    def test_captured_pair_replayed_is_refused(self):
        st = self.stack
        rid, last = self.forwarded()
        st.mock_reset()
        # the same request again, straight to the mock: its id was served
        self.assertMockError(self.direct(last), 409, "409001")
        stats = st.mock_stats()
        self.assertEqual((stats["requests"], stats["assertion_refused"], stats["assertion_replayed"]),
                         (0, 1, 1), stats)
        # the pair moved to another request: the MAC no longer matches
        self.assertMockError(self.direct(last, **{"X-Request-ID": harness.new_uuid()}), 401, "401001")
        self.assertMockError(self.direct(last, target="/opale/v1/entreprises/552100554/declarations?annee=2023"),
                             401, "401001")
        self.assertMockError(self.direct(last, target=DECL.replace("2023", "2022")), 401, "401001")
        self.assertMockError(self.direct(last, method="POST"), 401, "401001")
        # a tampered MAC, or none, or the grant of another consumer
        mac = header(last, "X-Gateway-Request-MAC")[0]
        bad = mac[:-1] + ("A" if mac[-1] != "A" else "B")
        self.assertMockError(self.direct(last, **{"X-Request-ID": harness.new_uuid(),
                                                  "X-Gateway-Request-MAC": bad}), 401, "401001")
        self.assertMockError(self.direct(last, **{"X-Consumer-Id": DEPARTEMENT["client_id"]}), 401, "401001")
        stats = st.mock_stats()
        self.assertEqual((stats["requests"], stats["assertion_refused"], stats["assertion_replayed"]),
                         (0, 7, 1), stats)
        # positive control: a MAC made with the shared key for a new request id
        # is accepted (so the refusals above are the binding, not the grant)
        new_rid = harness.new_uuid()
        t = int(time.time())
        good = harness.request_mac(self.key, t, new_rid, "GET", DECL, header(last, "X-JWT-Assertion")[0])
        status, _, body = self.direct(last, **{"X-Request-ID": new_rid, "X-Gateway-Request-MAC": good})
        self.assertEqual(status, 200, body)
        # ... once
        self.assertMockError(self.direct(last, **{"X-Request-ID": new_rid, "X-Gateway-Request-MAC": good}),
                             409, "409001")

    def test_client_cannot_send_the_gateway_headers(self):
        """A client's own X-Gateway-Request-MAC / X-JWT-Assertion never reach
        the backend: only the gateway's."""
        st = self.stack
        forged = "v1;t=%d;mac=%s" % (int(time.time()), "A" * 43)
        resp = st.request(DECL, headers=[("X-Gateway-Request-MAC", forged), ("X-JWT-Assertion", "a.b.c")])
        self.assertEqual(resp.status, 200, resp)
        last = st.mock_last()
        self.assertEqual(len(header(last, "X-Gateway-Request-MAC")), 1, last["headers"])
        self.assertNotEqual(header(last, "X-Gateway-Request-MAC")[0], forged)
        self.assertNotEqual(header(last, "X-JWT-Assertion")[0], "a.b.c")
        self.assertEqual(last.get("request_mac"), "verified", last)


class TestPerRequestMode(GatewayTestCase):
    """oauth.assertion_mode "per_request": the former scheme, one JWS per
    request bound by its request_id claim, no MAC header; the mock without
    --mac-key verifies it."""

    @classmethod
    def setUpClass(cls):
        require_binaries()
        cls.stack = Stack(cls.__name__, oauth={"assertion_mode": "per_request"})
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def test_one_signature_per_request(self):
        st = self.stack
        seen = []
        for _ in range(2):
            resp = st.request(DECL)
            self.assertEqual(resp.status, 200, resp)
            rid = self.assertRequestId(resp)
            last = st.mock_last()
            a = self.assertBackendAssertion(last, rid, COMMUNE["client_id"], COMMUNE["id"])
            self.assertEqual(a["request_id"], rid)
            self.assertNotIn("mac", a)
            self.assertEqual(header(last, "X-Gateway-Request-MAC"), [], last["headers"])
            seen.append(header(last, "X-JWT-Assertion")[0])
        self.assertNotEqual(seen[0], seen[1])


class TestAssertionConfig(unittest.TestCase):
    """-t on oauth.assertion_* keys (no process kept)."""

    @classmethod
    def setUpClass(cls):
        require_binaries(mock=False)
        cls.stack = Stack(cls.__name__, mock=False)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.port = harness.free_port()
        cls.stack.admin_port = harness.free_port()
        cls.good = cls.stack.build_conf()
        cls.stack.write_policies(cls.stack.build_policies())

    def check(self, over, message=None, drop=()):
        conf = json.loads(json.dumps(self.good))
        conf["oauth"].update(over)
        for k in drop:
            del conf["oauth"][k]
        path = os.path.join(self.stack.dir, "conf-%s.json" % harness.new_uuid()[:8])
        self.stack.write_conf(conf, path)
        r = subprocess.run([GW_BIN, "-t", "-c", path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=15)
        err = r.stderr.decode(errors="replace")
        if message is None:
            self.assertEqual(r.returncode, 0, err)
        else:
            self.assertEqual(r.returncode, 1, err)
            self.assertIn("%s: %s" % (path, message), err)
        return err

    def test_key_file_required_in_default_mode(self):
        self.check({}, 'oauth.assertion_mac_key_file: required with "assertion_mode": "grant_mac" (the '
                       'default); or set "assertion_mode": "per_request"', drop=("assertion_mac_key_file",))
        self.check({"assertion_mode": "per_request"}, None, drop=("assertion_mac_key_file",))
        self.check({"assertion_mode": "grant_mac"})

    def test_bad_values(self):
        short = os.path.join(self.stack.dir, "short.key")
        with open(short, "w") as f:
            f.write("x" * 31 + "\n")
        self.check({"assertion_mac_key_file": short},
                   "oauth.assertion_mac_key_file: the key must be 32 to 512 bytes")
        with open(short, "w") as f:
            f.write("x" * 32 + "\n")  # the final newline is not part of the key
        self.check({"assertion_mac_key_file": short})
        missing = os.path.join(self.stack.dir, "missing.key")
        self.check({"assertion_mac_key_file": missing}, "oauth.assertion_mac_key_file: cannot read " + missing)
        self.check({"assertion_mode": "hs256"},
                   'oauth.assertion_mode: must be "grant_mac" or "per_request"')
        self.check({"assertion_cache_entries": 8},
                   "oauth.assertion_cache_entries: must be an integer between 16 and 1048576")

    def test_key_never_printed(self):
        with open(self.stack.mac_key_path) as f:
            key = f.read().strip()
        err = self.check({"assertion_mode": "nope"}, 'oauth.assertion_mode: must be')
        self.assertNotIn(key, err)


if __name__ == "__main__":
    unittest.main()

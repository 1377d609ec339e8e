"""Issue 12, sections 1, 3 (bodies) and 4: the backend sees exactly the
request the stages authorised.

- Query: each route declares its parameters; anything undeclared, repeated,
  differently cased, percent-encoded in its name or empty is refused (400),
  and what goes upstream is re-serialised from the validated values. The
  mock stays lenient (it matches query names case-insensitively and takes the
  first, like the real backend), so a case that slipped through would be
  served: test_mock_is_lenient proves it.
- Bodies: a GET (any route without a body) announcing a body is refused as
  soon as its headers are parsed, without reading the body.
- Headers: an allowlist toward the backend; no '_' in a name but
  ID_Teleservice's; single-valued headers once.

Every case checks what the backend received through /__mock/last (the exact
request line and headers) or /__mock/stats (nothing at all), and the journal
record."""

import json
import time
import unittest

import harness
from harness import GatewayTestCase, Stack, build_request, read_response, require_binaries, send_raw

SIREN = "732829320"
DECL = "/opale/v1/entreprises/%s/declarations" % SIREN
CREANCES = "/opale/v1/entreprises/%s/creances" % SIREN
ETAT = "/opale/v1/etatSante"
BODY_MS = 10000  # a gateway waiting for a refused body would answer 408 after this

# target -> (code, journal reason): each is refused with 400 and reaches nothing
REFUSED_QUERIES = {
    DECL + "?ANNEE=1990&annee=2023": ("910214", "query.name_case"),
    DECL + "?annee=2023&ANNEE=1990": ("910214", "query.name_case"),
    DECL + "?Annee=1990&annee=2023": ("910214", "query.name_case"),
    DECL + "?Annee=1990": ("910214", "query.name_case"),
    DECL + "?x=1&ANNEE=1990": ("910214", "query.undeclared"),
    DECL + "?x=1&annee=2023": ("910214", "query.undeclared"),
    DECL + "?annee=2023&x=1": ("910214", "query.undeclared"),
    CREANCES + "?ANNEE=1990&annee=2023": ("910214", "query.name_case"),
    CREANCES + "?Annee=1990&annee=2023": ("910214", "query.name_case"),
    CREANCES + "?x=1&ANNEE=1990": ("910214", "query.undeclared"),
    DECL + "?annee=2023&annee=1990": ("910211", "query.repeated"),
    DECL + "?annee=2023&annee=2023": ("910211", "query.repeated"),
    DECL + "?%61nnee=1990&annee=2023": ("910214", "query.encoded_name"),
    DECL + "?annee=2023&%61nnee=1990": ("910214", "query.encoded_name"),
    DECL + "?annee=": ("910211", "query.empty"),
    DECL + "?annee=%32023": ("910211", "query.bad_value"),
    DECL: ("910211", "query.missing"),
    DECL + "?annee=2023&": ("910214", "query.malformed"),
    DECL + "?annee": ("910214", "query.malformed"),
    ETAT + "?x=1": ("910214", "query.undeclared"),
    ETAT + "?annee=2023": ("910214", "query.undeclared"),
}

# header lines each refused with 400 910400 by the strict layer
UNDERSCORE_HEADERS = ["X_Consumer_Id: forged", "X-Consumer_Id: forged", "X_JWT_Assertion: forged",
                      "X_Forwarded_For: 6.6.6.6", "ID_Teleservice_X: TS-0001"]

# headers that pass the strict layer but must never reach the backend
DROPPED_HEADERS = [("X-Client-Cert", "forged-cert"), ("X-SSL-Client-Cert", "forged-ssl-cert"),
                   ("X-Original-URL", "/opale/v1/entreprises/999999999/declarations?annee=1990"),
                   ("X-Rewrite-URL", "/forged-rewrite"), ("X-HTTP-Method-Override", "DELETE"),
                   ("X-Custom", "forged-custom"), ("Cookie", "forged=cookie"),
                   ("Content-Type", "application/forged")]

# headers the gateway itself sets on every forwarded request
GATEWAY_HEADERS = {"host", "x-forwarded-for", "x-forwarded-proto", "x-request-id", "x-correlation-id",
                   "x-consumer-id", "x-habilitation-id", "x-opale-env", "x-jwt-assertion",
                   "x-gateway-request-mac"}


def policy_hook(pols, stack):
    commune = pols["commune-exemple.json"]
    commune["rights"] = {"scopes": ["api_opale_declarations", "api_opale_creances"],
                         "years": {"from": 2019, "to": 2025}}


def conf_hook(conf, stack):
    conf["timeouts"]["body_ms"] = BODY_MS


class TestCanonical(GatewayTestCase):

    @classmethod
    def setUpClass(cls):
        require_binaries()
        st = cls.stack = Stack(cls.__name__, policy_hook=policy_hook, conf_hook=conf_hook)
        cls.addClassCleanup(st.stop)
        st.start()
        cls.token = st.token("client-commune")

    # -- helpers

    def raw_exchange(self, data, timeout=5.0):
        """Send <data> on a fresh connection; (response, seconds, closed)."""
        st = self.stack
        with st.tls_connect() as s:
            t0 = time.monotonic()
            send_raw(s, data)
            resp = read_response(s, timeout=timeout)
            dt = time.monotonic() - t0
            # keepalive_ms is 3 s: a connection still open after 1 s was kept
            closed = harness.is_closed(s, timeout=1.0)
        return resp, dt, closed

    def request_bytes(self, target, extra_lines=(), teleservice=harness.TELESERVICE, body=b""):
        """A complete request with the commune's token, correlation id and
        teleservice, plus raw header lines <extra_lines>."""
        lines = ["GET %s HTTP/1.1" % target, "Host: localhost", "X-Correlation-ID: %s" % harness.new_uuid(),
                 "Authorization: Bearer %s" % self.token]
        if teleservice is not None:
            lines.append("ID_Teleservice: %s" % teleservice)
        lines.extend(extra_lines)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def assertRefusedUnseen(self, data, code, reason, status=400, closed=None):
        """<data> is refused with <status>/<code>, nothing reaches the backend,
        and the journal says deny/<reason> with no forwarded query."""
        st = self.stack
        st.mock_reset()
        resp, dt, was_closed = self.raw_exchange(data)
        self.assertErrorBody(resp, status, code)
        if closed is not None:
            self.assertEqual(was_closed, closed, "connection closed: %r" % resp)
        self.assertEqual(st.mock_stats()["requests"], 0, "the backend saw %r" % data[:120])
        rec = self.assertJournal(resp.header("X-Request-ID"), status=status, code=code, decision="deny",
                                 reason=reason)
        self.assertNotIn("query", rec)
        self.assertNotIn("annee", rec)
        self.assertFalse(rec.get("upstream"), rec)
        return resp, dt, rec

    def assertBackendSaw(self, target, resp, extra_names=()):
        """The backend's last request is exactly "GET <target> HTTP/1.1" with
        no body, and only the gateway's headers plus <extra_names>."""
        last = self.stack.mock_last()
        self.assertEqual(last["request_line"], "GET %s HTTP/1.1" % target, last)
        self.assertEqual(last["uri"], target, last)
        self.assertEqual(last["body_len"], 0, last)
        names = sorted(n.lower() for n, _ in last["headers"])
        self.assertEqual(len(names), len(set(names)), "a header sent twice upstream: %r" % names)
        self.assertEqual(set(names), GATEWAY_HEADERS | {n.lower() for n in extra_names}, last["headers"])
        self.assertBackendAssertion(last, resp.header("X-Request-ID"), "commune-exemple-sandbox", "H9001")
        return last

    # -- the mock is as lenient as the real backend: the refusals matter

    def test_mock_is_lenient(self):
        status, body = self.stack.mock_get(DECL + "?ANNEE=1990&annee=2023")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body).get("annee"), 1990, body)
        status, body = self.stack.mock_get(DECL + "?%61nnee=1990&annee=2023")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body).get("annee"), 1990, body)

    # -- section 1: the query

    def test_authorised_request_forwarded_canonical(self):
        st = self.stack
        st.mock_reset()
        target = DECL + "?annee=2023"
        resp = st.request(target)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json().get("annee"), 2023, resp.body)
        self.assertBackendSaw(target, resp)
        self.assertJournal(resp.header("X-Request-ID"), decision="allow", path=DECL, query="annee=2023",
                           annee="2023", siren=SIREN, status=200)

    def test_empty_query_dropped(self):
        st = self.stack
        st.mock_reset()
        resp = st.request(ETAT + "?")
        self.assertEqual(resp.status, 200, resp)
        self.assertBackendSaw(ETAT, resp)
        rec = self.assertJournal(resp.header("X-Request-ID"), decision="allow", path=ETAT)
        self.assertNotIn("query", rec)

    def test_refused_queries(self):
        for target, (code, reason) in sorted(REFUSED_QUERIES.items()):
            with self.subTest(target=target):
                _, _, rec = self.assertRefusedUnseen(self.request_bytes(target), code, reason, closed=False)
                # the route matched: the journal has its canonical path, no query
                self.assertEqual(rec.get("path"), target.split("?")[0], rec)

    def test_refused_query_year_outside_grant_still_refused(self):
        # the canonical value is what rights checks: 1990 is outside 2019-2025
        st = self.stack
        st.mock_reset()
        resp, _, _ = self.raw_exchange(self.request_bytes(DECL + "?annee=1990"))
        self.assertErrorBody(resp, 403, "910210")
        self.assertEqual(st.mock_stats()["requests"], 0)
        self.assertJournal(resp.header("X-Request-ID"), decision="deny", reason="rights.year", annee="1990",
                           query="annee=1990", path=DECL)

    def test_path_parameter_percent_encoded_not_matched(self):
        # the SIREN segment is matched byte for byte: an encoded digit is no SIREN
        self.assertRefusedUnseen(self.request_bytes("/opale/v1/entreprises/7328%3229320/declarations?annee=2023"),
                                 "910404", "route.not_found", status=404)

    # -- section 3: bodies

    def test_get_with_content_length_body_refused_unread(self):
        # Only the head is sent: a gateway that waited for the body would
        # answer 408 after body_ms (10 s).
        data = self.request_bytes(DECL + "?annee=2023", ["Content-Length: 4000"])
        resp, dt, _ = self.assertRefusedUnseen(data, "910400", "http.body_not_allowed", closed=True)
        self.assertLess(dt, BODY_MS / 1000.0 / 2, "the refusal waited for the body")

    def test_get_with_chunked_body_refused_unread(self):
        data = self.request_bytes(DECL + "?annee=2023", ["Transfer-Encoding: chunked"])
        resp, dt, _ = self.assertRefusedUnseen(data, "910400", "http.body_not_allowed", closed=True)
        self.assertLess(dt, BODY_MS / 1000.0 / 2, "the refusal waited for the body")

    def test_get_body_hiding_a_second_request_never_forwarded(self):
        hidden = self.request_bytes(DECL + "?annee=1990")
        data = self.request_bytes(DECL + "?annee=2023", ["Content-Length: %d" % len(hidden)], body=hidden)
        self.assertRefusedUnseen(data, "910400", "http.body_not_allowed", closed=True)

    def test_get_with_content_length_zero_ok(self):
        st = self.stack
        st.mock_reset()
        resp, _, _ = self.raw_exchange(self.request_bytes(DECL + "?annee=2024", ["Content-Length: 0"]))
        self.assertEqual(resp.status, 200, resp)
        self.assertBackendSaw(DECL + "?annee=2024", resp)

    def test_token_form_limit(self):
        # /token keeps a small form limit (4096), refused on the announced length
        st = self.stack
        st.mock_reset()
        data = ("POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded"
                "\r\nContent-Length: 5000\r\n\r\n").encode()
        resp, dt, closed = self.raw_exchange(data)
        self.assertErrorBody(resp, 413, "910413")
        self.assertTrue(closed)
        self.assertLess(dt, BODY_MS / 1000.0 / 2)

    # -- section 4: headers

    def test_only_allowlisted_headers_forwarded(self):
        st = self.stack
        st.mock_reset()
        target = DECL + "?annee=2022"
        lines = ["Accept: application/json", "Accept-Language: fr-FR", "User-Agent: partenaire/1.0"]
        lines += ["%s: %s" % h for h in DROPPED_HEADERS]
        resp, _, _ = self.raw_exchange(self.request_bytes(target, lines))
        self.assertEqual(resp.status, 200, resp)
        last = self.assertBackendSaw(target, resp, extra_names=("Accept", "Accept-Language", "User-Agent"))
        h = last["headers"]
        self.assertIn(["Accept-Language", "fr-FR"], h)
        self.assertIn(["User-Agent", "partenaire/1.0"], h)
        dump = json.dumps(h)
        for name, value in DROPPED_HEADERS:
            self.assertNotIn(value, dump, "%s reached the backend" % name)
        self.assertNotIn(harness.TELESERVICE, dump, "ID_Teleservice is checked, not forwarded")
        self.assertEqual(last["method"], "GET")

    def test_underscore_header_names_refused(self):
        for line in UNDERSCORE_HEADERS:
            with self.subTest(header=line):
                self.assertRefusedUnseen(self.request_bytes(DECL + "?annee=2023", [line]), "910400",
                                         "http.underscore_header", closed=True)

    def test_id_teleservice_is_the_one_underscore_name(self):
        st = self.stack
        st.mock_reset()
        resp = st.request(DECL + "?annee=2021")
        self.assertEqual(resp.status, 200, resp)
        self.assertJournal(resp.header("X-Request-ID"), teleservice=harness.TELESERVICE, decision="allow")

    def test_duplicate_single_valued_headers_refused(self):
        cases = {
            "ID_Teleservice": (["ID_Teleservice: TS-0002"], harness.TELESERVICE, "http.dup_header"),
            "ID_Teleservice other case": (["id_teleservice: TS-0002"], harness.TELESERVICE, "http.dup_header"),
            "X-Correlation-ID": (["X-Correlation-ID: %s" % harness.new_uuid()], harness.TELESERVICE,
                                 "http.dup_header"),
            "Host": (["Host: other.example"], harness.TELESERVICE, "http.dup_host"),
            "Content-Type": (["Content-Type: application/json", "Content-Type: text/plain"],
                             harness.TELESERVICE, "http.dup_header"),
            "Authorization": (["Authorization: Bearer %s" % self.token], harness.TELESERVICE, "http.dup_header"),
        }
        for name, (lines, ts, reason) in cases.items():
            with self.subTest(header=name):
                self.assertRefusedUnseen(self.request_bytes(DECL + "?annee=2023", lines, teleservice=ts),
                                         "910400", reason, closed=True)

    def test_duplicate_teleservice_other_partner_first(self):
        # TS-0002 (another partner's) first, then ours: refused all the same
        data = self.request_bytes(DECL + "?annee=2023", ["ID_Teleservice: %s" % harness.TELESERVICE],
                                  teleservice="TS-0002")
        self.assertRefusedUnseen(data, "910400", "http.dup_header", closed=True)


if __name__ == "__main__":
    unittest.main()

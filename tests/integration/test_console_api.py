"""The operator console's server side (docs/console.md, "API and security"):
the embedded static files and their headers, named operators with roles,
console sessions (cookie attributes, CSRF, Origin, idle expiry), whoami,
the read endpoints the page uses, and the journalling of every action with
the operator's name and of failed logins without the token."""

import datetime
import http.client
import json
import os
import re
import subprocess
import threading
import time
import unittest

from harness import DEFAULT_TIMEOUT, PARTNERS, Stack, require_binaries, wait_for

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
CONSOLE_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "gateway", "admin", "console")
IDLE_S = 3  # GW_TEST_ADMIN_SESSION_IDLE_S: the session's idle expiry in this stack

READ_TOKEN = "read-token-for-the-console-tests-0123456789"
OPS_TOKEN = "operator-token-for-the-console-tests-9876543"


def add_operators(conf, stack):
    for name, tok in (("read.token", READ_TOKEN), ("ops.token", OPS_TOKEN)):
        with open(os.path.join(stack.dir, name), "w") as f:
            f.write(tok + "\n")
    conf["admin"]["operators"] = [
        {"name": "lea.read", "token_file": "read.token", "role": "read"},
        {"name": "marc_ops-1", "token_file": "ops.token", "role": "operator"},
    ]


class Resp:
    def __init__(self, status, headers, raw, cookies):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.cookies = cookies

    def json(self):
        return json.loads(self.raw)


class ConsoleCase(unittest.TestCase):
    """One stack with three operators: "admin" (admin.token_file, role
    operator), "lea.read" (read) and "marc_ops-1" (operator)."""

    @classmethod
    def setUpClass(cls):
        require_binaries()
        os.environ["GW_TEST_ADMIN_SESSION_IDLE_S"] = str(IDLE_S)
        try:
            cls.stack = Stack("console-api", conf_hook=add_operators)
            cls.addClassCleanup(cls.stack.stop)
            cls.stack.start()
        finally:
            del os.environ["GW_TEST_ADMIN_SESSION_IDLE_S"]
        with open(os.path.join(cls.stack.pki, "admin.token")) as f:
            cls.admin_token = f.read().strip()
        cls.origin = "http://127.0.0.1:%d" % cls.stack.admin_port

    def call(self, method, path, token=None, cookie=None, csrf=None, origin=None, body=None,
             headers=None):
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = "Bearer " + token
        if cookie:
            hdrs["Cookie"] = "gw_session=" + cookie
        if csrf:
            hdrs["X-CSRF-Token"] = csrf
        if origin:
            hdrs["Origin"] = origin
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH"):
            payload = b""
        c = http.client.HTTPConnection("127.0.0.1", self.stack.admin_port, timeout=DEFAULT_TIMEOUT)
        try:
            c.request(method, path, body=payload, headers=hdrs)
            r = c.getresponse()
            raw = r.read()
            headers = {k.lower(): v for k, v in r.getheaders()}
            cookies = [v for k, v in r.getheaders() if k.lower() == "set-cookie"]
        finally:
            c.close()
        return Resp(r.status, headers, raw, cookies)

    def login(self, token):
        r = self.call("POST", "/admin/session", token=token)
        self.assertEqual(r.status, 200, r.raw)
        cookie = re.match(r"gw_session=([A-Za-z0-9_-]+);", r.cookies[0]).group(1)
        return cookie, r.json()["csrf"]

    def assertSecurityHeaders(self, r):
        for k, v in SECURITY_HEADERS.items():
            self.assertEqual(r.headers.get(k), v, "%s: %r" % (k, r.headers))

    def events_since(self, kind, n0, pred=lambda e: True, timeout=5.0):
        """The <kind> security events after the first <n0> that satisfy
        <pred>, waiting (bounded) for at least one."""
        deadline = time.monotonic() + timeout
        while True:
            got = [e for e in self.stack.security_events(kind)[n0:] if pred(e)]
            if got or time.monotonic() > deadline:
                return got
            time.sleep(0.1)


class TestConsoleFiles(ConsoleCase):

    def test_every_file_served_with_its_type_and_headers(self):
        names = sorted(n for n in os.listdir(CONSOLE_DIR) if not n.startswith("."))
        self.assertIn("index.html", names)
        types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
        for name in names:
            with self.subTest(name=name):
                r = self.call("GET", "/console/" + name)
                self.assertEqual(r.status, 200)
                with open(os.path.join(CONSOLE_DIR, name), "rb") as f:
                    self.assertEqual(r.raw, f.read(), "the embedded bytes are the file's")
                ext = os.path.splitext(name)[1]
                if ext in types:
                    self.assertEqual(r.headers["content-type"].split(";")[0], types[ext])
                self.assertSecurityHeaders(r)
        r = self.call("GET", "/console/")
        self.assertEqual(r.status, 200)
        with open(os.path.join(CONSOLE_DIR, "index.html"), "rb") as f:
            self.assertEqual(r.raw, f.read())
        self.assertSecurityHeaders(r)

    def test_console_needs_no_token_and_refuses_other_paths_and_methods(self):
        r = self.call("GET", "/console")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.headers.get("location"), "/console/")
        for path in ("/console/nope.js", "/console/../admin/consumers", "/console/a/b.js",
                     "/console/.hidden"):
            with self.subTest(path=path):
                r = self.call("GET", path)
                self.assertEqual(r.status, 404, r.raw)
                self.assertSecurityHeaders(r)
        r = self.call("POST", "/console/index.html")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.headers.get("allow"), "GET, HEAD")
        r = self.call("HEAD", "/console/app.js")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.raw, b"")

    def test_json_answers_carry_the_headers_too(self):
        for method, path, token in (("GET", "/admin/whoami", self.admin_token),
                                    ("GET", "/admin/consumers", None),
                                    ("GET", "/healthz", None)):
            with self.subTest(path=path, token=bool(token)):
                r = self.call(method, path, token=token)
                self.assertEqual(r.headers["content-type"], "application/json")
                json.loads(r.raw)
                self.assertSecurityHeaders(r)


class TestOperatorsAndSessions(ConsoleCase):

    def test_whoami_by_token_for_every_operator(self):
        for tok, name, role in ((None, "admin", "operator"), (READ_TOKEN, "lea.read", "read"),
                                (OPS_TOKEN, "marc_ops-1", "operator")):
            with self.subTest(name=name):
                r = self.call("GET", "/admin/whoami", token=tok or self.admin_token)
                self.assertEqual(r.status, 200, r.raw)
                self.assertEqual(r.json(), {"operator": name, "role": role})

    def test_session_open_cookie_attributes_and_body(self):
        r = self.call("POST", "/admin/session", token=READ_TOKEN, origin=self.origin)
        self.assertEqual(r.status, 200, r.raw)
        self.assertSecurityHeaders(r)
        body = r.json()
        self.assertEqual(body["operator"], "lea.read")
        self.assertEqual(body["role"], "read")
        self.assertRegex(body["csrf"], r"^[A-Za-z0-9_-]{43}$")
        self.assertEqual(body["expires_in"], IDLE_S)
        self.assertEqual(len(r.cookies), 1, r.cookies)
        parts = [p.strip() for p in r.cookies[0].split(";")]
        self.assertRegex(parts[0], r"^gw_session=[A-Za-z0-9_-]{43}$")
        self.assertEqual(sorted(parts[1:]),
                         sorted(["Path=/", "HttpOnly", "SameSite=Strict", "Max-Age=%d" % IDLE_S]))
        self.assertNotIn(READ_TOKEN, r.raw.decode() + r.cookies[0])
        cookie = parts[0].split("=", 1)[1]
        r = self.call("GET", "/admin/whoami", cookie=cookie)
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json(), {"operator": "lea.read", "role": "read"})
        # two sessions never share the cookie or the CSRF token
        c2, csrf2 = self.login(READ_TOKEN)
        self.assertNotEqual(c2, cookie)
        self.assertNotEqual(csrf2, body["csrf"])

    def test_session_is_opened_by_a_token_only(self):
        cookie, _ = self.login(OPS_TOKEN)
        r = self.call("POST", "/admin/session", cookie=cookie)
        self.assertEqual(r.status, 403, r.raw)  # no CSRF: refused before anything
        _, csrf = self.login(OPS_TOKEN)
        cookie, csrf = self.login(OPS_TOKEN)
        r = self.call("POST", "/admin/session", cookie=cookie, csrf=csrf)
        self.assertEqual(r.status, 400, r.raw)
        r = self.call("POST", "/admin/session")
        self.assertEqual(r.status, 401, r.raw)

    def test_session_end(self):
        cookie, csrf = self.login(OPS_TOKEN)
        r = self.call("DELETE", "/admin/session", cookie=cookie)
        self.assertEqual(r.status, 403, "DELETE with the cookie needs the CSRF token")
        self.assertEqual(r.json()["error"], "csrf")
        r = self.call("DELETE", "/admin/session", cookie=cookie, csrf=csrf)
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json(), {"ended": True})
        self.assertEqual(len(r.cookies), 1)
        self.assertIn("Max-Age=0", r.cookies[0])
        r = self.call("GET", "/admin/whoami", cookie=cookie)
        self.assertEqual(r.status, 401, r.raw)
        self.assertEqual(r.json()["error"], "session expired")

    def test_session_idle_expiry(self):
        cookie, _ = self.login(READ_TOKEN)
        # used within the idle time: it stays (the expiry slides)
        for _ in range(3):
            time.sleep(IDLE_S / 3.0)
            r = self.call("GET", "/admin/whoami", cookie=cookie)
            self.assertEqual(r.status, 200, r.raw)
            self.assertTrue(any(c.startswith("gw_session=" + cookie) for c in r.cookies), r.cookies)
        time.sleep(IDLE_S + 0.5)
        r = self.call("GET", "/admin/whoami", cookie=cookie)
        self.assertEqual(r.status, 401, r.raw)
        self.assertEqual(r.json()["error"], "session expired")

    def test_unknown_cookie_is_401(self):
        r = self.call("GET", "/admin/whoami", cookie="A" * 43)
        self.assertEqual(r.status, 401)
        r = self.call("GET", "/admin/whoami", cookie="short")
        self.assertEqual(r.status, 401)


class TestCsrfOriginRoles(ConsoleCase):

    def test_action_with_cookie_needs_the_csrf_token(self):
        cookie, csrf = self.login(OPS_TOKEN)
        n0 = len(self.stack.security_events("admin.reload"))
        for bad in (None, "x" * 43, csrf[:-1], csrf + "A"):
            with self.subTest(csrf=bad):
                r = self.call("POST", "/admin/reload", cookie=cookie, csrf=bad)
                self.assertEqual(r.status, 403, r.raw)
                self.assertEqual(r.json()["error"], "csrf")
                self.assertSecurityHeaders(r)
        # the CSRF token of another session is refused too
        _, other = self.login(OPS_TOKEN)
        r = self.call("POST", "/admin/reload", cookie=cookie, csrf=other)
        self.assertEqual(r.status, 403, r.raw)
        time.sleep(0.5)
        self.assertEqual(len(self.stack.security_events("admin.reload")), n0, "nothing reloaded")
        r = self.call("POST", "/admin/reload", cookie=cookie, csrf=csrf)
        self.assertEqual(r.status, 200, r.raw)
        ev = self.events_since("admin.reload", n0)
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual(ev[0]["operator"], "marc_ops-1")

    def test_get_with_cookie_needs_no_csrf_and_token_calls_need_none(self):
        cookie, _ = self.login(READ_TOKEN)
        r = self.call("GET", "/admin/consumers", cookie=cookie)
        self.assertEqual(r.status, 200, r.raw)
        r = self.call("POST", "/admin/reload", token=OPS_TOKEN)
        self.assertEqual(r.status, 200, r.raw)

    def test_foreign_origin_is_refused(self):
        cookie, csrf = self.login(OPS_TOKEN)
        for origin in ("http://evil.example", "http://127.0.0.1:%d" % (self.stack.admin_port + 1),
                       "https://127.0.0.1:%d" % self.stack.admin_port, "null"):
            with self.subTest(origin=origin):
                r = self.call("POST", "/admin/reload", cookie=cookie, csrf=csrf, origin=origin)
                self.assertEqual(r.status, 403, r.raw)
                self.assertEqual(r.json()["error"], "origin")
                r = self.call("GET", "/admin/whoami", token=OPS_TOKEN, origin=origin)
                self.assertEqual(r.status, 403, r.raw)
        for origin in (self.origin, "http://localhost:%d" % self.stack.admin_port):
            with self.subTest(origin=origin):
                r = self.call("GET", "/admin/whoami", cookie=cookie, origin=origin)
                self.assertEqual(r.status, 200, r.raw)

    def test_read_role_may_get_but_not_act(self):
        cookie, csrf = self.login(READ_TOKEN)
        actions = [
            ("POST", "/admin/reload", None),
            ("POST", "/admin/consumers/commune-exemple-sandbox/suspend", {"reason": "test"}),
            ("POST", "/admin/consumers/commune-exemple-sandbox/resume", {"reason": "test"}),
            ("POST", "/admin/environments/sandbox/cut", {"reason": "test"}),
            ("POST", "/admin/environments/sandbox/restore", {"reason": "test"}),
            ("POST", "/admin/journal/hold", {"reason": "test"}),
            ("DELETE", "/admin/journal/hold", None),
        ]
        for method, path, body in actions:
            for how in ("token", "session"):
                with self.subTest(method=method, path=path, how=how):
                    if how == "token":
                        r = self.call(method, path, token=READ_TOKEN, body=body)
                    else:
                        r = self.call(method, path, cookie=cookie, csrf=csrf, body=body)
                    self.assertEqual(r.status, 403, r.raw)
                    self.assertEqual(r.json()["error"], "forbidden")
        st, body = self.stack.admin_call("GET", "/admin/consumers")
        self.assertFalse(any(c["suspended"] for c in body["consumers"]), body)
        for path in ("/admin/consumers", "/admin/environments", "/admin/journal/hold", "/metrics",
                     "/admin/whoami"):
            with self.subTest(path=path):
                r = self.call("GET", path, token=READ_TOKEN)
                self.assertEqual(r.status, 200, r.raw)

    def test_action_journalled_with_the_operator(self):
        cookie, csrf = self.login(OPS_TOKEN)
        n0 = len(self.stack.security_events("admin.suspend"))
        r = self.call("POST", "/admin/consumers/commune-exemple-sandbox/suspend", cookie=cookie,
                      csrf=csrf, body={"reason": "console test"}, origin=self.origin)
        self.assertEqual(r.status, 200, r.raw)
        try:
            ev = self.events_since("admin.suspend", n0)
            self.assertEqual(len(ev), 1, ev)
            self.assertEqual(ev[0]["operator"], "marc_ops-1")
            self.assertEqual(ev[0]["client_ip"], "127.0.0.1")
        finally:
            n1 = len(self.stack.security_events("admin.resume"))
            r = self.call("POST", "/admin/consumers/commune-exemple-sandbox/resume",
                          token=self.admin_token, body={"reason": "console test done"})
            self.assertEqual(r.status, 200, r.raw)
        ev = self.events_since("admin.resume", n1)
        self.assertEqual([e["operator"] for e in ev], ["admin"])


class TestEveryActionNamesItsOperator(ConsoleCase):

    def test_cut_restore_reload_hold_by_session_and_token(self):
        cookie, csrf = self.login(OPS_TOKEN)
        session = dict(cookie=cookie, csrf=csrf, origin=self.origin)
        token = dict(token=self.admin_token)
        steps = [
            ("POST", "/admin/environments/sandbox/cut", {"reason": "drill"}, session,
             "admin.environment_cut", "marc_ops-1"),
            ("POST", "/admin/environments/sandbox/restore", {"reason": "drill over"}, token,
             "admin.environment_restored", "admin"),
            ("POST", "/admin/reload", None, session, "admin.reload", "marc_ops-1"),
            ("POST", "/admin/journal/hold", {"reason": "case 42"}, session, "admin.journal_hold",
             "marc_ops-1"),
            ("DELETE", "/admin/journal/hold", None, token, "admin.journal_hold_lifted", "admin"),
        ]
        for method, path, body, how, kind, who in steps:
            with self.subTest(path=path, method=method):
                n0 = len(self.stack.security_events(kind))
                r = self.call(method, path, body=body, **how)
                self.assertIn(r.status, (200, 201), r.raw)
                ev = self.events_since(kind, n0)
                self.assertEqual(len(ev), 1, ev)
                self.assertEqual(ev[0]["operator"], who)
                self.assertEqual(ev[0]["client_ip"], "127.0.0.1")


class TestFailedLogins(ConsoleCase):

    def test_failed_login_journalled_without_the_token(self):
        bad = "not-a-valid-token-but-a-secret-looking-one-42"
        n0 = len(self.stack.security_events("admin.auth_failed"))
        r = self.call("POST", "/admin/session", token=bad)
        self.assertEqual(r.status, 401, r.raw)
        self.assertEqual(r.cookies, [])
        ev = self.events_since("admin.auth_failed", n0)
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual(ev[0]["path"], "/admin/session")
        self.assertEqual(ev[0]["client_ip"], "127.0.0.1")
        self.assertEqual(ev[0]["reason"], "admin.bad_token")
        path = os.path.join(os.path.dirname(self.stack.journal_path), "events.jsonl")
        with open(path) as f:
            text = f.read()
        self.assertNotIn(bad, text)
        self.assertNotIn(bad, self.stack.gateway_stderr())
        # an unknown session cookie is a failure too, the cookie not journalled
        fake = "B" * 43
        r = self.call("GET", "/admin/whoami", cookie=fake)
        self.assertEqual(r.status, 401)
        ev = self.events_since("admin.auth_failed", n0, lambda e: e["reason"] == "admin.bad_session")
        self.assertEqual(len(ev), 1, ev)
        with open(path) as f:
            self.assertNotIn(fake, f.read())


# A partner name from outside: markup, quotes, a backslash, line and
# paragraph separators, a non-Latin script. The API must return it as data.
HOSTILE = "<script>alert('x')</script>\"&amp;\\ \u2028\u2029 \u00e9\u4e2d </b><img src=x onerror=alert(1)>"
COMMUNE = PARTNERS["client-commune"]["client_id"]
DEPT = PARTNERS["client-departement"]["client_id"]
ISO_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"


def hostile_names(pols, stack):
    pols[PARTNERS["client-commune"]["file"]]["organization"]["name"] = HOSTILE
    pols[PARTNERS["client-departement"]["file"]]["quota"]["per_minute"] = 1000


def x509_not_after(pem):
    """A PEM certificate's notAfter as the API writes it (ISO, UTC)."""
    out = subprocess.run(["openssl", "x509", "-noout", "-enddate"], input=pem,
                         capture_output=True, check=True).stdout.decode().strip()
    when = datetime.datetime.strptime(out.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class ViewsCase(ConsoleCase):
    """A stack whose commune has a hostile organisation name."""

    @classmethod
    def setUpClass(cls):
        require_binaries()
        cls.stack = Stack("console-views", conf_hook=add_operators, policy_hook=hostile_names)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()
        with open(os.path.join(cls.stack.pki, "admin.token")) as f:
            cls.admin_token = f.read().strip()
        cls.origin = "http://127.0.0.1:%d" % cls.stack.admin_port

    def get(self, path, token=READ_TOKEN):
        r = self.call("GET", path, token=token)
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.headers["content-type"], "application/json")
        self.assertSecurityHeaders(r)
        return r.json()

    def traffic(self, n_ok, n_denied):
        # a data route: its quota counts the calls
        for _ in range(n_ok):
            r = self.stack.request("/opale/v1/entreprises/732829320/comptes-bancaires",
                                   cert_name="client-commune")
            self.assertEqual(r.status, 200)
        for _ in range(n_denied):
            # a data route without its token: refused 401 by the bearer stage
            r = self.stack.request("/opale/v1/entreprises/732829320/comptes-bancaires",
                                   cert_name="client-departement", token=None,
                                   teleservice=PARTNERS["client-departement"]["teleservice"])
            self.assertEqual(r.status, 401)


class TestOverview(ViewsCase):

    def test_overview(self):
        self.traffic(6, 3)
        def counted():
            o = self.get("/admin/overview")
            pts = o["series"]["points"]
            tot = {k: sum(p["outcomes"][k] for p in pts) for k in ("forwarded", "denied", "quota", "error")}
            return (o, tot) if tot["forwarded"] >= 6 and tot["denied"] >= 3 else None
        got = wait_for(counted, 25)
        self.assertIsNotNone(got, "the series never counted the traffic: %r" % self.get("/admin/overview"))
        o, tot = got
        self.assertRegex(o["now"], ISO_RE)
        self.assertEqual(o["workers"], 2)
        self.assertIsInstance(o["connections"], int)
        self.assertEqual(o["series"]["step_s"], 10)
        pts = o["series"]["points"]
        self.assertEqual(len(pts), 90)
        ts = [datetime.datetime.strptime(p["t"], "%Y-%m-%dT%H:%M:%SZ") for p in pts]
        self.assertTrue(all((b - a).total_seconds() == 10 for a, b in zip(ts, ts[1:])), ts[:3])
        self.assertEqual(ts[-1].second % 10, 0)
        self.assertEqual(tot["quota"], 0)
        self.assertEqual(tot["error"], 0)
        self.assertGreaterEqual(o["errors_by_code"].get("401", 0), 3, o["errors_by_code"])
        self.assertEqual(o["errors_by_code"]["5xx"], 0)
        for q in ("p50", "p90", "p99"):
            self.assertIsInstance(o["upstream_ms"][q], (int, float), o["upstream_ms"])
        self.assertLessEqual(o["upstream_ms"]["p50"], o["upstream_ms"]["p99"])
        self.assertEqual(o["quota_store"], {"kind": "memory", "degraded": False})
        j = o["journal"]
        self.assertEqual(j["state"], "writing")
        self.assertIsInstance(j["queue"], int)
        self.assertGreater(j["free_bytes"], 0)
        self.assertIn("last_checkpoint", j)
        self.assertIn("verified_at", j)
        self.assertEqual(o["policies"], {"loaded": 2, "rejected": 0, "pending": 0})


class TestPartners(ViewsCase):

    def row(self, body, client_id):
        rows = [p for p in body["partners"] if p["client_id"] == client_id]
        self.assertEqual(len(rows), 1, body)
        return rows[0]

    def test_rows_hostile_name_and_quota(self):
        self.traffic(5, 2)
        r = self.call("GET", "/admin/partners", token=READ_TOKEN)
        self.assertEqual(r.status, 200)
        body = json.loads(r.raw.decode("utf-8"))  # valid JSON whatever the names hold
        c = self.row(body, COMMUNE)
        self.assertEqual(c["organisation"], HOSTILE)
        self.assertEqual(c["siret"], PARTNERS["client-commune"]["siret"])
        self.assertEqual(c["habilitation"], PARTNERS["client-commune"]["id"])
        self.assertEqual(c["environment"], "sandbox")
        self.assertEqual(c["state"], "active")
        self.assertEqual(c["habilitation_until"], "2099-12-31T23:59:59Z")
        # the notAfter of the certificate its calls presented
        with open(os.path.join(self.stack.pki, "client-commune.crt"), "rb") as f:
            na = x509_not_after(f.read())
        self.assertEqual(c["cert_not_after"], na)
        self.assertIsNone(c["suspension"])
        self.assertEqual(c["quota"]["window_s"], 60)
        self.assertEqual(c["quota"]["limit"], 100000)
        self.assertEqual(self.row(body, DEPT)["quota"]["limit"], 1000)
        # sampled once a second: the calls show within a few seconds
        def seen():
            b = self.get("/admin/partners")
            c = self.row(b, COMMUNE)
            d = self.row(b, DEPT)
            return (c, d) if c["quota"]["used"] >= 5 and d["last_call"] else None
        got = wait_for(seen, 10)
        self.assertIsNotNone(got, self.get("/admin/partners"))
        c, d = got
        self.assertRegex(c["last_call"], ISO_RE)
        self.assertEqual(c["error_rate"], 0)
        self.assertEqual(d["error_rate"], 1)  # its two calls were refused
        # the quota bar moves with the calls
        before = c["quota"]["used"]
        self.traffic(4, 0)
        got = wait_for(lambda: self.row(self.get("/admin/partners"), COMMUNE)["quota"]["used"] >= before + 4, 10)
        self.assertTrue(got)

    def test_suspension_shows_with_its_operator(self):
        path = "/admin/consumers/%s/suspend" % DEPT
        r = self.call("POST", path, token=OPS_TOKEN, body={"reason": "INC-7 <b>probe</b>"})
        self.assertEqual(r.status, 200, r.raw)
        try:
            d = self.row(self.get("/admin/partners"), DEPT)
            self.assertEqual(d["state"], "suspended")
            self.assertEqual(d["suspension"]["operator"], "marc_ops-1")
            self.assertEqual(d["suspension"]["reason"], "INC-7 <b>probe</b>")
            self.assertIsNone(d["suspension"]["until"])
        finally:
            r = self.call("POST", "/admin/consumers/%s/resume" % DEPT, token=OPS_TOKEN,
                          body={"reason": "done"})
            self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(self.row(self.get("/admin/partners"), DEPT)["state"], "active")
        r = self.call("POST", "/admin/environments/sandbox/cut", token=OPS_TOKEN, body={"reason": "drill"})
        self.assertEqual(r.status, 200, r.raw)
        try:
            self.assertEqual(self.row(self.get("/admin/partners"), COMMUNE)["state"], "cut")
        finally:
            r = self.call("POST", "/admin/environments/sandbox/restore", token=OPS_TOKEN,
                          body={"reason": "drill over"})
            self.assertEqual(r.status, 200, r.raw)

    def test_detail(self):
        self.traffic(3, 0)
        # the records are read from the journal file: wait for them
        def detail():
            b = self.get("/admin/partners/" + COMMUNE)
            return b if len(b["records"]) >= 3 else None
        b = wait_for(detail, 10)
        self.assertIsNotNone(b)
        self.assertEqual(b["organisation"], HOSTILE)
        self.assertLessEqual(len(b["records"]), 50)
        for rec in b["records"]:
            self.assertEqual(rec["consumer"], COMMUNE)
            self.assertIs(rec["verified"], True, rec)
        # a sandbox partner: the recette report of the verified journal
        self.assertIs(b["recette"]["available"], True, b["recette"])
        self.assertIn(COMMUNE, b["recette"]["markdown"])
        self.assertIn("#", b["recette"]["markdown"])
        self.assertIsInstance(b["events"], list)
        r = self.call("GET", "/admin/partners/nobody-sandbox", token=READ_TOKEN)
        self.assertEqual(r.status, 404)
        # an event about the partner shows in its detail
        r = self.call("POST", "/admin/consumers/%s/suspend" % COMMUNE, token=OPS_TOKEN,
                      body={"reason": "detail test"})
        self.assertEqual(r.status, 200)
        self.call("POST", "/admin/consumers/%s/resume" % COMMUNE, token=OPS_TOKEN, body={"reason": "ok"})
        ev = self.get("/admin/partners/" + COMMUNE)["events"]
        kinds = [e["type"] for e in ev]
        self.assertIn("admin.suspend", kinds)
        self.assertTrue(all(e["consumer"] == COMMUNE for e in ev), ev)

    def test_detail_while_the_journal_grows(self):
        # the journal is verified, then read again for the report: calls
        # journalled in between are not a change to what was verified
        stop = threading.Event()
        failures = []

        def load():
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                r = self.stack.request("/opale/v1/entreprises/732829320/comptes-bancaires",
                                       cert_name="client-commune")
                if r.status != 200:
                    failures.append(r.status)
                    return

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            # two partners in turn: each page computes its report afresh
            for i in range(40):
                who = COMMUNE if i % 2 == 0 else DEPT
                b = self.get("/admin/partners/" + who)
                self.assertIs(b["recette"]["available"], True, (i, who, b["recette"]))
        finally:
            stop.set()
            for t in threads:
                t.join(90)
        self.assertEqual(failures, [])

    def test_many_records_are_capped_at_50_oldest_first(self):
        self.traffic(55, 0)
        def enough():
            b = self.get("/admin/partners/" + COMMUNE)
            return b if len(b["records"]) == 50 else None
        b = wait_for(enough, 10)
        self.assertIsNotNone(b)
        seqs = [r["seq"] for r in b["records"]]
        self.assertEqual(seqs, sorted(seqs))


class TestTamperedRecord(ViewsCase):

    def test_a_modified_record_is_not_verified(self):
        self.traffic(4, 0)
        jpath = self.stack.journal_path
        def four():
            lines = [l for l in open(jpath, "rb").read().split(b"\n") if COMMUNE.encode() in l]
            return lines if len(lines) >= 4 else None
        lines = wait_for(four, 10)
        self.assertIsNotNone(lines)
        victim = lines[1]
        rec = json.loads(victim)
        # same length, other bytes: the record's hash no longer matches
        forged = victim.replace(b'"method":"GET"', b'"method":"PUT"')
        self.assertNotEqual(forged, victim)
        data = open(jpath, "rb").read()
        off = data.index(victim)
        with open(jpath, "r+b") as f:
            f.seek(off)
            f.write(forged)
        b = self.get("/admin/partners/" + COMMUNE)
        by_seq = {r["seq"]: r["verified"] for r in b["records"]}
        self.assertIs(by_seq[rec["seq"]], False, by_seq)
        self.assertTrue(all(v for s, v in by_seq.items() if s != rec["seq"]), by_seq)


class TestEvents(ViewsCase):

    def test_list_filter_poll_and_ack(self):
        first = self.get("/admin/events")
        self.assertIsInstance(first["next"], int)
        r = self.call("POST", "/admin/consumers/%s/suspend" % DEPT, token=OPS_TOKEN, body={"reason": "ev"})
        self.assertEqual(r.status, 200)
        self.call("POST", "/admin/consumers/%s/resume" % DEPT, token=OPS_TOKEN, body={"reason": "ev"})
        page = self.get("/admin/events?after=%d" % first["next"])
        types = [e["type"] for e in page["events"]]
        self.assertEqual(types, ["admin.suspend", "admin.resume"], page)
        ids = [e["id"] for e in page["events"]]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(page["next"], ids[-1])
        sus = page["events"][0]
        self.assertRegex(sus["time"], r"^\d{4}-\d{2}-\d{2}T")
        self.assertEqual(sus["severity"], "high")
        self.assertEqual(sus["consumer"], DEPT)
        self.assertEqual(sus["operator"], "marc_ops-1")
        self.assertEqual(sus["detail"]["reason"], "ev")
        self.assertEqual(sus["detail"]["client_ip"], "127.0.0.1")
        self.assertNotIn("hash", sus["detail"])
        self.assertIsNone(sus["acked"])
        # polling after next: nothing new
        self.assertEqual(self.get("/admin/events?after=%d" % page["next"])["events"], [])
        # filters
        only = self.get("/admin/events?type=admin.resume")["events"]
        self.assertTrue(only and all(e["type"] == "admin.resume" for e in only), only)
        high = self.get("/admin/events?severity=high")["events"]
        self.assertTrue(all(e["severity"] in ("high", "critical") for e in high), high)
        self.assertIn(sus["id"], [e["id"] for e in high])
        self.assertNotIn(page["events"][1]["id"], [e["id"] for e in high])  # resume is medium
        mine = self.get("/admin/events?consumer=" + DEPT)["events"]
        self.assertTrue(mine and all(e["consumer"] == DEPT for e in mine))
        one = self.get("/admin/events?limit=1")
        self.assertEqual(len(one["events"]), 1)
        for bad in ("severity=loud", "after=x", "limit=0", "limit=501", "after=-1"):
            with self.subTest(query=bad):
                r = self.call("GET", "/admin/events?" + bad, token=READ_TOKEN)
                self.assertEqual(r.status, 400, r.raw)
        # ack by an operator's session, with the CSRF token
        cookie, csrf = self.login(OPS_TOKEN)
        n0 = len(self.stack.security_events("admin.event_ack"))
        path = "/admin/events/%d/ack" % sus["id"]
        r = self.call("POST", path, cookie=cookie)
        self.assertEqual(r.status, 403)
        rc, rcsrf = self.login(READ_TOKEN)
        r = self.call("POST", path, cookie=rc, csrf=rcsrf)
        self.assertEqual(r.status, 403)
        self.assertEqual(r.json()["error"], "forbidden")
        r = self.call("POST", path, cookie=cookie, csrf=csrf, origin=self.origin)
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json()["acked"]["operator"], "marc_ops-1")
        r = self.call("POST", path, cookie=cookie, csrf=csrf)
        self.assertEqual(r.status, 409, r.raw)
        acked = [e for e in self.get("/admin/events?type=admin.suspend")["events"] if e["id"] == sus["id"]]
        self.assertEqual(acked[0]["acked"]["operator"], "marc_ops-1")
        self.assertRegex(acked[0]["acked"]["time"], ISO_RE)
        ev = self.events_since("admin.event_ack", n0)
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual(ev[0]["operator"], "marc_ops-1")
        self.assertEqual(ev[0]["event_id"], sus["id"])
        self.assertEqual(ev[0]["event_type"], "admin.suspend")
        self.assertEqual(ev[0]["client_ip"], "127.0.0.1")
        for bad in ("999999", "x", "-1"):
            r = self.call("POST", "/admin/events/%s/ack" % bad, token=OPS_TOKEN)
            self.assertEqual(r.status, 404, r.raw)


def maintenance_plan(conf, stack):
    add_operators(conf, stack)
    now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
    d0, d1 = now + datetime.timedelta(minutes=30), now + datetime.timedelta(minutes=40)
    x0, x1 = now + datetime.timedelta(hours=3), now + datetime.timedelta(hours=4)
    stack.plan = (d0, d1, x0, x1)
    conf["access"] = {"maintenance": {"timezone": "UTC", "force": True, "slots": [
        {"daily": "%s-%s" % (d0.strftime("%H:%M"), d1.strftime("%H:%M"))},
        {"from": x0.strftime("%Y-%m-%dT%H:%M"), "until": x1.strftime("%Y-%m-%dT%H:%M")},
    ]}}


class TestMaintenance(ConsoleCase):

    @classmethod
    def setUpClass(cls):
        require_binaries()
        cls.stack = Stack("console-maint", conf_hook=maintenance_plan)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def test_calendar(self):
        r = self.call("GET", "/admin/maintenance", token=READ_TOKEN)
        self.assertEqual(r.status, 200, r.raw)
        m = r.json()
        d0, d1, x0, x1 = self.stack.plan
        iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.assertEqual(m["timezone"], "UTC")
        self.assertIsNone(m["current"])
        self.assertEqual(m["next"], {"start": iso(d0), "end": iso(d1)})
        self.assertIn({"start": iso(x0), "end": iso(x1)}, m["slots"])
        # the daily slot, every day of the next two weeks
        daily = [s for s in m["slots"] if s["start"][11:] == iso(d0)[11:]]
        self.assertGreaterEqual(len(daily), 14)
        starts = [s["start"] for s in m["slots"]]
        self.assertEqual(starts, sorted(starts))


class TestMaintenanceNone(ConsoleCase):

    def test_no_calendar(self):
        r = self.call("GET", "/admin/maintenance", token=READ_TOKEN)
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json(), {"timezone": "Europe/Paris", "slots": [], "current": None, "next": None})


if __name__ == "__main__":
    unittest.main()

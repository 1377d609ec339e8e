"""The operator console's server side (docs/console.md, "API and security"):
the embedded static files and their headers, named operators with roles,
console sessions (cookie attributes, CSRF, Origin, idle expiry), whoami,
the read endpoints the page uses, and the journalling of every action with
the operator's name and of failed logins without the token."""

import http.client
import json
import os
import re
import time
import unittest

from harness import DEFAULT_TIMEOUT, Stack, require_binaries

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


if __name__ == "__main__":
    unittest.main()

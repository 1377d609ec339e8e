"""The admin listener's statuses (docs/openapi/admin.json): /healthz and
/readyz open; everything else needs the token (401 first, even for an
unknown path); then 404 for an unknown path, 405 with Allow for a known path
and another method. Every answer is JSON with Cache-Control: no-store."""

import http.client
import json
import os
import unittest

from harness import DEFAULT_TIMEOUT, Stack, require_binaries


class TestAdminStatuses(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        require_binaries()
        cls.stack = Stack("admin-api")
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()
        with open(os.path.join(cls.stack.pki, "admin.token")) as f:
            cls.token = f.read().strip()

    def call(self, method, path, token=True):
        """(status, headers dict lower-cased, parsed JSON body)."""
        hdrs = {}
        if token is True:
            token = self.token
        if token:
            hdrs["Authorization"] = "Bearer " + token
        c = http.client.HTTPConnection("127.0.0.1", self.stack.admin_port, timeout=DEFAULT_TIMEOUT)
        try:
            c.request(method, path, body=b"" if method in ("POST", "PUT", "PATCH") else None, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            headers = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        self.assertEqual(headers.get("content-type", "").split(";")[0], "application/json",
                         "%s %s: %r %r" % (method, path, headers, data))
        self.assertEqual(headers.get("cache-control"), "no-store", headers)
        return r.status, headers, json.loads(data)

    def assert_error(self, method, path, status, token=True):
        st, h, body = self.call(method, path, token)
        self.assertEqual(st, status, "%s %s: %r" % (method, path, body))
        self.assertIsInstance(body.get("error"), str, body)
        return h

    def test_known_path_other_method_is_405_with_allow(self):
        cases = [
            ("GET", "/admin/reload", "POST"),
            ("PUT", "/admin/reload", "POST"),
            ("DELETE", "/metrics", "GET"),
            ("POST", "/metrics", "GET"),
            ("POST", "/admin/consumers", "GET"),
            ("GET", "/admin/consumers/commune-exemple-sandbox/suspend", "POST"),
            ("GET", "/admin/consumers/nobody-sandbox/resume", "POST"),
            ("PATCH", "/admin/consumers/commune-exemple-sandbox/resume", "POST"),
            ("OPTIONS", "/admin/reload", "POST"),
            ("PUT", "/admin/journal/hold", "GET, POST, DELETE"),
            ("PATCH", "/admin/journal/hold", "GET, POST, DELETE"),
        ]
        for method, path, allow in cases:
            with self.subTest(method=method, path=path):
                h = self.assert_error(method, path, 405)
                self.assertEqual(h.get("allow"), allow, h)

    def test_probes_are_open_and_405_on_another_method(self):
        for path in ("/healthz", "/readyz", "/healthz?verbose=1"):
            with self.subTest(path=path):
                st, _, body = self.call("GET", path, token=None)
                self.assertEqual(st, 200, body)
        st, _, body = self.call("GET", "/healthz", token=None)
        self.assertEqual(body, {"status": "ok"})
        for method, path in (("POST", "/healthz"), ("DELETE", "/readyz"), ("PUT", "/healthz")):
            with self.subTest(method=method, path=path):
                h = self.assert_error(method, path, 405, token=None)
                self.assertEqual(h.get("allow"), "GET", h)

    def test_unknown_paths_are_404_with_the_token(self):
        for method, path in (("GET", "/nope"), ("POST", "/admin/nope"), ("GET", "/admin/"),
                             ("POST", "/admin/consumers//suspend"),
                             ("POST", "/admin/consumers/a/b/suspend"),
                             ("POST", "/admin/consumers/commune-exemple-sandbox/pause"),
                             ("GET", "/metrics/extra"), ("GET", "/healthz/"),
                             ("GET", "/admin/journal/hold/x"), ("GET", "/admin/journal")):
            with self.subTest(method=method, path=path):
                self.assert_error(method, path, 404)

    def test_missing_or_wrong_token_is_401_before_anything_else(self):
        for token in (None, "wrong", self.token + "x"):
            for method, path in (("GET", "/metrics"), ("GET", "/admin/consumers"), ("POST", "/admin/reload"),
                                 ("GET", "/admin/reload"), ("GET", "/nope"),
                                 ("POST", "/admin/consumers/commune-exemple-sandbox/suspend")):
                with self.subTest(token=token, method=method, path=path):
                    h = self.assert_error(method, path, 401, token=token)
                    self.assertEqual(h.get("www-authenticate"), 'Bearer realm="opale-admin"', h)
        # one more (20 failures from one address within 60 s block it):
        # a legal hold cannot be lifted without the token
        h = self.assert_error("DELETE", "/admin/journal/hold", 401, token=None)
        self.assertEqual(h.get("www-authenticate"), 'Bearer realm="opale-admin"', h)
        # nothing was suspended by the refused calls
        st, _, body = self.call("GET", "/admin/consumers")
        self.assertEqual(st, 200)
        self.assertFalse(any(c["suspended"] for c in body["consumers"]), body)

    def test_unknown_client_id_is_404(self):
        self.assert_error("POST", "/admin/consumers/nobody-sandbox/suspend", 404)
        self.assert_error("POST", "/admin/consumers/nobody-sandbox/resume", 404)


if __name__ == "__main__":
    unittest.main()

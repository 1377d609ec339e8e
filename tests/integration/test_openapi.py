"""docs/openapi/public.json and docs/openapi/admin.json against a live gateway
running the routes of the shipped deploy/sandbox/gateway.json.

- Every answer the test provokes, on every documented path and method, has a
  documented status, a documented content type, the documented required
  headers, and a body that validates against the documented schema (OpenAPI
  3.1 schemas are JSON Schema 2020-12: jsonschema's Draft202012Validator).
- Every documented operation is exercised at least once.
- The reverse: every route of the shipped gateway.json (path, method, the
  `annee` parameter of year-bound routes) and every endpoint of the admin
  listener's table (gateway/admin/admin.c) is in the documents.
"""

import copy
import http.client
import json
import os
import re
import tempfile
import time
import unittest

import jsonschema

from harness import (DEFAULT_TIMEOUT, PARTNERS, Stack, build_request, read_response, require_binaries,
                     send_raw)

SRC = os.environ.get("GW_SRCDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DOCS = os.path.join(SRC, "docs", "openapi")
SANDBOX_CONF = os.path.join(SRC, "deploy", "sandbox", "gateway.json")
ADMIN_C = os.path.join(SRC, "gateway", "admin", "routes.c")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def load(name):
    with open(os.path.join(DOCS, name)) as f:
        return json.load(f)


def deref(doc, node, depth=0):
    """<node> with every local "$ref" replaced by its target, recursively."""
    if depth > 50:
        raise ValueError("$ref nesting too deep")
    if isinstance(node, dict):
        if "$ref" in node:
            ptr = node["$ref"]
            if not ptr.startswith("#/"):
                raise ValueError("non-local $ref %s" % ptr)
            target = doc
            for part in ptr[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            return deref(doc, target, depth + 1)
        return {k: deref(doc, v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [deref(doc, v, depth + 1) for v in node]
    return node


def template_re(path):
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")


def essence(ctype):
    return (ctype or "").split(";")[0].strip().lower()


def sandbox_routes():
    with open(SANDBOX_CONF) as f:
        return json.load(f)["routes"]


def admin_table():
    """(method, path template) of every entry of admin_routes[] in
    gateway/admin/routes.c."""
    with open(ADMIN_C) as f:
        src = f.read()
    m = re.search(r"admin_routes\[\]\s*=\s*\{(.*?)\n\};", src, re.S)
    assert m, "admin_routes[] not found in %s" % ADMIN_C
    out = []
    for path, suffix, method, tmpl in re.findall(
            r'\{GW_ADMIN_EP_[A-Z_]+,\s*"([^"]+)",\s*(NULL|"[^"]*"),\s*"([A-Z]+)",\s*[01],\s*"([^"]+)"',
            m.group(1)):
        if suffix != "NULL":
            # the template names the {id} segment ({client_id}, {environment})
            assert tmpl.startswith(path) and tmpl.endswith(suffix.strip('"')), tmpl
            path = tmpl
        out.append((method.lower(), path))
    assert len(out) >= 7, out
    return out


def query_names(route):
    """Names of the query parameters a route declares (any of the shapes a
    route may use: a list of names, a list of objects with "name", an
    object keyed by name), plus annee on year-bound routes."""
    names = set()
    for key in ("query", "query_params", "params"):
        q = route.get(key)
        if isinstance(q, dict):
            names.update(q.keys())
        elif isinstance(q, list):
            for x in q:
                if isinstance(x, str):
                    names.add(x)
                elif isinstance(x, dict) and "name" in x:
                    names.add(x["name"])
    if route.get("year_bound"):
        names.add("annee")
    return names


class Checker:
    """Checks live answers against one OpenAPI document and records which
    (path, method, status) were seen."""

    def __init__(self, tc, doc):
        self.tc = tc
        self.doc = doc
        self.ops = {}
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method in METHODS:
                    self.ops[(method, path)] = op
        self.seen = set()

    def op_for(self, method, path):
        hits = [(m, p) for (m, p) in self.ops if m == method and template_re(p).match(path)]
        # a literal path wins over a template
        hits.sort(key=lambda mp: mp[1].count("{"))
        return hits[0] if hits else None

    def check(self, method, target, status, headers, body):
        """<headers>: {lower-case name: value}; <body>: bytes."""
        path = target.split("?")[0]
        key = self.op_for(method.lower(), path)
        ctx = "%s %s -> %d %r %r" % (method, target, status, headers, body[:300])
        if key is None:
            # a documented path with another method: the 405 its operations document
            others = [k for k in self.ops if template_re(k[1]).match(path)]
            self.tc.assertTrue(others, "path not documented: " + ctx)
            self.tc.assertEqual(status, 405, "undocumented method must answer 405: " + ctx)
            key = others[0]
        responses = self.ops[key]["responses"]
        self.tc.assertIn(str(status), responses, "status not documented: " + ctx)
        resp = deref(self.doc, responses[str(status)])
        for name, h in (resp.get("headers") or {}).items():
            h = deref(self.doc, h)
            val = headers.get(name.lower())
            if h.get("required"):
                self.tc.assertIsNotNone(val, "header %s missing: %s" % (name, ctx))
            if val is not None and "schema" in h:
                inst = val
                if h["schema"].get("type") == "integer":
                    self.tc.assertRegex(val, r"^[0-9]+$", "header %s: %s" % (name, ctx))
                    inst = int(val)
                self.validate(h["schema"], inst, "header %s: %s" % (name, ctx))
        content = resp.get("content")
        if content:
            ct = essence(headers.get("content-type"))
            self.tc.assertIn(ct, content, "content type not documented: " + ctx)
            schema = content[ct].get("schema")
            if schema is not None:
                if ct.endswith("json"):
                    try:
                        inst = json.loads(body)
                    except ValueError:
                        self.tc.fail("body is not JSON: " + ctx)
                else:
                    inst = body.decode("utf-8")
                self.validate(schema, inst, "body: " + ctx)
        else:
            self.tc.assertEqual(body, b"", "body where none is documented: " + ctx)
        self.seen.add((key[0], key[1], str(status)))

    def validate(self, schema, inst, ctx):
        schema = deref(self.doc, schema)
        v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        errs = sorted(v.iter_errors(inst), key=lambda e: list(e.path))
        self.tc.assertEqual([], [e.message for e in errs], ctx)

    def unexercised(self):
        done = {(m, p) for (m, p, _) in self.seen}
        return sorted(k for k in self.ops if k not in done)


def luhn_siren(prefix8):
    """The 9-digit SIREN with a valid Luhn key for these 8 digits."""
    for d in range(10):
        s = prefix8 + str(d)
        total = 0
        for i, c in enumerate(reversed(s)):
            n = int(c) * (2 if i % 2 else 1)
            total += n - 9 if n > 9 else n
        if total % 10 == 0:
            return s
    raise AssertionError(prefix8)


SIREN = "732829320"
UNKNOWN_SIREN = luhn_siren("99900000")   # the mock's unknown-company pattern


class TestDocumentsCoverTheGateway(unittest.TestCase):
    """The reverse direction, from the program to the documents."""

    def test_every_shipped_route_is_documented(self):
        doc = load("public.json")
        for r in sandbox_routes():
            with self.subTest(route=r["name"]):
                item = doc["paths"].get(r["path"])
                self.assertIsNotNone(item, "route %s (%s) missing from public.json" % (r["name"], r["path"]))
                op = item.get(r.get("method", "GET").lower())
                self.assertIsNotNone(op, "%s %s missing" % (r.get("method"), r["path"]))
                params = {(p["in"], p["name"]): p for p in (deref(doc, x) for x in op.get("parameters", []))}
                for q in query_names(r):
                    self.assertIn(("query", q), params, "%s: query parameter %s not documented" % (r["name"], q))
                if r.get("year_bound"):
                    annee = params[("query", "annee")]
                    self.assertTrue(annee.get("required"), annee)
                    self.assertEqual(annee["schema"].get("type"), "integer", annee)
                else:
                    self.assertNotIn(("query", "annee"), params, r["name"])
                if "{siren}" in r["path"]:
                    self.assertIn(("path", "siren"), params)
                if r.get("scope"):
                    for h in ("X-Correlation-ID", "ID_Teleservice", "Authorization"):
                        self.assertTrue(params.get(("header", h), {}).get("required"), (r["name"], h))
        for path, method in (("/token", "post"), ("/.well-known/jwks.json", "get")):
            self.assertIn(method, doc["paths"].get(path, {}), path)
        # and nothing documented that the shipped config does not serve
        shipped = {r["path"] for r in sandbox_routes()} | {"/token", "/.well-known/jwks.json"}
        self.assertEqual(set(doc["paths"]) - shipped, set())

    def test_every_admin_endpoint_is_documented(self):
        doc = load("admin.json")
        documented = {(m, p) for p, item in doc["paths"].items() for m in item if m in METHODS}
        self.assertEqual(set(admin_table()), documented)

    def test_documents_are_openapi_31(self):
        for name in ("public.json", "admin.json"):
            doc = load(name)
            self.assertTrue(doc["openapi"].startswith("3.1."), name)
            # every schema is a valid 2020-12 schema
            for sname, s in doc.get("components", {}).get("schemas", {}).items():
                jsonschema.Draft202012Validator.check_schema(deref(doc, s))
            # every $ref resolves
            deref(doc, doc)


def one_quota(pols, stack):
    pols[PARTNERS["client-departement"]["file"]]["quota"]["per_minute"] = 1


def shipped_routes(conf, stack):
    conf["routes"] = copy.deepcopy(sandbox_routes())


class TestLiveAnswersMatchTheDocuments(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        require_binaries()
        cls.stack = Stack("openapi", conf_hook=shipped_routes, policy_hook=one_quota)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def public(self, checker, method, target, cert="client-commune", token=True, **kw):
        st = self.stack
        data = st.build_request(target, cert_name=cert, token=token, method=method, **kw)
        s = st.tls_connect(cert)
        try:
            send_raw(s, data)
            r = read_response(s, head_request=method == "HEAD")
        finally:
            s.close()
        headers = {k.lower(): v for k, v in r.headers}
        checker.check(method, target, r.status, headers, r.body)
        return r

    def admin(self, checker, method, path, token=True, body=None, headers=None):
        hdrs = dict(headers or {})
        if token is True:
            with open(os.path.join(self.stack.pki, "admin.token")) as f:
                token = f.read().strip()
        if token:
            hdrs["Authorization"] = "Bearer " + token
        c = http.client.HTTPConnection("127.0.0.1", self.stack.admin_port, timeout=DEFAULT_TIMEOUT)
        try:
            if body is not None:
                hdrs["Content-Type"] = "application/json"
            c.request(method, path, body=body if body is not None else b"" if method == "POST" else None,
                      headers=hdrs)
            r = c.getresponse()
            data = r.read()
            headers = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        checker.check(method, path, r.status, headers, data)
        return r.status, data

    def test_public_api(self):
        st = self.stack
        ck = Checker(self, load("public.json"))
        dep = PARTNERS["client-departement"]["teleservice"]
        # etatSante
        self.assertEqual(self.public(ck, "GET", "/opale/v1/etatSante").status, 200)
        self.assertEqual(self.public(ck, "GET", "/opale/v1/etatSante", correlation_id=None).status, 400)
        # every data route: data, then the usual refusals
        for r in sandbox_routes():
            if "{siren}" not in r["path"]:
                continue
            path = r["path"].replace("{siren}", SIREN)
            q = "?annee=2023" if r.get("year_bound") else ""
            with self.subTest(route=r["name"]):
                self.assertEqual(self.public(ck, "GET", path + q).status, 200)
                self.assertEqual(self.public(ck, "GET", path + q, token=None).status, 401)
                self.assertEqual(self.public(ck, "GET", path + q, teleservice="TS-OTHER").status, 403)
                self.assertEqual(self.public(ck, "GET", path + q, correlation_id=None).status, 400)
                bad = r["path"].replace("{siren}", "123456789")
                self.assertEqual(self.public(ck, "GET", bad + q).status, 400)
                unknown = r["path"].replace("{siren}", UNKNOWN_SIREN)
                self.assertEqual(self.public(ck, "GET", unknown + q).status, 404)
                if r.get("year_bound"):
                    self.assertEqual(self.public(ck, "GET", path).status, 400)
                    self.assertEqual(self.public(ck, "GET", path + "?annee=1900").status, 403)
        # quota: one a minute for the departement
        target = "/opale/v1/entreprises/%s/comptes-bancaires" % SIREN
        first = self.public(ck, "GET", target, cert="client-departement", teleservice=dep)
        self.assertEqual(first.status, 200)
        self.assertEqual(first.header("RateLimit-Limit"), "1")
        over = self.public(ck, "GET", target, cert="client-departement", teleservice=dep)
        self.assertEqual(over.status, 429)
        self.assertIsNotNone(over.header("Retry-After"))
        # upstream failure
        st.mock_config(reset_rate=1.0)
        try:
            self.assertEqual(self.public(ck, "GET", "/opale/v1/etatSante").status, 502)
        finally:
            st.mock_config()
        # the gateway's own routes
        r = st.token_request("client-commune")
        ck.check("POST", "/token", r.status, {k.lower(): v for k, v in r.headers}, r.body)
        self.assertEqual(r.status, 200)
        r = st.token_request("client-commune", form=[("grant_type", "password")])
        ck.check("POST", "/token", r.status, {k.lower(): v for k, v in r.headers}, r.body)
        self.assertEqual(r.status, 400)
        r = st.token_request("client-commune", form=[("grant_type", "client_credentials"),
                                                      ("client_id", "departement-test-sandbox")])
        ck.check("POST", "/token", r.status, {k.lower(): v for k, v in r.headers}, r.body)
        self.assertEqual(r.status, 401)
        self.assertEqual(self.public(ck, "GET", "/.well-known/jwks.json", token=None).status, 200)
        self.assertEqual(ck.unexercised(), [])
        # every documented status of the data routes that this stack can give was seen
        for status in ("200", "400", "401", "403", "404", "429", "502"):
            self.assertTrue(any(s == status for (_, _, s) in ck.seen), status)

    def test_admin_api(self):
        ck = Checker(self, load("admin.json"))
        cid = PARTNERS["client-commune"]["client_id"]
        self.assertEqual(self.admin(ck, "GET", "/healthz", token=None)[0], 200)
        self.assertEqual(self.admin(ck, "GET", "/readyz", token=None)[0], 200)
        self.assertEqual(self.admin(ck, "POST", "/healthz", token=None)[0], 405)
        self.assertEqual(self.admin(ck, "DELETE", "/readyz", token=None)[0], 405)
        for method, path, ok in (("GET", "/metrics", 200), ("GET", "/admin/consumers", 200),
                                 ("POST", "/admin/reload", 200)):
            other = "POST" if method == "GET" else "GET"
            self.assertEqual(self.admin(ck, method, path)[0], ok)
            self.assertEqual(self.admin(ck, method, path, token=None)[0], 401)
            self.assertEqual(self.admin(ck, method, path, token="wrong")[0], 401)
            self.assertEqual(self.admin(ck, other, path)[0], 405)
        for verb in ("suspend", "resume"):
            path = "/admin/consumers/%s/%s" % (cid, verb)
            self.assertEqual(self.admin(ck, "POST", path)[0], 422)  # a reason is required
            self.assertEqual(self.admin(ck, "POST", path, body=b'{"reason":"openapi"}')[0], 200)
            self.assertEqual(self.admin(ck, "POST", path, token=None)[0], 401)
            self.assertEqual(self.admin(ck, "GET", path)[0], 405)
            self.assertEqual(self.admin(ck, "POST", "/admin/consumers/nobody-sandbox/%s" % verb)[0], 404)
        # environments: state, cut (with until), refused bodies, restore
        self.assertEqual(self.admin(ck, "GET", "/admin/environments")[0], 200)
        self.assertEqual(self.admin(ck, "POST", "/admin/environments")[0], 405)
        cut = "/admin/environments/production/cut"
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        self.assertEqual(self.admin(ck, "POST", cut, body=('{"reason":"openapi","until":"%s"}' % until).encode())[0],
                         200)
        self.assertEqual(self.admin(ck, "GET", "/admin/environments")[0], 200)
        self.assertEqual(self.admin(ck, "GET", "/readyz", token=None)[0], 200)
        self.assertEqual(self.admin(ck, "POST", cut, body=b'{"until":"x"}')[0], 422)
        self.assertEqual(self.admin(ck, "POST", cut, token=None)[0], 401)
        self.assertEqual(self.admin(ck, "GET", cut)[0], 405)
        self.assertEqual(self.admin(ck, "POST", "/admin/environments/staging/cut", body=b'{"reason":"x"}')[0], 404)
        restore = "/admin/environments/production/restore"
        self.assertEqual(self.admin(ck, "POST", restore)[0], 422)
        self.assertEqual(self.admin(ck, "POST", restore, body=b'{"reason":"openapi"}')[0], 200)
        self.assertEqual(self.admin(ck, "POST", restore, token=None)[0], 401)
        self.assertEqual(self.admin(ck, "GET", restore)[0], 405)
        self.assertEqual(self.admin(ck, "POST", "/admin/environments/staging/restore", body=b'{"reason":"x"}')[0],
                         404)
        # legal holds: set (201), replaced (200), listed, refused (400), lifted (200), gone (404)
        # console sessions and whoami (docs/console.md, "API and security")
        self.assertEqual(self.admin(ck, "GET", "/admin/whoami")[0], 200)
        self.assertEqual(self.admin(ck, "GET", "/admin/whoami", token=None)[0], 401)
        self.assertEqual(self.admin(ck, "POST", "/admin/whoami")[0], 405)
        self.assertEqual(self.admin(ck, "GET", "/admin/whoami", headers={"Origin": "http://evil.example"})[0],
                         403)
        self.assertEqual(self.admin(ck, "POST", "/admin/session")[0], 200)
        self.assertEqual(self.admin(ck, "POST", "/admin/session", token="wrong")[0], 401)
        self.assertEqual(self.admin(ck, "DELETE", "/admin/session")[0], 200)
        self.assertEqual(self.admin(ck, "PUT", "/admin/session")[0], 405)
        # the console's read views (docs/console.md)
        commune = PARTNERS["client-commune"]["client_id"]
        for path in ("/admin/overview", "/admin/partners", "/admin/partners/" + commune, "/admin/events",
                     "/admin/events?severity=high&limit=5", "/admin/maintenance"):
            self.assertEqual(self.admin(ck, "GET", path)[0], 200)
            self.assertEqual(self.admin(ck, "GET", path, token=None)[0], 401)
        for path in ("/admin/overview", "/admin/partners", "/admin/partners/" + commune, "/admin/events",
                     "/admin/maintenance"):
            self.assertEqual(self.admin(ck, "DELETE", path)[0], 405)
        self.assertEqual(self.admin(ck, "GET", "/admin/partners/nobody-sandbox")[0], 404)
        self.assertEqual(self.admin(ck, "GET", "/admin/events?limit=0")[0], 400)
        status, data = self.admin(ck, "GET", "/admin/events")
        last = json.loads(data)["events"][-1]["id"]
        ack = "/admin/events/%d/ack" % last
        self.assertEqual(self.admin(ck, "POST", ack)[0], 200)
        self.assertEqual(self.admin(ck, "POST", ack)[0], 409)
        self.assertEqual(self.admin(ck, "POST", ack, token=None)[0], 401)
        self.assertEqual(self.admin(ck, "GET", ack)[0], 405)
        self.assertEqual(self.admin(ck, "POST", "/admin/events/99999999/ack")[0], 404)
        hold = "/admin/journal/hold"
        self.assertEqual(self.admin(ck, "GET", hold)[0], 200)
        self.assertEqual(self.admin(ck, "POST", hold, body=b'{"reason":"openapi"}')[0], 201)
        self.assertEqual(self.admin(ck, "POST", hold, body=b'{"reason":"openapi, again"}')[0], 200)
        self.assertEqual(self.admin(ck, "POST", hold, body=b'{"why":"x"}')[0], 400)
        self.assertEqual(self.admin(ck, "POST", hold, token=None, body=b'{"reason":"x"}')[0], 401)
        self.assertEqual(self.admin(ck, "PUT", hold)[0], 405)
        self.assertEqual(self.admin(ck, "DELETE", hold)[0], 200)
        self.assertEqual(self.admin(ck, "DELETE", hold)[0], 404)
        self.assertEqual(self.admin(ck, "DELETE", hold + "?consumer=%01")[0], 400)
        # a broken policy file: the answer (whichever the reload rule gives) is documented
        broken = os.path.join(self.stack.policies_dir, "zz-broken.json")
        with open(broken, "w") as f:
            f.write("{not json")
        try:
            status, body = self.admin(ck, "POST", "/admin/reload")
            self.assertIn(status, (200, 422), body)
        finally:
            os.unlink(broken)
            self.assertEqual(self.admin(ck, "POST", "/admin/reload")[0], 200)
        # a reload that would empty the set: 409, documented (issue 13)
        pdir = self.stack.policies_dir
        aside = tempfile.mkdtemp(prefix="openapi-aside-")
        names = [n for n in os.listdir(pdir) if n.endswith(".json")]
        for n in names:
            os.rename(os.path.join(pdir, n), os.path.join(aside, n))
        try:
            status, body = self.admin(ck, "POST", "/admin/reload")
            self.assertEqual(status, 409, body)
        finally:
            for n in names:
                os.rename(os.path.join(aside, n), os.path.join(pdir, n))
            os.rmdir(aside)
        self.assertEqual(self.admin(ck, "POST", "/admin/reload")[0], 200)
        self.assertEqual(ck.unexercised(), [])


if __name__ == "__main__":
    unittest.main()

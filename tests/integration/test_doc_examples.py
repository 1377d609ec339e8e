"""Outputs shown in the docs are the program's real outputs.

A documentation block that shows what the gateway writes or answers is
preceded by a marker line

    <!-- checked: NAME (...) -->

and this module produces the same output live and compares it with the
block: the same members at every level, the same JSON types, and the same
values where a value is not an id, a time, a hash or a measure. A marker
whose NAME no test here knows fails (so a new example is never silently
unchecked), and so does a known NAME whose block is gone.

Checked: the journal records of docs/journal.md (an allowed call and a
quota refusal), the error body of docs/errors.md, the /token answer of
docs/oauth2.md. Also: every test, test class, test module and fuzz target
that docs/security.md names as covering an attack exists.
"""

import json
import os
import re
import unittest

import harness
from harness import GatewayTestCase, new_uuid

DOCS = os.path.join(harness.SRCDIR, "docs")
MARKER_RE = re.compile(r"^\s*<!-- checked: ([a-z0-9-]+)\b")

# Values that differ between runs (ids, times, hashes, measures, ports, the
# test PKI's fingerprint): only their type is compared.
VOLATILE = {"ts", "request_id", "correlation_id", "client_port", "cert_sha256", "seq", "prev", "hash",
            "ms", "bytes_in", "bytes_out", "addr", "token_jti", "horodatage", "access_token",
            "habilitation", "remaining", "limit", "subject", "listener"}


def checked_blocks():
    """{NAME: (file, parsed JSON)} for every marked block under docs/."""
    out = {}
    for fn in sorted(os.listdir(DOCS)):
        if not fn.endswith(".md"):
            continue
        with open(os.path.join(DOCS, fn), encoding="utf-8") as f:
            lines = f.read().split("\n")
        i = 0
        while i < len(lines):
            m = MARKER_RE.match(lines[i])
            i += 1
            if not m:
                continue
            name = m.group(1)
            if i >= len(lines) or not lines[i].strip().startswith("```"):
                raise AssertionError("%s: marker %s is not followed by a code block" % (fn, name))
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            text = "\n".join(lines[i + 1:j])
            # "eyJ…" stands for a token: keep it a string
            try:
                out[name] = (fn, json.loads(text))
            except ValueError as e:
                raise AssertionError("%s: block %s is not JSON: %s" % (fn, name, e))
            i = j + 1
    return out


class TestDocExamples(GatewayTestCase):
    @classmethod
    def setUpClass(cls):
        def low_quota(pols, stack):
            for p in pols.values():
                p["quota"]["per_minute"] = 1
        cls.stack_kwargs = {"policy_hook": low_quota}
        super().setUpClass()
        cls.blocks = checked_blocks()

    def compare(self, doc, live, where="$"):
        """<doc> and <live> have the same members, types, and values outside VOLATILE."""
        self.assertEqual(type(doc), type(live), "%s: type %s in the doc, %s live (%r)"
                         % (where, type(doc).__name__, type(live).__name__, live))
        if isinstance(doc, dict):
            self.assertEqual(list(doc.keys()), list(live.keys()),
                             "%s: members differ (doc vs live)\n doc:  %s\n live: %s"
                             % (where, list(doc.keys()), list(live.keys())))
            for k in doc:
                if k in VOLATILE:
                    self.assertEqual(type(doc[k]), type(live[k]), "%s.%s: type" % (where, k))
                else:
                    self.compare(doc[k], live[k], "%s.%s" % (where, k))
        elif isinstance(doc, list):
            self.assertEqual(len(doc), len(live), where)
            for n, (a, b) in enumerate(zip(doc, live)):
                self.compare(a, b, "%s[%d]" % (where, n))
        else:
            self.assertEqual(doc, live, "%s: value differs (doc vs live)" % where)

    def block(self, name):
        self.assertIn(name, self.blocks, "docs: no block marked `checked: %s`" % name)
        return self.blocks[name][1]

    def test_markers_all_known(self):
        known = {"journal-allow", "journal-quota", "error-body", "token-response"}
        unknown = set(self.blocks) - known
        self.assertFalse(unknown, "docs: marked blocks no test checks: %s" % sorted(unknown))

    def test_journal_records(self):
        s = self.stack
        # build_request sends ID_Teleservice and X-Correlation-ID once each (a
        # second one is refused: docs/configuration.md, "Headers toward the upstream")
        target = "/opale/v1/entreprises/732829320/declarations?annee=2023"
        ok = s.request(target, teleservice=harness.TELESERVICE, correlation_id=new_uuid())
        self.assertEqual(ok.status, 200, ok)
        denied = s.request(target, teleservice=harness.TELESERVICE, correlation_id=new_uuid())
        self.assertErrorBody(denied, 429, "900804")
        for name, resp in (("journal-allow", ok), ("journal-quota", denied)):
            rec = s.journal_by_request_id(resp.header("X-Request-ID"))
            self.assertIsNotNone(rec, "no journal record for %s" % name)
            with self.subTest(example=name):
                doc = dict(self.block(name))
                # the doc shows the shipped sandbox's partner; the test PKI's differs
                for k in ("consumer", "client_id", "teleservice"):
                    doc[k] = rec.get(k)
                doc["tls"] = dict(doc["tls"])
                self.compare(doc, rec)

    def test_error_body(self):
        r = self.stack.request("/opale/v1/nowhere", correlation_id=new_uuid())
        self.assertErrorBody(r, 404, "910404")
        self.compare(self.block("error-body"), r.json())

    def test_token_response(self):
        r = self.stack.token_request(form={"grant_type": "client_credentials",
                                           "scope": "api_opale_declarations"})
        self.assertEqual(r.status, 200, r)
        doc = dict(self.block("token-response"))
        live = r.json()
        # the doc's lifetime is the default (3600 s), as the test stack's
        self.compare(doc, live)


class TestSecurityDocNamesRealTests(unittest.TestCase):
    """docs/security.md's attack table names the tests that cover each
    attack; a renamed or deleted test must not leave the table pointing at
    nothing."""

    def test_every_named_test_exists(self):
        with open(os.path.join(DOCS, "security.md"), encoding="utf-8") as f:
            doc = f.read()
        tests_dir = os.path.join(harness.SRCDIR, "tests")
        corpus = []
        for root, _dirs, files in os.walk(tests_dir):
            for fn in files:
                if fn.endswith((".py", ".c")):
                    with open(os.path.join(root, fn), encoding="utf-8", errors="replace") as f:
                        corpus.append((fn, f.read()))
        names = set(re.findall(r"`((?:test_|Test|fuzz_)[A-Za-z0-9_]+(?:\.py)?)`", doc))
        names |= set(re.findall(r"`([a-z][a-z0-9_]+)`", doc)) & {"ecdsa_low_s_only", "independent_evp"}
        self.assertGreater(len(names), 20, "docs/security.md names too few tests: %s" % sorted(names))
        files = {fn for fn, _t in corpus}

        def defined(n):
            return any(re.search(r"(def %s\(|START_TEST\(%s\))" % (re.escape(n), re.escape(n)), text)
                       for _fn, text in corpus)

        missing = []
        for n in sorted(names):
            if n.endswith(".py"):
                ok = n in files
            elif n.startswith("Test"):
                ok = any(re.search(r"^class %s\b" % re.escape(n), text, re.M) for _fn, text in corpus)
            elif n.startswith("fuzz_"):
                ok = n + ".c" in files
            elif n.startswith("test_"):
                ok = defined(n) or n + ".py" in files  # a test, or a module named without .py
            else:
                ok = defined(n)
            if not ok:
                missing.append(n)
        self.assertFalse(missing, "docs/security.md names tests that do not exist: %s" % missing)


if __name__ == "__main__":
    unittest.main()

"""The offline evidence commands (issue 18 §1-3) on a journal produced by a
real run: `--recette`, `--availability`, `--extract` / `--verify-extract`,
`--verify-report` (docs/recette.md, docs/availability.md, docs/journal.md
"Verified extracts").

One run (setUpClass) drives two sandbox partners through every refusal case
of docs/recette.md: the commune handles each one (waits, renews its token,
fixes its request), the departement does not (retries at once, one /token
call per request, a reused correlation id, a call without ID_Teleservice);
both handle the year out of their rights the same way. The run has an
upstream outage (the mock stopped for a measured period) and a maintenance
slot (the gateway restarted with a dated slot around now). The gateway is
stopped at the end, so the journal ends with a signed checkpoint.
"""

import calendar
import datetime
import json
import os
import re
import subprocess
import time
import unittest

import harness
from harness import GW_BIN, PARTNERS, Stack, jwt_decode, new_uuid
from test_oauth import sign_jws

GOOD = "client-commune"
BAD = "client-departement"
GOOD_ID = PARTNERS[GOOD]["client_id"]
BAD_ID = PARTNERS[BAD]["client_id"]
SIREN = "732829320"
BAD_SIREN = "123456789"
QUOTA = 12  # per minute, both partners
WAIT = 1.3  # s: the commune's pause after a refusal (the default min_wait_ms is 1000)


def iso_ms(ts):
    """journal "ts" -> ms since the epoch"""
    d = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    return calendar.timegm(d.timetuple()) * 1000 + d.microsecond // 1000


def run(args, timeout=60, stdin=None):
    return subprocess.run([GW_BIN] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


class EvidenceRun(unittest.TestCase):
    """Every command on the journal of one real run."""

    @classmethod
    def setUpClass(cls):
        harness.require_binaries()

        def policies(pols, st):
            for p in pols.values():
                p["quota"] = {"per_minute": QUOTA}

        cls.st = st = Stack("evidence", policy_hook=policies)
        cls.addClassCleanup(st.stop)
        st.start()
        cls.t_start = time.time()
        cls.drive(st)
        st.stop_gateway()
        cls.records = list(st.journal_lines())
        cls.dir = st.dir

    # -- the run

    @classmethod
    def call(cls, cert, target, token=True, wait=0.0, **kw):
        if cert == BAD:
            kw.setdefault("teleservice", PARTNERS[BAD]["teleservice"])
            if token is True:  # one /token call per request
                token = cls.st.token(BAD, fresh=True)
        r = cls.st.request(target, cert_name=cert, token=token, **kw)
        if wait:
            time.sleep(wait)
        return r

    @classmethod
    def expired_token(cls, cert):
        hdr, claims = jwt_decode(cls.st.token(cert))
        now = int(time.time())
        c = dict(claims, jti=new_uuid(), iat=now - 7200, nbf=now - 7200, exp=now - 3600)
        return sign_jws(os.path.join(cls.st.pki, "token-es256.key"), hdr, c)

    @classmethod
    def drive(cls, st):
        decl = "/opale/v1/entreprises/%s/declarations?annee=2023" % SIREN
        bad_siren = "/opale/v1/entreprises/%s/declarations?annee=2023" % BAD_SIREN
        old_year = "/opale/v1/entreprises/%s/declarations?annee=1980" % SIREN
        # -- phase A: normal service
        for cert in (GOOD, BAD):
            assert cls.call(cert, decl).status == 200
            assert cls.call(cert, "/opale/v1/entreprises/%s/comptes-bancaires" % SIREN).status == 200
        # the commune: each refusal once, then a pause and a corrected call
        assert cls.call(GOOD, bad_siren, wait=WAIT).status == 400
        assert cls.call(GOOD, old_year, wait=WAIT).status == 403
        assert cls.call(GOOD, decl, correlation_id=None, wait=WAIT).status == 400
        assert cls.call(GOOD, decl, token=cls.expired_token(GOOD), wait=WAIT).status == 401
        st.token(GOOD, fresh=True)  # a new token from /token
        assert cls.call(GOOD, decl).status == 200
        # the departement: retries at once, the same mistakes again
        for _ in range(3):
            assert cls.call(BAD, bad_siren).status == 400
        assert cls.call(BAD, old_year, wait=WAIT).status == 403
        for _ in range(2):
            assert cls.call(BAD, decl, correlation_id=None).status == 400
        expired = cls.expired_token(BAD)
        for _ in range(3):
            assert cls.call(BAD, decl, token=expired).status == 401
        same = new_uuid()
        for _ in range(2):
            assert cls.call(BAD, decl, correlation_id=same).status == 200
        assert cls.call(BAD, decl, teleservice=None).status == 403
        # -- phase B: the backend is down for a measured period
        cls.mock_stopped = time.time()
        harness.stop_process(st.mock_proc)
        assert cls.call(GOOD, decl, wait=WAIT).status == 502
        assert cls.call(GOOD, decl).status == 502
        for _ in range(3):
            assert cls.call(BAD, decl).status == 502
        time.sleep(1.0)
        st.start_mock(port=st.mock_port)
        cls.mock_restarted = time.time()
        deadline = time.monotonic() + 10
        while cls.call(GOOD, decl).status != 200:
            assert time.monotonic() < deadline, "the backend did not come back"
            time.sleep(0.2)
        cls.recovered = time.time()
        # -- phase C: a maintenance slot around now (UTC calendar, forced)
        now = datetime.datetime.utcnow().replace(second=0, microsecond=0)
        cls.slot = (now, now + datetime.timedelta(minutes=3))
        maint = {"timezone": "UTC", "force": True,
                 "slots": [{"from": cls.slot[0].strftime("%Y-%m-%dT%H:%M"),
                            "until": cls.slot[1].strftime("%Y-%m-%dT%H:%M")}]}
        cls.plain_conf = json.loads(json.dumps(st.conf))
        conf = json.loads(json.dumps(st.conf))
        conf["access"] = {"maintenance": maint}
        cls.maint_conf = conf
        st.restart_gateway(conf)
        assert cls.call(GOOD, decl, wait=WAIT).status == 503
        for _ in range(3):
            assert cls.call(BAD, decl).status == 503
        st.restart_gateway(cls.plain_conf)
        # -- phase D: quota; the departement asks /token before every call
        for cert in (GOOD, BAD):
            for _ in range(QUOTA + 5):
                if cls.call(cert, decl).status == 429:
                    break
            else:
                raise AssertionError("no 429 for %s" % cert)
        time.sleep(WAIT)
        cls.call(GOOD, decl)  # after the pause: 429 again or 200, not "at once"
        for _ in range(3):
            assert cls.call(BAD, decl).status == 429
        with open(os.path.join(st.dir, "maint.json"), "w") as f:
            json.dump(cls.maint_conf, f)
        cls.maint_conf_path = os.path.join(st.dir, "maint.json")

    # -- helpers

    def recette(self, consumer, fmt="json", conf=None, journal=None, extra=()):
        r = run(["--recette", consumer, "-c", conf or self.st.conf_path, "--format", fmt, *extra,
                 journal or self.st.journal_path])
        return r

    def report(self, consumer):
        r = self.recette(consumer)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        lines = r.stdout.decode().splitlines()
        self.assertEqual(len(lines), 2, "report line + signature line")
        self.assertRegex(lines[1], r'^\{"signature":"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"\}$')
        return json.loads(lines[0])

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    # -- recette

    def test_recette_verdicts_differ_exactly_where_they_should(self):
        good, bad = self.report(GOOD_ID), self.report(BAD_ID)
        gv = {c["id"]: c["verdict"] for c in good["criteria"]}
        bv = {c["id"]: c["verdict"] for c in bad["criteria"]}
        self.assertEqual(set(gv.values()), {"pass"}, good["criteria"])
        self.assertEqual(good["verdict"], "pass")
        self.assertEqual(bad["verdict"], "fail")
        differ = {k for k in gv if gv[k] != bv[k]}
        self.assertEqual(differ, {"case.quota", "case.invalid_siren", "case.missing_correlation_id",
                                  "case.expired_token", "case.maintenance", "case.backend_error",
                                  "token_hygiene", "correlation_ids_unique", "teleservice_always_sent"},
                         bad["criteria"])
        self.assertEqual(bv["case.year_out_of_rights"], "pass")
        self.assertEqual(bv["allowed_calls"], "pass")
        cases = {c["case"]: c for c in bad["cases"]}
        self.assertEqual(cases["invalid_siren"]["met"], 3)
        self.assertEqual(cases["invalid_siren"]["retried_at_once"], 2)
        self.assertEqual(cases["expired_token"]["retried_at_once"], 2)
        self.assertEqual(cases["maintenance"]["met"], 3)
        self.assertEqual(bad["hygiene"]["duplicate_correlation_ids"], 1)
        self.assertEqual(bad["hygiene"]["calls_without_teleservice"], 1)
        self.assertLess(bad["hygiene"]["calls_per_token"], 2.0)
        self.assertGreaterEqual(good["hygiene"]["calls_per_token"], 2.0)

    def test_recette_counts_match_the_journal(self):
        good = self.report(GOOD_ID)
        mine = [r for r in self.records if "type" not in r and r.get("consumer") == GOOD_ID]
        self.assertEqual(good["records"], len(mine))
        decl = next(x for x in good["routes"] if x["route"] == "declarations")
        self.assertEqual(decl["calls"], sum(1 for r in mine if r.get("route") == "declarations"))
        self.assertEqual(decl["outcomes"]["429 quota.exceeded"],
                         sum(1 for r in mine if r.get("reason") == "quota.exceeded"))
        # the journal it relied on: files, head, the last signed checkpoint
        j = good["journal"]
        last = self.records[-1]
        self.assertEqual(j["head_seq"], last["seq"])
        self.assertEqual(j["head_hash"], last["hash"])
        self.assertEqual(last["type"], "checkpoint")
        self.assertEqual(j["checkpoint"]["seq"], last["seq"])
        self.assertEqual(j["checkpoint"]["kid"], harness.TOKEN_KID)
        self.assertEqual(j["after_checkpoint"], 0)
        self.assertEqual([f["name"] for f in j["files"]], [self.st.journal_path])

    def test_recette_markdown_and_html(self):
        r = self.recette(BAD_ID, "md")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        text = r.stdout.decode()
        self.assertIn("**Overall verdict: FAIL**", text)
        self.assertRegex(text, r"\| Expired access token \(401 900901\) \| fail \| met 3 times; 2 retried at once")
        self.assertTrue(text.splitlines()[-1].startswith("<!-- opale-gateway signature: "))
        # HTML: one self-contained page, every value escaped
        r = self.recette("<b>&x'\"", "html")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        html = r.stdout.decode()
        self.assertIn("&lt;b&gt;&amp;x&#39;&quot;", html)
        self.assertNotIn("<b>&x", html)
        for bad in ("<script", "src=", "href=", "<link", "url(", "@import"):
            self.assertNotIn(bad, html)
        r = self.recette(GOOD_ID, "html")
        html = r.stdout.decode()
        self.assertEqual(html.count("<svg"), 1)
        bars = re.findall(r'<rect x="\d+" y="[\d.]+" width="\d+" height="[\d.]+" fill="[^"]+"><title>(\w+): (\d+)</title>', html)
        self.assertEqual(sum(int(n) for _, n in bars),
                         sum(1 for r in self.records if "type" not in r and r.get("consumer") == GOOD_ID))
        self.assertIn("quota", {k for k, _ in bars})

    def test_report_signature_verifies_and_fails_when_altered(self):
        for fmt in ("md", "json", "html"):
            with self.subTest(fmt=fmt):
                r = self.recette(GOOD_ID, fmt)
                self.assertEqual(r.returncode, 0, r.stderr.decode())
                doc = r.stdout
                path = self.write("report." + fmt, doc)
                v = run(["--verify-report", "-c", self.st.conf_path, path])
                self.assertEqual(v.returncode, 0, v.stdout.decode() + v.stderr.decode())
                self.assertRegex(v.stdout.decode(), r"^OK: .*: evidence\.recette signed by kid it-es256 at ")
                sig_at = doc.rindex(b"\n", 0, len(doc) - 1) + 1
                for pos in (0, len(doc) // 3, sig_at - 2, sig_at + 40, len(doc) - 10):
                    bad = bytearray(doc)
                    bad[pos] = ord("0") if bad[pos] != ord("0") else ord("1")
                    v = run(["--verify-report", "-c", self.st.conf_path, self.write("bad." + fmt, bytes(bad))])
                    self.assertEqual(v.returncode, 1, "byte %d: %s" % (pos, v.stdout.decode()))
                    self.assertTrue(v.stdout.decode().startswith("FAIL: "))

    def test_verify_report_unreadable_file(self):
        # the document is read whole (lib/file.c); the errno is worded here
        missing = os.path.join(os.path.dirname(self.write("x.md", b"x")), "missing.md")
        for path, why in ((missing, "No such file or directory"),
                          (os.path.dirname(missing), "Is a directory")):
            v = run(["--verify-report", "-c", self.st.conf_path, path])
            self.assertEqual(v.returncode, 2)
            self.assertEqual(v.stderr.decode(), "%s: cannot read: %s\n" % (path, why))

    def test_recette_refuses_a_tampered_journal(self):
        with open(self.st.journal_path, "rb") as f:
            data = f.read()
        tampered = data.replace(b'"status":200', b'"status":201', 1)
        self.assertNotEqual(tampered, data)
        path = self.write("tampered.jsonl", tampered)
        r = self.recette(GOOD_ID, journal=path)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, b"")
        self.assertIn(b"modified", r.stderr)
        self.assertIn(b"nothing is computed from it", r.stderr)

    def test_recette_criteria_file(self):
        crit = self.write("crit.json", json.dumps({"cases": {"maintenance": {"min_wait_ms": 0}}}).encode())
        bad = json.loads(self.recette(BAD_ID, extra=("--criteria", crit)).stdout.decode().splitlines()[0])
        self.assertEqual({c["id"]: c["verdict"] for c in bad["criteria"]}["case.maintenance"], "pass")
        crit = self.write("crit-bad.json", json.dumps({"cases": {"quota": {"min_wait": 3}}}).encode())
        r = self.recette(BAD_ID, extra=("--criteria", crit))
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.decode().strip(), "%s: cases.quota.min_wait: unknown key" % crit)

    # -- availability

    def outage(self):
        """the outage by the definition: from the start of the first failing
        forwarded request to the next request the backend answered"""
        acc = [x for x in self.records if "type" not in x]
        i = next(k for k, x in enumerate(acc) if x.get("reason") == "upstream.unavailable")
        out0 = iso_ms(acc[i]["ts"]) - acc[i].get("ms", 0)
        rec = next(x for x in acc[i:] if (x.get("upstream") or {}).get("status"))
        return out0, iso_ms(rec["ts"])

    def test_availability_with_an_outage_and_a_maintenance_slot(self):
        p0, p1 = iso_ms(self.records[0]["ts"]), iso_ms(self.records[-1]["ts"])
        out0, out1 = self.outage()
        # measured from outside: the mock was down from mock_stopped to mock_restarted
        self.assertGreaterEqual(out1 - out0, (self.mock_restarted - self.mock_stopped) * 1000 - 1500)
        self.assertLessEqual(out1 - out0, (self.recovered - self.mock_stopped) * 1000 + 1000)
        # a calendar with a 2-minute slot after the run, and a period that
        # ends one minute after the slot
        m0 = (p1 // 60000 + 1) * 60000
        m1 = m0 + 120000
        start = datetime.datetime.utcfromtimestamp(m0 / 1000)
        conf = json.loads(json.dumps(self.plain_conf))
        conf["access"] = {"maintenance": {"timezone": "UTC", "force": True, "slots": [
            {"from": start.strftime("%Y-%m-%dT%H:%M"),
             "until": (start + datetime.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M")}]}}
        cal = self.write("calendar.json", json.dumps(conf).encode())
        to = datetime.datetime.utcfromtimestamp((m1 + 60000) / 1000).strftime("%Y-%m-%dT%H:%M:%SZ")
        frm = self.records[0]["ts"]
        r = run(["--availability", "-c", cal, "--from", frm, "--to", to, "--format", "json",
                 self.st.journal_path])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        rep = json.loads(r.stdout.decode().splitlines()[0])
        per = rep["period"]
        total = m1 + 60000 - p0
        unavail = (out1 - out0) + 120000
        self.assertEqual(per["unavailable_ms"], unavail)
        self.assertEqual(per["seconds"], total // 1000)
        self.assertEqual(per["unobserved_ms"], m1 + 60000 - p1)
        self.assertAlmostEqual(per["availability_pct"], 100.0 * (total - unavail) / total, places=9)
        self.assertEqual(per["verdict"], "meets" if per["availability_pct"] >= 97.16 else "below")
        causes = {x["cause"]: x for x in rep["intervals"]}
        self.assertEqual(causes["upstream"]["ms"], out1 - out0)
        self.assertEqual(causes["maintenance"]["ms"], 120000)
        self.assertEqual(set(causes), {"upstream", "maintenance", "unobserved (not counted)"})
        self.assertEqual(sum(d["unavailable_ms"] for d in rep["days"]), unavail)
        self.assertEqual(rep["journal"]["head_hash"], self.records[-1]["hash"])
        # without the slot in the calendar, only the outage counts; the
        # default period is the journal's span
        r = run(["--availability", "-c", self.st.conf_path, "--format", "json", self.st.journal_path])
        per = json.loads(r.stdout.decode().splitlines()[0])["period"]
        self.assertEqual(per["unavailable_ms"], out1 - out0)
        self.assertEqual(per["unobserved_ms"], 0)
        self.assertEqual(per["seconds"], (p1 - p0) // 1000)

    def test_availability_period_and_markdown(self):
        p0 = iso_ms(self.records[0]["ts"])
        frm = datetime.datetime.utcfromtimestamp(p0 // 1000 - 3600).strftime("%Y-%m-%dT%H:%M:%SZ")
        r = run(["--availability", "-c", self.st.conf_path, "--from", frm, self.st.journal_path])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        text = r.stdout.decode()
        self.assertIn("# Availability (CGU §11)", text)
        self.assertIn("| unobserved (not counted) | %s" % frm.replace("Z", ".000Z"), text)
        self.assertIn("not counted as unavailable", text)
        self.assertRegex(text, r"\| \*\*Period\*\* \| \d+\.\d{4} % \|")
        v = run(["--verify-report", "-c", self.st.conf_path, self.write("avail.md", r.stdout)])
        self.assertEqual(v.returncode, 0, v.stdout.decode())

    # -- extracts

    def extract(self, *args):
        r = run(["--extract", "-c", self.st.conf_path, *args, self.st.journal_path])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return r.stdout

    def verify_extract(self, data, name="extract.jsonl"):
        return run(["--verify-extract", "-c", self.st.conf_path, self.write(name, data)])

    def test_extract_verifies_alone_and_fails_after_any_byte_changed(self):
        doc = self.extract("--consumer", BAD_ID)
        lines = doc.decode().splitlines()
        hdr = json.loads(lines[0])
        want = [x["seq"] for x in self.records if "type" not in x
                and (x.get("consumer") == BAD_ID or x.get("client_id") == BAD_ID)]
        self.assertEqual(hdr["matches"], want)
        # the records are the journal's lines, byte for byte
        with open(self.st.journal_path) as f:
            jl = set(f.read().splitlines())
        for l in lines[1:-1]:
            self.assertIn(l, jl)
        self.assertTrue(json.loads(lines[-2])["type"] == "checkpoint")
        v = self.verify_extract(doc)
        self.assertEqual(v.returncode, 0, v.stdout.decode())
        self.assertRegex(v.stdout.decode(), r"^OK: .*: %d matching records" % len(want))
        # in another directory, without the journal
        os.makedirs(os.path.join(self.dir, "alone"), exist_ok=True)
        v = self.verify_extract(doc, "alone/x.jsonl")
        self.assertEqual(v.returncode, 0)
        n = len(doc)
        positions = sorted({0, 5, len(lines[0]) // 2, len(lines[0]) + 10, n // 2, n - len(lines[-1]) - 30,
                            n - len(lines[-1]) - 2, n - 40, n - 3, n - 1})
        for pos in positions:
            bad = bytearray(doc)
            bad[pos] = ord("A") if bad[pos] != ord("A") else ord("B")
            v = self.verify_extract(bytes(bad), "bad.jsonl")
            self.assertEqual(v.returncode, 1, "byte %d still verifies: %s" % (pos, v.stdout.decode()))
        # a record removed, and the whole extract re-signed by another key: fails too
        cut = "\n".join(lines[:2] + lines[3:]).encode() + b"\n"
        self.assertEqual(self.verify_extract(cut).returncode, 1)

    def test_extract_by_siren_and_period(self):
        doc = self.extract("--siren", BAD_SIREN)
        hdr = json.loads(doc.decode().splitlines()[0])
        self.assertEqual(hdr["matches"], [x["seq"] for x in self.records if x.get("siren") == BAD_SIREN])
        self.assertEqual(len(hdr["matches"]), 4)
        self.assertEqual(self.verify_extract(doc).returncode, 0)
        t = self.records[len(self.records) // 2]["ts"]
        doc = self.extract("--consumer", GOOD_ID, "--from", t[:19] + "Z")
        hdr = json.loads(doc.decode().splitlines()[0])
        self.assertTrue(hdr["matches"])
        for s in hdr["matches"]:
            rec = next(x for x in self.records if x["seq"] == s)
            self.assertGreaterEqual(iso_ms(rec["ts"]), iso_ms(t[:19] + ".000Z"))
        self.assertEqual(self.verify_extract(doc).returncode, 0)


if __name__ == "__main__":
    unittest.main()

"""The command line and signals: -t with good and bad configs (located
errors), a bad config at start-up, SIGTERM drain, SIGUSR1 journal reopen."""

import json
import os
import re
import signal
import subprocess
import threading
import time
import unittest

import harness
from harness import GW_BIN, Stack, require_binaries

SIREN = "732829320"


def run_gw(*args, timeout=15):
    r = subprocess.run([GW_BIN, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


class TestConfigCheck(unittest.TestCase):
    """-t never starts a stack; it only needs a config directory and the PKI."""

    @classmethod
    def setUpClass(cls):
        require_binaries(mock=False)
        cls.stack = Stack(cls.__name__, mock=False)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.port = harness.free_port()
        cls.stack.admin_port = harness.free_port()
        cls.good = cls.stack.build_conf()
        cls.stack.write_policies(cls.stack.build_policies())

    def write(self, name, conf_or_text):
        path = os.path.join(self.stack.dir, name)
        with open(path, "w") as f:
            if isinstance(conf_or_text, str):
                f.write(conf_or_text)
            else:
                json.dump(conf_or_text, f, indent=2)
        return path

    def bad(self, mutate, name):
        conf = json.loads(json.dumps(self.good))
        mutate(conf)
        return self.write(name, conf)

    def assertLocated(self, stderr, path, json_path, message=None):
        pat = r"^%s: %s: %s" % (re.escape(path), re.escape(json_path), re.escape(message) if message else r"\S")
        self.assertRegex(stderr, re.compile(pat, re.M), "expected '%s: %s: ...' on stderr" % (path, json_path))

    def test_good_config_exits_0(self):
        path = self.write("good.json", self.good)
        rc, out, err = run_gw("-t", "-c", path)
        self.assertEqual(rc, 0, err)

    def test_unknown_key_located(self):
        path = self.bad(lambda c: c["listeners"][0]["tls"].__setitem__("foo", 1), "bad-unknown.json")
        rc, out, err = run_gw("-t", "-c", path)
        self.assertEqual(rc, 1, err)
        self.assertLocated(err, path, "listeners[0].tls.foo", "unknown key")

    def test_several_errors_all_reported(self):
        def mutate(c):
            c["listeners"][0]["tls"]["foo"] = 1
            c["workers"] = "two"
            c["routes"][1]["upstream"] = "nope"
            c["limits"]["max_body_bytes"] = -5
        path = self.bad(mutate, "bad-several.json")
        rc, out, err = run_gw("-t", "-c", path)
        self.assertEqual(rc, 1, err)
        self.assertLocated(err, path, "listeners[0].tls.foo", "unknown key")
        self.assertLocated(err, path, "workers")
        self.assertLocated(err, path, "routes[1].upstream")
        self.assertLocated(err, path, "limits.max_body_bytes")
        lines = [ln for ln in err.splitlines() if ln.startswith(path + ": ")]
        self.assertGreaterEqual(len(lines), 4, err)

    def test_every_section_in_one_pass(self):
        """Errors in the config's own keys, the oauth, quota and access
        sections are all reported by one run, each naming the file as given
        on the command line (here relative to the working directory), in
        that order; the same at start."""
        def mutate(c):
            c["workers"] = "two"
            c["oauth"]["foo"] = 1
            c["quota"] = {"store": "memcached"}
            c["access"] = {"maintenance": {"timezone": "Europe/Paris", "slots": [
                {"daily": "23:00-01:00"}, {"daily": "01:00-03:00"}, {"daily": "03:00-05:00"}]}}
        self.bad(mutate, "bad-four.json")
        want = [
            "bad-four.json: workers: must be an integer",
            "bad-four.json: access.maintenance.slots[1].daily: the daily slots take 360 minutes "
            "a night; the CGU allow at most 2 hours a night (23:00-06:00), unless "
            "maintenance.force is true",
            "bad-four.json: oauth.foo: unknown key",
            "bad-four.json: quota.store: must be \"memory\" or \"redis\"",
        ]
        for args in (("-t", "-c", "bad-four.json"), ("-c", "bad-four.json")):
            r = subprocess.run([GW_BIN, *args], cwd=self.stack.dir, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
            err = r.stderr.decode(errors="replace")
            self.assertEqual(r.returncode, 1, err)
            self.assertEqual(err.splitlines(), want)

    def test_unknown_top_level_key(self):
        path = self.bad(lambda c: c.__setitem__("listners", []), "bad-top.json")
        rc, out, err = run_gw("-t", "-c", path)
        self.assertEqual(rc, 1, err)
        self.assertLocated(err, path, "listners", "unknown key")

    def test_json_syntax_error(self):
        path = self.write("bad-syntax.json", '{"workers": 2,,}')
        rc, out, err = run_gw("-t", "-c", path)
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, re.compile(r"^%s: " % re.escape(path), re.M))

    def test_missing_file(self):
        path = os.path.join(self.stack.dir, "does-not-exist.json")
        rc, out, err = run_gw("-t", "-c", path)
        self.assertEqual(rc, 1, err)
        self.assertIn(path, err)

    def test_missing_certificate_file(self):
        path = self.bad(lambda c: c["listeners"][0]["tls"]["certificates"][0].__setitem__("cert", "pki/nope.crt"),
                        "bad-cert.json")
        rc, out, err = run_gw("-t", "-c", path)
        self.assertEqual(rc, 1, err)
        self.assertIn(path, err)

    def test_key_not_matching_certificate(self):
        path = self.bad(lambda c: c["listeners"][0]["tls"]["certificates"][0].__setitem__(
            "key", "pki/client-commune.key"), "bad-keypair.json")
        rc, out, err = run_gw("-t", "-c", path)
        self.assertEqual(rc, 1, err)

    def _with_policies(self, name, mutate):
        """A config whose policies_dir is a fresh copy of the good policies,
        edited by <mutate>(policies dict)."""
        d = os.path.join(self.stack.dir, "policies-" + name)
        os.makedirs(d)
        pols = self.stack.build_policies()
        mutate(pols)
        for fname, pol in pols.items():
            with open(os.path.join(d, fname), "w") as f:
                f.write(pol if isinstance(pol, str) else json.dumps(pol, indent=2))
        conf = json.loads(json.dumps(self.good))
        conf["policies_dir"] = "policies-" + name
        return self.write("conf-%s.json" % name, conf), d

    def test_bad_policy_located(self):
        def mutate(p):
            p["commune-exemple.json"]["rights"]["colour"] = "blue"
            p["departement-test.json"]["quota"]["per_minute"] = -1
        conf, d = self._with_policies("bad", mutate)
        rc, out, err = run_gw("-t", "-c", conf)
        self.assertEqual(rc, 1, err)
        self.assertLocated(err, os.path.join(d, "commune-exemple.json"), "rights.colour", "unknown key")
        self.assertLocated(err, os.path.join(d, "departement-test.json"), "quota.per_minute")

    def test_policy_json_syntax_error(self):
        conf, d = self._with_policies("syntax", lambda p: p.__setitem__("broken.json", '{"habilitation": '))
        rc, out, err = run_gw("-t", "-c", conf)
        self.assertEqual(rc, 1, err)
        self.assertIn(os.path.join(d, "broken.json"), err)

    def test_same_certificate_in_two_policies_refused(self):
        def mutate(p):
            p["departement-test.json"]["consumer"]["certificates"] = \
                p["commune-exemple.json"]["consumer"]["certificates"]
        conf, d = self._with_policies("dupcert", mutate)
        rc, out, err = run_gw("-t", "-c", conf)
        self.assertEqual(rc, 1, err)

    def test_good_policies_pass(self):
        conf, d = self._with_policies("good", lambda p: None)
        rc, out, err = run_gw("-t", "-c", conf)
        self.assertEqual(rc, 0, err)

    # -- listeners[i].access: "off" only on a sandbox listener without client certificates

    def _bench_listener(self, c, environment="sandbox", client_auth="none", access="off"):
        """Append a second listener (so that the index in the messages is
        checked) and return its index."""
        lis = json.loads(json.dumps(c["listeners"][0]))
        lis.update(name="bench", port=harness.free_port(), environment=environment)
        lis["tls"]["client_auth"] = client_auth
        if access is not None:
            lis["access"] = access
        c["listeners"].append(lis)
        return len(c["listeners"]) - 1

    def test_access_off_accepted_on_sandbox_without_client_auth(self):
        path = self.bad(lambda c: self._bench_listener(c), "access-off-good.json")
        rc, out, err = run_gw("-t", "-c", path)
        self.assertEqual(rc, 0, err)
        path = self.bad(lambda c: self._bench_listener(c, client_auth="required", access="enforce"),
                        "access-enforce-good.json")
        rc, out, err = run_gw("-t", "-c", path)
        self.assertEqual(rc, 0, err)

    def test_access_off_refused_on_production(self):
        path = self.bad(lambda c: self._bench_listener(c, environment="production"), "access-off-prod.json")
        rc, out, err = run_gw("-t", "-c", path)
        self.assertEqual(rc, 1, err)
        self.assertLocated(err, path, "listeners[1].access", '"off" is only allowed on a sandbox listener')

    def test_access_off_refused_with_client_auth_required(self):
        path = self.bad(lambda c: c["listeners"][0].__setitem__("access", "off"), "access-off-required.json")
        rc, out, err = run_gw("-t", "-c", path)
        self.assertEqual(rc, 1, err)
        self.assertLocated(err, path, "listeners[0].access", '"off" requires tls.client_auth "none" (bench only)')
        # client_auth absent means "required"
        path = self.bad(lambda c: (c["listeners"][0]["tls"].pop("client_auth"),
                                   c["listeners"][0].__setitem__("access", "off")), "access-off-default.json")
        rc, out, err = run_gw("-t", "-c", path)
        self.assertEqual(rc, 1, err)
        self.assertLocated(err, path, "listeners[0].access", '"off" requires tls.client_auth "none" (bench only)')

    def test_access_bad_value_refused(self):
        for i, value in enumerate(("on", "OFF", "")):
            path = self.bad(lambda c: self._bench_listener(c, access=value), "access-bad-%d.json" % i)
            rc, out, err = run_gw("-t", "-c", path)
            self.assertEqual(rc, 1, err)
            self.assertLocated(err, path, "listeners[1].access", 'must be "enforce" or "off"')
        path = self.bad(lambda c: self._bench_listener(c, access=False), "access-bad-type.json")
        rc, out, err = run_gw("-t", "-c", path)
        self.assertEqual(rc, 1, err)
        self.assertLocated(err, path, "listeners[1].access", "must be a string")

    def test_access_off_refused_at_start(self):
        path = self.bad(lambda c: self._bench_listener(c, environment="production"), "access-off-start.json")
        rc, out, err = run_gw("-c", path)
        self.assertEqual(rc, 1, err)
        self.assertLocated(err, path, "listeners[1].access", '"off" is only allowed on a sandbox listener')
        self.assertNotIn("ready", err)

    def test_start_with_bad_config_exits_1(self):
        path = self.bad(lambda c: c["listeners"][0]["tls"].__setitem__("foo", 1), "bad-start.json")
        rc, out, err = run_gw("-c", path)
        self.assertEqual(rc, 1, err)
        self.assertLocated(err, path, "listeners[0].tls.foo", "unknown key")


class TestSignals(unittest.TestCase):
    """A fresh stack per test: these tests stop or poke the gateway."""

    def setUp(self):
        require_binaries()
        self.stack = Stack("signals")
        self.addCleanup(self.stack.stop)
        self.stack.start()

    def test_sigterm_drains_in_flight_request(self):
        st = self.stack
        st.mock_config(latency_ms=1000)
        result = {}

        def client():
            try:
                result["resp"] = st.request("/opale/v1/entreprises/%s/declarations?annee=2023" % SIREN,
                                            timeout=8.0)
            except Exception as e:  # reported by the main thread
                result["error"] = e

        t = threading.Thread(target=client, daemon=True)
        t.start()
        # Wait until the request is at the mock, i.e. in flight in the gateway.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and st.mock_stats()["requests"] < 1:
            time.sleep(0.02)
        self.assertGreaterEqual(st.mock_stats()["requests"], 1, "the request never reached the mock")
        st.gw.send_signal(signal.SIGTERM)
        t0 = time.monotonic()

        # While draining, a new connection is not served (once the gateway
        # has taken the signal: polled, a stop of the machine may delay it).
        harness.wait_for(lambda: "draining" in st.gateway_stderr(), 5.0)
        time.sleep(0.1)
        if st.gw.poll() is None:
            kind, detail = st.refused_or_response("client-commune")
            if kind == "response":
                self.assertEqual(detail.status, 503, "a new connection was served while draining: %r" % detail)

        t.join(timeout=10)
        self.assertFalse(t.is_alive(), "client still waiting 10 s after SIGTERM")
        self.assertNotIn("error", result, "in-flight request failed: %r" % result.get("error"))
        resp = result["resp"]
        self.assertEqual(resp.status, 200, resp)
        try:
            rc = st.gw.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("gateway still running 10 s after SIGTERM; stderr:\n" + st.gateway_stderr())
        self.assertEqual(rc, 0, st.gateway_stderr())
        self.assertLess(time.monotonic() - t0, 10)
        # The journal was flushed before exit.
        rec = st.wait_journal(lambda r: r.get("request_id") == resp.header("X-Request-ID"), timeout=0.5)
        self.assertIsNotNone(rec, "the drained request is not in the journal after exit")
        self.assertEqual(rec.get("status"), 200, rec)

    def test_sigterm_idle_exits_0(self):
        st = self.stack
        self.assertEqual(st.request().status, 200)
        rc = st.stop_gateway(signal.SIGTERM)
        self.assertEqual(rc, 0, st.gateway_stderr())

    def test_sigusr1_reopens_journal(self):
        st = self.stack
        r1 = st.request()
        self.assertEqual(r1.status, 200)
        id1 = r1.header("X-Request-ID")
        self.assertIsNotNone(st.journal_by_request_id(id1), "first record never written")
        rotated = st.journal_path + ".1"
        os.rename(st.journal_path, rotated)
        st.gw.send_signal(signal.SIGUSR1)
        # the writer reopens the path: wait until the new file is there
        self.assertTrue(harness.wait_for(lambda: os.path.exists(st.journal_path), 5.0),
                        "SIGUSR1 did not reopen " + st.journal_path)
        r2 = st.request()
        self.assertEqual(r2.status, 200)
        id2 = r2.header("X-Request-ID")
        rec = st.journal_by_request_id(id2)
        self.assertIsNotNone(rec, "no record at %s after SIGUSR1; rotated file has: %r"
                             % (st.journal_path, st.journal_lines(rotated)[-3:]))
        ids_new = [r.get("request_id") for r in st.journal_lines()]
        ids_old = [r.get("request_id") for r in st.journal_lines(rotated)]
        self.assertNotIn(id1, ids_new, "the new file is not fresh")
        self.assertIn(id1, ids_old)
        self.assertNotIn(id2, ids_old)
        self.assertIsNone(st.gw.poll(), "gateway died on SIGUSR1")


if __name__ == "__main__":
    unittest.main()

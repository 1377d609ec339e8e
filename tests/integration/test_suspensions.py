"""Suspensions with a reason and an end, and the global cut of an
environment (issue 17 §3, CGU §8): the admin API on a real gateway, the
mock upstream, real TLS and client certificates made at test time."""

import calendar
import json
import math
import os
import signal
import time
import unittest

import harness
from harness import GatewayTestCase, Stack, read_response, require_binaries, send_raw

COMMUNE = harness.PARTNERS["client-commune"]
DEPT = harness.PARTNERS["client-departement"]
TARGET = "/opale/v1/entreprises/732829320/declarations?annee=2023"
CONTACT = "securite@commune-exemple.fr"


def utc(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def until_in(s):
    """An "until" at least <s> whole seconds away (utc() truncates: time() + s
    can be s - 1 away, all a sanitizer build on a loaded machine has for
    the checks made while it is in force)."""
    return utc(math.ceil(time.time()) + s)


def policy_hook(pols, stack):
    pols[COMMUNE["file"]]["contacts"] = {"technical": CONTACT}


def wait_until(pred, timeout=5.0, step=0.05):
    """pred()'s first truthy value within <timeout> seconds, else None."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


class TestSuspensions(GatewayTestCase):

    @classmethod
    def setUpClass(cls):
        require_binaries()
        cls.stack = Stack(cls.__name__, policy_hook=policy_hook)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def req(self, partner):
        cert = "client-commune" if partner is COMMUNE else "client-departement"
        return self.stack.build_request(TARGET, cert_name=cert, teleservice=partner["teleservice"])

    def call(self, partner):
        """Status of one request of <partner> on a fresh connection."""
        cert = "client-commune" if partner is COMMUNE else "client-departement"
        with self.stack.tls_connect(cert) as s:
            send_raw(s, self.req(partner))
            return read_response(s)

    def consumer(self, cid):
        status, body = self.stack.admin_call("GET", "/admin/consumers")
        self.assertEqual(status, 200, body)
        return [c for c in body["consumers"] if c["client_id"] == cid][0]

    def saved(self):
        with open(os.path.join(self.stack.dir, "suspensions.json")) as f:
            return json.load(f)

    def resume(self, cid):
        self.stack.admin_call("POST", "/admin/consumers/%s/resume" % cid, body={"reason": "cleanup"})

    def restore(self, env):
        self.stack.admin_call("POST", "/admin/environments/%s/restore" % env, body={"reason": "cleanup"})

    # -- suspensions

    def test_suspend_with_reason_and_until_then_expires_once(self):
        st = self.stack
        cid = COMMUNE["client_id"]
        self.addCleanup(self.resume, cid)
        self.assertEqual(self.call(COMMUNE).status, 200)
        until = until_in(3)
        status, body = st.admin_call("POST", "/admin/consumers/%s/suspend" % cid,
                                     body={"reason": "INC-7: enumeration", "until": until})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["suspended"], True, body)
        resp = self.call(COMMUNE)
        self.assertErrorBody(resp, 403, "910213")
        row = self.consumer(cid)
        self.assertTrue(row["suspended"], row)
        sus = row["suspension"]
        self.assertEqual(sus["reason"], "INC-7: enumeration", row)
        self.assertEqual(sus["until"], until, row)
        self.assertRegex(sus["by"], r"^admin \(admin API from 127\.0\.0\.1\)$")
        self.assertRegex(sus["since"], r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
        entry = [e for e in self.saved()["suspended"] if e["client_id"] == cid][0]
        self.assertEqual((entry["reason"], entry["until"]), ("INC-7: enumeration", until), entry)
        ev = wait_until(lambda: [e for e in st.security_events("admin.suspend") if e.get("consumer") == cid
                                 and e.get("reason") == "INC-7: enumeration"])
        self.assertTrue(ev, "no admin.suspend event with the reason")
        self.assertEqual(ev[-1].get("contact"), CONTACT, ev)
        self.assertEqual(ev[-1].get("until"), until, ev)
        self.assertEqual(ev[-1].get("client_ip"), "127.0.0.1", ev)
        # the other consumer is served meanwhile
        self.assertEqual(self.call(DEPT).status, 200)
        # after "until": served again, the file and the list follow, one event
        served = wait_until(lambda: self.call(COMMUNE).status == 200, timeout=8, step=0.25)
        self.assertTrue(served, "still refused after until")
        self.assertGreaterEqual(time.time(), calendar.timegm(time.strptime(until, "%Y-%m-%dT%H:%M:%SZ")) - 1)
        self.assertFalse(self.consumer(cid)["suspended"])
        # the admin listener's sweep (every second) rewrites the file, not the request
        wait_until(lambda: not [e for e in self.saved()["suspended"] if e["client_id"] == cid], timeout=10)
        self.assertEqual([e for e in self.saved()["suspended"] if e["client_id"] == cid], [])
        for _ in range(3):
            self.assertEqual(self.call(COMMUNE).status, 200)
        # one event (written by the events thread, whenever it runs), and no
        # second one from a later sweep (the admin listener's, every second)
        expired = lambda: [e for e in st.security_events("suspension.expired") if e.get("consumer") == cid]
        self.assertTrue(wait_until(expired, timeout=10), "no suspension.expired event")
        time.sleep(1.2)
        exp = expired()
        self.assertEqual(len(exp), 1, exp)
        self.assertEqual(exp[0].get("reason"), "INC-7: enumeration", exp)
        self.assertEqual(exp[0].get("until"), until, exp)
        self.assertEqual(exp[0].get("contact"), CONTACT, exp)

    def test_reason_required_and_until_checked(self):
        st = self.stack
        cid = DEPT["client_id"]
        self.addCleanup(self.resume, cid)
        for body in (None, {}, {"reason": ""}, {"reason": "x", "until": "tomorrow"},
                     {"reason": "x", "until": utc(time.time() - 10)},
                     {"reason": "x", "until": utc(time.time() + 367 * 86400)}, {"reason": "x", "other": 1}):
            with self.subTest(body=body):
                status, out = st.admin_call("POST", "/admin/consumers/%s/suspend" % cid, body=body)
                self.assertEqual(status, 422, out)
        self.assertFalse(self.consumer(cid)["suspended"])
        status, out = st.admin_call("POST", "/admin/consumers/%s/suspend" % cid,
                                    body={"reason": "INC-8", "until": "2099-01-01T00:00:00+01:00"})
        self.assertEqual(status, 422, out)  # more than 366 days ahead
        status, out = st.admin_call("POST", "/admin/consumers/%s/suspend" % cid, body={"reason": "INC-8"})
        self.assertEqual(status, 200, out)
        self.assertIsNone(self.consumer(cid)["suspension"]["until"])
        # resume without a reason: 422, still suspended
        for body in (None, {}, {"reason": ""}):
            status, out = st.admin_call("POST", "/admin/consumers/%s/resume" % cid, body=body)
            self.assertEqual(status, 422, out)
        self.assertTrue(self.consumer(cid)["suspended"])
        self.assertErrorBody(self.call(DEPT), 403, "910213")
        status, out = st.admin_call("POST", "/admin/consumers/%s/resume" % cid, body={"reason": "INC-8 closed"})
        self.assertEqual(status, 200, out)
        self.assertEqual(self.call(DEPT).status, 200)
        ev = wait_until(lambda: [e for e in st.security_events("admin.resume") if e.get("consumer") == cid
                                 and e.get("reason") == "INC-8 closed"])
        self.assertTrue(ev, "no admin.resume event with the reason")

    def test_datapass_suspension_not_resumed_by_hand(self):
        """A suspension a DataPass revocation set (its "why") is lifted by a
        DataPass re-approval only: /resume answers 409 and it stays."""
        st = self.stack
        cid = DEPT["client_id"]
        path = os.path.join(st.dir, "suspensions.json")

        def restart_with(doc):
            self.assertEqual(st.stop_gateway(signal.SIGTERM), 0, st.gateway_stderr()[-2000:])
            with open(path, "w") as f:
                json.dump(doc, f)
            st.start_gateway()

        self.addCleanup(lambda: st.gw.poll() is None and restart_with({"suspended": []}))
        restart_with({"suspended": [{"client_id": cid, "since": utc(time.time() - 60),
                                     "why": "datapass revoke %s" % DEPT["id"]}]})
        self.assertErrorBody(self.call(DEPT), 403, "910213")
        self.assertEqual(self.consumer(cid)["suspension"]["source"], "datapass revoke %s" % DEPT["id"])
        status, out = st.admin_call("POST", "/admin/consumers/%s/resume" % cid, body={"reason": "by hand"})
        self.assertEqual(status, 409, out)
        self.assertTrue(self.consumer(cid)["suspended"])
        self.assertErrorBody(self.call(DEPT), 403, "910213")
        self.assertEqual(self.call(COMMUNE).status, 200)

    # -- global cut

    def test_cut_refuses_open_connections_not_other_environment_and_persists(self):
        st = self.stack
        self.addCleanup(self.restore, "sandbox")
        self.addCleanup(self.restore, "production")
        with st.tls_connect("client-commune") as a, st.tls_connect("client-departement") as b:
            for s, p in ((a, COMMUNE), (b, DEPT)):
                send_raw(s, self.req(p))
                self.assertEqual(read_response(s).status, 200)
            # the other environment's cut leaves this sandbox gateway's consumers alone
            status, out = st.admin_call("POST", "/admin/environments/production/cut", body={"reason": "INC-9"})
            self.assertEqual(status, 200, out)
            send_raw(a, self.req(COMMUNE))
            self.assertEqual(read_response(a).status, 200)
            status, out = st.admin_call("POST", "/admin/environments/sandbox/cut", body={})
            self.assertEqual(status, 422, out)
            t0 = time.monotonic()
            status, out = st.admin_call("POST", "/admin/environments/sandbox/cut",
                                        body={"reason": "CGU 8: INC-9"})
            self.assertEqual(status, 200, out)
            st.mock_reset()
            for s, p in ((a, COMMUNE), (b, DEPT)):
                send_raw(s, self.req(p))
                self.assertErrorBody(read_response(s), 403, "910213")
            # at once: the open connections' next requests are refused (a
            # sanitizer build, a stop of the machine, may slow the round trips)
            self.assertLess(time.monotonic() - t0, harness.time_bound(st.gw.pid, 1.0))
            self.assertEqual(st.mock_stats()["requests"], 0)
        status, envs = st.admin_call("GET", "/admin/environments")
        self.assertEqual(status, 200, envs)
        by = {e["environment"]: e for e in envs["environments"]}
        self.assertTrue(by["sandbox"]["cut"] and by["production"]["cut"], envs)
        self.assertEqual(by["sandbox"]["cut_detail"]["reason"], "CGU 8: INC-9", envs)
        status, ready = st.admin_call("GET", "/readyz")
        self.assertEqual(ready["environments_cut"], ["sandbox", "production"], ready)
        ev = wait_until(lambda: [e for e in st.security_events("admin.environment_cut")
                                 if e.get("environment") == "sandbox"])
        self.assertTrue(ev)
        self.assertEqual((ev[-1]["reason"], ev[-1]["client_ip"]), ("CGU 8: INC-9", "127.0.0.1"), ev)
        self.assertEqual([c["environment"] for c in self.saved()["cuts"]], ["sandbox", "production"])
        # persisted across a restart
        rc = st.stop_gateway(signal.SIGTERM)
        self.assertEqual(rc, 0, st.gateway_stderr()[-2000:])
        st.start_gateway()
        self.assertErrorBody(self.call(COMMUNE), 403, "910213")
        # restore needs a reason; then served
        status, out = st.admin_call("POST", "/admin/environments/sandbox/restore", body=None)
        self.assertEqual(status, 422, out)
        self.assertErrorBody(self.call(DEPT), 403, "910213")
        status, out = st.admin_call("POST", "/admin/environments/sandbox/restore", body={"reason": "INC-9 closed"})
        self.assertEqual(status, 200, out)
        self.assertEqual(self.call(COMMUNE).status, 200)
        self.assertEqual(self.call(DEPT).status, 200)
        status, ready = st.admin_call("GET", "/readyz")
        self.assertEqual(ready["environments_cut"], ["production"], ready)
        self.assertTrue(wait_until(lambda: st.security_events("admin.environment_restored")))
        status, out = st.admin_call("POST", "/admin/environments/staging/cut", body={"reason": "x"})
        self.assertEqual(status, 404, out)

    def test_cut_with_until_lifts_itself(self):
        st = self.stack
        self.addCleanup(self.restore, "sandbox")
        status, out = st.admin_call("POST", "/admin/environments/sandbox/cut",
                                    body={"reason": "short cut", "until": until_in(2)})
        self.assertEqual(status, 200, out)
        self.assertErrorBody(self.call(DEPT), 403, "910213")
        self.assertTrue(wait_until(lambda: self.call(DEPT).status == 200, timeout=8, step=0.25))
        ev = wait_until(lambda: [e for e in st.security_events("suspension.expired")
                                 if e.get("environment") == "sandbox"])
        self.assertEqual(len(ev), 1, ev)
        status, envs = st.admin_call("GET", "/admin/environments")
        self.assertFalse([e for e in envs["environments"] if e["cut"]], envs)


if __name__ == "__main__":
    unittest.main()

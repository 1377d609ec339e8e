"""The unit of policy failure is the file (docs/policies.md, "When a file is
rejected"): at start a broken file is left out and its partner refused while
the others serve; at a reload (POST /admin/reload, SIGHUP) a broken file keeps
its partner's previous version while the other files' edits apply; two files
sharing a client_id are both rejected; no valid policy at all still starts,
denying everything. Each case checks the HTTP answers, /readyz, the reload
answer or log, the security event and the metric."""

import json
import os
import signal
import subprocess
import time
import unittest

import harness
from harness import GW_BIN, GatewayTestCase, Stack, require_binaries

SIREN = "732829320"
DECL = "/opale/v1/entreprises/%s/declarations?annee=2023" % SIREN
COMMUNE = "commune-exemple.json"
DEPT = "departement-test.json"
WAIT = 10.0


def wait_until(pred, timeout=WAIT, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def todo_skeleton(pol):
    """<pol> as `--import-datapass` leaves it before an operator fills it."""
    pol = json.loads(json.dumps(pol))
    pol["consumer"]["id_teleservice"] = "TODO: the ID_Teleservice issued by the DGFIP"
    pol["consumer"]["ip_allowlist"] = ["TODO: the partner's CIDRs, e.g. 192.0.2.0/24"]
    pol["rights"]["years"] = {"from": "TODO: first year granted", "to": "TODO: last year granted"}
    return pol


class PolicyUnitCase(GatewayTestCase):
    """Helpers; each test builds its own stack (they break policies)."""

    @classmethod
    def setUpClass(cls):
        require_binaries()

    def stack_with(self, policy_hook=None):
        st = Stack("policy-units", policy_hook=policy_hook)
        self.addCleanup(st.stop)
        st.start()
        self.st = self.stack = st
        return st

    def pfile(self, name):
        return os.path.join(self.st.policies_dir, name)

    def write_policy(self, name, pol):
        """Atomic, as an operator's editor or deploy tool would."""
        tmp = self.pfile("." + name + ".tmp")
        with open(tmp, "w") as f:
            f.write(pol if isinstance(pol, str) else json.dumps(pol, indent=2))
        os.rename(tmp, self.pfile(name))

    def readyz(self):
        status, body = self.st.admin_call("GET", "/readyz")
        self.assertIsInstance(body, dict, body)
        return status, body

    def metric(self, name):
        status, text = self.st.admin_call("GET", "/metrics")
        self.assertEqual(status, 200)
        for ln in text.splitlines():
            if ln.startswith(name + " "):
                return float(ln.rpartition(" ")[2])
        self.fail("no %s in /metrics" % name)

    def events(self, kind):
        return self.st.security_events(kind)

    def get(self, cert_name):
        return self.st.request(DECL, cert_name=cert_name,
                               teleservice=harness.PARTNERS[cert_name]["teleservice"])

    def good_policy(self, cert_name):
        return harness.make_policy(cert_name, self.st.fp[cert_name])

    def assertServed(self, cert_name):
        r = self.get(cert_name)
        self.assertEqual(r.status, 200, "%s: %r %s" % (cert_name, r, self.st.last_token_error))
        self.assertJournal(self.assertRequestId(r), decision="allow", status=200)
        return r

    def assertUnknown(self, cert_name):
        """Refused as a certificate no habilitation names."""
        r = self.get(cert_name)
        self.assertErrorBody(r, 401, "910201")
        self.assertJournal(self.assertRequestId(r), reason="mtls.unknown_cert", status=401)

    def assertRejected(self, entries, name, kept):
        e = [x for x in entries if x.get("file") == self.pfile(name)]
        self.assertEqual(len(e), 1, entries)
        self.assertEqual(e[0].get("kept_previous"), kept, e)
        self.assertTrue(e[0].get("error", "").startswith(self.pfile(name) + ": "), e)
        return e[0]


class TestStartWithBrokenFile(PolicyUnitCase):

    def test_broken_file_left_out_others_serve(self):
        st = self.stack_with(lambda pols, st: pols.__setitem__(DEPT, todo_skeleton(pols[DEPT])))
        dept = self.pfile(DEPT)
        err = st.gateway_stderr()
        self.assertIn("%s: consumer.ip_allowlist[0]: not a CIDR\n" % dept, err)
        self.assertIn("opale-gateway: start: %s rejected, left out (its partner is refused)\n" % dept, err)
        self.assertIn("1 habilitations loaded", err)
        # the good partner is served, the broken one refused as unknown
        self.assertServed("client-commune")
        self.assertUnknown("client-departement")
        # /readyz stays 200 and names the file with its first error
        status, body = self.readyz()
        self.assertEqual(status, 200, body)
        self.assertTrue(body["ready"], body)
        self.assertEqual(body["policies"]["loaded"], 1, body)
        self.assertEqual(len(body["policies"]["rejected"]), 1, body)
        r = self.assertRejected(body["policies"]["rejected"], DEPT, False)
        self.assertEqual(r["error"], "%s: consumer.id_teleservice: must be 1 to 64 printable ASCII "
                                     "characters, without space" % dept)
        # a security event and the metric
        evs = wait_until(lambda: self.events("policy.rejected"))
        self.assertEqual(len(evs), 1, evs)
        self.assertEqual(evs[0]["severity"], "high")
        self.assertEqual(evs[0]["by"], "start")
        self.assertEqual(evs[0]["file"], dept)
        self.assertFalse(evs[0]["kept_previous"])
        self.assertEqual(self.metric("opale_policy_files_rejected"), 1)
        self.assertEqual(self.metric("opale_policies"), 1)
        # once fixed, a reload lets the partner in
        self.write_policy(DEPT, self.good_policy("client-departement"))
        status, body = st.admin_call("POST", "/admin/reload")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["rejected"], [], body)
        self.assertEqual(body["habilitations"], 2, body)
        self.assertServed("client-departement")
        self.assertEqual(self.readyz()[1]["policies"]["rejected"], [])
        self.assertEqual(self.metric("opale_policy_files_rejected"), 0)

    def test_no_valid_policy_starts_and_denies_everything(self):
        def hook(pols, st):
            for k in list(pols):
                pols[k] = todo_skeleton(pols[k])
        st = self.stack_with(hook)
        err = st.gateway_stderr()
        self.assertIn("opale-gateway: start: WARNING: no valid policy, every guarded request is refused",
                      err)
        self.assertUnknown("client-commune")
        self.assertUnknown("client-departement")
        status, body = self.readyz()
        self.assertEqual(status, 200, body)
        self.assertEqual(body["policies"]["loaded"], 0, body)
        self.assertEqual(sorted(x["file"] for x in body["policies"]["rejected"]),
                         [self.pfile(COMMUNE), self.pfile(DEPT)])
        self.assertEqual(self.metric("opale_policy_files_rejected"), 2)


class TestDuplicateClientId(PolicyUnitCase):

    def test_both_files_rejected(self):
        def hook(pols, st):
            pols[DEPT]["consumer"]["client_id"] = pols[COMMUNE]["consumer"]["client_id"]
        st = self.stack_with(hook)
        com, dept = self.pfile(COMMUNE), self.pfile(DEPT)
        err = st.gateway_stderr()
        self.assertIn("%s: consumer.client_id: also used by %s\n" % (com, dept), err)
        self.assertIn("%s: consumer.client_id: also used by %s\n" % (dept, com), err)
        self.assertUnknown("client-commune")
        self.assertUnknown("client-departement")
        status, body = self.readyz()
        self.assertEqual(status, 200, body)
        self.assertEqual(body["policies"]["loaded"], 0, body)
        self.assertRejected(body["policies"]["rejected"], COMMUNE, False)
        self.assertRejected(body["policies"]["rejected"], DEPT, False)
        self.assertEqual(len(wait_until(lambda: len(self.events("policy.rejected")) >= 2 and
                                        self.events("policy.rejected"))), 2)
        # -t says the same and exits 1
        r = subprocess.run([GW_BIN, "-t", "-c", "gateway.json"], cwd=st.dir, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.decode().splitlines(),
                         ["%s: consumer.client_id: also used by %s" % (com, dept),
                          "%s: consumer.client_id: also used by %s" % (dept, com)])


class TestReload(PolicyUnitCase):

    def edit_both(self, st):
        """A broken edit of commune's file (which, if applied, would also take
        its rights away) and a good edit of departement's (declarations no
        longer granted)."""
        broken = json.loads(json.dumps(st.policies[COMMUNE]))
        broken["rights"]["scopes"] = ["api_opale_bancaires"]
        broken["rights"]["colour"] = "blue"
        self.write_policy(COMMUNE, broken)
        dept = json.loads(json.dumps(st.policies[DEPT]))
        dept["rights"]["scopes"] = [s for s in dept["rights"]["scopes"] if s != "api_opale_declarations"]
        self.write_policy(DEPT, dept)

    def assertAfterReload(self):
        # commune keeps its previous rights, departement's edit applies
        self.assertServed("client-commune")
        r = self.get("client-departement")
        self.assertErrorBody(r, 403, "900910")
        self.assertJournal(self.assertRequestId(r), status=403, consumer="departement-test-sandbox")
        status, body = self.readyz()
        self.assertEqual(status, 200, body)
        self.assertEqual(body["policies"]["loaded"], 2, body)
        self.assertEqual(len(body["policies"]["rejected"]), 1, body)
        self.assertRejected(body["policies"]["rejected"], COMMUNE, True)
        self.assertEqual(self.metric("opale_policy_files_rejected"), 1)

    def test_admin_reload_broken_edit_keeps_previous_version(self):
        st = self.stack_with()
        self.assertServed("client-commune")
        self.assertServed("client-departement")
        self.edit_both(st)
        status, body = st.admin_call("POST", "/admin/reload")
        self.assertEqual(status, 200, body)
        self.assertTrue(body["reloaded"], body)
        self.assertEqual(body["habilitations"], 2, body)
        self.assertEqual(len(body["rejected"]), 1, body)
        r = self.assertRejected(body["rejected"], COMMUNE, True)
        self.assertEqual(r["error"], "%s: rights.colour: unknown key" % self.pfile(COMMUNE))
        self.assertEqual(body["errors"], [r["error"]])
        self.assertIn("opale-gateway: admin: %s rejected, its previous version stays\n" % self.pfile(COMMUNE),
                      st.gateway_stderr())
        self.assertAfterReload()
        evs = wait_until(lambda: self.events("policy.rejected"))
        self.assertEqual([(e["by"], e["file"], e["kept_previous"]) for e in evs],
                         [("admin API", self.pfile(COMMUNE), True)])

    def test_sighup_broken_edit_keeps_previous_version(self):
        st = self.stack_with()
        self.assertServed("client-commune")
        self.edit_both(st)
        mark = len(st.gateway_stderr())
        st.gw.send_signal(signal.SIGHUP)
        line = "opale-gateway: SIGHUP: %s rejected, its previous version stays\n" % self.pfile(COMMUNE)
        self.assertTrue(wait_until(lambda: line in st.gateway_stderr()[mark:]), st.gateway_stderr()[mark:])
        tail = st.gateway_stderr()[mark:]
        self.assertIn("%s: rights.colour: unknown key\n" % self.pfile(COMMUNE), tail)
        self.assertIn("opale-gateway: SIGHUP: policies reloaded (2 habilitations)\n", tail)
        self.assertAfterReload()
        evs = wait_until(lambda: self.events("policy.rejected"))
        self.assertEqual([(e["by"], e["kept_previous"]) for e in evs], [("SIGHUP", True)])

    def test_reload_duplicate_client_id_keeps_both_previous_versions(self):
        st = self.stack_with()
        dept = json.loads(json.dumps(st.policies[DEPT]))
        dept["consumer"]["client_id"] = st.policies[COMMUNE]["consumer"]["client_id"]
        self.write_policy(DEPT, dept)
        status, body = st.admin_call("POST", "/admin/reload")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["habilitations"], 2, body)
        self.assertRejected(body["rejected"], COMMUNE, True)
        self.assertRejected(body["rejected"], DEPT, True)
        self.assertServed("client-commune")
        r = self.assertServed("client-departement")
        self.assertJournal(self.assertRequestId(r), consumer="departement-test-sandbox")


if __name__ == "__main__":
    unittest.main()

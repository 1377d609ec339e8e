"""DataPass in the loop (docs/datapass.md): the signed webhook receiver on
its own TLS listener. A revocation cuts an open keep-alive connection's next
request; refused webhooks (signature, environment, replay, size, JSON,
content type) change nothing; an approval rewrites the DataPass-owned fields
of the policy file and the next call sees them; an approval without a policy
creates a pending one; a crash between the temporary file and the rename
leaves the old file; webhooks racing reloads leave a consistent file."""

import hashlib
import hmac
import http.client
import json
import os
import signal
import ssl
import subprocess
import threading
import time
import unittest

import harness
from harness import GW_BIN, PARTNERS, Stack, read_response, require_binaries, send_raw

SIREN = "732829320"
DECL = "/opale/v1/entreprises/%s/declarations?annee=2024" % SIREN
SECRET = b"sandbox-webhook-secret-0123456789"
PROD_SECRET = b"production-webhook-secret-0123456"
COMMUNE = PARTNERS["client-commune"]
DEPT = PARTNERS["client-departement"]


def datapass_hook(conf, stack):
    with open(os.path.join(stack.dir, "dp-sandbox.secret"), "wb") as f:
        f.write(SECRET + b"\n")
    with open(os.path.join(stack.dir, "dp-production.secret"), "wb") as f:
        f.write(PROD_SECRET + b"\n")
    if getattr(stack, "dp_port", None) is None:
        stack.dp_port = harness.free_port()
    conf["datapass"] = {
        "webhook": {"address": "127.0.0.1", "port": stack.dp_port, "cert": "pki/server-ecdsa.crt",
                    "key": "pki/server-ecdsa.key", "max_body_bytes": 4096},
        # production has a secret but no listener: not served
        "secrets": {"sandbox": "dp-sandbox.secret", "production": "dp-production.secret"},
        "replay_window_s": 3600,
        "state_file": "datapass-seen.json",
    }


def habilitation(p, state="active", per_minute=None, contact="tech@exemple.fr", definition="api_opale_sandbox"):
    data = {"intitule": "Test", "cadre_juridique_nature": "Tests d'integration",
            "duree_conservation_donnees_caractere_personnel": 36,
            "contact_technique_email": contact}
    if per_minute is not None:
        data["volumetrie_appels_par_minute"] = per_minute
    return {"id": int(p["id"][1:]), "state": state, "revoked": state == "revoked",
            "definition_id": definition, "created_at": "2020-01-01T00:00:00Z",
            "organization": {"id": 1, "siret": p["siret"], "name": p["name"]}, "data": data}


_ids = [0]


def event(name, hab=None, event_id=None, fired_at=None):
    _ids[0] += 1
    body = {"id": event_id or "evt-%d-%d" % (os.getpid(), _ids[0]), "event": name,
            "fired_at": int(time.time()) if fired_at is None else fired_at, "model_type": "AuthorizationRequest"}
    if hab is not None:
        body["data"] = hab
    return json.dumps(body).encode()


def sign(body, secret=SECRET):
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def post(stack, body, env="sandbox", signature=None, ctype="application/json", secret=SECRET):
    """(status, parsed body) of one webhook over TLS, verifying the gateway's
    server certificate (no client certificate)."""
    ctx = ssl.create_default_context(cafile=os.path.join(stack.pki, "ca.crt"))
    ctx.check_hostname = False
    c = http.client.HTTPSConnection("127.0.0.1", stack.dp_port, context=ctx, timeout=harness.DEFAULT_TIMEOUT)
    headers = {"Content-Type": ctype, "X-App-Environment": env,
               "X-Hub-Signature-256": signature if signature is not None else sign(body, secret)}
    try:
        c.request("POST", "/datapass/webhook", body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
    finally:
        c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data


def read_policy(stack, p):
    with open(os.path.join(stack.policies_dir, p["file"]), "rb") as f:
        return f.read()


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


class DataPassCase(unittest.TestCase):
    def start_stack(self, name):
        require_binaries()
        st = Stack(name, conf_hook=datapass_hook)
        self.addCleanup(st.stop)
        st.start()
        return st

    def call(self, st, p, cert):
        return st.request(DECL, cert_name=cert, teleservice=p["teleservice"])

    def events(self, st, outcome=None):
        evs = st.security_events("datapass.webhook")
        return [e for e in evs if outcome is None or e.get("outcome") == outcome]


class TestRevoke(DataPassCase):
    def test_revoke_cuts_open_keepalive_connection_within_one_second(self):
        st = self.start_stack("dp-revoke")
        with st.tls_connect("client-commune") as s:
            send_raw(s, st.build_request(DECL, cert_name="client-commune"))
            self.assertEqual(read_response(s).status, 200)
            status, body = post(st, event("revoke", habilitation(COMMUNE, state="revoked")))
            t0 = time.monotonic()
            self.assertEqual(status, 200, body)
            self.assertEqual(body["outcome"], "applied", body)
            send_raw(s, st.build_request(DECL, cert_name="client-commune"))
            resp = read_response(s)
            self.assertLess(time.monotonic() - t0, 1.0)
            self.assertEqual(resp.status, 403, resp)
        pol = json.loads(read_policy(st, COMMUNE))
        self.assertEqual(pol["habilitation"]["state"], "revoked")
        # operator-owned fields untouched
        self.assertEqual(pol["consumer"]["certificates"][0]["sha256"], st.fp["client-commune"])
        ev = wait_for(lambda: self.events(st, "applied"))
        self.assertEqual(ev[0]["habilitation"], COMMUNE["id"], ev)
        self.assertEqual(ev[0]["datapass_event"], "revoke", ev)
        self.assertEqual(ev[0]["severity"], "high", ev)
        self.assertEqual(ev[0]["client_ip"], "127.0.0.1", ev)
        # the other partner is served
        self.assertEqual(self.call(st, DEPT, "client-departement").status, 200)
        # persisted: still refused after a restart
        st.restart_gateway()
        self.assertEqual(self.call(st, COMMUNE, "client-commune").status, 403)
        status, text = st.admin_call("GET", "/metrics")
        self.assertIn('opale_datapass_webhooks_total{outcome="applied"} 0', text)  # counters restart at 0


class TestWebhooks(DataPassCase):
    @classmethod
    def setUpClass(cls):
        require_binaries()
        cls.st = Stack("dp-webhooks", conf_hook=datapass_hook)
        cls.addClassCleanup(cls.st.stop)
        cls.st.start()

    def assert_unchanged(self, before, status, body, want_status, outcome):
        st = self.st
        self.assertEqual(status, want_status, body)
        self.assertEqual(read_policy(st, DEPT), before)
        self.assertTrue(wait_for(lambda: self.events(st, outcome)), outcome)
        self.assertEqual(self.call(st, DEPT, "client-departement").status, 200)

    def test_refused_webhooks_change_nothing(self):
        st = self.st
        before = read_policy(st, DEPT)
        revoke = event("revoke", habilitation(DEPT, state="revoked"))
        # bad signature: another secret, a flipped digit, none at all
        status, body = post(st, revoke, secret=b"not-the-secret-not-the-secret")
        self.assert_unchanged(before, status, body, 401, "bad_signature")
        good = sign(revoke)
        flipped = good[:-1] + ("0" if good[-1] != "0" else "1")
        self.assertEqual(post(st, revoke, signature=flipped)[0], 401)
        self.assertEqual(post(st, revoke, signature="")[0], 401)
        # the production secret for a sandbox body, and an environment not served
        status, body = post(st, revoke, env="production", secret=PROD_SECRET)
        self.assert_unchanged(before, status, body, 403, "bad_environment")
        self.assertEqual(post(st, revoke, env="staging")[0], 403)
        self.assertEqual(post(st, revoke, env="recette")[0], 403)
        # oversized body (signed correctly)
        big = json.dumps({"id": "big", "event": "revoke", "fired_at": int(time.time()),
                          "pad": "x" * 5000, "data": habilitation(DEPT, state="revoked")}).encode()
        status, body = post(st, big)
        self.assert_unchanged(before, status, body, 413, "too_large")
        # invalid JSON, signed correctly
        status, body = post(st, b'{"id": "x", "event": "revoke",')
        self.assert_unchanged(before, status, body, 400, "bad_request")
        # content type
        self.assertEqual(post(st, revoke, ctype="text/plain")[0], 415)
        # too old for the replay window
        old = event("revoke", habilitation(DEPT, state="revoked"), fired_at=int(time.time()) - 7200)
        status, body = post(st, old)
        self.assert_unchanged(before, status, body, 400, "too_old")
        # a definition of the other environment
        status, body = post(st, event("revoke", habilitation(DEPT, state="revoked", definition="api_opale")))
        self.assertEqual(status, 403, body)
        self.assertEqual(read_policy(st, DEPT), before)
        status, text = st.admin_call("GET", "/metrics")
        self.assertIn('opale_datapass_webhooks_total{outcome="bad_signature"} 3', text)

    def test_replayed_id_is_answered_without_effect(self):
        st = self.st
        eid = "evt-replay-%d" % os.getpid()
        status, body = post(st, event("submit", event_id=eid))
        self.assertEqual((status, body["outcome"]), (200, "acknowledged"), body)
        before = read_policy(st, DEPT)
        # the same id, now carrying a revocation: refused as a replay
        status, body = post(st, event("revoke", habilitation(DEPT, state="revoked"), event_id=eid))
        self.assertEqual((status, body["outcome"]), (200, "replay"), body)
        self.assertEqual(read_policy(st, DEPT), before)
        self.assertEqual(self.call(st, DEPT, "client-departement").status, 200)
        with open(os.path.join(st.dir, "datapass-seen.json")) as f:
            self.assertIn(eid, json.load(f)["seen"])

    def test_approve_with_new_quota_changes_ratelimit_limit(self):
        st = self.st
        old = json.loads(read_policy(st, DEPT))
        status, body = post(st, event("approve", habilitation(DEPT, per_minute=7, contact="ops@dept.fr")))
        self.assertEqual((status, body["outcome"]), (200, "applied"), body)
        r = self.call(st, DEPT, "client-departement")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("RateLimit-Limit"), "7")
        pol = json.loads(read_policy(st, DEPT))
        self.assertEqual(pol["quota"]["per_minute"], 7)
        self.assertEqual(pol["contacts"]["technical"], "ops@dept.fr")
        # operator-owned fields kept as they were
        for k in ("consumer", "rights"):
            self.assertEqual(pol[k], old[k], k)
        for k in ("valid_from", "valid_until", "id", "definition"):
            self.assertEqual(pol["habilitation"][k], old["habilitation"][k], k)
        ev = [e for e in self.events(st, "applied") if e.get("datapass_event") == "approve"]
        self.assertTrue(ev)
        self.assertEqual(ev[-1]["contact"], "ops@dept.fr", ev)
        self.assertEqual(ev[-1]["consumer"], DEPT["client_id"], ev)
        # -t agrees with the file
        r = subprocess.run([GW_BIN, "-t", "-c", st.conf_path], cwd=st.dir, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_approval_without_policy_creates_pending(self):
        st = self.st
        newp = {"id": "H9777", "siret": harness.make_siret(777), "name": "Nouvelle Commune"}
        status, body = post(st, event("approve", habilitation(newp, per_minute=20)))
        self.assertEqual((status, body["outcome"]), (200, "applied"), body)
        path = os.path.join(st.policies_dir, "H9777.json.pending")
        with open(path) as f:
            pend = json.load(f)
        self.assertEqual(pend["habilitation"]["id"], "H9777")
        self.assertEqual(pend["quota"]["per_minute"], 20)
        self.assertTrue(pend["consumer"]["id_teleservice"].startswith("TODO"))
        status, ready = st.admin_call("GET", "/readyz")
        self.assertIn("H9777.json.pending", ready["policies"]["pending"], ready)
        self.assertEqual(ready["policies"]["loaded"], 2, ready)
        r = subprocess.run([GW_BIN, "-t", "-c", st.conf_path], cwd=st.dir, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"pending policy", r.stderr)
        self.assertIn(b"H9777.json.pending", r.stderr)
        # not served: /admin/consumers does not know it
        status, cons = st.admin_call("GET", "/admin/consumers")
        self.assertNotIn("H9777", json.dumps(cons))

    def test_webhooks_racing_reloads_leave_a_consistent_file(self):
        st = self.st
        stop = time.monotonic() + 3.0
        errors = []

        def reloads():
            n = 0
            while time.monotonic() < stop and n < 200:
                s, b = st.admin_call("POST", "/admin/reload")
                if s != 200:
                    errors.append((s, b))
                n += 1

        t = threading.Thread(target=reloads)
        t.start()
        last = None
        for i in range(30):
            last = 100 + i
            status, body = post(st, event("update", habilitation(DEPT, per_minute=last)))
            if status != 200:
                errors.append((status, body))
            if time.monotonic() >= stop:
                break
        t.join(timeout=30)
        self.assertEqual(errors, [])
        pol = json.loads(read_policy(st, DEPT))
        self.assertEqual(pol["quota"]["per_minute"], last)
        self.assertEqual([f for f in os.listdir(st.policies_dir) if "datapass-tmp" in f], [])
        r = self.call(st, DEPT, "client-departement")
        self.assertEqual(r.header("RateLimit-Limit"), str(last))


class TestCrashBeforeRename(DataPassCase):
    def test_crash_between_temp_file_and_rename_leaves_the_old_file(self):
        require_binaries()
        st = Stack("dp-crash", conf_hook=datapass_hook)
        self.addCleanup(st.stop)
        os.environ["GW_TEST_DATAPASS_CRASH_BEFORE_RENAME"] = "1"
        try:
            st.start()
        finally:
            del os.environ["GW_TEST_DATAPASS_CRASH_BEFORE_RENAME"]
        before = read_policy(st, DEPT)
        try:
            post(st, event("approve", habilitation(DEPT, per_minute=9)))
        except (OSError, http.client.HTTPException):
            pass  # the process died mid-request
        self.assertEqual(st.gw.wait(timeout=10), 86)
        self.assertEqual(read_policy(st, DEPT), before)
        st.start_gateway()
        r = self.call(st, DEPT, "client-departement")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("RateLimit-Limit"), str(json.loads(before)["quota"]["per_minute"]))


if __name__ == "__main__":
    unittest.main()

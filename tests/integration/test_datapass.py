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
import sys
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
            took = time.monotonic() - t0
            self.assertLess(took, harness.time_bound(st.gw.pid, 1.0), "%.3f s" % took)
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
        # security events about the consumer carry its technical contact
        self.addCleanup(st.admin_call, "POST", "/admin/consumers/%s/resume" % DEPT["client_id"], body={"reason": "test done"})
        status, body = st.admin_call("POST", "/admin/consumers/%s/suspend" % DEPT["client_id"], body={"reason": "test"})
        self.assertEqual(status, 200, body)
        sus = wait_for(lambda: [e for e in st.security_events("admin.suspend") if e.get("consumer") == DEPT["client_id"]])
        self.assertEqual(sus[-1].get("contact"), "ops@dept.fr", sus)
        status, body = st.admin_call("POST", "/admin/consumers/%s/resume" % DEPT["client_id"], body={"reason": "test done"})
        self.assertEqual(status, 200, body)

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

    def test_bad_datapass_section_exact_messages(self):
        st = self.st
        conf = json.loads(json.dumps(st.conf))
        with open(os.path.join(st.dir, "short.secret"), "w") as f:
            f.write("abc\n")
        conf["datapass"] = {"webhook": {"cert": "nope.crt", "key": "pki/server-ecdsa.key", "bogus": 1},
                            "secrets": {"sandbox": "short.secret", "recette": "dp-sandbox.secret"},
                            "replay_window_s": 5,
                            "api": {"url": "http://datapass", "client_id": "a", "client_secret_file": "missing"}}
        path = st.write_conf(conf, os.path.join(st.dir, "gateway-baddp.json"))
        r = subprocess.run([GW_BIN, "-t", "-c", path], cwd=st.dir, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        got = [l for l in r.stderr.decode().splitlines() if ": datapass" in l]
        self.assertEqual(got, [path + ": " + m for m in (
            "datapass.webhook.bogus: unknown key",
            'datapass.webhook: missing key "port"',
            "datapass.webhook.cert: cannot read the file",
            "datapass.secrets.sandbox: the secret must be 16 to 512 bytes",
            "datapass.secrets.recette: must be sandbox, staging or production",
            "datapass.replay_window_s: must be an integer between 60 and 2678400",
            "datapass.api.url: must be an https:// URL",
            "datapass.api.client_secret_file: cannot read the file")])

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


class TestHabilitationExpiring(DataPassCase):
    def test_expiring_event_ahead_of_valid_until_with_the_contact(self):
        require_binaries()
        import datetime
        until = (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=60)).isoformat()

        def hook(pols, stack):
            pols[DEPT["file"]]["habilitation"]["valid_until"] = until
            pols[DEPT["file"]]["contacts"] = {"technical": "alerts@dept.fr"}

        st = Stack("dp-expiring", policy_hook=hook)
        self.addCleanup(st.stop)
        st.start()
        for _ in range(3):
            self.assertEqual(self.call(st, DEPT, "client-departement").status, 200)
        self.assertEqual(self.call(st, COMMUNE, "client-commune").status, 200)
        evs = wait_for(lambda: st.security_events("habilitation.expiring"))
        self.assertEqual(len(evs), 1, evs)  # once per milestone
        e = evs[0]
        self.assertEqual((e["habilitation"], e["threshold_days"], e["valid_until"]), (DEPT["id"], 90, until), e)
        self.assertIn(e["days_left"], (59, 60), e)
        self.assertEqual(e["contact"], "alerts@dept.fr", e)
        self.assertEqual(e["severity"], "medium", e)


MOCK_DATAPASS = os.path.join(harness.SRCDIR, "deploy", "mock-datapass", "mock_datapass.py")
API_CLIENT_ID = "opale-gateway-tests"
API_SECRET = "api-client-secret-for-the-tests"


class MockDataPass:
    """deploy/mock-datapass/ on a port chosen now, firing at <stack>'s
    webhook listener."""

    def __init__(self, stack):
        self.stack = stack
        self.port = harness.free_port()
        self.proc = None

    def start(self):
        st = self.stack
        with open(os.path.join(st.dir, "dp-api.secret"), "w") as f:
            f.write(API_SECRET + "\n")
        habs = [habilitation(p, per_minute=100000) for p in (COMMUNE, DEPT)]
        with open(os.path.join(st.dir, "dp-habilitations.json"), "w") as f:
            json.dump(habs, f)
        port_file = os.path.join(st.dir, "mock-datapass.port")
        log = open(os.path.join(st.dir, "mock-datapass.log"), "ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, MOCK_DATAPASS, "--port", str(self.port), "--port-file", port_file,
                 "--cert", os.path.join(st.pki, "server-ecdsa.crt"), "--key", os.path.join(st.pki, "server-ecdsa.key"),
                 "--client-id", API_CLIENT_ID, "--client-secret-file", os.path.join(st.dir, "dp-api.secret"),
                 "--secret", "sandbox=" + os.path.join(st.dir, "dp-sandbox.secret"),
                 "--webhook-url", "https://127.0.0.1:%d/datapass/webhook" % st.dp_port,
                 "--webhook-ca", os.path.join(st.pki, "ca.crt"),
                 "--data", os.path.join(st.dir, "dp-habilitations.json"), "--quiet"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=st.dir)
        finally:
            log.close()
        harness._register(self.proc)
        harness._wait_file(port_file, self.proc, harness.START_TIMEOUT, "mock-datapass")
        return self

    def stop(self):
        if self.proc is not None:
            harness.stop_process(self.proc)

    def call(self, method, path, body=None):
        ctx = ssl.create_default_context(cafile=os.path.join(self.stack.pki, "ca.crt"))
        ctx.check_hostname = False
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=harness.DEFAULT_TIMEOUT)
        try:
            c.request(method, path, body=None if body is None else json.dumps(body).encode(),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, json.loads(r.read() or b"null")
        finally:
            c.close()

    def put(self, hab):
        status, body = self.call("PUT", "/__control/habilitations/%d" % hab["id"], hab)
        assert status == 200, (status, body)

    def fire(self, event, p, deliver=True):
        status, body = self.call("POST", "/__control/fire",
                                 {"event": event, "habilitation": int(p["id"][1:]), "deliver": deliver})
        assert status == 200, (status, body)
        return body


def sync_stack(name, interval):
    """A stack whose gateway reads the mock DataPass every <interval> s
    (0: on demand only), and the mock, started."""
    require_binaries()
    holder = {}

    def hook(conf, stack):
        datapass_hook(conf, stack)
        if "mock" not in holder:
            holder["mock"] = MockDataPass(stack)
        conf["datapass"]["api"] = {"url": "https://127.0.0.1:%d/api/v1" % holder["mock"].port,
                                   "client_id": API_CLIENT_ID, "client_secret_file": "dp-api.secret",
                                   "ca": "pki/ca.crt", "sync_interval_s": interval}
        with open(os.path.join(stack.dir, "dp-api.secret"), "w") as f:
            f.write(API_SECRET + "\n")

    st = Stack(name, conf_hook=hook)
    st.start()
    mock = holder["mock"].start()
    return st, mock


class TestWithMockDataPass(DataPassCase):
    """The mock DataPass, webhooks and no periodic sync."""

    @classmethod
    def setUpClass(cls):
        cls.st, cls.mock = sync_stack("dp-mock", 0)
        cls.addClassCleanup(cls.st.stop)
        cls.addClassCleanup(cls.mock.stop)

    def test_revocation_in_mock_is_effective_through_the_webhook_within_one_second(self):
        st, mock = self.st, self.mock
        self.assertEqual(self.call(st, COMMUNE, "client-commune").status, 200)
        mock.put(habilitation(COMMUNE, state="revoked"))
        t0 = time.monotonic()
        fired = mock.fire("revoke", COMMUNE)
        self.assertEqual(fired["status"], 200, fired)
        r = self.call(st, COMMUNE, "client-commune")
        # a webhook and a new mTLS connection: 5 s on a sanitizer build (no
        # periodic sync here, so the 403 is the webhook's in any case)
        took = time.monotonic() - t0
        self.assertLess(took, harness.time_bound(st.gw.pid, 1.0), "%.3f s" % took)
        self.assertEqual(r.status, 403)
        self.assertEqual(json.loads(read_policy(st, COMMUNE))["habilitation"]["state"], "revoked")

    def test_sync_datapass_command_applies_the_api(self):
        st, mock = self.st, self.mock
        mock.put(habilitation(DEPT, per_minute=42, contact="sync@dept.fr"))
        r = subprocess.run([GW_BIN, "--sync-datapass", "-c", st.conf_path], cwd=st.dir, capture_output=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        rep = json.loads(r.stdout)
        self.assertGreaterEqual(rep["habilitations"], 2, rep)
        hits = [c for c in rep["changes"] if c["habilitation"] == DEPT["id"]]
        self.assertEqual(len(hits), 1, rep)
        self.assertEqual(hits[0]["action"], "update", rep)
        pol = json.loads(read_policy(st, DEPT))
        self.assertEqual(pol["quota"]["per_minute"], 42)
        self.assertEqual(pol["contacts"]["technical"], "sync@dept.fr")
        self.assertEqual(pol["consumer"]["certificates"][0]["sha256"], st.fp["client-departement"])
        self.assertIn(b"next reload", r.stderr)
        # the running gateway applies it at its reload
        status, body = st.admin_call("POST", "/admin/reload")
        self.assertEqual(status, 200, body)
        self.assertEqual(self.call(st, DEPT, "client-departement").header("RateLimit-Limit"), "42")
        # a second run finds nothing to change
        r = subprocess.run([GW_BIN, "--sync-datapass", "-c", st.conf_path], cwd=st.dir, capture_output=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([c for c in json.loads(r.stdout)["changes"] if c["habilitation"] == DEPT["id"]], [])

    def test_sync_datapass_command_fails_on_a_bad_client_secret(self):
        st = self.st
        conf = json.loads(json.dumps(st.conf))
        with open(os.path.join(st.dir, "bad-api.secret"), "w") as f:
            f.write("not-the-secret\n")
        conf["datapass"]["api"]["client_secret_file"] = "bad-api.secret"
        path = st.write_conf(conf, os.path.join(st.dir, "gateway-badsecret.json"))
        before = read_policy(st, DEPT)
        r = subprocess.run([GW_BIN, "--sync-datapass", "-c", path], cwd=st.dir, capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"datapass.api: token endpoint answered 401", r.stderr)
        self.assertEqual(read_policy(st, DEPT), before)


class TestPeriodicSync(DataPassCase):
    def test_missed_webhook_and_absent_habilitation_caught_by_the_sync(self):
        st, mock = sync_stack("dp-sync", 1)
        self.addCleanup(st.stop)
        self.addCleanup(mock.stop)
        self.assertEqual(self.call(st, COMMUNE, "client-commune").status, 200)
        # revoked in DataPass, its webhook lost
        mock.put(habilitation(COMMUNE, state="revoked"))
        self.assertFalse(mock.fire("revoke", COMMUNE, deliver=False)["delivered"])
        t0 = time.monotonic()
        self.assertTrue(wait_for(lambda: self.call(st, COMMUNE, "client-commune").status == 403, timeout=10))
        self.assertLess(time.monotonic() - t0, 5.0)  # one sync period (1 s) plus the load's slack
        # the kill switch refuses first, the file follows within the same sync
        state = lambda: json.loads(read_policy(st, COMMUNE))["habilitation"]["state"] == "revoked"
        self.assertTrue(wait_for(state, timeout=5))
        # gone from DataPass: refused too
        self.assertEqual(self.call(st, DEPT, "client-departement").status, 200)
        status, body = mock.call("DELETE", "/__control/habilitations/%s" % DEPT["id"][1:])
        self.assertEqual(status, 200, body)
        self.assertTrue(wait_for(lambda: self.call(st, DEPT, "client-departement").status == 403, timeout=10))
        # the event follows the reload that refused the call: wait for it
        changed = lambda: [e for e in st.security_events("datapass.sync")
                           if (e.get("changed") or 0) > 0 and DEPT["id"] in e.get("detail", "")
                           and '"revoke' in e["detail"].split(DEPT["id"], 1)[1][:40]]
        self.assertTrue(wait_for(changed, timeout=10), st.security_events("datapass.sync"))
        evs = [e for e in st.security_events("datapass.sync") if (e.get("changed") or 0) > 0]
        self.assertGreaterEqual(len(evs), 2, st.security_events("datapass.sync"))
        self.assertEqual(evs[0]["outcome"], "ok", evs)
        self.assertIn(COMMUNE["id"], evs[0]["detail"])
        self.assertIn(DEPT["id"], evs[-1]["detail"])
        self.assertEqual(evs[-1]["severity"], "high")
        status, text = st.admin_call("GET", "/metrics")
        self.assertRegex(text, r'opale_datapass_syncs_total\{outcome="ok"\} [1-9]')


if __name__ == "__main__":
    unittest.main()

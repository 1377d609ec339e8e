"""HAProxy 2.6, the second baseline (bench/haproxy/): its start-up, and the
functional check that proves, before anything is measured, that it enforces
each check of the chain it is compared on (and that the gateway does too):
a request that breaks one check at a time must be refused by both."""

import http.client
import importlib.util
import json
import os
import re
import resource
import shutil
import ssl
import time
import uuid

from benchlib import partners as tokens
from benchlib.common import HERE, PATHS, PROXY_CPU, START_TIMEOUT, TELESERVICE, SetupError, log
from benchlib.processes import Target, free_port, journal_records, read_text, spawn, stop, wait_tcp

# bench/haproxy/genconf.py (nginx's renderer has the same module name)
_spec = importlib.util.spec_from_file_location("hgenconf", os.path.join(HERE, "haproxy", "genconf.py"))
hgenconf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hgenconf)

# The consumers HAProxy knows: the bench's commune (as GW-FULL's policy),
# the departement with a quota of 3 per minute (the rate-limit check) and
# the secu allowed only from 10.1.0.0/16 (the source check).
HA_CONSUMERS = [
    hgenconf.Consumer("client-commune", "commune-exemple-sandbox", TELESERVICE, 2019, 2025, 1000000,
                      ["127.0.0.1/32"]),
    hgenconf.Consumer("client-departement", "departement-test-sandbox", "TS-0002", 2019, 2025, 3,
                      ["127.0.0.1/32"]),
    hgenconf.Consumer("client-secu", "caisse-secu-sandbox", "TS-0003", 2019, 2025, 1000, ["10.1.0.0/16"]),
]


# The check that must refuse each broken request (a regex on the gateway's
# journal `reason`, one on HAProxy's log `deny`), when the refusal can be
# found by its correlation id.
EXPECT_WHY = {
    "certificate identity": (r"^mtls\.", r"^cert\.unknown$"),
    "correlation id": (r"correlation", r"^correlation_id$"),
    "teleservice": (r"^teleservice\.", r"^teleservice$"),
    "bearer": (r"^bearer\.missing$", r"^bearer\.missing$"),
    "bearer signature": (r"^jws\.signature$", r"^bearer\.signature$"),
    "bearer exp": (r"^jwt\.expired$", r"^bearer\.claims$"),
    "bearer client_id": (r"client_mismatch$", r"client_mismatch$"),
    "certificate binding": (r"cnf_mismatch$", r"cnf_mismatch$"),
    "scope per route": (r"scope$", r"scope$"),
    "annee range": (r"^(rights\.year|query\.)", r"^rights\.year$"),
    "source allowlist": (r"^(mtls|ip)\.", r"^source$"),
}


class Peers:
    """Bench mixin: HAProxy and the functional check of both full chains."""

    def start_haproxy(self, name):
        hb = shutil.which("haproxy")
        if not hb:
            raise SetupError("haproxy not installed (make bench-build installs it)")
        self.haproxy_bin = hb
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        port = free_port()
        issuer = "https://localhost:%d" % self.targets["gw-full"].port
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # HAProxy wants about two descriptors per connection (front + back)
        path = hgenconf.render(d, self.pki, self.mock_port, port, issuer, HA_CONSUMERS,
                               maxconn=max(1000, min(20000, (hard - 200) // 2)))
        rc, out = hgenconf.check(hb, path)
        if rc != 0:
            raise SetupError("haproxy -c failed:\n" + out)
        p = spawn([hb, "-db", "-f", path], cpu=PROXY_CPU, cwd=d, out=os.path.join(d, "access.jsonl"),
                  err=os.path.join(d, "stderr"))
        try:
            wait_tcp(port, p, START_TIMEOUT, "haproxy")
        except SetupError as e:
            raise SetupError("%s\n%s" % (e, read_text(os.path.join(d, "stderr"))))
        return Target(name, p, "haproxy", port=port, dir=d, issuer=issuer)

    def functional_check(self):
        """The same battery against GW-FULL and HAProxy: a valid request
        (200), then one broken check at a time (refused). Fills
        self.func_rows; a peer that lets a broken request through makes its
        comparison invalid (self.failures["S2H"])."""
        gw, ha = self.targets["gw-full"], self.targets["haproxy"]
        pki = self.pki
        tok_key = tokens.load_key(os.path.join(pki, "token-es256.key"))
        other_key = tokens.ec.generate_private_key(tokens.ec.SECP256R1())
        x5t = tokens.x5t_of_pem(os.path.join(pki, "client-commune.crt"))
        x5t_dep = tokens.x5t_of_pem(os.path.join(pki, "client-departement.crt"))
        cid, hab = "commune-exemple-sandbox", "H9001"
        now = int(time.time())

        def mint(key=tok_key, **kw):
            return tokens.mint(key, gw.issuer, kw.pop("client_id", cid), hab, kw.pop("x5t", x5t), **kw)

        good = self.token
        p_decl, p_cre = PATHS[0], PATHS[1]
        cases = [
            # (case, check, cert, token, path, headers override, expect)
            ("valid request (gateway-issued token)", "—", "client-commune", good, p_decl, {}, "allow"),
            ("valid request (second route)", "—", "client-commune", good, p_cre, {}, "allow"),
            ("certificate not bound to any consumer", "certificate identity", "client-prive", good, p_decl, {},
             "deny"),
            ("no X-Correlation-ID", "correlation id", "client-commune", good, p_decl,
             {"X-Correlation-ID": None}, "deny"),
            ("X-Correlation-ID not a UUID", "correlation id", "client-commune", good, p_decl,
             {"X-Correlation-ID": "not-a-uuid"}, "deny"),
            ("wrong ID_Teleservice", "teleservice", "client-commune", good, p_decl,
             {"ID_Teleservice": "TS-9999"}, "deny"),
            ("no bearer token", "bearer", "client-commune", None, p_decl, {}, "deny"),
            ("token signed by another key", "bearer signature", "client-commune", mint(key=other_key), p_decl, {},
             "deny"),
            ("expired token (exp 10 min ago)", "bearer exp", "client-commune",
             mint(now=now - 4200, lifetime_s=3600), p_decl, {}, "deny"),
            ("token of another client_id", "bearer client_id", "client-commune",
             mint(client_id="departement-test-sandbox"), p_decl, {}, "deny"),
            ("token bound to another certificate (cnf x5t#S256)", "certificate binding", "client-commune",
             mint(x5t=x5t_dep), p_decl, {}, "deny"),
            ("token without the route's scope", "scope per route", "client-commune",
             mint(scopes=["api_opale_creances"]), p_decl, {}, "deny"),
            ("annee outside the consumer's years (2030)", "annee range", "client-commune", good,
             p_decl.replace("annee=2023", "annee=2030"), {}, "deny"),
            ("annee missing", "annee range", "client-commune", good, p_decl.split("?")[0], {}, "deny"),
        ]
        # HAProxy only: its rate limit and allowlist on consumers the
        # gateway's GW-FULL has no policy for (the gateway's own quota and
        # allowlist are measured by S7 and tested by tests/integration/).
        dep_tok = mint(client_id="departement-test-sandbox", x5t=x5t_dep)
        secu_tok = mint(client_id="caisse-secu-sandbox", x5t=tokens.x5t_of_pem(os.path.join(pki, "client-secu.crt")))
        ha_only = [
            ("source outside the consumer's allowlist", "source allowlist", "client-secu", secu_tok, p_decl,
             {"ID_Teleservice": "TS-0003"}, "deny"),
        ]
        rows = []
        bad = {"gw": [], "haproxy": []}
        for case, check, cert, tok, path, over, expect in cases + ha_only:
            row = {"case": case, "check": check, "expect": expect}
            for role, t in (("gw", gw), ("haproxy", ha)):
                if (case, check) in [(c[0], c[1]) for c in ha_only] and role == "gw":
                    row[role] = None
                    continue
                cid_req = str(uuid.uuid4())
                h = {"X-Correlation-ID": cid_req, "ID_Teleservice": TELESERVICE}
                if tok:
                    h["Authorization"] = "Bearer " + tok
                for k, v in over.items():
                    if v is None:
                        h.pop(k, None)
                    else:
                        h[k] = v
                st = self.status_of(t.port, path, cert, h)
                row[role] = st
                row[role + "_cid"] = h.get("X-Correlation-ID")
                ok = (st == 200) if expect == "allow" else (st is not None and st >= 400)
                if not ok:
                    bad[role].append("%s: %s" % (case, st))
            rows.append(row)
        # the rate limit: quota 3 per minute for the departement
        seq = []
        for i in range(4):
            h = {"X-Correlation-ID": str(uuid.uuid4()), "ID_Teleservice": "TS-0002",
                 "Authorization": "Bearer " + dep_tok}
            seq.append(self.status_of(ha.port, p_decl, "client-departement", h))
        rows.append({"case": "4 requests in a minute, quota 3 (stick-table)", "check": "rate limit per consumer",
                     "expect": "3 allow, then deny", "gw": None, "haproxy": "/".join(str(s) for s in seq)})
        if seq[:3] != [200, 200, 200] or seq[3] != 429:
            bad["haproxy"].append("rate limit: %s" % seq)
        # a JSON access log line per request, naming the consumer
        time.sleep(0.3)
        lines = [ln for ln in read_text(os.path.join(ha.dir, "access.jsonl")).splitlines() if ln.startswith("{")]
        parsed = []
        for ln in lines:
            try:
                parsed.append(json.loads(ln))
            except ValueError:
                bad["haproxy"].append("access log line is not JSON: %s" % ln[:120])
                break
        named = [x for x in parsed if x.get("consumer") == "commune-exemple-sandbox"]
        # which check refused each request: HAProxy's log ("deny", set by
        # each rule before its deny) and the gateway's journal ("reason")
        ha_why = {x.get("correlation_id"): x.get("deny") for x in parsed}
        gw_why = {x.get("correlation_id"): x.get("reason") for x in journal_records(gw.journal_dir)}
        for row in rows:
            for role, why in (("gw", gw_why), ("haproxy", ha_why)):
                c = row.pop(role + "_cid", None)
                if c and why.get(c) and why[c] != "-":
                    row[role + "_why"] = why[c]
                    exp = EXPECT_WHY.get(row["check"])
                    if exp and row["expect"] == "deny" and not re.search(exp[0 if role == "gw" else 1], why[c]):
                        bad[role].append("%s: refused by %s, not by the %s check" % (row["case"], why[c],
                                                                                    row["check"]))
        rows.append({"case": "JSON access log", "check": "log", "expect": "one JSON line per request",
                     "gw": None, "haproxy": "%d lines, %d naming the consumer" % (len(parsed), len(named))})
        if len(parsed) < len(cases) or not named:
            bad["haproxy"].append("access log: %d JSON lines" % len(parsed))
        self.func_rows = rows
        self.func_bad = bad
        log("functional check: gateway %s, HAProxy %s" % (
            "OK" if not bad["gw"] else "FAILED %s" % bad["gw"], "OK" if not bad["haproxy"] else
            "FAILED %s" % bad["haproxy"]))
        if bad["haproxy"] or bad["gw"]:
            self.failures["S2H"] = "functional check failed: gateway %s; HAProxy %s" % (bad["gw"], bad["haproxy"])

    def status_of(self, port, path, cert, headers):
        """The status of one GET over mTLS with <cert> (a PKI name), or None
        when the handshake or the connection failed."""
        ctx = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.crt"))
        ctx.load_cert_chain(os.path.join(self.pki, cert + ".crt"), os.path.join(self.pki, cert + ".key"))
        c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=5)
        try:
            c.request("GET", path, headers=headers)
            r = c.getresponse()
            r.read()
            return r.status
        except (OSError, ssl.SSLError, http.client.HTTPException):
            return None
        finally:
            c.close()

    def stop_haproxy(self, t):
        stop(t.proc)

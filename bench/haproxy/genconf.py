#!/usr/bin/env python3
"""Render bench/haproxy/haproxy.cfg.in into DIR/haproxy.cfg (stdlib only,
plus the `openssl` command for the token key's public half).

Usage: genconf.py --dir DIR --pki PKI --mock-port N --port N --issuer URL
                  [--consumer NAME:CLIENT_ID:TELESERVICE:FROM:TO:PER_MINUTE:CIDR[,CIDR]]...
                  [--check HAPROXY]

Consumers are named by their certificate in PKI (PKI/NAME.crt). DIR gets
haproxy.cfg, server-ecdsa.pem and server-rsa.pem (certificate + key), consumers.map (SHA-256 of the DER certificate -> "client_id
teleservice year_from year_to per_minute"), scopes.map (route regex ->
scope) and token-es256.pub.pem (the public half of PKI/token-es256.key, for
jwt_verify). With --check, `HAPROXY -c -f` is run on the result and its exit
status returned (its output on stderr).
"""

import argparse
import hashlib
import os
import re
import ssl
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "haproxy.cfg.in")

# The gateway's routes (tests/integration/harness.py ROUTES): name, scope,
# whether `annee` is bounded by the consumer's years.
ROUTES = [
    ("declarations", "api_opale_declarations"),
    ("comptes-bancaires", "api_opale_bancaires"),
    ("creances", "api_opale_creances"),
    ("paiements", "api_opale_paiements"),
    ("remboursements", "api_opale_remboursements"),
    ("obligations-fiscales", "api_opale_obligations_fiscales"),
    ("habilitations", "api_opale_habilitations"),
]


class Consumer:
    def __init__(self, name, client_id, teleservice, year_from, year_to, per_minute, cidrs):
        self.name, self.client_id, self.teleservice = name, client_id, teleservice
        self.year_from, self.year_to, self.per_minute = int(year_from), int(year_to), int(per_minute)
        self.cidrs = list(cidrs)

    @classmethod
    def parse(cls, s):
        parts = s.split(":")
        if len(parts) != 7:
            raise ValueError("--consumer: expected NAME:CLIENT_ID:TELESERVICE:FROM:TO:PER_MINUTE:CIDRS, got %r" % s)
        return cls(*parts[:6], parts[6].split(","))


def cert_sha256(path):
    """Lower-case hex SHA-256 of the DER form of the PEM certificate <path>."""
    with open(path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


def _word(s, what):
    if not re.fullmatch(r"[A-Za-z0-9._:/-]+", s):
        raise ValueError("%s: %r has characters the HAProxy map or config cannot take as is" % (what, s))
    return s


def render(dir, pki, mock_port, port, issuer, consumers, audience="api-opale", leeway_s=60, maxconn=20000,
           upstream_maxconn=64):
    """Write DIR/haproxy.cfg and its map and key files; return the config's
    path. Raises ValueError on an unreplaced placeholder or a value the
    config cannot hold, OSError/subprocess errors on a missing key."""
    dir = os.path.abspath(dir)
    pki = os.path.abspath(pki)
    lines = []
    for c in consumers:
        for v, what in ((c.client_id, "client_id"), (c.teleservice, "teleservice")):
            _word(v, what)
        lines.append("%s %s %s %d %d %d" % (cert_sha256(os.path.join(pki, c.name + ".crt")), c.client_id,
                                            c.teleservice, c.year_from, c.year_to, c.per_minute))
    with open(os.path.join(dir, "consumers.map"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(dir, "scopes.map"), "w") as f:
        for name, scope in ROUTES:
            f.write("^/opale/v1/entreprises/[0-9]{9}/%s$ %s\n" % (name, scope))
    # HAProxy wants the certificate and its key in one PEM file
    for kind in ("ecdsa", "rsa"):
        with open(os.path.join(dir, "server-%s.pem" % kind), "w") as out:
            for ext in ("crt", "key"):
                with open(os.path.join(pki, "server-%s.%s" % (kind, ext))) as f:
                    out.write(f.read())
        os.chmod(os.path.join(dir, "server-%s.pem" % kind), 0o600)
    pub = os.path.join(dir, "token-es256.pub.pem")
    r = subprocess.run(["openssl", "pkey", "-in", os.path.join(pki, "token-es256.key"), "-pubout", "-out", pub],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if r.returncode != 0:
        raise OSError("openssl pkey -pubout: " + r.stdout.decode(errors="replace"))
    src = []
    for c in consumers:
        nets = " ".join(_word(n, "cidr") for n in c.cidrs)
        src.append("    http-request set-var(txn.why) str(source) if { var(txn.client) -m str %s } !{ src %s }"
                   % (c.client_id, nets))
        src.append("    http-request deny deny_status 403 if { var(txn.client) -m str %s } !{ src %s }"
                   % (c.client_id, nets))
    sc = []
    for name, scope in ROUTES:
        acl = "sc_" + re.sub(r"[^a-z]", "_", name)
        sc.append("    acl r_%s path_reg ^/opale/v1/entreprises/[0-9]{9}/%s$" % (acl, name))
        sc.append("    acl %s var(txn.tok),jwt_payload_query('$.scope') -m reg (^|\\ )%s(\\ |$)" % (acl, scope))
        sc.append("    http-request set-var(txn.why) str(bearer.scope) if r_%s !%s" % (acl, acl))
        sc.append("    http-request deny deny_status 403 if r_%s !%s" % (acl, acl))
    values = {
        "DIR": dir, "PKI": pki, "MOCK_PORT": int(mock_port), "PORT": int(port), "ISSUER": _word(issuer, "issuer"),
        "AUDIENCE": _word(audience, "audience"), "LEEWAY": int(leeway_s), "MAXCONN": int(maxconn),
        "UPSTREAM_MAXCONN": int(upstream_maxconn),
        "SOURCE_RULES": "\n".join(src) + "\n", "SCOPE_RULES": "\n".join(sc) + "\n",
    }
    with open(TEMPLATE) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise ValueError("haproxy.cfg.in: unreplaced placeholders %s" % sorted(set(left)))
    path = os.path.join(dir, "haproxy.cfg")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)
    return path


def check(haproxy, path):
    """`haproxy -c -f PATH`; returns (rc, output)."""
    r = subprocess.run([haproxy, "-c", "-f", path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    return r.returncode, r.stdout.decode(errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--pki", required=True)
    ap.add_argument("--mock-port", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--consumer", action="append", default=[])
    ap.add_argument("--check", metavar="HAPROXY")
    a = ap.parse_args()
    consumers = [Consumer.parse(s) for s in a.consumer] or [
        Consumer("client-commune", "commune-exemple-sandbox", "TS-0001", 2019, 2025, 1000000, ["127.0.0.1/32"])]
    path = render(a.dir, a.pki, a.mock_port, a.port, a.issuer, consumers)
    print(path)
    if a.check:
        rc, out = check(a.check, path)
        sys.stderr.write(out)
        return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())

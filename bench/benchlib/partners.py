"""Access tokens and client certificates made by the bench itself
(python3-cryptography):

- mint(): an ES256 access token with exactly the claims the gateway's
  `/token` puts in its own (gateway/token/endpoint.c), signed with the
  run's token key (PKI/token-es256.key, the gateway's active signing key,
  kid "bench-es256"). The HAProxy functional check uses it for tokens the
  endpoint would never issue (expired, wrong scope, bound to another
  certificate), and S8 for 10,000 partners' tokens without 10,000 token
  requests.
- make_partners(): N client certificates from the run's dev CA (P-256,
  clientAuth, as deploy/sandbox/pki.sh issues them), their keys, a token for
  each and a gateway policy for each, in a few seconds for 10,000 (one
  process, no openssl CLI call per certificate).

Outputs for opale-loadgen --partner-certs / --partner-headers
(docs/loadgen.md): one PEM file with, per partner, its certificate then its
key; one text file with, per partner, its extra request headers separated
by tabs (Authorization and ID_Teleservice).
"""

import base64
import datetime
import hashlib
import json
import os
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from benchlib import common  # noqa: F401  (puts tests/integration/ on sys.path, for harness)
import harness  # noqa: E402  (tests/integration/harness.py)

KID = "bench-es256"          # the gateway's signing key id in the bench (processes.gw_conf)
AUDIENCE = "api-opale"       # the gateway's default oauth.audience
SCOPES = ["api_opale_declarations", "api_opale_creances"]


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def x5t_of_der(der):
    """cnf x5t#S256 of a certificate: base64url(SHA-256(DER)), no padding."""
    return b64u(hashlib.sha256(der).digest())


def x5t_of_pem(path):
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return x5t_of_der(cert.public_bytes(serialization.Encoding.DER))


P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def sign_jws(key, header, claims):
    """Compact JWS, ES256 (raw r || s, 64 bytes), s in its low form (the
    gateway accepts only that one of the two equivalent signatures)."""
    si = b64u(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64u(json.dumps(claims, separators=(",", ":")).encode())
    der = key.sign(si.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    if s > P256_N // 2:
        s = P256_N - s
    return si + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def claims(issuer, client_id, habilitation, x5t, scopes=None, now=None, lifetime_s=3600, exp=None):
    """The claims of a gateway access token (gateway/token/endpoint.c)."""
    now = int(time.time()) if now is None else int(now)
    return {"iss": issuer, "sub": client_id, "client_id": client_id, "aud": AUDIENCE,
            "exp": now + lifetime_s if exp is None else int(exp), "iat": now, "nbf": now,
            "jti": str(uuid.uuid4()), "scope": " ".join(scopes or SCOPES), "habilitation": habilitation,
            "keytype": "SANDBOX", "cnf": {"x5t#S256": x5t}}


def mint(key, issuer, client_id, habilitation, x5t, kid=KID, **kw):
    return sign_jws(key, {"alg": "ES256", "typ": "at+jwt", "kid": kid},
                    claims(issuer, client_id, habilitation, x5t, **kw))


def make_partners(pki, n, out_dir, issuer, per_minute=50, prefix="s8", lifetime_s=7200, kid=KID):
    """<n> partners issued by the dev CA in <pki>: writes OUT/partners.pem
    (certificate then key, per partner), OUT/partners.headers (one line per
    partner: "Authorization: Bearer T<TAB>ID_Teleservice: TS"), and returns
    (pem_path, headers_path, policies) where policies maps a file name to a
    gateway policy (rights as the bench's commune, 127.0.0.1/32, quota
    <per_minute>). Partner i (1-based) is connection i-1 of the loadgen."""
    with open(os.path.join(pki, "ca.crt"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    ca_key = load_key(os.path.join(pki, "ca.key"))
    tok_key = load_key(os.path.join(pki, "token-es256.key"))
    now = datetime.datetime.now(datetime.timezone.utc)
    ski_ca = x509.SubjectKeyIdentifier.from_public_key(ca.public_key())
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski_ca)
    ts_now = int(time.time())
    os.makedirs(out_dir, exist_ok=True)
    pem_path = os.path.join(out_dir, "partners.pem")
    hdr_path = os.path.join(out_dir, "partners.headers")
    policies = {}
    pem_out, hdr_out = [], []
    nopem = serialization.NoEncryption()
    for i in range(1, n + 1):
        name = "%s-partner-%05d" % (prefix, i)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OPALE Bench Partner"),
                                         x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=False, crl_sign=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(aki, critical=False)
                .sign(ca_key, hashes.SHA256()))
        der = cert.public_bytes(serialization.Encoding.DER)
        client_id = name + "-sandbox"
        hab = "H%d" % (300000 + i)
        ts = "TS-%s%05d" % (prefix.upper(), i)
        tok = mint(tok_key, issuer, client_id, hab, x5t_of_der(der), kid=kid, now=ts_now, lifetime_s=lifetime_s)
        pem_out.append(cert.public_bytes(serialization.Encoding.PEM))
        pem_out.append(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, nopem))
        hdr_out.append("Authorization: Bearer %s\tID_Teleservice: %s\n" % (tok, ts))
        policies["%s.json" % name] = {
            "habilitation": {"id": hab, "definition": "api_opale_sandbox", "state": "active",
                             "valid_from": "2020-01-01", "valid_until": "2099-12-31", "legal_basis": "Bench"},
            "organization": {"siret": harness.make_siret(500000 + i), "name": "Partenaire bench %d" % i},
            "consumer": {"client_id": client_id, "id_teleservice": ts,
                         "certificates": [{"sha256": hashlib.sha256(der).hexdigest()}],
                         "ip_allowlist": ["127.0.0.1/32"]},
            "rights": {"scopes": list(SCOPES), "years": {"from": 2019, "to": 2025}},
            "quota": {"per_minute": per_minute},
        }
    fd = os.open(pem_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(b"".join(pem_out))
    with open(hdr_path, "w") as f:
        f.write("".join(hdr_out))
    return pem_path, hdr_path, policies


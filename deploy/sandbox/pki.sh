#!/usr/bin/env bash
# Dev PKI for the opale-gateway sandbox stack and the integration tests.
#
# Usage: deploy/sandbox/pki.sh [OUTDIR] [--force]
#        deploy/sandbox/pki.sh [OUTDIR] issue NAME [--subject SUBJECT]
#   OUTDIR   where the PKI is (default: deploy/sandbox/pki next to this script)
#   --force  regenerate even when OUTDIR/ca.crt already exists
#   issue NAME
#            issue one more client certificate from the existing dev CA in
#            OUTDIR: OUTDIR/NAME.key (P-256), OUTDIR/NAME.crt (clientAuth,
#            825 days), the CSR removed once signed; appends "NAME SHA256HEX"
#            to OUTDIR/fingerprints.txt and prints that line (the SHA-256 of
#            the DER certificate, what a policy's consumer.certificates[].sha256
#            takes). SUBJECT defaults to "/O=OPALE Dev Partner/CN=NAME". NAME is
#            [A-Za-z0-9._-]+ and must not exist yet. Nothing else changes:
#            the other certificates, the CRL and the running gateway stay.
#
# Needs only the openssl 3.0 command line tool. Everything here is for
# development and tests: the keys are unencrypted and the CA is throw-away.
#
# Output (OUTDIR):
#   ca.crt ca.key                     "OPALE Dev Client+Server CA" (ECDSA P-256)
#   server-ecdsa.crt/.key             P-256, SAN localhost/127.0.0.1/::1, serverAuth
#   server-rsa.crt/.key               RSA 2048, same names, serverAuth
#   client-commune.crt/.key           valid client (Commune d'Exemple)
#   client-departement.crt/.key       valid client bound to no example policy
#   client-secu.crt/.key              valid client (Caisse de sécurité sociale, policies/caisse-secu.json)
#   client-prive.crt/.key             valid client (Organisme privé, policies/organisme-prive.json)
#   client-expired.crt/.key           valid 2020-01-01 .. 2021-01-01
#   client-notyet.crt/.key            valid from 2099
#   client-revoked.crt/.key           revoked in crl.pem
#   unknown-ca.crt/.key               a second, unrelated CA
#   client-unknown-ca.crt/.key        client certificate signed by unknown-ca
#   crl.pem                           CRL of the dev CA (nextUpdate +365 days)
#   token-es256.key                   token-signing key (P-256, ES256), the sandbox's active one
#   token-ed25519.key token-rsa.key   more signing keys (EdDSA, RS256/PS256) for rotation
#   fingerprints.txt                  "NAME SHA256HEX" (SHA-256 of the DER certificate)
#   admin.token                       admin bearer token (32 random bytes, hex)
#   assertion-mac.key                 backend assertion MAC key, shared by the gateway and
#                                     opale-mock --mac-key (32 random bytes, hex)
#   ca-db/                            the `openssl ca` database (index.txt, serial,
#                                     crlnumber, openssl.cnf, newcerts/)
#
# To revoke certificates later (or issue with other options than `issue`):
#   OPALE_PKI_DIR=OUTDIR openssl ca -config OUTDIR/ca-db/openssl.cnf ...
set -euo pipefail

usage() {
    echo "usage: $0 [OUTDIR] [--force]" >&2
    echo "       $0 [OUTDIR] issue NAME [--subject SUBJECT]" >&2
    exit 2
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=""
force=0
issue_name=""
subject=""
mode=create
while [[ $# -gt 0 ]]; do
    arg=$1
    shift
    case "$arg" in
    --force) force=1 ;;
    --subject)
        [[ $# -gt 0 ]] || usage
        subject=$1
        shift
        ;;
    -h | --help) usage ;;
    -*)
        echo "$0: unknown option: $arg" >&2
        usage
        ;;
    issue)
        if [[ $mode == issue || $# -eq 0 ]]; then usage; fi
        mode=issue
        issue_name=$1
        shift
        ;;
    *)
        if [[ -n "$outdir" || $mode == issue ]]; then
            echo "$0: unexpected argument: $arg (OUTDIR comes first)" >&2
            usage
        fi
        outdir="$arg"
        ;;
    esac
done
[[ -n "$outdir" ]] || outdir="$script_dir/pki"
if [[ $mode == create && -n "$subject" ]]; then
    echo "$0: --subject goes with issue NAME" >&2
    usage
fi

if ! command -v openssl >/dev/null 2>&1; then
    echo "$0: openssl not found (apt-get install openssl)" >&2
    exit 1
fi

# issue NAME: one more client certificate from the CA already in OUTDIR.
if [[ $mode == issue ]]; then
    if [[ ! $issue_name =~ ^[A-Za-z0-9._-]+$ || $issue_name == .* ]]; then
        echo "$0: issue: NAME must match [A-Za-z0-9._-]+ and not start with a dot" >&2
        exit 2
    fi
    for f in ca.crt ca.key ca-db/openssl.cnf ca-db/index.txt; do
        if [[ ! -e "$outdir/$f" ]]; then
            echo "$0: issue: no dev CA in $outdir ($f missing): run $0${outdir:+ $outdir} first" >&2
            exit 1
        fi
    done
    outdir=$(cd "$outdir" && pwd)
    if [[ -e "$outdir/$issue_name.crt" || -e "$outdir/$issue_name.key" ]]; then
        echo "$0: issue: $outdir/$issue_name.crt or .key already exists" >&2
        exit 1
    fi
    [[ -n "$subject" ]] || subject="/O=OPALE Dev Partner/CN=$issue_name"
    export OPALE_PKI_DIR="$outdir"
    log=$(mktemp)
    csr="$outdir/.$issue_name.csr"
    trap 'rm -f "$log" "$csr"' EXIT
    umask 077
    run() {
        if ! openssl "$@" >"$log" 2>&1; then
            echo "$0: openssl $1 failed:" >&2
            cat "$log" >&2
            rm -f "$outdir/$issue_name.key" "$outdir/$issue_name.crt"
            exit 1
        fi
    }
    run genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$outdir/$issue_name.key"
    run req -new -config "$outdir/ca-db/openssl.cnf" -key "$outdir/$issue_name.key" -subj "$subject" -out "$csr"
    run ca -batch -notext -config "$outdir/ca-db/openssl.cnf" -extensions ext_client -in "$csr" \
        -out "$outdir/$issue_name.crt"
    chmod 644 "$outdir/$issue_name.crt"
    fp=$(openssl x509 -in "$outdir/$issue_name.crt" -outform DER | sha256sum | cut -d' ' -f1)
    echo "$issue_name $fp" >>"$outdir/fingerprints.txt"
    echo "$issue_name $fp"
    exit 0
fi

# A PKI from an older version of this script (without every certificate the
# example policies name) is made again.
if [[ -e "$outdir/ca.crt" && -e "$outdir/client-prive.crt" && -e "$outdir/token-rsa.key" &&
    $force -eq 0 ]]; then
    # the backend assertion's MAC key came later: added alone, the
    # certificates (and the fingerprints the policies name) stay
    if [[ ! -e "$outdir/assertion-mac.key" ]]; then
        (umask 077 && openssl rand -hex 32 >"$outdir/assertion-mac.key")
        echo "PKI already present in $outdir; assertion-mac.key added"
        exit 0
    fi
    echo "PKI already present in $outdir"
    exit 0
fi

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

# Work in a staging directory inside OUTDIR and move the result in at the
# end, ca.crt last: an interrupted run never leaves a ca.crt behind, so the
# next run starts over instead of trusting a half-made PKI.
stage=$(mktemp -d "$outdir/.pki-stage.XXXXXX")
cleanup() { rm -rf "$stage"; }
trap cleanup EXIT

export OPALE_PKI_DIR="$stage"
db="$stage/ca-db"
mkdir -p "$db/newcerts"
: >"$db/index.txt"
echo "unique_subject = no" >"$db/index.txt.attr"
openssl rand -hex 8 >"$db/serial"
echo 1000 >"$db/crlnumber"

cnf="$db/openssl.cnf"
cat >"$cnf" <<'EOF'
# openssl ca configuration of the OPALE dev CA. The CA directory comes from
# the environment so that the database can be used after it was moved:
#   OPALE_PKI_DIR=/path/to/pki openssl ca -config /path/to/pki/ca-db/openssl.cnf ...
[ ca ]
default_ca = opale_dev_ca

[ opale_dev_ca ]
dir              = $ENV::OPALE_PKI_DIR
database         = $dir/ca-db/index.txt
serial           = $dir/ca-db/serial
crlnumber        = $dir/ca-db/crlnumber
new_certs_dir    = $dir/ca-db/newcerts
certificate      = $dir/ca.crt
private_key      = $dir/ca.key
default_md       = sha256
default_days     = 825
default_crl_days = 365
policy           = policy_dev
preserve         = yes
unique_subject   = no
email_in_dn      = no
copy_extensions  = none
crl_extensions   = crl_ext

[ policy_dev ]
countryName            = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = supplied

[ req ]
distinguished_name = req_dn
string_mask        = utf8only
utf8               = yes
prompt             = no

[ req_dn ]
CN = unused

[ ext_ca ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ ext_server_ec ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectAltName         = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid

[ ext_server_rsa ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth
subjectAltName         = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid

[ ext_client ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid

[ crl_ext ]
authorityKeyIdentifier = keyid
EOF

# Every file created from here on is private unless chmod'ed otherwise.
umask 077

ossl() {
    # openssl is chatty on stderr even when it succeeds; keep its output for
    # the error message only.
    local log="$stage/openssl.log"
    if ! openssl "$@" >"$log" 2>&1; then
        echo "$0: openssl $1 failed:" >&2
        cat "$log" >&2
        exit 1
    fi
}

key_ec() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$stage/$1.key"; }
key_rsa() { ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$stage/$1.key"; }

# issue NAME SUBJECT EXTENSION [extra `openssl ca` options...]
issue() {
    local name=$1 subj=$2 ext=$3
    shift 3
    ossl req -new -config "$cnf" -key "$stage/$name.key" -subj "$subj" -out "$stage/$name.csr"
    ossl ca -batch -notext -config "$cnf" -extensions "$ext" \
        -in "$stage/$name.csr" -out "$stage/$name.crt" "$@"
    rm -f "$stage/$name.csr"
}

# 1. The dev CA (clients and servers).
key_ec ca
ossl req -new -x509 -config "$cnf" -extensions ext_ca -sha256 -days 3650 \
    -key "$stage/ca.key" -subj "/O=OPALE Dev/CN=OPALE Dev Client\\+Server CA" -out "$stage/ca.crt"

# 2. Server certificates: one ECDSA, one RSA, same names.
key_ec server-ecdsa
issue server-ecdsa "/O=OPALE Dev/CN=localhost" ext_server_ec
key_rsa server-rsa
issue server-rsa "/O=OPALE Dev/CN=localhost" ext_server_rsa

# 3. Client certificates.
key_ec client-commune
issue client-commune "/O=Commune d'Exemple/CN=commune-exemple-sandbox" ext_client
key_ec client-departement
issue client-departement "/O=Departement de Test/CN=departement-test-sandbox" ext_client
key_ec client-secu
issue client-secu "/O=Caisse de Securite Sociale/CN=caisse-secu-sandbox" ext_client
key_ec client-prive
issue client-prive "/O=Organisme Prive Certifie/CN=organisme-prive-sandbox" ext_client
key_ec client-expired
issue client-expired "/O=Commune d'Exemple/CN=expired-sandbox" ext_client \
    -startdate 20200101000000Z -enddate 20210101000000Z
key_ec client-notyet
issue client-notyet "/O=Commune d'Exemple/CN=notyet-sandbox" ext_client \
    -startdate 20990101000000Z -enddate 21000101000000Z
key_ec client-revoked
issue client-revoked "/O=Commune d'Exemple/CN=revoked-sandbox" ext_client

# 4. Revoke one and publish the CRL.
ossl ca -batch -config "$cnf" -revoke "$stage/client-revoked.crt" -crl_reason keyCompromise
ossl ca -batch -config "$cnf" -gencrl -crldays 365 -out "$stage/crl.pem"

# 5. An unrelated CA and a client certificate it signed.
key_ec unknown-ca
ossl req -new -x509 -config "$cnf" -extensions ext_ca -sha256 -days 3650 \
    -key "$stage/unknown-ca.key" -subj "/O=Elsewhere/CN=Unknown Dev CA" -out "$stage/unknown-ca.crt"
key_ec client-unknown-ca
ossl req -new -config "$cnf" -key "$stage/client-unknown-ca.key" \
    -subj "/O=Elsewhere/CN=unknown-ca-client" -out "$stage/client-unknown-ca.csr"
ossl x509 -req -sha256 -days 825 -in "$stage/client-unknown-ca.csr" \
    -CA "$stage/unknown-ca.crt" -CAkey "$stage/unknown-ca.key" -set_serial "0x$(openssl rand -hex 12)" \
    -extfile "$cnf" -extensions ext_client -out "$stage/client-unknown-ca.crt"
rm -f "$stage/client-unknown-ca.csr"

# 5b. Token-signing keys of the gateway (OAuth2 access tokens, X-JWT-Assertion).
key_ec token-es256
ossl genpkey -algorithm ED25519 -out "$stage/token-ed25519.key"
key_rsa token-rsa

# 6. Fingerprints (SHA-256 of the DER certificate, lowercase hex) and the
#    admin token.
names=(ca server-ecdsa server-rsa client-commune client-departement client-secu client-prive client-expired
    client-notyet client-revoked unknown-ca client-unknown-ca)
: >"$stage/fingerprints.txt"
for n in "${names[@]}"; do
    fp=$(openssl x509 -in "$stage/$n.crt" -outform DER | sha256sum | cut -d' ' -f1)
    echo "$n $fp" >>"$stage/fingerprints.txt"
done
openssl rand -hex 32 >"$stage/admin.token"
openssl rand -hex 32 >"$stage/assertion-mac.key"

# Permissions: keys and the token private, the rest readable.
for n in "${names[@]}"; do
    chmod 600 "$stage/$n.key"
    chmod 644 "$stage/$n.crt"
done
chmod 600 "$stage/admin.token" "$stage/assertion-mac.key"
chmod 644 "$stage/crl.pem" "$stage/fingerprints.txt"
chmod 700 "$db"
rm -f "$stage/openssl.log"

# 7. Move into place, ca.crt last.
rm -rf "$outdir/ca-db"
mv "$db" "$outdir/ca-db"
for f in "$stage"/*; do
    [[ "$(basename "$f")" == ca.crt ]] && continue
    mv -f "$f" "$outdir/"
done
mv -f "$stage/ca.crt" "$outdir/ca.crt"

echo "PKI written to $outdir"

#!/bin/bash
# The compose stack's one-shot job: the dev PKI (deploy/sandbox/pki.sh) into
# /etc/opale-gateway/pki (the shared "pki" volume), then the JWKS of the
# gateways' token key for the mock (--export-jwks checks the whole
# configuration and the policies first). Kept when already there.
set -euo pipefail
pki=/etc/opale-gateway/pki
/usr/local/share/opale-gateway/pki.sh "$pki"
/usr/local/bin/opale-gateway --export-jwks -c /etc/opale-gateway/gateway.json >"$pki/gateway-jwks.json.tmp"
mv -f "$pki/gateway-jwks.json.tmp" "$pki/gateway-jwks.json"
echo "pki-job: $pki ready"

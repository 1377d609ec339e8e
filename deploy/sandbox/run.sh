#!/usr/bin/env bash
# `make run`: the sandbox stack in the foreground: opale-mock on 127.0.0.1:9080
# and opale-gateway with deploy/sandbox/gateway.json (public mTLS listener on
# localhost:8443, admin listener on 127.0.0.1:9901). Ctrl-C stops both.
#
# Usage: deploy/sandbox/run.sh [BUILD_DIR]     (default: build)
#   BUILD_DIR holds opale-gateway and deploy/mock-opale/opale-mock.
#
# The README's "Try it" commands run in a second terminal, from the
# repository root, while this one stays in the foreground.
#
# Ports: by default the shipped deploy/sandbox/gateway.json is used as it is.
# When these ports are taken (another stack, a test suite running alongside),
# set any of:
#   OPALE_SANDBOX_PORT        public mTLS listener (default 8443)
#   OPALE_SANDBOX_ADMIN_PORT  admin listener       (default 9901)
#   OPALE_SANDBOX_MOCK_PORT   opale-mock           (default 9080)
# run.sh then writes deploy/sandbox/.gateway-ports.json, the shipped config
# with only those ports (and the token issuer's port) changed, next to it so
# that every relative path stays as shipped, and runs that. The doc examples
# name the default ports: replace them by yours.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
gw="$build/opale-gateway"
mock="$build/deploy/mock-opale/opale-mock"
for b in "$gw" "$mock"; do
  if [ ! -x "$b" ]; then
    echo "run.sh: $b not found: build first (make run does)" >&2
    exit 1
  fi
done
mkdir -p "$here/journal"

port=${OPALE_SANDBOX_PORT:-8443}
admin_port=${OPALE_SANDBOX_ADMIN_PORT:-9901}
mock_port=${OPALE_SANDBOX_MOCK_PORT:-9080}
conf="$here/gateway.json"
if [ -n "${OPALE_SANDBOX_PORT:-}${OPALE_SANDBOX_ADMIN_PORT:-}${OPALE_SANDBOX_MOCK_PORT:-}" ]; then
  conf="$here/.gateway-ports.json"
  python3 - "$here/gateway.json" "$conf" "$port" "$admin_port" "$mock_port" <<'PY'
import json, sys
src, dst, port, admin_port, mock_port = sys.argv[1:]
c = json.load(open(src))
for l in c["listeners"]:
    l["port"] = int(port)
for u in c["upstreams"]:
    u["servers"] = ["127.0.0.1:%s" % mock_port]
c["admin"]["port"] = int(admin_port)
if "issuer" in c.get("oauth", {}):
    c["oauth"]["issuer"] = "https://localhost:%s" % port
json.dump(c, open(dst, "w"), indent=2)
PY
  echo "run.sh: ports from the environment: public $port, admin $admin_port, mock $mock_port ($conf)"
fi

"$gw" -t -c "$conf"
# The mock trusts only requests carrying the gateway's signed grant
# (X-JWT-Assertion) and the MAC of the request (X-Gateway-Request-MAC).
"$gw" --export-jwks -c "$conf" 2>/dev/null >"$here/journal/gateway-jwks.json"

"$mock" --listen 127.0.0.1 --port "$mock_port" --quiet --jwks "$here/journal/gateway-jwks.json" \
  --mac-key "$here/pki/assertion-mac.key" &
mock_pid=$!
gw_pid=
cleanup() {
  [ -n "$gw_pid" ] && kill -TERM "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null || true
  kill -TERM "$mock_pid" 2>/dev/null && wait "$mock_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

"$gw" -c "$conf" &
gw_pid=$!
# Ready when the admin listener says so (policies loaded, journal writable):
# /readyz needs no token and opens no TLS connection on the public port.
ready=
for _ in $(seq 1 100); do
  if ! kill -0 "$gw_pid" 2>/dev/null || ! kill -0 "$mock_pid" 2>/dev/null; then break; fi
  if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$admin_port/readyz")" = 200 ]; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "run.sh: the sandbox stack did not come up (see the messages above)" >&2
  exit 1
fi

pki="deploy/sandbox/pki"
cat <<MSG

opale-gateway (sandbox) is up:
  public mTLS listener  https://localhost:$port   (client certificate required)
  admin listener        http://127.0.0.1:$admin_port    (/healthz, /readyz; /metrics and /admin/ with the token in $pki/admin.token)
  opale-mock backend    http://127.0.0.1:$mock_port
  journal               deploy/sandbox/journal/access.jsonl

Try it in a second terminal, from $top (README.md, "Try it"):
  C="--cert $pki/client-commune.crt --key $pki/client-commune.key --cacert $pki/ca.crt"
  TOKEN=\$(curl -s \$C -d grant_type=client_credentials https://localhost:$port/token \\
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl \$C -H "Authorization: Bearer \$TOKEN" \\
       -H "X-Correlation-ID: \$(cat /proc/sys/kernel/random/uuid)" -H "ID_Teleservice: TS-0001" \\
       "https://localhost:$port/opale/v1/entreprises/732829320/declarations?annee=2023"

Ctrl-C stops the stack.
MSG
wait "$gw_pid"

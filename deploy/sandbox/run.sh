#!/usr/bin/env bash
# `make run`: the sandbox stack in the foreground: opale-mock on 127.0.0.1:9080
# and opale-gateway with deploy/sandbox/gateway.json. Ctrl-C stops both.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
gw="$build/opale-gateway"
mock="$build/deploy/mock-opale/opale-mock"
mkdir -p "$here/journal"

"$gw" -t -c "$here/gateway.json"
# The mock trusts only requests carrying the gateway's signed X-JWT-Assertion.
"$gw" --export-jwks -c "$here/gateway.json" 2>/dev/null >"$here/journal/gateway-jwks.json"

"$mock" --listen 127.0.0.1 --port 9080 --quiet --jwks "$here/journal/gateway-jwks.json" &
mock_pid=$!
gw_pid=
cleanup() {
  [ -n "$gw_pid" ] && kill -TERM "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null || true
  kill -TERM "$mock_pid" 2>/dev/null && wait "$mock_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

"$gw" -c "$here/gateway.json" &
gw_pid=$!
for _ in $(seq 1 50); do
  (exec 3<>/dev/tcp/127.0.0.1/8443) 2>/dev/null && break
  sleep 0.1
done

pki="deploy/sandbox/pki"
cat <<MSG

opale-gateway (sandbox) is up:
  public mTLS listener  https://localhost:8443   (client certificate required)
  admin listener        http://127.0.0.1:9901    (/healthz, /readyz; /metrics with the token in $pki/admin.token)
  opale-mock backend    http://127.0.0.1:9080
  journal               deploy/sandbox/journal/access.jsonl

Try (from $top):
  C="--cert $pki/client-commune.crt --key $pki/client-commune.key --cacert $pki/ca.crt"
  TOKEN=\$(curl -s \$C -d grant_type=client_credentials https://localhost:8443/token \\
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl \$C -H "Authorization: Bearer \$TOKEN" \\
       -H "X-Correlation-ID: \$(cat /proc/sys/kernel/random/uuid)" -H "ID_Teleservice: TS-0001" \\
       "https://localhost:8443/opale/v1/entreprises/732829320/declarations?annee=2023"

Ctrl-C stops the stack.
MSG
wait "$gw_pid"

#!/usr/bin/env bash
# `make demo`: start the sandbox stack on free loopback ports, walk through an
# allowed call and each kind of refusal the gateway makes today, then stop.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
gw="$build/opale-gateway"
mock="$build/deploy/mock-opale/opale-mock"
pki="$here/pki"
work=$(mktemp -d /tmp/opale-demo.XXXXXX)
mkdir -p "$work/journal"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
gp=$(free_port); mp=$(free_port); ap=$(free_port)

# The sandbox configuration with the demo's own ports and journal.
python3 - "$here/gateway.json" "$work/gateway.json" "$gp" "$mp" "$ap" "$pki" "$work" <<'PY'
import json, sys, os
src, dst, gp, mp, ap, pki, work = sys.argv[1:]
c = json.load(open(src))
base = os.path.dirname(os.path.abspath(src))
def fix(p): return p if os.path.isabs(p) else os.path.join(base, p)
for l in c["listeners"]:
    l["port"] = int(gp)
    t = l["tls"]
    for cp in t["certificates"]:
        cp["cert"], cp["key"] = fix(cp["cert"]), fix(cp["key"])
    for k in ("client_ca", "crl"):
        if k in t: t[k] = fix(t[k])
for u in c["upstreams"]:
    u["servers"] = ["127.0.0.1:%s" % mp]
c["journal"]["path"] = os.path.join(work, "journal", "access.jsonl")
if "policies_dir" in c: c["policies_dir"] = fix(c["policies_dir"])
for k in c.get("oauth", {}).get("signing_keys", []):
    k["file"] = fix(k["file"])
for x in c.get("oauth", {}).get("external_issuers", []):
    x["jwks_file"] = fix(x["jwks_file"])
c.get("oauth", {})["issuer"] = "https://localhost:%s" % gp
c["admin"] = {"address": "127.0.0.1", "port": int(ap), "token_file": os.path.join(pki, "admin.token")}
c.setdefault("access", {})["suspensions_file"] = os.path.join(work, "suspensions.json")
json.dump(c, open(dst, "w"), indent=1)
# A second configuration, for the maintenance tour: a forced slot around now.
import time
m = json.loads(json.dumps(c))
now = time.gmtime()
start = (now.tm_hour * 60 + now.tm_min - 1) % 1440
end = (start + 30) % 1440
m["listeners"][0]["port"] = int(gp) + 0  # replaced by the shell below
m.pop("admin", None)
m["journal"]["path"] = os.path.join(work, "journal", "maintenance.jsonl")
m["journal"]["events"] = {"path": os.path.join(work, "journal", "maintenance-events.jsonl")}
m["access"]["suspensions_file"] = os.path.join(work, "suspensions-maint.json")
m["access"]["maintenance"] = {"timezone": "UTC", "force": True,
    "slots": [{"daily": "%02d:%02d-%02d:%02d" % (start // 60, start % 60, end // 60, end % 60)}]}
json.dump(m, open(os.path.join(work, "gateway-maint.json"), "w"), indent=1)
PY

if ! "$gw" --export-jwks -c "$work/gateway.json" >"$work/jwks.json"; then
  echo "demo: invalid configuration" >&2
  exit 1
fi
"$mock" --listen 127.0.0.1 --port "$mp" --quiet --jwks "$work/jwks.json" &
mock_pid=$!
"$gw" -c "$work/gateway.json" 2>"$work/gateway.log" &
gw_pid=$!
cleanup() {
  kill -TERM "$gw_pid" "$mock_pid" 2>/dev/null
  wait "$gw_pid" "$mock_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 50); do grep -q ready "$work/gateway.log" && break; sleep 0.1; done
if ! grep -q ready "$work/gateway.log"; then
  echo "demo: the gateway did not start:" >&2
  cat "$work/gateway.log" >&2
  exit 1
fi

url="https://localhost:$gp"
uuid() { cat /proc/sys/kernel/random/uuid; }
call() { # title, cert, path, extra curl args...
  local title=$1 cert=$2 path=$3; shift 3
  local args=(-s -S --max-time 5 --cacert "$pki/ca.crt")
  [ -n "$cert" ] && args+=(--cert "$pki/$cert.crt" --key "$pki/$cert.key")
  echo "== $title"
  echo "   curl ${cert:+--cert $cert.crt }$url$path"
  local out rc
  out=$(curl "${args[@]}" -w '\n   -> HTTP %{http_code}' "$@" "$url$path" 2>&1); rc=$?
  echo "$out" | sed 's/^/   /' | cut -c1-200
  [ $rc -ne 0 ] && echo "   -> refused by the gateway (curl exit $rc)"
  echo
}
raw() { # title, bytes
  echo "== $1"
  printf '   %q\n' "$2"
  printf '%b' "$2" | timeout 5 openssl s_client -quiet -connect "127.0.0.1:$gp" \
     -cert "$pki/client-commune.crt" -key "$pki/client-commune.key" -CAfile "$pki/ca.crt" 2>/dev/null \
     | head -1 | sed 's/^/   -> /'
  echo
}

admin() { # method path
  curl -s -X "$1" -H "Authorization: Bearer $(cat "$pki/admin.token")" "http://127.0.0.1:$ap$2"
  echo
}
C=(-H "X-Correlation-ID: $(uuid)")
D="/opale/v1/entreprises/732829320/declarations"
token() { # cert -> access token
  curl -s --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/$1.crt" --key "$pki/$1.key" \
    -d grant_type=client_credentials "$url/token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin).get("access_token",""))'
}

echo "opale-gateway demo: gateway https://localhost:$gp, mock 127.0.0.1:$mp"
echo
echo "== OAuth2: the commune obtains a token with its certificate (client_credentials)"
echo "   curl --cert client-commune.crt -d grant_type=client_credentials $url/token"
TOK=$(token client-commune)
echo "   -> access_token ${TOK:0:40}... (ES256 JWT bound to the certificate)"
T=(-H "ID_Teleservice: TS-0001" -H "Authorization: Bearer $TOK")
echo
call "Allowed: declarations of SIREN 732829320 for 2023 (commune, TS-0001)" client-commune "$D?annee=2023" "${C[@]}" "${T[@]}"
call "Health of the API" client-commune "/opale/v1/etatSante" "${C[@]}"
call "Unknown route" client-commune "/opale/v1/inconnu" "${C[@]}"
call "Certificate valid but bound to no habilitation" client-departement "/opale/v1/etatSante" "${C[@]}"
call "Caller IP outside the habilitation's allowlist (organisme-prive allows 192.0.2.0/24 only)" client-prive "/opale/v1/etatSante" "${C[@]}"
call "X-Correlation-ID missing" client-commune "$D?annee=2023" "${T[@]}"
call "ID_Teleservice missing" client-commune "$D?annee=2023" "${C[@]}"
call "ID_Teleservice of another habilitation" client-commune "$D?annee=2023" "${C[@]}" -H "ID_Teleservice: TS-0002"
call "No token" client-commune "$D?annee=2023" "${C[@]}" -H "ID_Teleservice: TS-0001"
call "A forged token" client-commune "$D?annee=2023" "${C[@]}" -H "ID_Teleservice: TS-0001" -H "Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."
TOKS=$(token client-secu)
call "The commune replays the caisse's token (bound to another certificate)" client-commune "$D?annee=2023" "${C[@]}" -H "ID_Teleservice: TS-0001" -H "Authorization: Bearer $TOKS"
call "Scope not granted (the commune has no bank-account scope)" client-commune "/opale/v1/entreprises/732829320/comptes-bancaires" "${C[@]}" "${T[@]}"
call "Year outside the granted period (2019-2025)" client-commune "$D?annee=2026" "${C[@]}" "${T[@]}"
call "Year malformed" client-commune "$D?annee=20x4" "${C[@]}" "${T[@]}"
call "SIREN with a wrong check digit" client-commune "/opale/v1/entreprises/404833047/declarations?annee=2023" "${C[@]}" "${T[@]}"
echo "== Kill switch: the operator cuts the commune off"
echo "   $(admin POST /admin/consumers/commune-exemple-sandbox/suspend)"
call "  ... its next call" client-commune "$D?annee=2023" "${C[@]}" "${T[@]}"
echo "   $(admin POST /admin/consumers/commune-exemple-sandbox/resume)"
call "  ... resumed" client-commune "$D?annee=2023" "${C[@]}" "${T[@]}"
echo "== Quota: the commune may make 50 calls per rolling minute (exact sliding window)"
ok=0; throttled=0; first429=""
for i in $(seq 1 55); do
  out=$(curl -s -i --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/client-commune.crt" --key "$pki/client-commune.key" \
        "${C[@]}" "${T[@]}" "$url$D?annee=2023")
  case "$out" in
    "HTTP/1.1 200"*) ok=$((ok+1)) ;;
    "HTTP/1.1 429"*) throttled=$((throttled+1)); [ -z "$first429" ] && first429="$out" ;;
  esac
done
echo "   55 more calls: $ok answered 200, $throttled refused 429"
echo "$first429" | grep -iE '^(HTTP|RateLimit|Retry-After)|erreur' | sed 's/^/   /' | tr -d '\r'
echo
echo "== Maintenance: a second gateway with a (forced) maintenance slot in progress"
mp2=$(free_port)
python3 - "$work/gateway-maint.json" "$mp2" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["listeners"][0]["port"] = int(sys.argv[2])
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
"$gw" -c "$work/gateway-maint.json" 2>"$work/gateway-maint.log" &
gw2_pid=$!
for _ in $(seq 1 50); do grep -q ready "$work/gateway-maint.log" && break; sleep 0.1; done
for path in "$D?annee=2023" "/opale/v1/etatSante"; do
  out=$(curl -s -i --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/client-commune.crt" --key "$pki/client-commune.key" \
        "${C[@]}" "${T[@]}" "https://localhost:$mp2$path")
  echo "   GET $path"
  echo "$out" | grep -iE '^(HTTP|Retry-After)|erreur|maintenance' | sed 's/^/   -> /' | tr -d '\r'
done
kill -TERM "$gw2_pid" 2>/dev/null; wait "$gw2_pid" 2>/dev/null
echo
call "No client certificate" "" "/opale/v1/etatSante"
call "Expired client certificate" client-expired "/opale/v1/etatSante"
call "Client certificate from an unknown CA" client-unknown-ca "/opale/v1/etatSante"
call "Revoked client certificate (CRL)" client-revoked "/opale/v1/etatSante"
call "TLS 1.1 (refused: TLS 1.2+ only)" client-commune "/opale/v1/etatSante" --tls-max 1.1
raw "Request smuggling: Content-Length and Transfer-Encoding together" \
  'POST /opale/v1/etatSante HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
raw "Whitespace before the colon" 'GET /opale/v1/etatSante HTTP/1.1\r\nHost : x\r\n\r\n'
sleep 0.5
echo "== The journal (one record per request and per refused handshake):"
python3 - "$work/journal/access.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("   %-3s %-6s %-26s %-16s %-28s %s" % (
        r.get("status", "-"), r.get("decision", ""), r.get("reason", ""), r.get("route", ""),
        r.get("consumer", ""), (r.get("tls") or {}).get("cert_sha256", "")[:16]))
PY
echo
echo "Quotas are per habilitation and per instance (in-memory store); the shared Redis store is the next step."

#!/usr/bin/env bash
# `make demo`: start the sandbox stack on free loopback ports, walk through an
# allowed call and each kind of refusal the gateway makes today, then stop.
#
# Usage: deploy/sandbox/demo.sh [BUILD_DIR]     (default: build)
#
# Every step announces the answer it expects (status and DGFIP error code, or
# a refusal during the TLS handshake) and checks it: the script exits 1 when
# any step got another answer (`make test` runs it), 0 otherwise.
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
if "assertion_mac_key_file" in c.get("oauth", {}):
    c["oauth"]["assertion_mac_key_file"] = fix(c["oauth"]["assertion_mac_key_file"])
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
"$mock" --listen 127.0.0.1 --port "$mp" --quiet --jwks "$work/jwks.json" \
  --mac-key "$pki/assertion-mac.key" &
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
failures=0
fail() { # message
  echo "   !! $1"
  failures=$((failures + 1))
}

# Printable names of the bearer tokens, so that a command shows which one it sends.
declare -A TOKNAME=()
show_header() { # "Name: value" -> the value as shown in a printed command
  local h=$1 v
  case "$h" in
    "X-Correlation-ID: $CID") h='X-Correlation-ID: $UUID' ;;
    "Authorization: Bearer "*)
      v=${h#Authorization: Bearer }
      if [ -n "${TOKNAME[$v]:-}" ]; then h="Authorization: Bearer ${TOKNAME[$v]}"
      elif [ ${#v} -gt 40 ]; then h="Authorization: Bearer ${v:0:36}..."; fi ;;
  esac
  printf "%s" "$h"
}
show_cmd() { # cert path curl-args... -> the command line as a user would type it
  local cert=$1 path=$2 s="curl"
  shift 2
  [ -n "$cert" ] && s+=" --cert $cert.crt --key $cert.key"
  while [ $# -gt 0 ]; do
    if [ "$1" = -H ] && [ $# -ge 2 ]; then s+=" -H \"$(show_header "$2")\""; shift 2
    else s+=" $1"; shift; fi
  done
  echo "   $s \"${base:-$url}$path\""
}
describe() { # body file -> "CODE message" of a DGFIP error body, or the start of the data
  python3 - "$1" <<'PY'
import json, sys
raw = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
try:
    e = json.loads(raw).get("erreur")
except (ValueError, AttributeError):
    e = None
if isinstance(e, dict):
    print("%s %s" % (e.get("code", "?"), e.get("message", "")))
else:
    raw = " ".join(raw.split())
    print(raw[:110] + ("..." if len(raw) > 110 else ""))
PY
}

# step EXPECT TITLE CERT PATH [curl args...]
#   EXPECT: "STATUS" or "STATUS CODE" (the error code of the DGFIP body), or
#   "tls" (refused during the TLS handshake: no HTTP answer at all).
step() {
  local expect=$1 title=$2 cert=$3 path=$4
  shift 4
  local args=(-s --max-time 5 --cacert "$pki/ca.crt")
  [ -n "$cert" ] && args+=(--cert "$pki/$cert.crt" --key "$pki/$cert.key")
  echo "== $title"
  show_cmd "$cert" "$path" "$@"
  local status rc=0 got what
  status=$(curl "${args[@]}" -o "$work/body" -w '%{http_code}' "$@" "$url$path" 2>/dev/null) || rc=$?
  if [ "$rc" -ne 0 ] || [ "$status" = 000 ]; then
    got=tls
    echo "   -> refused during the TLS handshake: no HTTP answer"
  else
    what=$(describe "$work/body")
    got="$status ${what%% *}"
    echo "   -> $status $what"
  fi
  case "$expect" in
    tls) [ "$got" = tls ] || fail "expected a refusal during the TLS handshake" ;;
    *" "*) [ "$got" = "$expect" ] || fail "expected $expect" ;;
    *) [ "${got%% *}" = "$expect" ] || fail "expected $expect" ;;
  esac
  echo
}

# raw TITLE EXPECT_STATUS LINE... : one request written byte for byte (CRLF
# line ends) on an mTLS connection, shown one line per line.
raw() {
  local title=$1 expect=$2
  shift 2
  echo "== $title"
  printf '   | %s\n' "$@"
  local out
  out=$(python3 - "$gp" "$pki" "$@" <<'PY'
import json, socket, ssl, sys
port, pki, lines = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
ctx = ssl.create_default_context(cafile=pki + "/ca.crt")
ctx.load_cert_chain(pki + "/client-commune.crt", pki + "/client-commune.key")
with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        t.sendall("".join(l + "\r\n" for l in lines).encode())
        data = b""
        while True:
            try:
                b = t.recv(65536)
            except (OSError, ssl.SSLError):
                break
            if not b:
                break
            data += b
head, _, body = data.partition(b"\r\n\r\n")
status = head.split(b"\r\n", 1)[0].decode("latin-1")
try:
    e = json.loads(body)["erreur"]
    print("%s, %s %s" % (status, e["code"], e["message"]))
except (ValueError, KeyError, TypeError):
    print(status or "no answer")
PY
)
  echo "   -> $out, connection closed"
  case "$out" in "HTTP/1.1 $expect "*) ;; *) fail "expected HTTP/1.1 $expect" ;; esac
  echo
}

admin() { # method path [json-body]
  curl -s -X "$1" -H "Authorization: Bearer $(cat "$pki/admin.token")" \
    ${3:+-H "Content-Type: application/json" --data "$3"} "http://127.0.0.1:$ap$2"
}
CID=$(uuid)
C=(-H "X-Correlation-ID: $CID")
D="/opale/v1/entreprises/732829320/declarations"
token() { # cert -> access token
  curl -s --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/$1.crt" --key "$pki/$1.key" \
    -d grant_type=client_credentials "$url/token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin).get("access_token",""))'
}

echo "opale-gateway demo: gateway https://localhost:$gp, mock 127.0.0.1:$mp"
echo "The commands below name the client certificates of deploy/sandbox/pki/, and UUID=$CID"
echo
echo "== OAuth2: the commune obtains a token with its certificate (client_credentials)"
echo "   TOKEN_COMMUNE=\$(curl --cert client-commune.crt --key client-commune.key -d grant_type=client_credentials '$url/token' | ...)"
TOK=$(token client-commune)
TOKNAME[$TOK]='$TOKEN_COMMUNE'
if [ -n "$TOK" ]; then
  echo "   -> access_token ${TOK:0:40}... (ES256 JWT bound to the certificate)"
else
  fail "expected an access token"
fi
T=(-H "ID_Teleservice: TS-0001" -H "Authorization: Bearer $TOK")
echo
step 200 "Allowed: declarations of SIREN 732829320 for 2023 (commune, TS-0001)" client-commune "$D?annee=2023" "${C[@]}" "${T[@]}"
step 200 "Health of the API" client-commune "/opale/v1/etatSante" "${C[@]}"
step "404 910404" "Unknown route" client-commune "/opale/v1/inconnu" "${C[@]}"
step "401 910201" "Certificate valid but bound to no habilitation" client-departement "/opale/v1/etatSante" "${C[@]}"
step "403 910202" "Caller IP outside the habilitation's allowlist (organisme-prive allows 192.0.2.0/24 only)" client-prive "/opale/v1/etatSante" "${C[@]}"
step "400 910000" "X-Correlation-ID missing" client-commune "$D?annee=2023" "${T[@]}"
step "403 910203" "ID_Teleservice missing" client-commune "$D?annee=2023" "${C[@]}" -H "Authorization: Bearer $TOK"
step "403 910204" "ID_Teleservice of another habilitation" client-commune "$D?annee=2023" "${C[@]}" -H "ID_Teleservice: TS-0002" -H "Authorization: Bearer $TOK"
step "401 900902" "No token" client-commune "$D?annee=2023" "${C[@]}" -H "ID_Teleservice: TS-0001"
step "401 900901" "A forged token (alg none)" client-commune "$D?annee=2023" "${C[@]}" -H "ID_Teleservice: TS-0001" -H "Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."
TOKS=$(token client-secu)
TOKNAME[$TOKS]='$TOKEN_CAISSE'
echo "   (the caisse gets TOKEN_CAISSE the same way, with client-secu.crt)"
step "401 900901" "The commune replays the caisse's token (bound to another certificate)" client-commune "$D?annee=2023" "${C[@]}" -H "ID_Teleservice: TS-0001" -H "Authorization: Bearer $TOKS"
step "403 900910" "Scope not granted (the commune has no bank-account scope)" client-commune "/opale/v1/entreprises/732829320/comptes-bancaires" "${C[@]}" "${T[@]}"
step "403 910210" "Year outside the granted period (2019-2025)" client-commune "$D?annee=2026" "${C[@]}" "${T[@]}"
step "400 910211" "Year malformed" client-commune "$D?annee=20x4" "${C[@]}" "${T[@]}"
step "400 910212" "SIREN with a wrong check digit" client-commune "/opale/v1/entreprises/404833047/declarations?annee=2023" "${C[@]}" "${T[@]}"

admin_step() { # title action(suspend|resume) expected-suspended(true|false) reason
  echo "== $1"
  local body="{\"reason\":\"$4\"}"
  echo "   curl -X POST -H \"Authorization: Bearer \$(cat admin.token)\" -H 'Content-Type: application/json' --data '$body' http://127.0.0.1:$ap/admin/consumers/commune-exemple-sandbox/$2"
  local out
  out=$(admin POST "/admin/consumers/commune-exemple-sandbox/$2" "$body")
  echo "   -> $out"
  case "$out" in *"\"suspended\":$3"*) ;; *) fail "expected \"suspended\":$3" ;; esac
  echo
}
admin_step "Kill switch: the operator cuts the commune off" suspend true "demo: abnormal volume"
step "403 910213" "  ... its next call" client-commune "$D?annee=2023" "${C[@]}" "${T[@]}"
admin_step "The operator lifts it" resume false "demo: volume explained"
step 200 "  ... resumed" client-commune "$D?annee=2023" "${C[@]}" "${T[@]}"

# The quota tour uses the caisse, whose window is still empty of data calls:
# its first answer's RateLimit-Remaining says how many more are admitted.
echo "== Quota: the caisse may make 50 calls per rolling minute (exact sliding window)"
CB="/opale/v1/entreprises/732829320/comptes-bancaires"
TS=(-H "ID_Teleservice: TS-0002" -H "Authorization: Bearer $TOKS")
show_cmd client-secu "$CB" "${C[@]}" "${TS[@]}"
echo "   ... 55 times in a row"
ok=0; throttled=0; other=0; first_remaining=""; first200=""; first429=""; firstother=""; order_ok=1
for i in $(seq 1 55); do
  out=$(curl -s -i --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/client-secu.crt" --key "$pki/client-secu.key" \
        "${C[@]}" "${TS[@]}" "$url$CB" | tr -d '\r')
  case "$out" in
    "HTTP/1.1 200"*|"HTTP/2 200"*)
      ok=$((ok+1)); [ "$throttled" -gt 0 ] && order_ok=0
      [ -z "$first200" ] && first200="$out"
      [ -z "$first_remaining" ] && first_remaining=$(echo "$out" | sed -n 's/^[Rr]ate[Ll]imit-[Rr]emaining: *//p') ;;
    "HTTP/1.1 429"*|"HTTP/2 429"*) throttled=$((throttled+1)); [ -z "$first429" ] && first429="$out" ;;
    *) other=$((other+1)); [ -z "$firstother" ] && firstother="${out:-(no answer)}" ;;
  esac
done
echo "   -> $ok answered 200 (the first one said RateLimit-Remaining: ${first_remaining:-?}), then $throttled refused 429:"
echo "$first429" | grep -iE '^(HTTP|RateLimit|Retry-After)' | sed 's/^/      /'
echo "      $(printf '%s' "${first429#*$'\n\n'}" > "$work/body"; describe "$work/body")"
if [ -z "$first_remaining" ] || [ "$ok" -ne $((first_remaining + 1)) ] || [ "$throttled" -ne $((55 - ok)) ] ||
   [ "$order_ok" -ne 1 ] || ! echo "$first429" | grep -qi '^Retry-After:'; then
  fail "expected RateLimit-Remaining + 1 answers 200, then only 429 with Retry-After (got $ok x 200, $throttled x 429, $other other)"
  # the whole answers, so that a failure in CI can be read from its log
  for what in first200 first429 firstother; do
    [ -n "${!what}" ] && { echo "   $what:"; printf '%s\n' "${!what}" | sed 's/^/      | /'; }
  done
fi
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
        "${C[@]}" "${T[@]}" "https://localhost:$mp2$path" | tr -d '\r')
  base="https://localhost:$mp2" show_cmd client-commune "$path" "${C[@]}" "${T[@]}"
  echo "$out" | grep -iE '^(HTTP|Retry-After)' | sed 's/^/   -> /'
  printf '%s' "${out#*$'\n\n'}" >"$work/body"
  echo "   -> $(describe "$work/body")"
  bad=0
  case "$out" in "HTTP/1.1 503"*|"HTTP/2 503"*) ;; *) fail "expected 503 during the maintenance slot"; bad=1 ;; esac
  echo "$out" | grep -qi '^Retry-After:' || { fail "expected a Retry-After header"; bad=1; }
  [ "$bad" -eq 0 ] || printf '%s\n' "${out:-(no answer)}" | sed 's/^/      | /'
done
kill -TERM "$gw2_pid" 2>/dev/null; wait "$gw2_pid" 2>/dev/null
echo
step tls "No client certificate" "" "/opale/v1/etatSante"
step tls "Expired client certificate" client-expired "/opale/v1/etatSante"
step tls "Client certificate from an unknown CA" client-unknown-ca "/opale/v1/etatSante"
step tls "Revoked client certificate (CRL)" client-revoked "/opale/v1/etatSante"
step tls "TLS 1.1 (refused: TLS 1.2+ only)" client-commune "/opale/v1/etatSante" --tls-max 1.1
raw "Request smuggling: Content-Length and Transfer-Encoding together" 400 \
  'POST /opale/v1/etatSante HTTP/1.1' 'Host: localhost' 'Content-Length: 4' 'Transfer-Encoding: chunked' '' '0' '' ''
raw "Whitespace before the colon" 400 'GET /opale/v1/etatSante HTTP/1.1' 'Host : localhost' '' ''
sleep 1.2
echo "== The journal (one record per request and per refused handshake), identical lines grouped:"
python3 - "$work/journal/access.jsonl" <<'PY'
import json, sys
groups = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "type" in r:  # checkpoints and other non-request records
        continue
    key = (str(r.get("status", "-")), r.get("decision", ""), r.get("reason") or "", r.get("route") or "",
           r.get("consumer") or "")
    groups[key] = groups.get(key, 0) + 1
print("   %5s  %-3s %-6s %-26s %-18s %s" % ("count", "st", "", "reason", "route", "consumer"))
for (status, decision, reason, route, consumer), n in groups.items():
    print("   %5d  %-3s %-6s %-26s %-18s %s" % (n, status, decision, reason, route, consumer))
PY
echo
echo "== The sandbox acceptance report (CGU §3.1.2) of the commune, from the verified journal"
echo "   (the gateway is stopped first: its last checkpoint signs the end of the chain; docs/recette.md):"
kill -TERM "$gw_pid" 2>/dev/null; wait "$gw_pid" 2>/dev/null
echo "   \$ opale-gateway --recette commune-exemple-sandbox -c gateway.json journal/access.jsonl"
if "$gw" --recette commune-exemple-sandbox -c "$work/gateway.json" "$work/journal/access.jsonl" \
     >"$work/recette.md" 2>"$work/recette.err"; then
  grep -v '^eyJ' "$work/recette.md" | sed 's/^/   | /'
  if "$gw" --verify-report -c "$work/gateway.json" "$work/recette.md" >"$work/verify.out" 2>&1; then
    echo "   -> $(head -1 "$work/verify.out")"
  else
    fail "the report's signature does not verify: $(head -1 "$work/verify.out")"
  fi
else
  sed 's/^/   /' "$work/recette.err"
  fail "--recette refused the demo's journal"
fi
echo

if [ "$failures" -ne 0 ]; then
  echo "demo: $failures step(s) did not get the answer they announce (marked !! above)" >&2
  exit 1
fi
echo "Every step got the answer it announces. Quotas here are per habilitation in this instance's"
echo "memory; with quota.store \"redis\" every instance shares them (docs/quotas.md)."

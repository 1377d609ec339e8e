#!/bin/sh
# Redis CPU per FCALL of the quota Function (docs/quotas.md, "Cost in Redis").
#
#   bench/redis-fn-bench.sh [SOURCE] [PORT] [N]
#
# SOURCE: a C file holding the Function as FUNCTION_CODE (default
# gateway/quota/redis.c) or a Lua file ("#!lua name=opale2", or library
# opale as tests/integration/fixtures/quota_function_v1.lua has it: the
# functions called are the library's, <library>_quota...). A fresh
# redis-server (no persistence) on PORT (default 26379) gets the library
# (FUNCTION LOAD REPLACE) and the marker; redis-benchmark then sends N calls
# (default 200000) per case, and the script prints Redis's CPU per call
# (utime + stime from /proc/PID/stat over the case, in microseconds).
# Cases, each unpipelined (-c 2 -P 1) and pipelined (-c 4 -P 32): ZCARD and
# an empty FCALL (references); opale_quota on 10,000 random keys, limit 50
# (mostly admitted); on one key, limit 50 (mostly refused); on one key,
# limit 1,000,000 (S2: one habilitation, every call admitted, a large log;
# members unique, as the gateway's request ids); opale_quota_m with 8 calls
# of 8 of 10,000 keys per FCALL (a loop pass's chain, standalone Redis:
# docs/quotas.md "Chains"), its figure per call, not per FCALL. Then the bench's Redis
# ceiling command (bench/benchlib/national.py: 100 clients, -P 32, 10,000
# keys, limit 500, no marker).
#   ONLY=<text>    only the cases whose name contains <text>
#   CALLGRIND=1    Redis under valgrind's callgrind: instructions per call
#                  over N calls made after N unmeasured ones (keys as full
#                  as in a longer run); a count the machine's load does not
#                  change, unlike the CPU time, which is noisy on a shared
#                  machine.
set -eu
SRC=${1:-gateway/quota/redis.c}
PORT=${2:-26379}
N=${3:-200000}
TMP=$(mktemp -d)
VG=
[ -z "${CALLGRIND:-}" ] || VG="valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$TMP/cg.out"
LUA=$TMP/fn.lua
case "$SRC" in
*.c)
    # the C string literal: lines between "FUNCTION_CODE[] =" and the ";"
    python3 - "$SRC" >"$LUA" <<'EOF'
import ast, re, sys
src = open(sys.argv[1]).read()
body = src.split("FUNCTION_CODE[] =", 1)[1].split(";\n", 1)[0]
sys.stdout.write("".join(ast.literal_eval(s) for s in re.findall(r'"(?:[^"\\]|\\.)*"', body)))
EOF
    ;;
*) cp "$SRC" "$LUA" ;;
esac
LIB=$(sed -n '1s/^#!lua name=\(opale2\{0,1\}\)$/\1/p' "$LUA")
[ -n "$LIB" ] || { echo "$SRC: not library opale or opale2" >&2; exit 1; }
$VG redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --dir "$TMP" >"$TMP/redis.log" 2>&1 &
RPID=$!
trap 'kill $RPID 2>/dev/null; wait $RPID 2>/dev/null; rm -rf "$TMP"' EXIT
CLI="redis-cli -p $PORT"
i=0
until $CLI PING >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 400 ] || { cat "$TMP/redis.log"; exit 1; }
    sleep 0.05
done
lib=$($CLI -x FUNCTION LOAD REPLACE <"$LUA")
case "$lib" in *ERR*) echo "$lib" >&2; exit 1 ;; esac
$CLI FUNCTION LOAD REPLACE "#!lua name=opale_bench_empty
redis.register_function('opale_bench_empty', function(keys, args) return {1, 0, 0} end)" >/dev/null
$CLI SET opale:q:live 1 >/dev/null
HZ=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$RPID/stat"; }
per=1 # decisions per FCALL: the figures are per decision
run() { # name, c, P, -r range, command...
    name=$1 c=$2 p=$3 r=$4
    shift 4
    case "$name" in *${ONLY:-}*) ;; *) return ;; esac
    $CLI FLUSHALL >/dev/null
    $CLI SET opale:q:live 1 >/dev/null
    if [ -n "$VG" ]; then
        # warm: the keys as full as in a longer run, then N calls counted
        redis-benchmark -p "$PORT" -c "$c" -P "$p" -n "$N" -r "$r" -q "$@" >/dev/null
        rm -f "$TMP"/cg.out*
        callgrind_control -i on "$RPID" >/dev/null 2>&1
        redis-benchmark -p "$PORT" -c "$c" -P "$p" -n "$N" -r "$r" -q "$@" >/dev/null
        callgrind_control -d "$RPID" >/dev/null 2>&1
        callgrind_control -i off "$RPID" >/dev/null 2>&1
        callgrind_control -z "$RPID" >/dev/null 2>&1
        awk -v n=$((N * per)) -v name="$name" -v c="$c" -v p="$p" '/^summary:/ { s += $2 }
            END { printf "%-28s -c %d -P %-3d %8.0f instructions/call\n", name, c, p, s / n }' "$TMP"/cg.out*
        return
    fi
    t0=$(cpu)
    redis-benchmark -p "$PORT" -c "$c" -P "$p" -n "$N" -r "$r" -q "$@" >/dev/null
    t1=$(cpu)
    awk -v n=$((N * per)) -v d=$((t1 - t0)) -v hz="$HZ" -v name="$name" -v c="$c" -v p="$p" \
        'BEGIN { printf "%-28s -c %d -P %-3d %6.2f us/call\n", name, c, p, d / hz / n * 1e6 }'
}
for cp in "2 1" "4 32"; do
    # shellcheck disable=SC2086 # "2 1": -c and -P, split on purpose
    set -- $cp
    run "ZCARD" "$1" "$2" 10000 ZCARD "opale:q:{rb-__rand_int__}"
    run "FCALL empty" "$1" "$2" 10000 FCALL opale_bench_empty 0
    run "opale_quota 10k keys l=50" "$1" "$2" 10000 FCALL "${LIB}_quota" 2 "opale:q:{rb-__rand_int__}" opale:q:live \
        50 60000 "m-__rand_int__"
    run "opale_quota 1 key l=50" "$1" "$2" 1000000000 FCALL "${LIB}_quota" 2 "opale:q:{rb}" opale:q:live \
        50 60000 "m-__rand_int__"
    run "opale_quota 1 key l=1e6" "$1" "$2" 1000000000 FCALL "${LIB}_quota" 2 "opale:q:{rb}" opale:q:live \
        1000000 60000 "m-__rand_int__"
    per=8
    # shellcheck disable=SC2046 # 8 keys, then 8 groups of "50 60000 1 member"
    run "opale_quota_m 8 keys l=50" "$1" "$2" 10000 FCALL "${LIB}_quota_m" 9 \
        $(for i in 1 2 3 4 5 6 7 8; do printf 'opale:q:{rb-__rand_int__} '; done) opale:q:live \
        $(for i in 1 2 3 4 5 6 7 8; do printf '50 60000 1 m-__rand_int__ '; done)
    per=1
done
# bench/benchlib/national.py's Redis ceiling: cluster form, limit 500
run "opale_quota ceiling (S8)" 100 32 10000 FCALL "${LIB}_quota" 1 "opale:q:{rb-__rand_int__}" 500 60000 "m-__rand_int__"

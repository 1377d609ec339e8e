"""Constants, paths, logging and the small statistics and formatting helpers
shared by the bench's modules (bench/bench.py)."""

import datetime
import os
import statistics
import sys
import time



HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # bench/
SRCDIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "nginx"))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration"))

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXY_CPU = "0"
LOAD_CPU = "1"
CLIENT = "client-commune"
TELESERVICE = "TS-0001"
SIREN = "732829320"
ANNEE = "2023"
PATHS = ["/opale/v1/entreprises/%s/declarations?annee=%s" % (SIREN, ANNEE),
         "/opale/v1/entreprises/%s/creances?annee=%s" % (SIREN, ANNEE)]
ETAT = "/opale/v1/etatSante"
SCOPES = ["api_opale_declarations", "api_opale_creances"]
HAB_FULL = "H9001"   # GW-FULL, GW-10K and the S5 gateways (quota 1,000,000/min)
HAB_S7 = "H9100"     # the S7 gateways (quota 50 per window): another Redis key
QUOTA_S7 = 50
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
SAT_PCT = 95.0       # a core at or above this share of one CPU is "saturated"
# The open-loop latency scenarios, as a fraction of nginx's median S2 rate:
# S3 the target, S3B near saturation, S3L so low that no proxy queues (what
# is left is the cost of each hop: bench/README.md, "S3 on this machine").
S3_FRAC = {"S3": 0.5, "S3B": 0.8, "S3L": 0.05}

T0 = time.monotonic()


def log(msg):
    sys.stderr.write("[bench %6.1fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


class SetupError(Exception):
    pass




def ts_ms(ts):
    """Journal "ts" (ISO 8601 UTC, milliseconds) -> epoch milliseconds."""
    d = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(round(d.timestamp() * 1000))


def max_in_window(times, w):
    """Max number of times in any half-open window [t, t + w), sliding over
    every time (the quota's window: an admission at t leaves at t + w), and
    the shortest span t[i+n] - t[i] for n = that limit."""
    t = sorted(times)
    best, j = 0, 0
    for i in range(len(t)):
        while j < len(t) and t[j] < t[i] + w:
            j += 1
        best = max(best, j - i)
    return best


def min_span(times, n):
    t = sorted(times)
    if len(t) <= n:
        return None
    return min(t[i + n] - t[i] for i in range(len(t) - n))


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def mn(xs):
    xs = [x for x in xs if x is not None]
    return min(xs) if xs else None


def mx(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def fmt(x, nd=0, unit=""):
    if x is None:
        return "—"
    if isinstance(x, float) and nd == 0:
        return "{:,.0f}".format(x).replace(",", " ") + unit
    return ("{:,.%df}" % nd).format(x).replace(",", " ") + unit


def fmt_us(us):
    if us is None:
        return "—"
    if us < 1000:
        return "%d µs" % us
    if us < 1000000:
        return "%.2f ms" % (us / 1000.0)
    return "%.2f s" % (us / 1e6)


def rng_txt(xs, nd=0, unit=""):
    a, b = mn(xs), mx(xs)
    if a is None:
        return "—"
    return "%s–%s" % (fmt(a, nd), fmt(b, nd, unit))

#!/usr/bin/env python3
"""The opale-gateway bench: the gateway side by side with nginx and HAProxy
(Python 3 stdlib, plus python3-cryptography for the tokens and certificates
the bench makes itself).

Usage:
  bench/bench.py --build BUILD [--quick] [--profile] [--only S1,S3,...]
                 [--rounds N] [--duration S] [--s8-partners N] [--out DIR] [--keep]
                 [--backend canned|mock]

  make bench        = bench.py --build build-bench --profile   (about 25-35 min)
  make bench-quick  = bench.py --build build-bench --quick     (under 8 min)

BUILD holds the Release binaries: BUILD/opale-gateway,
BUILD/deploy/mock-opale/opale-mock, BUILD/bench/opale-loadgen,
BUILD/bench/opale-backend and BUILD/bench/opale-wakeprobe. nginx,
redis-server, taskset and gnuplot come from the system (make installs them;
perf too for --profile).

Everything runs in a temporary directory (removed at the end unless --keep):
a dev PKI (deploy/sandbox/pki.sh), one backend in plain HTTP (by default
opale-backend, BUILD/bench/opale-backend, serving the bytes opale-mock gave
for each bench target, the mock being stopped once they are fetched;
--backend mock keeps opale-mock itself, WITHOUT --jwks: nginx cannot sign the
X-JWT-Assertion the mock would then require, so nothing checks an assertion
in the bench; "the mock" below is that backend), one redis-server, one nginx
(bench/nginx/genconf.py: a TLS-only and an mTLS server, proxying to the mock)
and the gateways, each with one worker, its own journal and admin port:
GW-S1 (listener client_auth "none", access "off": only the route stage),
GW-FULL (mTLS, one policy, Redis quota, hash-chained journal), GW-10K (as
GW-FULL with 10,000 policies) and GW-Q1..3 (S7: three instances, one Redis,
quota 50 per window). Every process is on a free loopback port and is
stopped at exit (SIGTERM, then SIGKILL), and every wait has a deadline.

CPU placement on the 2-core machine: every proxy (nginx master and worker,
each gateway) under `taskset -c 0`; the load generator, the mock and Redis
under `taskset -c 1`. All proxies stay up for the whole run; only the one
being measured gets load. For each measured run the CPU time (utime + stime
from /proc) of the proxy under test, of the generator (wait4 rusage), of the
mock and of Redis is recorded: proxy CPU % of one core, requests per proxy
CPU-second, and whether core 1 (the generator's) was saturated.

Scenarios (rounds alternate: for each round, each of S1, S2, S4, S6 runs A
then B, swapped on every other round; medians over rounds, min-max, ratios
pair by pair then their median):
  S1  pass-through: GW-S1 vs nginx TLS-only, closed loop, 64 connections
  S2  full chain: GW-FULL vs nginx mTLS, closed loop, 64 connections
  S3  open-loop latency at 50% of nginx's S2 median: GW-FULL, nginx, the mock
      directly; added p99 = p99(proxy) - p99(direct) (target <= 1 ms)
  S4  handshakes: a new mTLS connection per request, 16 connections
  S5  memory: RSS before and while holding 10,000 idle mTLS connections
      (quick: 2,000), fresh proxies each round; per connection, gw/nginx
      (target <= 1.0)
  S6  policy count: GW-FULL (1 policy) vs GW-10K, S2 load (target >= 0.98)
  S2-h2  S2 with the gateway spoken to in HTTP/2 (--h2), vs the same nginx
  S7  quota exactness: 3 gateways, one Redis, 50 per window, demand far
      above; max admissions in any rolling window (target: exactly 50)
  S2H full chain: GW-FULL vs HAProxy 2.6 enforcing the same chain (after a
      functional check that both refuse each broken request), one core each
  S3B S3 at 80% of nginx's S2 median
  S3L S3 at 5% of nginx's S2 median: no proxy queues, what is left is the
      cost of the hops; before S3, S3B or S3L, opale-wakeprobe measures how
      late each idle core wakes a thread (the floor under them), then how
      long the machine stops a core when both are busy (--spin); beside
      each of their runs it records the stops of 5 ms or more
  S2W worker scaling: GW-W1 vs GW-W2 (workers 1 and 2), S2 load, nothing
      pinned (the generator, mock and Redis share the 2 cores)
  S8  national scale: N partners (10,000; quick 2,000) with their own
      certificate, policy (50/min) and token, one connection each, open loop
      at their quota; GW-S8 workers 2 + Redis, nothing pinned; then the
      Redis ceiling of the quota Function and the production node count
  --profile: perf record of GW-FULL under S2 load, top symbols in the report.

Options:
  --build DIR     build tree with the binaries (required)
  --quick         R=2, 3 s runs, S5 2,000 connections x 1 round, S7 25 s, 10 s window,
                  S8 2,000 partners for 15 s
  --s8-partners N S8's partner count (10..20000)
  --only LIST     comma-separated scenarios to run (S1..S8, S2H, S2W, S3B, S3L); default all
  --rounds N      rounds for S1-S4 and S6 (default 5, quick 2)
  --duration S    seconds per measured run (default 10, quick 3)
  --profile       profile GW-FULL under S2 load at the end (needs perf)
  --out DIR       where results go (default bench/results)
  --keep          keep the temporary directory (printed)
  --note TEXT     a line of text for the report's header

Outputs: OUT/<date>-<host>[-quick].md (the report), its PNG plots next to it
(-throughput.png, -latency.png), and OUT/<date>-<host>[-quick]/ with the raw
loadgen JSON of every run and summary.json. The summary table is printed on
stdout at the end. Exit status 0 when the bench ran (targets met or not), 1
when it could not run (setup failure), 2 for a bad command line.

The code is split by job under bench/benchlib/: common (constants and small
helpers), processes (starting and stopping nginx, the gateways, the mock and
Redis; CPU and RSS from /proc), scenarios (S1..S7, the profile) and report
(the Markdown report and its figures). This file is the command line and
the Bench class that joins them.
"""

import argparse
import atexit
import datetime
import os
import re
import shutil
import signal
import socket
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from benchlib.common import SetupError  # noqa: E402
from benchlib.national import National  # noqa: E402
from benchlib.peers import Peers  # noqa: E402
from benchlib.processes import Stack, stop_all  # noqa: E402
from benchlib.report import Report  # noqa: E402
from benchlib.scenarios import Scenarios  # noqa: E402

SCENARIOS = ("S1", "S2", "S2-H2", "S2H", "S2W", "S3", "S3B", "S3L", "S4", "S5", "S6", "S7", "S8")


class Bench(Stack, Scenarios, Peers, National, Report):
    """One bench run: the settings, the results, the temporary directory."""

    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.build = os.path.abspath(args.build)
        self.gw_bin = os.path.join(self.build, "opale-gateway")
        self.mock_bin = os.path.join(self.build, "deploy", "mock-opale", "opale-mock")
        self.lg_bin = os.path.join(self.build, "bench", "opale-loadgen")
        self.wp_bin = os.path.join(self.build, "bench", "opale-wakeprobe")
        self.backend_bin = os.path.join(self.build, "bench", "opale-backend")
        self.backend = args.backend
        self.rounds = args.rounds or (2 if self.quick else 5)
        self.duration = args.duration or (3.0 if self.quick else 10.0)
        self.s3_duration = self.duration
        self.s5_conns = 2000 if self.quick else 10000
        self.s5_rounds = 1 if self.quick else 2
        self.s5_hold = 5.0 if self.quick else 10.0
        self.s7_window = 10 if self.quick else 60
        self.s7_duration = 25.0 if self.quick else 180.0
        self.s7_rate = 200.0
        self.s8_partners = args.s8_partners or (2000 if self.quick else 10000)
        self.s8_duration = 15.0 if self.quick else 60.0
        self.s8_fractions = (1.0, 0.5) if self.quick else (1.0, 0.5, 0.25)
        self.s8 = None
        self.s3_rates = {}
        self.wake = None         # opale-wakeprobe's JSON (before S3)
        self.wake_spin = None    # opale-wakeprobe --spin: the machine stopping busy cores
        self.func_rows = None
        self.only = set(s.strip().upper() for s in args.only.split(",")) if args.only else None
        self.runs = {}           # scenario -> [run records]
        self.s5 = []             # S5 records
        self.s7 = None           # S7 result
        self.profile_lines = None
        self.failures = {}       # scenario -> error text
        self.notes = []          # anomalies seen on the way
        self.targets = {}
        self.s4_path = None
        self.s3_rate = None
        self.token = None
        self.started_wall = datetime.datetime.now(datetime.timezone.utc)
        self.load_before = os.getloadavg()
        host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"
        self.stem = "%s-%s%s" % (datetime.date.today().isoformat(), host, "-quick" if self.quick else "")
        self.out_dir = os.path.abspath(args.out or os.path.join(HERE, "results"))
        self.raw_dir = os.path.join(self.out_dir, self.stem)
        self.tmp = tempfile.mkdtemp(prefix="opale-bench-")
        atexit.register(self.cleanup)

    def want(self, s):
        return self.only is None or s.upper() in self.only

    def cleanup(self):
        stop_all()
        if self.args.keep:
            sys.stderr.write("[bench] kept %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description="opale-gateway vs nginx bench (see the docstring of bench/bench.py)")
    ap.add_argument("--build", required=True, help="build tree with opale-gateway, opale-mock, opale-loadgen")
    ap.add_argument("--quick", action="store_true", help="short run (under 5 minutes)")
    ap.add_argument("--profile", action="store_true", help="perf profile of GW-FULL under S2 load")
    ap.add_argument("--only", help="comma-separated scenarios, e.g. S1,S3")
    ap.add_argument("--rounds", type=int, help="rounds for S1-S4, S6")
    ap.add_argument("--duration", type=float, help="seconds per measured run")
    ap.add_argument("--out", help="results directory (default bench/results)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--s8-partners", type=int, help="S8 partners (default 10,000, quick 2,000)")
    ap.add_argument("--backend", choices=("canned", "mock"), default="canned",
                    help="upstream of every proxy: opale-backend's canned answers (default) or opale-mock")
    ap.add_argument("--note", help="a line of text for the report's header (e.g. which build was measured)")
    args = ap.parse_args()
    if args.only:
        bad = [s for s in args.only.split(",") if s.strip().upper() not in SCENARIOS]
        if bad:
            ap.error("--only: unknown scenario(s) %s (%s)" % (", ".join(bad), ", ".join(SCENARIOS)))
    if args.s8_partners is not None and not 10 <= args.s8_partners <= 20000:
        ap.error("--s8-partners must be between 10 and 20000")
    if args.rounds is not None and args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.duration is not None and not 0.5 <= args.duration <= 3600:
        ap.error("--duration must be between 0.5 and 3600 s")

    def on_signal(sig, frame):
        raise SystemExit(128 + sig)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    atexit.register(stop_all)
    bench = Bench(args)
    try:
        bench.run()
    except SetupError as e:
        sys.stderr.write("bench: setup failed: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

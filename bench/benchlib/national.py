"""S8, national scale: N partners at their full sandbox quota (50 per
minute each), open loop, one connection per partner with its own client
certificate and token, on a gateway with `workers: 2` and the Redis quota
store, the whole machine shared by everything; then the ceiling of the
quota Function in Redis alone (redis-benchmark), and from both the number
of nodes the production figure needs."""

import json
import math
import os
import re
import shutil
import subprocess
import time

from benchlib import partners
from benchlib.common import LOAD_CPU, PATHS, PROXY_CPU, fmt, fmt_us, log, max_in_window, ts_ms
from benchlib.processes import (
    core_jiffies, core_pct, cpu_seconds, free_port, load_json, read_text, reap, set_affinity, spawn, stop)
from benchlib.stops import run_floor

S8_PER_MINUTE = 50          # the sandbox quota
# Warm-up before the measured window, same load, not measured (reported
# apart): the first request of each connection costs what no later one does
# (the server finishes the client's TLS 1.3 handshake, Finished and
# certificate, only when it reads it; then the token's ES256 verification,
# the first grant, an upstream connection each for a burst), so that the
# first seconds hold the whole tail: 2-3 s with 2,000 partners on a quiet
# machine, 6 s on a loaded one. The warm-up covers the first request of
# every partner (one period, 1.2 s at the full quota, 4.8 s at 25%) and that
# settling: 10 s up to 2,000 partners, 20 s beyond (the transient grows with
# the number of first requests). Warm-up + measured stays within the 60 s
# window, so a partner still sends at most its quota in any window.
def s8_warmup_s(partners):
    return 10.0 if partners <= 2000 else 20.0


def rate_arg(rate):
    """opale-loadgen's --rate for an S8 step, rounded *down* to the 3
    decimals passed: the period of each connection (connections / rate)
    must not be shorter than the quota's, or the timetable's 51st request
    falls a few microseconds inside the 60 s window. "%.3f" rounded 2,000
    partners' 1,666.6667 req/s up to 1,666.667: a period of 1.19999988 s,
    and connection 0's 51st request 12 us before the end of the run, which
    the gateway rightly refused (a 429 counted as a quota error)."""
    return "%.3f" % (math.floor(rate * 1000.0) / 1000.0)


PROD_PER_MINUTE = 500       # the production quota
PROD_PARTNERS = 10000
PROD_RATE = PROD_PARTNERS * PROD_PER_MINUTE / 60.0   # 83,333 req/s


class National:
    """Bench mixin: S8 and the Redis ceiling."""

    def phase_s8(self):
        n = self.s8_partners
        W = s8_warmup_s(n)
        D = min(self.s8_duration, 60.0 - W)
        rate = n * S8_PER_MINUTE / 60.0
        d = os.path.join(self.tmp, "s8")
        t0 = time.monotonic()
        port = free_port()
        issuer = "https://localhost:%d" % port
        log("S8: %d partners: certificates, keys, tokens and policies" % n)
        pem, hdr, pols = partners.make_partners(self.pki, n, d, issuer, per_minute=S8_PER_MINUTE)
        gen_s = time.monotonic() - t0
        log("S8: generated in %.1f s" % gen_s)
        res = {"partners": n, "per_minute": S8_PER_MINUTE, "rate": rate, "duration_s": D, "generate_s": gen_s,
               "warmup_s": W, "steps": []}
        for h in (self.mock, self.redis_t):
            set_affinity(h.proc.pid, "0,1")
        try:
            # the full quota first; when the machine cannot hold it, the
            # same partners at a fraction of it, to find the rate it holds
            for frac in self.s8_fractions:
                step = self.s8_step(n, frac, rate * frac, D, W, pem, hdr, pols, port)
                res["steps"].append(step)
                if step["held"]:
                    break
        finally:
            for h in (self.mock, self.redis_t):
                set_affinity(h.proc.pid, LOAD_CPU)
        held = [x for x in res["steps"] if x["held"]]
        res["held_rate"] = held[0]["rate"] if held else None
        res.update(held[0] if held else res["steps"][0])
        res["rate"] = rate
        res["step_rate"] = (held[0] if held else res["steps"][0])["rate"]
        res["quota_errors"] = sum(x.get("quota_errors") or 0 for x in res["steps"])
        try:
            res["redis"] = self.redis_ceiling()
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            res["redis"] = None
            self.notes.append("S8: Redis ceiling not measured: %s" % e)
        self.s8_size(res)
        self.s8 = res
        with open(os.path.join(self.raw_dir, "S8-analysis.json"), "w") as f:
            json.dump(res, f, indent=1)
        log("S8: full quota %s; highest rate held: %s req/s" % (
            "held" if res["steps"][0]["held"] else "NOT held", fmt(res["held_rate"])))

    def s8_step(self, n, frac, rate, D, W, pem, hdr, pols, port):
        """One S8 run on a fresh GW-S8 (its partners' Redis keys removed
        first, so that a step does not inherit the previous one's
        admissions): each partner at <frac> of its quota."""
        tag = "%d" % round(frac * 100)
        for i in range(0, len(pols), 1000):
            ids = [p["habilitation"]["id"] for p in list(pols.values())[i:i + 1000]]
            self.redis.cmd("DEL", *["opale:q:{%s}" % h for h in ids])
        log("S8 at %s%% of the quota (%s req/s): starting GW-S8 (workers 2, %d policies, not pinned)" % (
            tag, fmt(rate), n))
        t1 = time.monotonic()
        # per worker: the partners spread over the 2 workers, within the
        # hard RLIMIT_NOFILE of this machine (one descriptor per client)
        gw = self.start_gateway("gw-s8-%s" % tag, policies=pols, quota=self.redis_quota(), workers=2, cpu=None,
                                port=port, max_connections=9000)
        step = {"fraction": frac, "rate": rate, "per_minute_each": S8_PER_MINUTE * frac,
                "gateway_start_s": time.monotonic() - t1}
        try:
            step.update(self.s8_run(gw, pem, hdr, n, rate, D, W, key="S8-" + tag))
            step.update(self.s8_journal(gw))
        finally:
            stop(gw.proc)
        # held: the rate reached, nothing left behind, no 5xx, no error
        step["held"] = bool(step.get("throughput_rps") and step["throughput_rps"] >= 0.98 * rate and
                            (step.get("missed") or 0) <= 0.01 * rate * D and not step.get("flag_errors"))
        log("S8 at %s%%: %s of %s req/s, p99 %s, gateway %s%% of the machine, quota errors %s: %s" % (
            tag, fmt(step.get("throughput_rps")), fmt(rate), fmt_us(step.get("p99")),
            fmt(step.get("gw_machine_pct"), 1), step.get("quota_errors"), "held" if step["held"] else "NOT held"))
        return step

    def s8_run(self, gw, pem, hdr, n, rate, D, W, key="S8"):
        """The open-loop run; CPU counted from the start of the measured
        phase (the generator's first progress line), not over the 10,000
        handshakes of the connect phase."""
        jpath = os.path.join(self.raw_dir, key + ".json")
        lgdir = os.path.join(self.tmp, "loadgen")
        os.makedirs(lgdir, exist_ok=True)
        errp = os.path.join(lgdir, key + ".err")
        setup_timeout = 180 if n > 5000 else 60
        args = ["-u", "https://localhost:%d/" % gw.port, "--cacert", os.path.join(self.pki, "ca.crt"),
                "--partner-certs", pem, "--partner-headers", hdr, "--correlation-id"]
        for p in PATHS:
            args += ["--path", p]
        args += ["-c", str(n), "-t", "2", "-d", "%g" % D, "--warmup", "%g" % W, "--rate", rate_arg(rate),
                 "--timeout", str(setup_timeout), "--progress", "--json", jpath]
        helpers = [self.mock, self.redis_t]
        t_start = time.monotonic()
        p = spawn([self.lg_bin] + args, cpu="0,1", out=os.path.join(lgdir, key + ".out"), err=errp)
        deadline = t_start + setup_timeout + 30
        started = None
        while started is None:
            if re.search(r"^opale-loadgen: +\d+\.\ds ", read_text(errp), re.M):
                break
            if reap(p) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        # progress lines come each second from the clock's start, timed
        # from the measured window's (negative during the warm-up, which
        # the pattern skips): the first one matched is the window's start
        # (the warm-up is a whole number of seconds). Take the CPU counters
        # now, over the measured window only.
        c0 = (gw.cpu(), [h.cpu() for h in helpers], self.proc_cpu(p.pid))
        j0 = core_jiffies()
        w0 = time.monotonic()
        # what the machine took from each core over the measured window
        # (opale-wakeprobe beside it: bench/README.md, "The machine stops a
        # busy core")
        watcher = self.watch_start(os.path.join(self.raw_dir, key + "-stalls.json"))
        connect_s = w0 - t_start - math.ceil(W) if W > 0 else w0 - t_start - 1.0
        c1 = j1 = None
        while not reap(p):
            if time.monotonic() > w0 + D + 60:
                stop(p)
                break
            # the last sample before the generator exits: its own CPU is
            # readable only while it runs
            c1 = (gw.cpu(), [h.cpu() for h in helpers], self.proc_cpu(p.pid))
            j1 = core_jiffies()
            w1 = time.monotonic()
            time.sleep(0.2)
        out = {"connect_phase_s": connect_s, "machine_stalls": self.watch_end(watcher) if watcher else None}
        res = load_json(jpath)
        # the floor the stops put under the p99: the generator and the
        # gateway's two workers use both cores, so only a stop of both at
        # once is sure to hold every request due during it
        out["p99_floor"] = run_floor(out["machine_stalls"], (res or {}).get("window_mono_ns"),
                                     [PROXY_CPU, LOAD_CPU], how="all")
        errors = []
        if res is None:
            errors.append("no JSON from the generator (rc %s): %s" % (p.returncode, read_text(errp)[-300:].strip()))
            out["flag_errors"] = errors
            return out
        if c1 is not None and w1 > w0 + 1:
            wall = w1 - w0
            out.update({
                "cpu_wall_s": wall,
                "gw_cpu_pct": 100.0 * (c1[0] - c0[0]) / wall,
                "mock_cpu_pct": 100.0 * (c1[1][0] - c0[1][0]) / wall,
                "redis_cpu_pct": 100.0 * (c1[1][1] - c0[1][1]) / wall,
                "gen_cpu_pct": 100.0 * (c1[2] - c0[2]) / wall,
                "machine_busy_pct": ((core_pct(j0, j1, "cpu0") or 0) + (core_pct(j0, j1, "cpu1") or 0)) / 2,
            })
            out["gw_machine_pct"] = out["gw_cpu_pct"] / 2
            out["gw_cpu_s_per_req"] = (c1[0] - c0[0]) / max(1, res["throughput_rps"] * wall)
        lat = dict(res["latency_us"])
        if not res["requests"]["completed"]:
            # nothing measured (e.g. still behind on the warm-up's requests
            # for the whole window): no percentile, rather than 0 µs
            for k in ("p50", "p90", "p99", "p99_9", "max"):
                lat[k] = None
        resp = res["responses"]
        # The connect phase is the generator's own figure (first connect to
        # every connection up: N TCP connects and N mTLS handshakes on both
        # sides); the time before it, counted in <connect_s> until
        # 2026-12-02, is the generator reading N certificates and keys
        # (OpenSSL 3's decoders: about 0.8 ms a partner).
        if isinstance(res.get("connect_phase_s"), (int, float)):
            out["gen_startup_s"] = max(0.0, connect_s - res["connect_phase_s"])
            out["connect_phase_s"] = res["connect_phase_s"]
        out.update({"throughput_rps": res["throughput_rps"], "completed": res["requests"]["completed"],
                    "missed": res["requests"]["missed"], "responses": resp, "errors": res["errors"],
                    "p50": lat["p50"], "p90": lat["p90"], "p99": lat["p99"], "p99_9": lat["p99_9"],
                    "max": lat["max"], "up_at_start": res["connections"].get("up_at_start"),
                    "elapsed_s": res["elapsed_s"]})
        wu = res.get("warmup")
        if wu:
            wl = wu.get("latency_us") or {}
            out["warmup"] = {"seconds": wu.get("seconds"), "completed": wu.get("completed"),
                             "p50": wl.get("p50"), "p99": wl.get("p99"), "max": wl.get("max")}
        if res["errors"]["total"]:
            errors.append("generator errors %d" % res["errors"]["total"])
        if resp["5xx"] or resp["3xx"]:
            errors.append("3xx/5xx responses: %d" % (resp["3xx"] + resp["5xx"]))
        if res["requests"]["missed"]:
            errors.append("open loop behind schedule: %d requests due but never started" % res["requests"]["missed"])
        if not gw.alive():
            errors.append("GW-S8 EXITED during the run")
        out["flag_errors"] = errors
        return out

    @staticmethod
    def proc_cpu(pid):
        return cpu_seconds(pid)

    def s8_journal(self, gw):
        """Per partner from GW-S8's journal: admissions (200) and refusals
        (429); a 429 is a quota error (each partner sends at most its quota
        within the run), and so is a partner admitted more than its quota
        in any window (checked on the journal's completion times). Also who
        decided: Redis, or the instance itself (quota.store "degraded": a
        Redis call that failed or timed out, docs/quotas.md)."""
        time.sleep(1.5)  # the journal writer
        by = {}
        statuses = {}
        stores = {}  # quota.store of each decision: redis, or degraded (decided locally)
        odd = []
        for name in sorted(os.listdir(gw.journal_dir)):
            if not name.startswith("access.jsonl"):
                continue
            with open(os.path.join(gw.journal_dir, name), "rb") as f:
                for ln in f:
                    try:
                        rec = json.loads(ln)
                    except ValueError:
                        continue
                    st = rec.get("status")
                    if not isinstance(st, int):
                        continue  # checkpoints and other non-request records
                    statuses[st] = statuses.get(st, 0) + 1
                    store = (rec.get("quota") or {}).get("store")
                    if store:
                        stores[store] = stores.get(store, 0) + 1
                    if st != 200 and len(odd) < 20:  # what a refusal was, for the report
                        odd.append({k: rec.get(k) for k in ("ts", "status", "code", "reason", "consumer",
                                                            "ms", "quota", "upstream")})
                    c = rec.get("consumer")
                    if c is None:
                        continue
                    e = by.setdefault(c, [0, 0, []])
                    if st == 200:
                        e[0] += 1
                        e[2].append(rec.get("ts"))
                    elif st == 429:
                        e[1] += 1
        over = 0
        max_adm = 0
        for c, (a, r, ts) in by.items():
            mw = max_in_window([ts_ms(x) for x in ts if x], 60000) if ts else 0
            max_adm = max(max_adm, mw)
            if mw > S8_PER_MINUTE:
                over += 1
        refused = sum(e[1] for e in by.values())
        return {"journal_statuses": {str(k): v for k, v in sorted(statuses.items())},
                "quota_stores": stores, "partners_seen": len(by), "refused_429": refused,
                "partners_over_quota": over, "max_admitted_in_60s": max_adm,
                "quota_errors": refused + over, "not_200": odd}

    def redis_ceiling(self):
        """redis-benchmark on core 0 against the bench's Redis on core 1:
        FCALL opale2_quota (the gateway's Function, loaded by the gateways)
        on 10,000 keys with the production limit, 100 clients, pipelines of
        32 (the gateway pipelines its FCALLs per loop iteration). On this
        shared 2-core machine the client does not always saturate Redis:
        the ceiling is the rate per Redis CPU-second (rate / Redis's share
        of its core), both are reported."""
        rb = shutil.which("redis-benchmark")
        if not rb:
            raise OSError("redis-benchmark not installed (redis-tools)")
        nreq = 200000 if self.quick else 1000000
        cmd = [rb, "-h", "127.0.0.1", "-p", str(self.redis_port), "-c", "100", "-P", "32", "-n", str(nreq),
               "-r", "10000", "--csv", "FCALL", "opale2_quota", "1", "opale:q:{rb-__rand_int__}",
               str(PROD_PER_MINUTE), "60000", "m-__rand_int__"]
        log("Redis ceiling: redis-benchmark, %d FCALL opale2_quota" % nreq)
        c0 = self.redis_t.cpu()
        w0 = time.monotonic()
        r = subprocess.run(["taskset", "-c", PROXY_CPU] + cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=300)
        wall = time.monotonic() - w0
        cpu = self.redis_t.cpu() - c0
        txt = r.stdout.decode(errors="replace")
        rps = None
        for ln in txt.splitlines():
            cells = [x.strip('"') for x in ln.split(",")]
            if len(cells) >= 2 and cells[0].upper().startswith("FCALL"):
                rps = float(cells[1])
        if r.returncode != 0 or rps is None:
            raise ValueError("redis-benchmark: rc %d: %s" % (r.returncode, txt[-300:]))
        # the keys it made are not the gateways' business
        self.redis.cmd("EVAL", "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end",
                       0, "opale:q:{rb-*")
        share = cpu / wall if wall else 0
        return {"fcall_per_s": rps, "requests": nreq, "redis_cpu_pct": 100.0 * share,
                "ceiling_per_core": rps / share if share > 0.05 else None, "command": " ".join(cmd[1:])}

    def s8_size(self, res):
        """Nodes for the production figure: the gateway's CPU per request at
        S8 on 2-core nodes kept at 50% (the S8 goal: room for a node's loss
        and peaks), and Redis shards from the Function's ceiling."""
        cpr = res.get("gw_cpu_s_per_req")
        if cpr:
            res["node_capacity_50pct"] = 2 * 0.5 / cpr
            res["nodes_50pct"] = math.ceil(PROD_RATE / res["node_capacity_50pct"])
            res["nodes_100pct"] = math.ceil(PROD_RATE * cpr / 2)
        rd = res.get("redis")
        if rd and rd.get("fcall_per_s"):
            ceil_ = rd.get("ceiling_per_core") or rd["fcall_per_s"]
            res["redis_shards"] = math.ceil(PROD_RATE / ceil_)
            res["redis_shards_50pct"] = math.ceil(PROD_RATE / (0.5 * ceil_))
        res["prod_rate"] = PROD_RATE

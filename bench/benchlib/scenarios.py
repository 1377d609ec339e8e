"""The bench's scenarios: preflight checks, one measured opale-loadgen run,
S1/S2/S4/S6 in alternating pairs, S3 (open-loop latency), S5 (memory per
idle connection), S7 (quota exactness), the perf profile, and the run that
sequences them."""

import datetime
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import time
import traceback
import uuid

from benchlib.common import (
    CLIENT, ETAT, HAB_FULL, HAB_S7, LOAD_CPU, PATHS, PROXY_CPU, QUOTA_S7, S3_FRAC, SAT_PCT, SCOPES,
    TELESERVICE, SetupError, fmt, fmt_us, log, max_in_window, med, min_span, mx, ts_ms)
from benchlib.processes import (
    core_jiffies, core_pct, https, journal_records, load_json, plain_get, read_text, reap, set_affinity, spawn,
    stop, wait_exit)
from benchlib.stops import run_floor


# The quota window (docs/quotas.md, "Key") of HAB_FULL in Redis.
FULL_WINDOW = "opale:q:{%s}" % HAB_FULL


class Scenarios:
    """Bench mixin: the checks before measuring, one measured loadgen run, the
    scenarios S1..S7 and the profile, and the whole run."""

    # -- manual checks before measuring

    def https_retry(self, port, method, target, pki, **kw):
        """https() for the preflight: a request that gets no answer (or a
        broken connection) is noted as an anomaly and tried once more, so
        that one stuck first request does not hide whether the stack serves
        the bench's requests at all."""
        name = {t.port if t.kind != "nginx" else None: t.name for t in self.targets.values()}.get(port)
        if name is None:
            ng = self.targets.get("nginx")
            name = "nginx" if ng is not None and port in (ng.port_tls, ng.port_mtls) else "port %d" % port
        for attempt in (1, 2):
            try:
                return https(port, method, target, pki, timeout=5, **kw)
            except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                msg = ("preflight: %s %s on %s (a fresh connection, sent right after the handshake): %s: %s%s"
                       % (method, target, name, type(e).__name__, e or "no answer within 5 s",
                          "; retried" if attempt == 1 else "; failed twice"))
                self.notes.append(msg)
                log(msg)
                if attempt == 2:
                    raise SetupError(msg)
                time.sleep(0.2)

    def get_token(self, port):
        body = "grant_type=client_credentials&scope=" + "+".join(SCOPES)
        st, data = self.https_retry(port, "POST", "/token", self.pki, body=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                  "X-Correlation-ID": str(uuid.uuid4())})
        if st != 200:
            raise SetupError("POST /token on %d: %d %r" % (port, st, data[:300]))
        return json.loads(data)["access_token"]

    def full_headers(self, token, cid=None):
        return {"Authorization": "Bearer " + token, "X-Correlation-ID": cid or str(uuid.uuid4()),
                "ID_Teleservice": TELESERVICE}

    def preflight(self):
        """One request of each kind, by hand, before any measurement: every
        one must be 200. Decides the S4 path (etatSante only if it passes
        the whole chain, quota included)."""
        log("preflight: a request of each kind by hand")
        problems = []
        for path in PATHS + [ETAT]:
            st, body = plain_get(self.mock_port, path, {"X-Correlation-ID": str(uuid.uuid4())})
            if st != 200:
                problems.append("mock direct %s: %d %r" % (path, st, body[:200]))
            elif body != getattr(self, "backend_bodies", {}).get(path, body):
                problems.append("opale-backend %s: not opale-mock's body %r" % (path, body[:200]))
        ng = self.targets["nginx"]
        st, body = self.https_retry(ng.port_tls, "GET", ETAT, self.pki, cert=False)
        if st != 200:
            problems.append("nginx TLS %s: %d %r" % (ETAT, st, body[:200]))
        if "gw-s1" in self.targets:
            st, body = self.https_retry(self.targets["gw-s1"].port, "GET", ETAT, self.pki, cert=False)
            if st != 200:
                problems.append("GW-S1 %s: %d %r" % (ETAT, st, body[:200]))
        full = self.targets.get("gw-full")
        if full is not None:
            self.token = self.get_token(full.port)
            for path in PATHS:
                st, body = self.https_retry(ng.port_mtls, "GET", path, self.pki, headers=self.full_headers(self.token))
                if st != 200:
                    problems.append("nginx mTLS %s: %d %r" % (path, st, body[:200]))
            for name in ("gw-full", "gw-10k", "gw-w1", "gw-w2"):
                t = self.targets.get(name)
                if t is None:
                    continue
                tok = self.get_token(t.port)
                for path in PATHS:
                    st, body = self.https_retry(t.port, "GET", path, self.pki, headers=self.full_headers(tok))
                    if st != 200:
                        problems.append("%s %s: %d %r" % (name, path, st, body[:200]))
            # etatSante: through the whole chain (the journal record has
            # the consumer and a quota decision)?
            cid = str(uuid.uuid4())
            st, body = self.https_retry(full.port, "GET", ETAT, self.pki, headers=self.full_headers(self.token, cid))
            rec = None
            deadline = time.monotonic() + 5
            while rec is None and time.monotonic() < deadline:
                for r in journal_records(full.journal_dir):
                    if r.get("correlation_id") == cid:
                        rec = r
                time.sleep(0.1)
            if st == 200 and rec is not None and "quota" in rec and rec.get("consumer"):
                self.s4_path = ETAT
                self.s4_why = ("`%s` with the token: 200, and its journal record names the consumer and "
                               "carries a quota decision, so it passes the whole chain" % ETAT)
            else:
                self.s4_path = PATHS[0]
                self.s4_why = ("`%s` answered %d and its journal record %s: it does not pass the whole chain "
                               "(the quota stage, or more, is skipped on a public route), so S4 uses `%s`"
                               % (ETAT, st, "has no quota decision" if rec is not None else "was not found",
                                  PATHS[0]))
            log("S4 path: %s" % self.s4_path)
        for i in (1, 2, 3):
            t = self.targets.get("gw-q%d" % i)
            if t is not None:
                tok = self.get_token(t.port)
                st, body = self.https_retry(t.port, "GET", ETAT, self.pki, headers=self.full_headers(tok))
                if st != 200:
                    problems.append("GW-Q%d %s: %d %r" % (i, ETAT, st, body[:200]))
        if problems:
            raise SetupError("preflight failed:\n  " + "\n  ".join(problems))

    # -- loadgen arguments

    def lg_tls(self, cert=True):
        a = ["--cacert", os.path.join(self.pki, "ca.crt")]
        if cert:
            a += ["--cert", os.path.join(self.pki, CLIENT + ".crt"), "--key", os.path.join(self.pki, CLIENT + ".key")]
        return a

    def full_chain_args(self, t, paths=None):
        """The full-chain request to <t>: a gateway fetches its token itself
        (--token-url); nginx gets the same headers, with a token from
        GW-FULL (it ignores them, but the requests are the same bytes)."""
        paths = paths or PATHS
        if t.kind in ("nginx", "haproxy"):
            a = ["-u", "https://localhost:%d/" % (t.port_mtls if t.kind == "nginx" else t.port)] + \
                self.lg_tls() + ["-H", "Authorization: Bearer " + self.token]
        else:
            a = ["-u", "https://localhost:%d/" % t.port] + self.lg_tls() + \
                ["--token-url", "https://localhost:%d/token" % t.port, "--token-scope", " ".join(SCOPES)]
        a += ["--correlation-id", "-H", "ID_Teleservice: " + TELESERVICE]
        for p in paths:
            a += ["--path", p]
        return a

    def direct_args(self):
        a = ["--plain", "-u", "http://127.0.0.1:%d/" % self.mock_port, "--correlation-id",
             "-H", "ID_Teleservice: " + TELESERVICE]
        for p in PATHS:
            a += ["--path", p]
        return a

    # -- one measured run

    def window_size(self):
        """Entries in the quota window of HAB_FULL (the habilitation of
        GW-FULL, GW-10K, the S2W and S5 gateways); None without Redis."""
        r = getattr(self, "redis", None)
        return r.cmd("ZCARD", FULL_WINDOW) if r is not None else None

    def fresh_window(self):
        """Empties HAB_FULL's window before a run and returns how many
        entries it held. Every run then starts from an empty window, whatever
        ran in the minute before it: the gateways of S2, S2H, S2W, S3 and S6
        share that habilitation, and back-to-back runs at ~20,000 req/s
        filled its 1,000,000 a minute (S2W-r3-w2 of 2026-12-05-vm-2 got
        240,355 429s), while a window grown by the runs before made each
        quota decision dearer for Redis than in the first run."""
        r = getattr(self, "redis", None)
        if r is None:
            return None
        n = r.cmd("ZCARD", FULL_WINDOW)
        r.cmd("DEL", FULL_WINDOW)
        return n

    def run_lg(self, scenario, rnd, role, target, args, duration, allow_4xx=False, keep=True, cpu=LOAD_CPU,
               watch=False):
        """Run the generator (CPU 1) against <target> and record: its JSON,
        the CPU time of the proxy, the generator, the mock and Redis over the
        generator's lifetime, and the flags (errors, non-2xx, behind
        schedule, saturation). <watch>: opale-wakeprobe runs beside it on
        both cores (10 ms period, FIFO) and records the times the machine
        stopped a core (watch_start, watch_end)."""
        key = "%s-r%d-%s" % (scenario, rnd, role)
        os.makedirs(self.raw_dir, exist_ok=True)
        lgdir = os.path.join(self.tmp, "loadgen")
        os.makedirs(lgdir, exist_ok=True)
        jpath = os.path.join(self.raw_dir if keep else lgdir, key + ".json")
        if os.path.exists(jpath):
            os.unlink(jpath)
        helpers = [self.mock, self.redis_t]
        window_before = self.fresh_window()
        c0 = (target.cpu(), [h.cpu() for h in helpers])
        j0 = core_jiffies()
        alive0 = target.alive()
        watcher = self.watch_start(os.path.join(self.raw_dir if keep else lgdir, key + "-stalls.json")) \
            if watch else None
        t0 = time.monotonic()
        p = spawn([self.lg_bin] + args + ["--json", jpath], cpu=cpu, out=os.path.join(lgdir, key + ".out"),
                  err=os.path.join(lgdir, key + ".err"))
        ru = wait_exit(p, t0 + duration + 90)
        wall = time.monotonic() - t0
        stalls = self.watch_end(watcher) if watcher else None
        c1 = (target.cpu(), [h.cpu() for h in helpers])
        j1 = core_jiffies()
        res = load_json(jpath)
        gen_cpu = (ru.ru_utime + ru.ru_stime) if ru is not None else None
        rec = {"key": key, "scenario": scenario, "round": rnd, "role": role, "target": target.name,
               "rc": p.returncode, "wall_s": wall,
               "proxy_cpu_s": c1[0] - c0[0], "gen_cpu_s": gen_cpu,
               "mock_cpu_s": c1[1][0] - c0[1][0], "redis_cpu_s": c1[1][1] - c0[1][1]}
        rec["window_before"] = window_before
        rec["window_after"] = self.window_size()
        rec["proxy_cpu_pct"] = 100.0 * rec["proxy_cpu_s"] / wall
        rec["gen_cpu_pct"] = 100.0 * gen_cpu / wall if gen_cpu is not None else None
        rec["mock_cpu_pct"] = 100.0 * rec["mock_cpu_s"] / wall
        rec["redis_cpu_pct"] = 100.0 * rec["redis_cpu_s"] / wall
        # Redis is on core 1 except during S3/S3B/S3L (phase_s3: on core 0,
        # with the proxy under test)
        redis_on_0 = getattr(self, "redis_cpu", LOAD_CPU) == PROXY_CPU
        rec["redis_core"] = PROXY_CPU if redis_on_0 else LOAD_CPU
        rec["core1_pct"] = (rec["gen_cpu_pct"] or 0) + rec["mock_cpu_pct"] + (0.0 if redis_on_0 else
                                                                              rec["redis_cpu_pct"])
        # How busy each core was, whoever used it: what the bench's own
        # processes did not use went to other work on the machine.
        rec["core0_busy_pct"] = core_pct(j0, j1, "cpu" + PROXY_CPU)
        rec["core1_busy_pct"] = core_pct(j0, j1, "cpu" + LOAD_CPU)
        rec["core0_nonproc_pct"] = core_pct(j0, j1, "cpu" + PROXY_CPU + "-nonproc")
        proxy_on_0 = rec["proxy_cpu_pct"] if target.kind in ("gateway", "nginx", "haproxy") else 0.0
        if redis_on_0:
            proxy_on_0 += rec["redis_cpu_pct"]
        rec["core0_other_pct"] = max(0.0, rec["core0_busy_pct"] - proxy_on_0) \
            if rec["core0_busy_pct"] is not None and cpu == LOAD_CPU and target.pinned else None
        errors, notes = [], []
        if res is None:
            errors.append("no JSON from the generator (rc %s): %s" % (
                p.returncode, read_text(os.path.join(lgdir, key + ".err"))[-300:].strip()))
        else:
            lat = res["latency_us"]
            resp = res["responses"]
            rec.update({
                "throughput_rps": res["throughput_rps"], "handshake_rate": res["connections"]["handshake_rate"],
                "p50": lat["p50"], "p90": lat["p90"], "p99": lat["p99"], "p99_9": lat["p99_9"], "max": lat["max"],
                "completed": res["requests"]["completed"], "missed": res["requests"]["missed"],
                "responses": resp, "errors": res["errors"], "elapsed_s": res["elapsed_s"],
                "percentiles": lat.get("percentiles", []),
            })
            rec["req_per_proxy_cpu_s"] = (rec["completed"] / rec["proxy_cpu_s"]) if rec["proxy_cpu_s"] > 0 else None
            if res["errors"]["total"]:
                e = res["errors"]
                errors.append("errors %d (%s)" % (e["total"], ", ".join("%s %d" % (k, v) for k, v in e.items()
                                                                         if k != "total" and v)))
            bad = resp["3xx"] + resp["5xx"] + (0 if allow_4xx else resp["4xx"])
            if bad:
                errors.append("non-2xx responses: %d (3xx %d, 4xx %d, 5xx %d)" % (bad, resp["3xx"], resp["4xx"],
                                                                                   resp["5xx"]))
            if rec["completed"] == 0:
                errors.append("no response")
            if rec["missed"]:
                errors.append("open loop behind schedule: %d requests due but never started" % rec["missed"])
        if p.returncode not in (0, None):
            errors.append("generator exit status %s" % p.returncode)
        if alive0 and not target.alive():
            errors.append("%s EXITED during the run (rc %s)" % (target.name, target.proc.returncode))
            self.notes.append("%s exited during %s" % (target.name, key))
        if rec["gen_cpu_pct"] is not None and rec["gen_cpu_pct"] >= SAT_PCT:
            notes.append("generator CPU saturated (%.0f%%)" % rec["gen_cpu_pct"])
        elif rec["core1_pct"] >= SAT_PCT:
            notes.append("core 1 saturated (generator + mock%s %.0f%%)" % (
                "" if redis_on_0 else " + redis", rec["core1_pct"]))
        if rec["core0_other_pct"] is not None and rec["core0_other_pct"] >= 15:
            notes.append("core 0 shared: other processes used %.0f%% of it%s" % (
                rec["core0_other_pct"], " (irq + softirq + steal: %.0f%%)" % rec["core0_nonproc_pct"]
                if rec.get("core0_nonproc_pct") else ""))
        if watch:
            rec["machine_stalls"] = stalls
            # the floor the stops put under this run's p99: a proxy pinned
            # to core 0 and the generator on core 1 put both cores on every
            # request's path; the mock directly, core 1 alone
            path = [PROXY_CPU, LOAD_CPU] if target.kind in ("gateway", "nginx", "haproxy") else [LOAD_CPU]
            if cpu == LOAD_CPU and target.pinned and res is not None:
                rec["p99_floor"] = run_floor(stalls, res.get("window_mono_ns"), path)
            if stalls is None:
                notes.append("machine stalls not measured (opale-wakeprobe)")
            else:
                for c in stalls:
                    if c["long_stalls"]:
                        notes.append("the machine stopped core %s for %s ms during the run" % (
                            c["cpu"], " + ".join("%.0f" % x["ms"] for x in c["longest"]
                                                 if x["ms"] >= c["long_ms"])))
        rec["flag_errors"] = errors
        rec["flag_notes"] = notes
        if errors:
            log("  %s: FLAGGED: %s" % (key, "; ".join(errors)))
        tp = rec.get("throughput_rps")
        log("  %-22s %9s req/s  p99 %-9s proxy CPU %3.0f%%  gen CPU %3.0f%%%s" % (
            key, fmt(tp), fmt_us(rec.get("p99")), rec["proxy_cpu_pct"], rec["gen_cpu_pct"] or 0,
            ("  [" + "; ".join(errors + notes) + "]") if errors or notes else ""))
        time.sleep(0.3)  # let the journal writer / access log settle between runs
        return rec

    # -- scenarios

    def pair_args(self, scenario, role):
        d = "%g" % self.duration
        t = self.targets
        if scenario == "S1":
            tgt = t["gw-s1"] if role == "gw" else t["nginx"]
            port = tgt.port if role == "gw" else tgt.port_tls
            return tgt, ["-u", "https://localhost:%d%s" % (port, ETAT)] + self.lg_tls(cert=False) + \
                ["-c", "64", "-t", "1", "-d", d]
        if scenario == "S2":
            tgt = t["gw-full"] if role == "gw" else t["nginx"]
            return tgt, self.full_chain_args(tgt) + ["-c", "64", "-t", "1", "-d", d]
        if scenario == "S2H":
            tgt = t["gw-full"] if role == "gw" else t["haproxy"]
            return tgt, self.full_chain_args(tgt) + ["-c", "64", "-t", "1", "-d", d]
        if scenario == "S2W":
            # the whole machine: gateway, generator (2 threads), mock, Redis
            tgt = t["gw-w1"] if role == "w1" else t["gw-w2"]
            return tgt, self.full_chain_args(tgt) + ["-c", "64", "-t", "2", "-d", d]
        if scenario == "S2-h2":
            # S2 with the gateway spoken to in HTTP/2 (one stream at a time per
            # connection), against the same nginx HTTP/1.1 baseline
            tgt = t["gw-full"] if role == "gw-h2" else t["nginx"]
            h2 = ["--h2"] if role == "gw-h2" else []
            return tgt, self.full_chain_args(tgt) + h2 + ["-c", "64", "-t", "1", "-d", d]
        if scenario == "S4":
            tgt = t["gw-full"] if role == "gw" else t["nginx"]
            return tgt, self.full_chain_args(tgt, [self.s4_path]) + ["--new-conn", "-c", "16", "-t", "1", "-d", d]
        if scenario == "S6":
            tgt = t["gw-full"] if role == "gw1" else t["gw-10k"]
            return tgt, self.full_chain_args(tgt) + ["-c", "64", "-t", "1", "-d", d]
        raise ValueError(scenario)

    PAIRS = {
        "S1": ("gw", "nginx"),
        "S2": ("gw", "nginx"),
        "S2-h2": ("gw-h2", "nginx"),
        "S4": ("gw", "nginx"),
        "S6": ("gw1", "gw10k"),
        "S2H": ("gw", "haproxy"),
        "S2W": ("w1", "w2"),
    }

    def phase_pairs(self, only=None):
        scen = only or [s for s in ("S1", "S2", "S2-h2", "S2H", "S4", "S6") if self.want(s)]
        if not scen:
            return
        for s in scen:
            self.runs.setdefault(s, [])
        for r in range(1, self.rounds + 1):
            for s in scen:
                if s in self.failures:
                    continue
                a, b = self.PAIRS[s]
                order = (a, b) if r % 2 == 1 else (b, a)
                log("%s round %d/%d: %s then %s" % (s, r, self.rounds, order[0], order[1]))
                try:
                    for role in order:
                        tgt, args = self.pair_args(s, role)
                        self.runs[s].append(self.run_lg(s, r, role, tgt, args, self.duration,
                                                        cpu=LOAD_CPU if tgt.pinned else "0,1"))
                except Exception as e:
                    self.fail(s, e)

    def fail(self, s, e):
        self.failures[s] = "%s: %s" % (type(e).__name__, e)
        log("%s FAILED: %s\n%s" % (s, e, traceback.format_exc()))

    def phase_s2w(self):
        """S2 on GW-W1 (workers 1) and GW-W2 (workers 2), nothing pinned:
        the gateway, the generator (2 threads), the mock and Redis share
        the 2 cores, as a single-node deployment would."""
        for h in (self.mock, self.redis_t):
            set_affinity(h.proc.pid, "0,1")
        try:
            self.phase_pairs(only=["S2W"])
        finally:
            for h in (self.mock, self.redis_t):
                set_affinity(h.proc.pid, LOAD_CPU)

    # opale-wakeprobe beside a run: what the machine took from each core
    WATCH_STALL_US = 5000

    def watch_start(self, path):
        """Start opale-wakeprobe on both cores (10 ms period, stalls from
        5 ms) until watch_end(); None when the probe is not built."""
        if not os.access(self.wp_bin, os.X_OK):
            return None
        if os.path.exists(path):
            os.unlink(path)
        p = spawn([self.wp_bin, "--cpus", "%s,%s" % (PROXY_CPU, LOAD_CPU), "--interval-us", "10000", "--stall-us",
                   str(self.WATCH_STALL_US), "--duration", "3600"], out=path)
        return p, path

    def watch_end(self, watcher):
        """Stop the probe (SIGTERM: it prints what it measured) and return
        its per-core figures, or None."""
        p, path = watcher
        stop(p)
        d = load_json(path)
        if not d or not d.get("stopped"):
            return None
        return [dict(c, long_ms=d["long_stall_ms"], stall_ms=d["stall_us"] / 1000.0) for c in d["cpus"]]

    def run_probe(self, args, dur, name):
        """opale-wakeprobe <args> on both cores for <dur> s: its JSON, also
        kept as <name> in the raw directory."""
        out = subprocess.run([self.wp_bin] + args + ["--cpus", "%s,%s" % (PROXY_CPU, LOAD_CPU), "--duration",
                                                     "%g" % dur], capture_output=True, text=True, timeout=dur + 30)
        if out.returncode != 0:
            raise RuntimeError("opale-wakeprobe %s exited %d: %s" % (" ".join(args), out.returncode,
                                                                    out.stderr.strip()[-300:]))
        with open(os.path.join(self.raw_dir, name), "w") as f:
            f.write(out.stdout)
        return json.loads(out.stdout)

    def phase_wakeprobe(self):
        """How late this machine wakes a sleeping thread on each core, with
        every proxy idle (bench/wakeprobe.c, SCHED_FIFO, 1 ms period): each
        hop of a proxied request from one core to the other is such a
        wake-up, so this is a floor under the latency S3 attributes to a
        proxy (bench/README.md, "S3 on this machine"). Then how often, and
        for how long, the machine stops a core when both are busy (--spin)."""
        if not os.access(self.wp_bin, os.X_OK):
            raise RuntimeError("%s is missing (make bench-build builds it)" % self.wp_bin)
        dur = 3.0 if self.quick else 10.0
        log("wake-up probe: %g s on CPUs %s,%s, nothing under load" % (dur, PROXY_CPU, LOAD_CPU))
        self.wake = self.run_probe([], dur, "wakeprobe.json")
        for c in self.wake["cpus"]:
            log("  CPU %d (%s): late p50 %s, p99 %s, max %s" % (c["cpu"], c["policy"], fmt_us(c["late_us"]["p50"]),
                                                              fmt_us(c["late_us"]["p99"]),
                                                              fmt_us(c["late_us"]["max"])))
        # Then both cores busy: a host that caps the guest's CPU time stops a
        # vCPU for the rest of its period (~100 ms here), which no idle probe
        # sees (bench/README.md, "The machine stops a busy core").
        log("machine stall probe: %g s spinning on CPUs %s,%s" % (dur, PROXY_CPU, LOAD_CPU))
        self.wake_spin = self.run_probe(["--spin"], dur, "wakeprobe-spin.json")
        for c in self.wake_spin["cpus"]:
            log("  CPU %d: %d stalls >= %d us, %d >= %d ms, %.1f ms stopped in %.1f s, longest %s ms" % (
                c["cpu"], c["stalls"], self.wake_spin["stall_us"], c["long_stalls"], self.wake_spin["long_stall_ms"],
                c["stalled_ms"], c["ran_s"], "%.1f" % c["longest"][0]["ms"] if c["longest"] else "-"))

    def phase_s3(self, key="S3"):
        """Open loop at <frac> of nginx's S2 median: GW-FULL, nginx and the
        mock directly (S3: 50%, S3B: 80%, S3L: 5%, where no proxy queues and
        what is left is the cost of the hops)."""
        frac = S3_FRAC[key]
        self.runs[key] = []
        ng_s2 = [x.get("throughput_rps") for x in self.runs.get("S2", []) if x["role"] == "nginx"]
        if getattr(self, "s3_base", None):
            base = self.s3_base
        elif ng_s2 and med(ng_s2):
            base = med(ng_s2)
            self.s3_rate_src = "median nginx S2 throughput of this run (%s req/s)" % fmt(base)
        else:
            log("S3: no S2 in this run: calibrating on nginx mTLS (S2 load, %g s)" % self.duration)
            ng = self.targets["nginx"]
            cal = self.run_lg("S3cal", 0, "nginx", ng, self.full_chain_args(ng) + ["-c", "64", "-t", "1", "-d",
                                                                                  "%g" % self.duration],
                              self.duration)
            base = cal.get("throughput_rps") or 0
            self.s3_rate_src = "an nginx S2 calibration run made for S3 (%s req/s)" % fmt(base)
        if not base:
            raise RuntimeError("no nginx S2 throughput to set the S3 rate")
        self.s3_base = base
        rate = round(base * frac)
        self.s3_rates[key] = rate
        if key == "S3":
            self.s3_rate = rate
        log("%s rate: %d req/s (%d%% of %s); Redis on core %s for the time of %s" % (
            key, rate, round(frac * 100), fmt(base), PROXY_CPU, key))
        # Redis with the proxy under test: the gateway's quota store is its
        # own dependency (nginx and the mock directly do not use it), so its
        # CPU goes on the gateway's side, and the open-loop latency does not
        # measure whether the load side's core still has room for it (with
        # Redis on core 1, core 1 ran at 92-98% in the gateway's S3 runs:
        # bench/README.md).
        set_affinity(self.redis_t.proc.pid, PROXY_CPU)
        self.redis_cpu = PROXY_CPU
        try:
            self.s3_runs(key, rate)
        finally:
            set_affinity(self.redis_t.proc.pid, LOAD_CPU)
            self.redis_cpu = LOAD_CPU

    def s3_runs(self, key, rate):
        roles = ["gw", "nginx", "direct"]
        for r in range(1, self.rounds + 1):
            k = (r - 1) % 3
            order = roles[k:] + roles[:k]
            log("%s round %d/%d: %s" % (key, r, self.rounds, " ".join(order)))
            for role in order:
                common = ["-c", "64", "-t", "1", "-d", "%g" % self.s3_duration, "--rate", str(rate)]
                if role == "direct":
                    self.runs[key].append(self.run_lg(key, r, role, self.mock, self.direct_args() + common,
                                                      self.s3_duration, watch=True))
                else:
                    tgt = self.targets["gw-full"] if role == "gw" else self.targets["nginx"]
                    self.runs[key].append(self.run_lg(key, r, role, tgt, self.full_chain_args(tgt) + common,
                                                      self.s3_duration, watch=True))

    def rss_samples(self, t, n=3, gap=0.4):
        out = []
        for i in range(n):
            out.append(t.rss())
            if i + 1 < n:
                time.sleep(gap)
        return statistics.median(out)

    def phase_s5(self):
        """Fresh proxies each round (a process that has already held 10,000
        connections keeps much of that memory in its allocator, which would
        hide the cost the second time), warmed with 1 s of S2 load, then
        RSS before, and while the generator holds the connections idle."""
        for r in range(1, self.s5_rounds + 1):
            order = ("gw", "nginx") if r % 2 == 1 else ("nginx", "gw")
            for role in order:
                log("S5 round %d/%d: %s, %d connections" % (r, self.s5_rounds, role, self.s5_conns))
                name = "s5-%s-r%d" % (role, r)
                if role == "gw":
                    t = self.start_gateway(name, policies={"commune-exemple.json": self.commune_policy(HAB_FULL,
                                                                                                  1000000)},
                                           quota=self.redis_quota())
                else:
                    t = self.start_nginx(name)
                try:
                    self.s5.append(self.s5_one(r, role, t))
                finally:
                    stop(t.proc, sig=signal.SIGTERM)

    def s5_one(self, r, role, t):
        warm = self.run_lg("S5warm", r, role, t, self.full_chain_args(t) + ["-c", "64", "-t", "1", "-d", "1"], 1,
                           keep=False)
        time.sleep(1.0)
        before = self.rss_samples(t)
        key = "S5-r%d-%s" % (r, role)
        jpath = os.path.join(self.raw_dir, key + ".json")
        errp = os.path.join(self.tmp, "loadgen", key + ".err")
        setup_timeout = 120 if self.s5_conns > 5000 else 60
        args = self.full_chain_args(t) + ["-c", str(self.s5_conns), "-t", "4", "--hold", "%g" % self.s5_hold,
                                          "--timeout", str(setup_timeout), "--json", jpath]
        t0 = time.monotonic()
        p = spawn([self.lg_bin] + args, cpu=LOAD_CPU, out=os.path.join(self.tmp, "loadgen", key + ".out"), err=errp)
        deadline = t0 + setup_timeout + 30
        m = None
        while m is None:
            m = re.search(r"holding (\d+) connections", read_text(errp))
            if m is None:
                if reap(p) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        during = peak = None
        if m is not None:
            time.sleep(min(2.0, self.s5_hold / 3))
            during = self.rss_samples(t)
            peak = t.rss()
        ru = wait_exit(p, time.monotonic() + self.s5_hold + 60)
        time.sleep(0.5)
        after = t.rss()
        res = load_json(jpath)
        errors = []
        held = res["hold"]["held"] if res and "hold" in res else (int(m.group(1)) if m else 0)
        if m is None:
            errors.append("the generator never reached its hold phase: %s" % read_text(errp)[-300:].strip())
        if res is None:
            errors.append("no JSON from the generator (rc %s)" % p.returncode)
        else:
            if res["errors"]["total"]:
                errors.append("errors %d (%s)" % (res["errors"]["total"], ", ".join(
                    "%s %d" % (k, v) for k, v in res["errors"].items() if k != "total" and v)))
            nb = res["responses"]["3xx"] + res["responses"]["4xx"] + res["responses"]["5xx"]
            if nb:
                errors.append("non-2xx responses: %d" % nb)
            if held != self.s5_conns:
                errors.append("held %d of %d connections" % (held, self.s5_conns))
            if res["hold"]["closed_during_hold"]:
                errors.append("%d connections closed by the server during the hold" % res["hold"]["closed_during_hold"])
        if not t.alive():
            errors.append("%s EXITED (rc %s)" % (t.name, t.proc.returncode))
            self.notes.append("%s exited during S5" % t.name)
        per = (during - before) / held if (during is not None and held) else None
        rec = {"round": r, "role": role, "target": t.name, "conns": self.s5_conns, "held": held,
               "rss_before_kb": before, "rss_with_kb": during, "rss_peak_kb": peak, "rss_after_kb": after,
               "per_conn_kb": per, "setup_s": res["hold"]["setup_s"] if res and "hold" in res else None,
               "gen_cpu_s": (ru.ru_utime + ru.ru_stime) if ru else None,
               "warm_flags": warm["flag_errors"], "flag_errors": errors}
        log("  %s: RSS %s -> %s KiB, %.2f KiB/conn%s" % (key, fmt(before), fmt(during), per or 0,
                                                         ("  [" + "; ".join(errors) + "]") if errors else ""))
        return rec

    def phase_s7(self):
        W, D = self.s7_window, self.s7_duration
        qs = [self.targets["gw-q%d" % i] for i in (1, 2, 3)]
        key = "opale:q:{%s}" % HAB_S7
        self.redis.cmd("DEL", key)
        # the preflight's etatSante calls went through the quota stage
        for t in qs:
            t.s7_start = len(journal_records(t.journal_dir))
        log("S7: 3 gateways x %g req/s open loop, %g s, window %d s, limit %d" % (self.s7_rate, D, W, QUOTA_S7))
        procs = []
        lgdir = os.path.join(self.tmp, "loadgen")
        os.makedirs(lgdir, exist_ok=True)
        for i, t in enumerate(qs, 1):
            jpath = os.path.join(self.raw_dir, "S7-gw-q%d.json" % i)
            args = self.full_chain_args(t) + ["-c", "4", "-t", "1", "-d", "%g" % D, "--rate", "%g" % self.s7_rate,
                                              "--json", jpath]
            p = spawn([self.lg_bin] + args, cpu=LOAD_CPU, out=os.path.join(lgdir, "S7-%d.out" % i),
                      err=os.path.join(lgdir, "S7-%d.err" % i))
            procs.append((t, p, jpath))
        # Redis's own admission times: the window holds every admission of
        # the last W seconds, so polling it twice a second sees them all.
        admitted = {}
        deadline = time.monotonic() + D + 90
        polls = 0
        while True:
            done = all(reap(p) for _, p, _ in procs)
            try:
                z = self.redis.cmd("ZRANGE", key, 0, -1, "WITHSCORES") or []
                for m, s in zip(z[0::2], z[1::2]):
                    admitted[m.decode()] = int(float(s))
                polls += 1
            except (OSError, RuntimeError) as e:
                self.redis.close()
                self.notes.append("S7: a Redis poll failed: %s" % e)
            if done:
                break
            if time.monotonic() > deadline:
                for _, p, _ in procs:
                    stop(p)
                break
            time.sleep(0.5)
        time.sleep(1.5)  # the journals' writer threads
        per_gw = []
        allow_ts, allow_ids, deny_quota, other = [], set(), 0, []
        degraded = 0
        lag = []
        for i, (t, p, jpath) in enumerate(procs, 1):
            res = load_json(jpath)
            recs = [x for x in journal_records(t.journal_dir)[t.s7_start:]
                    if str(x.get("path", "")).startswith("/opale/v1/entreprises/")]
            a, dq, o = [], [], []
            for x in recs:
                if x.get("decision") == "allow" and x.get("status") == 200:
                    a.append(x)
                elif x.get("status") == 429 and str(x.get("reason", "")).startswith("quota"):
                    dq.append(x)
                else:
                    o.append(x)
            for x in a:
                ms = ts_ms(x["ts"])
                allow_ts.append(ms)
                allow_ids.add(x.get("request_id"))
                if x.get("request_id") in admitted:
                    lag.append(ms - admitted[x["request_id"]])
            deny_quota += len(dq)
            other += o
            # admitted by the local fallback (its Redis call timed out or
            # failed): not in Redis until written back, outside the exact count
            dg = len([x for x in a if (x.get("quota") or {}).get("store") == "degraded"])
            degraded += dg
            gen_err = []
            if res is None:
                gen_err.append("no JSON (rc %s)" % p.returncode)
            else:
                if res["errors"]["total"]:
                    gen_err.append("errors %d" % res["errors"]["total"])
                r5 = res["responses"]["3xx"] + res["responses"]["5xx"]
                if r5:
                    gen_err.append("3xx/5xx responses: %d" % r5)
                if res["requests"]["missed"]:
                    gen_err.append("behind schedule: %d missed" % res["requests"]["missed"])
            per_gw.append({"gateway": t.name, "requests": len(recs), "admitted": len(a), "refused_quota": len(dq),
                           "admitted_degraded": dg,
                           "other": len(o), "generator": {
                               "completed": res["requests"]["completed"] if res else None,
                               "responses": res["responses"] if res else None,
                               "errors": res["errors"]["total"] if res else None},
                           "flag_errors": gen_err})
        rtimes = sorted(admitted.values())
        members = set(m.split("#")[0] for m in admitted)
        res = {
            "window_s": W, "duration_s": D, "limit": QUOTA_S7, "rate_per_gateway": self.s7_rate, "polls": polls,
            "per_gateway": per_gw,
            "admitted_journal": len(allow_ts), "admitted_redis": len(admitted),
            "refused_quota": deny_quota, "other": len(other), "admitted_degraded": degraded,
            "other_examples": [{k: x.get(k) for k in ("decision", "reason", "status", "code")} for x in other[:5]],
            "max_window_redis": max_in_window(rtimes, W * 1000) if rtimes else None,
            "max_window_journal": max_in_window(allow_ts, W * 1000) if allow_ts else None,
            "min_span_redis_ms": min_span(rtimes, QUOTA_S7),
            "min_span_journal_ms": min_span(allow_ts, QUOTA_S7),
            "journal_not_in_redis": len([i for i in allow_ids if i not in members]),
            "redis_not_in_journal": len([m for m in members if m not in allow_ids]),
            "lag_ms_median": med(lag), "lag_ms_max": mx(lag),
            "span_s": ((rtimes[-1] - rtimes[0]) / 1000.0) if rtimes else None,
        }
        # the most a sliding window can admit over the span of the admissions
        if rtimes:
            res["ceiling"] = QUOTA_S7 * (int((rtimes[-1] - rtimes[0]) // (W * 1000)) + 1)
        res["met"] = res["max_window_redis"] == QUOTA_S7
        self.s7 = res
        with open(os.path.join(self.raw_dir, "S7-analysis.json"), "w") as f:
            json.dump(dict(res, admissions_redis_ms=rtimes, admissions_journal_ms=sorted(allow_ts)), f)
        log("S7: admitted %d (Redis) / %d (journals), max in any %d s window: %s (Redis), %s (journals)" % (
            len(admitted), len(allow_ts), W, res["max_window_redis"], res["max_window_journal"]))

    def phase_profile(self):
        if not shutil.which("perf"):
            self.failures["profile"] = "perf not installed"
            return
        t = self.targets["gw-full"]
        D = 10.0
        data = os.path.join(self.tmp, "perf.data")
        perr = os.path.join(self.tmp, "perf.err")
        log("profile: perf record of GW-FULL (pid %d) under S2 load, %g s" % (t.proc.pid, D))
        pp = spawn(["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-p", t.proc.pid, "-o", data,
                    "--", "sleep", "%g" % (D + 2)], cpu=LOAD_CPU, out=os.path.join(self.tmp, "perf.out"), err=perr)
        time.sleep(1.0)
        self.profile_run = self.run_lg("profile", 1, "gw", t, self.full_chain_args(t) +
                                       ["-c", "64", "-t", "1", "-d", "%g" % D], D)
        wait_exit(pp, time.monotonic() + 60)
        if not os.path.exists(data):
            self.failures["profile"] = "perf record failed: " + read_text(perr)[-500:]
            return
        r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol",
                            "-g", "none"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=300)
        lines = [re.sub(r"(\s+-)+\s*$", "", ln.rstrip()) for ln in r.stdout.decode(errors="replace").splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        self.profile_lines = lines[:30]
        self.profile_samples = re.findall(r"# Samples: (\S+)", r.stdout.decode(errors="replace"))
        # The same samples by library: Debian's libcrypto has no symbols, so
        # its share (the assertion signature, TLS records, hashes) is spread
        # over anonymous addresses above and only readable per library.
        r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso",
                            "-g", "none"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=300)
        lines = [re.sub(r"(\s+-)+\s*$", "", ln.rstrip()) for ln in r.stdout.decode(errors="replace").splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        self.profile_dso_lines = lines[:12]

    # -- the whole run

    def run(self):
        self.setup()
        os.makedirs(self.raw_dir, exist_ok=True)
        self.phase_pairs()
        if any(self.want(s) for s in ("S3", "S3B", "S3L")):
            try:
                self.phase_wakeprobe()
            except Exception as e:
                self.fail("wake-up probe", e)
        for s, fn in (("S3", self.phase_s3), ("S3B", lambda: self.phase_s3("S3B")),
                      ("S3L", lambda: self.phase_s3("S3L")), ("S2W", self.phase_s2w),
                      ("S5", self.phase_s5), ("S7", self.phase_s7), ("S8", self.phase_s8)):
            if self.want(s) and s not in self.failures:
                try:
                    fn()
                except Exception as e:
                    self.fail(s, e)
        if self.args.profile:
            try:
                self.phase_profile()
            except Exception as e:
                self.fail("profile", e)
        for name, t in self.targets.items():
            if not t.alive():
                self.notes.append("%s is not running at the end (rc %s); stderr tail: %s" % (
                    name, t.proc.returncode, read_text(os.path.join(t.dir, "stderr"))[-500:]))
            elif t.kind == "gateway":
                errs = [ln for ln in read_text(os.path.join(t.dir, "stderr")).splitlines()
                        if re.search(r"error|fail|drop|assert|abort", ln, re.I)]
                if errs:
                    self.notes.append("%s stderr: %d line(s) mentioning error/fail/drop, e.g. `%s`" % (
                        name, len(errs), errs[0][:200]))
        ng = self.targets.get("nginx")
        if ng is not None:
            el = [ln for ln in read_text(os.path.join(ng.dir, "error.log")).splitlines()
                  if "[error]" in ln or "[crit]" in ln or "[alert]" in ln or "[emerg]" in ln]
            if el:
                self.notes.append("nginx error.log: %d error line(s), e.g. `%s`" % (len(el), el[0][:200]))
        self.load_after = os.getloadavg()
        self.ended_wall = datetime.datetime.now(datetime.timezone.utc)
        self.report()

"""The bench's report: medians and ranges over rounds, the summary and detail
tables, the machine description, the gnuplot figures and the Markdown file
with its raw data."""

import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

from benchlib.common import (
    ETAT, HAB_S7, PATHS, QUOTA_S7, S3_FRAC, SAT_PCT, SRCDIR, T0, fmt, fmt_us, med, mn, mx, rng_txt)


def stopped_by_machine(rec):
    """True when opale-wakeprobe, beside the run, saw the machine stop a
    core for its long-stall threshold (50 ms) or more."""
    return any(c["long_stalls"] for c in rec.get("machine_stalls") or [])


def at_least(r, target):
    """The verdict on a ratio <r> whose target is ≥ <target>: "met",
    "NOT met (r, by how much short)", or None when not measured."""
    if r is None:
        return None
    if r >= target:
        return "met"
    return "NOT met (%.3f, %.1f%% short)" % (r, 100 * (target - r) / target)


# Targets of the ratios against nginx (issue 15): the req/s ratio, then the
# requests-per-proxy-CPU-second ratio; None: reported only.
NGINX_TARGETS = {"S1": (1.0, None), "S2": (0.9, 0.8), "S4": (1.0, None)}


def floor_over(runs, limit_us):
    """Of the proxies' runs in <runs> whose floor under the p99 is known
    (benchlib/stops.py), how many the machine's stops alone put above
    <limit_us>: a phrase for the summary, or ""."""
    known = [x for x in runs if x["role"] != "direct" and x.get("p99_floor")]
    if not known:
        return ""
    over = [x for x in known if x["p99_floor"]["floor_us"] > limit_us]
    return "the machine's stops alone put the p99 above %s in %d of %d proxy runs" % (
        fmt_us(limit_us), len(over), len(known))


def floor_cell(rec):
    """A run's floor under its p99 (benchlib/stops.py) for a table."""
    f = rec.get("p99_floor")
    if not f:
        return "—"
    return fmt_us(f["floor_us"]) if f["floor_us"] > 0 else "0"


def stop_cells(cores, *fields):
    """One table cell per field of opale-wakeprobe's per-core figures,
    the cores' values joined with " / " ("longest": the longest stop)."""
    def one(c, f):
        if f == "longest":
            return "%.0f" % c["longest"][0]["ms"] if c["longest"] else "0"
        return "%.0f" % c[f] if f == "stalled_ms" else str(c[f])
    return [" / ".join(one(c, f) for c in cores) for f in fields]


# opale-wakeprobe's "policy" field, as the report names it
SCHED_NAMES = {"fifo": "SCHED_FIFO", "other": "SCHED_OTHER"}


class Report:
    """Bench mixin: summaries, tables, plots (gnuplot) and the Markdown report."""

    # ----------------------------------------------------------------------
    # analysis and report

    def pair_summary(self, s, metric):
        runs = self.runs.get(s, [])
        a_role, b_role = self.PAIRS[s]
        by = {}
        for x in runs:
            by.setdefault(x["round"], {})[x["role"]] = x
        A = [x.get(metric) for x in runs if x["role"] == a_role]
        B = [x.get(metric) for x in runs if x["role"] == b_role]
        ratios = []
        for rd in sorted(by):
            pa, pb = by[rd].get(a_role), by[rd].get(b_role)
            if pa and pb and pa.get(metric) and pb.get(metric):
                if s in ("S6", "S2W"):
                    ratios.append(pb[metric] / pa[metric])
                else:
                    ratios.append(pa[metric] / pb[metric])
        flagged = sum(1 for x in runs if x["flag_errors"])
        return {"a": A, "b": B, "ratios": ratios, "flagged": flagged, "runs": len(runs),
                "others0": med([x.get("core0_other_pct") for x in runs])}

    def summary_rows(self):
        rows = []

        def row(s, what, a_label, a, b_label, b, ratio_label, ratios, target, met, flagged, nd=0, unit=""):
            rows.append({"scenario": s, "what": what, "a_label": a_label, "a_med": med(a), "a_min": mn(a),
                         "a_max": mx(a), "b_label": b_label, "b_med": med(b), "b_min": mn(b), "b_max": mx(b),
                         "ratio_label": ratio_label, "ratio_med": med(ratios), "ratio_min": mn(ratios),
                         "ratio_max": mx(ratios), "target": target, "met": met, "flagged": flagged, "nd": nd,
                         "unit": unit})

        titles = {"S1": "pass-through, TLS, keep-alive, 64 conns", "S2": "full chain, mTLS, keep-alive, 64 conns",
                  "S2-h2": "full chain over HTTP/2 (gateway) vs nginx HTTP/1.1, 64 conns",
                  "S2H": "full chain vs HAProxy enforcing the same chain, 64 conns",
                  "S2W": "full chain, workers 1 vs 2, whole machine (generator included)",
                  "S4": "new mTLS connection per request, 16 conns", "S6": "policy count, S2 load"}
        for s in ("S1", "S2", "S2-h2", "S2H", "S2W", "S4", "S6"):
            if s not in self.runs or not self.runs[s]:
                continue
            metric = "handshake_rate" if s == "S4" else "throughput_rps"
            ps = self.pair_summary(s, metric)
            eff = self.pair_summary(s, "req_per_proxy_cpu_s")
            fl = "%d of %d runs flagged" % (ps["flagged"], ps["runs"]) if ps["flagged"] else ""
            if ps["others0"] is not None:
                fl = (fl + "; " if fl else "") + "others on core 0: %.0f%% (median)" % ps["others0"]
            if s == "S2H":
                r = med(ps["ratios"])
                met = "INVALID (functional check failed)" if "S2H" in self.failures else at_least(r, 2.0)
                row(s, titles[s] + ": req/s", "gateway", ps["a"], "HAProxy", ps["b"], "gw / HAProxy", ps["ratios"],
                    "≥ 2.0", met, fl)
                re_ = med(eff["ratios"])
                met_e = "INVALID (functional check failed)" if "S2H" in self.failures else at_least(re_, 2.0)
                row(s, "requests per proxy CPU-second (one core each, whatever else ran)", "gateway", eff["a"],
                    "HAProxy", eff["b"], "gw / HAProxy", eff["ratios"], "≥ 2.0", met_e, fl)
            elif s == "S2W":
                row(s, titles[s] + ": req/s", "workers 1", ps["a"], "workers 2", ps["b"], "2 / 1", ps["ratios"],
                    "— (reported)", None, fl)
                row(s, "requests per gateway CPU-second", "workers 1", eff["a"], "workers 2", eff["b"], "2 / 1",
                    eff["ratios"], "", None, fl)
            elif s == "S6":
                met = at_least(med(ps["ratios"]), 0.98)
                row(s, titles[s] + ": req/s", "GW-FULL (1 policy)", ps["a"], "GW-10K", ps["b"], "10k / 1",
                    ps["ratios"], "≥ 0.98", met, fl)
                row(s, "requests per proxy CPU-second", "GW-FULL", eff["a"], "GW-10K", eff["b"], "10k / 1",
                    eff["ratios"], "", None, fl)
            else:
                unit = "handshakes/s" if s == "S4" else "req/s"
                t_rps, t_eff = NGINX_TARGETS.get(s, (None, None))
                row(s, titles[s] + ": " + unit, "gateway", ps["a"], "nginx", ps["b"], "gw / nginx", ps["ratios"],
                    "≥ %.1f" % t_rps if t_rps else "— (reported)",
                    at_least(med(ps["ratios"]), t_rps) if t_rps else None, fl)
                row(s, "requests per proxy CPU-second", "gateway", eff["a"], "nginx", eff["b"], "gw / nginx",
                    eff["ratios"], "≥ %.1f" % t_eff if t_eff else "",
                    at_least(med(eff["ratios"]), t_eff) if t_eff else None, fl)
        wake = getattr(self, "wake", None)
        if wake and len(wake["cpus"]) >= 2:
            c0, c1 = wake["cpus"][0], wake["cpus"][1]
            row("machine", "the floor under S3: how late an idle core wakes a sleeping thread, p99 "
                "(µs; opale-wakeprobe, %s)" % SCHED_NAMES.get(c0["policy"], c0["policy"]),
                "core %d" % c0["cpu"], [c0["late_us"]["p99"]], "core %d" % c1["cpu"], [c1["late_us"]["p99"]],
                "", [], "— (reported)", None, "")
        spin = getattr(self, "wake_spin", None)
        if spin and len(spin["cpus"]) >= 2:
            c0, c1 = spin["cpus"][0], spin["cpus"][1]
            row("machine", "both cores busy: time the machine stopped a core, ms in %g s (opale-wakeprobe --spin; "
                "stops ≥ %d ms: %d and %d)" % (spin["duration_s"], spin["long_stall_ms"], c0["long_stalls"],
                                               c1["long_stalls"]),
                "core %d" % c0["cpu"], [c0["stalled_ms"]], "core %d" % c1["cpu"], [c1["stalled_ms"]],
                "", [], "— (reported)", None, "")
        self.s3_added = {}
        for key in ("S3", "S3B", "S3L"):
            if not self.runs.get(key):
                continue
            runs = self.runs[key]
            by = {}
            for x in runs:
                by.setdefault(x["round"], {})[x["role"]] = x
            add_gw, add_ng = [], []
            for rd in sorted(by):
                d = by[rd].get("direct")
                if d and d.get("p99") is not None:
                    if by[rd].get("gw") and by[rd]["gw"].get("p99") is not None:
                        add_gw.append(by[rd]["gw"]["p99"] - d["p99"])
                    if by[rd].get("nginx") and by[rd]["nginx"].get("p99") is not None:
                        add_ng.append(by[rd]["nginx"]["p99"] - d["p99"])
            self.s3_added[key] = (add_gw, add_ng)
            m = med(add_gw)
            if key == "S3":
                met = None if m is None else ("met" if m <= 1000 else "NOT met (+%s over)" % fmt_us(m - 1000))
            else:
                met = None
            fl = sum(1 for x in runs if x["flag_errors"])
            fl = "%d of %d runs flagged" % (fl, len(runs)) if fl else ""
            o0 = med([x.get("core0_other_pct") for x in runs if x["role"] != "direct"])
            if o0 is not None:
                fl = (fl + "; " if fl else "") + "others on core 0: %.0f%% (median)" % o0
            hit = [x for x in runs if stopped_by_machine(x)]
            if hit:
                fl = (fl + "; " if fl else "") + "the machine stopped a core ≥ 50 ms in %d of %d runs" % (
                    len(hit), len(runs))
            floored = floor_over(runs, 1000)
            if floored:
                fl = (fl + "; " if fl else "") + floored
            pct = round(100 * S3_FRAC[key])
            row(key, "open loop at %s req/s (%d%% of nginx S2): added p99 vs direct (µs)" % (
                fmt(self.s3_rates.get(key)), pct), "gateway", add_gw, "nginx", add_ng, "", [],
                "gateway ≤ 1 ms" if key == "S3" else "— (reported)", met, fl)
        if self.s5:
            g = [x["per_conn_kb"] for x in self.s5 if x["role"] == "gw"]
            n = [x["per_conn_kb"] for x in self.s5 if x["role"] == "nginx"]
            by = {}
            for x in self.s5:
                by.setdefault(x["round"], {})[x["role"]] = x
            ratios = [by[r]["gw"]["per_conn_kb"] / by[r]["nginx"]["per_conn_kb"] for r in sorted(by)
                      if "gw" in by[r] and "nginx" in by[r] and by[r]["gw"]["per_conn_kb"] is not None
                      and by[r]["nginx"]["per_conn_kb"]]
            r = med(ratios)
            met = None if r is None else ("met" if r <= 1.0 else "NOT met (%.2f×, %.0f%% over)" % (r, 100 * (r - 1)))
            fl = sum(1 for x in self.s5 if x["flag_errors"])
            row("S5", "RSS per idle mTLS connection (KiB), %s conns" % fmt(self.s5_conns), "gateway", g, "nginx", n,
                "gw / nginx", ratios, "≤ 1.0", met, "%d of %d runs" % (fl, len(self.s5)) if fl else "", nd=2)
        if self.s7:
            s7 = self.s7
            met = "met" if s7["met"] else "NOT met (max %s, expected %d)" % (s7["max_window_redis"], QUOTA_S7)
            fl = sum(1 for x in s7["per_gateway"] if x["flag_errors"]) + (1 if s7["other"] else 0)
            row("S7", "quota: max admissions in any rolling %d s window (Redis admission times)" % s7["window_s"],
                "3 gateways", [s7["max_window_redis"]], "expected", [QUOTA_S7], "", [], "= 50 exactly", met,
                "%d flags" % fl if fl else "")
        if self.s8:
            s8 = self.s8
            full = s8["steps"][0]
            qe = s8.get("quota_errors")
            ok = (full["held"] and full.get("gw_machine_pct") is not None and full["gw_machine_pct"] <= 50 and
                  full.get("p99") is not None and full["p99"] <= 5000 and qe == 0)
            why = []
            if not full["held"]:
                why.append("%s of %s req/s reached; highest rate held: %s" % (
                    fmt(full.get("throughput_rps")), fmt(s8["rate"]), fmt(s8.get("held_rate"))))
            if (full.get("gw_machine_pct") or 0) > 50:
                why.append("gateway %s%% of the machine" % fmt(full.get("gw_machine_pct"), 1))
            if (full.get("p99") or 0) > 5000:
                why.append("p99 %s" % fmt_us(full.get("p99")))
            if qe:
                why.append("%s quota errors" % qe)
            fu = (full.get("p99_floor") or {}).get("floor_us")
            if fu:
                why.append("the machine's stops alone put the p99 at ≥ %s" % fmt_us(fu))
            met = "met" if ok else "NOT met (%s)" % "; ".join(why)
            row("S8", "%s partners at %d/min (%s req/s offered), workers 2, Redis: p50 / p99 at the full quota "
                "(µs)" % (fmt(float(s8["partners"])), s8["per_minute"], fmt(s8["rate"])), "p50", [full.get("p50")],
                "p99", [full.get("p99")], "", [], "≤ 50% CPU, p99 ≤ 5 ms, 0 quota errors", met,
                "; ".join(full.get("flag_errors") or []))
        return rows

    def summary_table(self, rows):
        out = ["| scenario | figure | A: median (min–max) | B: median (min–max) | ratio: median of pairs (min–max) "
               "| target | verdict | flags, noise |", "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            nd = r["nd"]
            a = "%s: **%s** (%s)" % (r["a_label"], fmt(r["a_med"], nd), rng_txt([r["a_min"], r["a_max"]], nd)) \
                if r["a_med"] is not None else "—"
            b = "%s: **%s** (%s)" % (r["b_label"], fmt(r["b_med"], nd), rng_txt([r["b_min"], r["b_max"]], nd)) \
                if r["b_med"] is not None else "—"
            if r["ratio_med"] is not None:
                ratio = "%s: **%.3f** (%.3f–%.3f)" % (r["ratio_label"], r["ratio_med"], r["ratio_min"], r["ratio_max"])
            else:
                ratio = "—"
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["scenario"], r["what"], a, b, ratio, r["target"] or "", r["met"] or "", r["flagged"] or ""))
        return out

    def wake_section(self):
        """The machine's own wake-up latency, measured before S3 with every
        proxy idle (phase_wakeprobe)."""
        wake = getattr(self, "wake", None)
        if not wake:
            return []
        L = ["## The machine: wake-up latency and stops, the floor under S3", "",
             "`opale-wakeprobe` (bench/wakeprobe.c): one thread per core, pinned, at %s, sleeps to an absolute "
             "deadline every %d µs for %g s with every proxy idle, and records how late it woke. A request through "
             "a proxy crosses from one core to the other four times (generator → proxy → mock → proxy → "
             "generator), each time waking a thread that may sit on an idle core; the mock reached directly shares "
             "core 1 with the generator and crosses none. On a virtual machine an idle core is halted, and waking "
             "it goes through the hypervisor." % (
                 "SCHED_FIFO" if all(c["policy"] == "fifo" for c in wake["cpus"]) else "SCHED_OTHER (no right to "
                 "SCHED_FIFO: the figures include the scheduler's own delay)", wake["interval_us"],
                 wake["duration_s"]), "",
             "| core | wake-ups | missed periods | mean | p50 | p90 | p99 | p99.9 | max |",
             "|---|---|---|---|---|---|---|---|---|"]
        for c in wake["cpus"]:
            lu = c["late_us"]
            L.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                c["cpu"], fmt(c["wakeups"]), fmt(c["skipped"]), fmt_us(lu["mean"]), fmt_us(lu["p50"]),
                fmt_us(lu["p90"]), fmt_us(lu["p99"]), fmt_us(lu["p99_9"]), fmt_us(lu["max"])))
        L.append("")
        spin = getattr(self, "wake_spin", None)
        if spin:
            L.extend([
                "Then `opale-wakeprobe --spin`: one thread per core, pinned, at SCHED_OTHER, reads the clock in a "
                "loop for %g s, both cores at once, and counts every gap of %g ms or more between two reads: the "
                "times the machine did not run that core. With nothing else running, what takes milliseconds is the "
                "host (a host that caps the guest's CPU time stops a busy vCPU until its next period). This is the "
                "load under which such a cap shows; an idle probe never reaches it." % (
                    spin["duration_s"], spin["stall_us"] / 1000.0), "",
                "| core | spun (s) | stops ≥ %g ms | stops ≥ %d ms | time stopped (ms) | the longest (ms, at s) |" % (
                    spin["stall_us"] / 1000.0, spin["long_stall_ms"]),
                "|---|---|---|---|---|---|"])
            for c in spin["cpus"]:
                L.append("| %d | %.1f | %d | %d | %.0f | %s |" % (
                    c["cpu"], c["ran_s"], c["stalls"], c["long_stalls"], c["stalled_ms"],
                    ", ".join("%.1f (%.2f)" % (x["ms"], x["at_s"]) for x in c["longest"]) or "—"))
            L.append("")
        return L

    def s3_stall_lines(self, key):
        """What the machine took from the cores during each run of <key>
        (opale-wakeprobe beside it), and the added p99 over the rounds it
        stopped no core for 50 ms or more."""
        runs = self.runs.get(key, [])
        watched = [x for x in runs if x.get("machine_stalls")]
        if not watched:
            return []
        st = watched[0]["machine_stalls"]
        L = ["Beside each run, `opale-wakeprobe` slept to a deadline every 10 ms on each core (SCHED_FIFO) and "
             "counted every wake-up late by %g ms or more: the times the machine did not run a core. "
             "A stop of ≥ %d ms delays every request due during it and queues those behind, so one such stop in a "
             "%g s run is enough to set its p99. *Floor under p99*: the p99 those stops alone impose on any "
             "server, computed from each stop's place and length in the run's measured window (the stops of both "
             "cores for a proxy, of core %s for the mock directly: bench/README.md, \"The floor under a run's "
             "p99\")." % (st[0]["stall_ms"], st[0]["long_ms"], self.s3_duration, st[-1]["cpu"]), "",
             "| round | target | p99 | floor under p99 | stops ≥ %g ms, core %s / core %s | time stopped (ms) "
             "| the longest (ms) |" % (st[0]["stall_ms"], st[0]["cpu"], st[1]["cpu"] if len(st) > 1 else "—"),
             "|---|---|---|---|---|---|---|"]
        names = {"gw": "gateway", "nginx": "nginx", "direct": "direct"}
        for x in sorted(watched, key=lambda x: (x["round"], runs.index(x))):
            ms = x["machine_stalls"]
            L.append("| %d | %s | %s | %s | %s |" % (
                x["round"], names.get(x["role"], x["role"]), fmt_us(x.get("p99")), floor_cell(x),
                " | ".join(stop_cells(ms, "stalls", "stalled_ms", "longest"))))
        L.append("")
        by = {}
        for x in runs:
            by.setdefault(x["round"], {})[x["role"]] = x
        clean = [rd for rd in sorted(by) if all(r in by[rd] and by[rd][r].get("machine_stalls") is not None and
                                                not stopped_by_machine(by[rd][r]) for r in ("gw", "nginx", "direct"))]
        add = {"gw": [], "nginx": []}
        for rd in clean:
            d = by[rd]["direct"].get("p99")
            for r in add:
                if d is not None and by[rd][r].get("p99") is not None:
                    add[r].append(by[rd][r]["p99"] - d)
        if clean:
            L.append("Over the %d of %d rounds in which the machine stopped no core for %d ms or more in any of the "
                     "three runs, the added p99 is gateway %s (%s–%s), nginx %s (%s–%s). This is reported beside "
                     "the figure above, not in place of it." % (
                         len(clean), len(by), st[0]["long_ms"], fmt_us(med(add["gw"])), fmt_us(mn(add["gw"])),
                         fmt_us(mx(add["gw"])), fmt_us(med(add["nginx"])), fmt_us(mn(add["nginx"])),
                         fmt_us(mx(add["nginx"]))))
        else:
            L.append("In every round the machine stopped a core for %d ms or more during at least one of the three "
                     "runs." % st[0]["long_ms"])
        L.append("")
        return L

    def detail_table(self, s, roles, metric_label="req/s", metric="throughput_rps"):
        out = ["| round | target | %s | p50 | p99 | proxy CPU %% | req / proxy CPU-s | generator CPU %% "
               "| core 1 %% (load side) | core 0 %% used by others | non-2xx | errors | flags |" % metric_label,
               "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for x in sorted(self.runs.get(s, []), key=lambda x: (x["round"], self.runs[s].index(x))):
            resp = x.get("responses") or {}
            nb = resp.get("3xx", 0) + resp.get("4xx", 0) + resp.get("5xx", 0) if resp else "—"
            err = x.get("errors", {}).get("total", "—") if x.get("errors") else "—"
            flags = "; ".join(["**%s**" % e for e in x["flag_errors"]] + x["flag_notes"])
            out.append("| %d | %s | %s | %s | %s | %.0f | %s | %s | %.0f | %s | %s | %s | %s |" % (
                x["round"], roles.get(x["role"], x["role"]), fmt(x.get(metric)), fmt_us(x.get("p50")),
                fmt_us(x.get("p99")), x["proxy_cpu_pct"], fmt(x.get("req_per_proxy_cpu_s")),
                fmt(x.get("gen_cpu_pct")) if x.get("gen_cpu_pct") is not None else "—", x["core1_pct"],
                fmt(x.get("core0_other_pct")), nb, err, flags))
        return out

    def machine(self):
        def cmd(argv):
            try:
                r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=30)
                return r.stdout.decode(errors="replace").strip().splitlines()[0]
            except (OSError, subprocess.SubprocessError, IndexError):
                return "?"
        model = "?"
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        mem = "?"
        try:
            with open("/proc/meminfo") as f:
                mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1048576)
        except (OSError, ValueError, IndexError):
            pass
        git = cmd(["git", "-C", SRCDIR, "rev-parse", "--short", "HEAD"])
        dirty = subprocess.run(["git", "-C", SRCDIR, "status", "--porcelain", "--untracked-files=no"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode().strip()
        return {
            "hostname": socket.gethostname(), "nproc": os.cpu_count(), "cpu_model": model, "memory": mem,
            "kernel": os.uname().release, "os": cmd(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
            "nginx": cmd([self.nginx_bin, "-v"]), "openssl": cmd(["openssl", "version"]),
            "redis": cmd(["redis-server", "--version"]), "gateway": cmd([self.gw_bin, "-v"]),
            "loadgen": cmd([self.lg_bin, "-V"]), "gnuplot": cmd(["gnuplot", "--version"]),
            "git": git + (" (with uncommitted changes)" if dirty else ""),
            "load_before": self.load_before, "load_after": self.load_after,
        }

    # -- plots

    def plots(self, stem_path):
        made = {}
        if not shutil.which("gnuplot"):
            self.notes.append("gnuplot not installed: no plots")
            return made
        term = "pngcairo size %d,%d font 'Sans,10'"
        if subprocess.run(["gnuplot", "-e", "set terminal pngcairo"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            term = "png size %d,%d"
        pdir = os.path.join(self.tmp, "plots")
        os.makedirs(pdir, exist_ok=True)
        # (1) throughput
        panels = []
        for s, title, ylabel, la, lb in (
                ("S1", "S1 pass-through (TLS)", "requests/s", "opale-gateway", "nginx"),
                ("S2", "S2 full chain (mTLS)", "requests/s", "opale-gateway", "nginx"),
                ("S2H", "S2H full chain vs HAProxy", "requests/s", "opale-gateway", "HAProxy"),
                ("S2W", "S2W workers 1 vs 2 (whole machine)", "requests/s", "workers 1", "workers 2"),
                ("S4", "S4 new mTLS connection per request", "handshakes/s", "opale-gateway", "nginx"),
                ("S6", "S6 policy count (S2 load)", "requests/s", "1 policy", "10,000 policies")):
            if not self.runs.get(s):
                continue
            ps = self.pair_summary(s, "handshake_rate" if s == "S4" else "throughput_rps")
            if med(ps["a"]) is None or med(ps["b"]) is None:
                continue
            panels.append((s, title, ylabel, la, lb, ps))
        if panels:
            dat = os.path.join(pdir, "throughput.dat")
            with open(dat, "w") as f:
                for s, title, ylabel, la, lb, ps in panels:
                    f.write('"%s" %f %f %f %f %f %f\n\n\n' % (
                        s, med(ps["a"]), mn(ps["a"]), mx(ps["a"]), med(ps["b"]), mn(ps["b"]), mx(ps["b"])))
            png = stem_path + "-throughput.png"
            gp = ["set terminal " + term % (max(820, 360 * len(panels) + 100), 540), "set output '%s'" % png,
                  "set multiplot layout 1,%d title 'Throughput, proxy on 1 core: medians over %d rounds, "
                  "bars = min-max'" % (len(panels), self.rounds),
                  "set style data histogram", "set style histogram errorbars gap 1 lw 1.5",
                  "set style fill solid 0.85 border -1", "set boxwidth 0.9", "set yrange [0:*]", "set grid ytics",
                  "set key top left Left reverse samplen 2", "set offsets 0,0,graph 0.25,0", "set format y '%.0f'"]
            for i, (s, title, ylabel, la, lb, ps) in enumerate(panels):
                gp += ["set title '%s'" % title, "set ylabel '%s'" % ylabel,
                       "plot '%s' index %d using 2:3:4:xtic(1) title '%s' lc rgb '#1f77b4', "
                       "'' index %d using 5:6:7 title '%s' lc rgb '#ff7f0e'" % (dat, i, la, i, lb)]
            gp.append("unset multiplot")
            if self.gnuplot(gp, os.path.join(pdir, "throughput.gp")):
                made["throughput"] = png
        # (2) latency curves from S3: pointwise median over rounds
        if self.runs.get("S3"):
            series = []
            for role, label in (("gw", "opale-gateway (GW-FULL)"), ("nginx", "nginx (mTLS)"),
                                ("direct", "mock directly")):
                curves = [x.get("percentiles") for x in self.runs["S3"] if x["role"] == role and x.get("percentiles")]
                if not curves:
                    continue
                pts = []
                for i, (p, _) in enumerate(curves[0]):
                    if p >= 100:
                        continue
                    vals = [c[i][1] for c in curves if len(c) > i]
                    pts.append((1.0 / (1.0 - p / 100.0), statistics.median(vals)))
                series.append((label, pts))
            if series:
                dat = os.path.join(pdir, "latency.dat")
                with open(dat, "w") as f:
                    for label, pts in series:
                        for x, y in pts:
                            f.write("%g %g\n" % (x, y))
                        f.write("\n\n")
                png = stem_path + "-latency.png"
                gp = ["set terminal " + term % (1000, 600), "set output '%s'" % png,
                      "set title 'S3 open loop at %s req/s, 64 connections: latency by percentile (median of %d "
                      "rounds), from the scheduled time'" % (fmt(self.s3_rate), self.rounds),
                      "set logscale x", "set logscale y", "set grid xtics ytics mytics",
                      "set xlabel 'percentile'", "set ylabel 'latency (µs)'",
                      # tic labels are formats for gnuplot: %% is a percent sign
                      "set xtics ('0%%' 1, '50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, "
                      "'99.999%%' 100000, '99.9999%%' 1000000)",
                      "set xrange [1:3e6]", "set key top left"]
                plots = []
                colors = ["#1f77b4", "#ff7f0e", "#2ca02c"]
                for i, (label, _) in enumerate(series):
                    plots.append("'%s' index %d using 1:2 with linespoints pt 7 ps 0.6 lw 2 lc rgb '%s' title '%s'"
                                 % (dat, i, colors[i], label))
                gp.append("plot " + ", ".join(plots))
                if self.gnuplot(gp, os.path.join(pdir, "latency.gp")):
                    made["latency"] = png
        return made

    def gnuplot(self, lines, path):
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = subprocess.run(["gnuplot", path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            self.notes.append("gnuplot %s failed: %s" % (os.path.basename(path), r.stdout.decode(errors="replace")[-300:]))
            return False
        return True

    # -- the report

    def report(self):
        os.makedirs(self.out_dir, exist_ok=True)
        os.makedirs(self.raw_dir, exist_ok=True)
        stem_path = os.path.join(self.out_dir, self.stem)
        mach = self.machine()
        rows = self.summary_rows()
        pngs = self.plots(stem_path)
        elapsed = time.monotonic() - T0
        mode = "quick" if self.quick else "full"
        L = []
        L.append("# opale-gateway bench, %s (%s run)" % (self.started_wall.strftime("%Y-%m-%d"), mode))
        L.append("")
        L.append("Generated by `bench/bench.py %s`. Started %s UTC, ended %s UTC: **%.1f min** "
                 "end to end (setup, every scenario, report)." % (
                     " ".join(a if re.fullmatch(r"[\w./,=:-]+", a) else "'%s'" % a for a in sys.argv[1:]),
                     self.started_wall.strftime("%H:%M:%S"), self.ended_wall.strftime("%H:%M:%S"), elapsed / 60))
        L.append("Rounds: %d (S1–S4, S6), %g s per measured run; S5: %d round(s) of %s connections; S7: %g s, "
                 "window %d s.%s" % (self.rounds, self.duration, self.s5_rounds, fmt(self.s5_conns),
                                     self.s7_duration, self.s7_window,
                                     " Only: %s." % ", ".join(sorted(self.only)) if self.only else ""))
        src = None
        try:
            with open(os.path.join(self.build, "CMakeCache.txt")) as f:
                m = re.search(r"^CMAKE_HOME_DIRECTORY:INTERNAL=(.*)$", f.read(), re.M)
                src = m.group(1) if m else None
        except OSError:
            pass
        L.append("Binaries: `%s`%s." % (self.build, " (built from `%s`)" % src if src else ""))
        if self.args.note:
            L.append("")
            L.append("**Note:** " + self.args.note)
        L.append("")
        L.append("## Machine")
        L.append("")
        L.append("| | |")
        L.append("|---|---|")
        for k, label in (("hostname", "host"), ("cpu_model", "CPU"), ("nproc", "CPUs (nproc)"), ("memory", "memory"),
                         ("os", "OS"), ("kernel", "kernel"), ("nginx", "nginx"), ("openssl", "OpenSSL"),
                         ("redis", "Redis"), ("gateway", "gateway"), ("loadgen", "load generator"),
                         ("git", "source (git)")):
            L.append("| %s | %s |" % (label, mach[k]))
        L.append("| load average before | %s |" % " ".join("%.2f" % x for x in mach["load_before"]))
        L.append("| load average after | %s |" % " ".join("%.2f" % x for x in mach["load_after"]))
        L.append("")
        L.append("The machine is shared with other work: the load average says how much. Runs alternate "
                 "(A B, then B A) so that drift hits both sides, and ratios are taken pair by pair.")
        L.append("")
        L.append("## Placement and method")
        L.append("")
        L.append("| process | CPU (`taskset -c`) |")
        L.append("|---|---|")
        L.append("| nginx (master + 1 worker), HAProxy (1 thread), every gateway of S1–S7 (1 worker each) | 0 |")
        L.append("| opale-loadgen, the backend (%s), redis-server | 1 |" % self.backend_name())
        L.append("| S3, S3B, S3L: redis-server (the gateway's quota store) with the proxy under test | 0 |")
        L.append("| S2W (GW-W1, GW-W2) and S8 (GW-S8, 2 workers): the gateway, the generator, and for the time "
                 "of those runs the mock and Redis | 0 and 1 (not pinned) |")
        L.append("")
        L.append("- All proxies stay up for the whole run; only the one being measured gets load.")
        if self.backend == "mock":
            L.append("- **The backend is opale-mock** (`--backend mock`), which costs the load side's core 17–31 µs "
                     "a request.")
        else:
            L.append("- **The backend is opale-backend** (`bench/backend.c`, bench/README.md \"The backend\"): "
                     "it answers each bench target with the bytes opale-mock gave for it at start-up (the mock is "
                     "then stopped), for about half the mock's CPU, so that the load side's core is less often "
                     "the limit. *mock* in this report means that backend.")
        L.append("- **Nothing verifies the backend assertion**: opale-mock with `--jwks` would serve only requests "
                 "carrying the gateway's `X-JWT-Assertion` and `X-Gateway-Request-MAC`, which nginx cannot produce. "
                 "So the gateway still computes its assertion for each request (default `grant_mac`: a grant signed "
                 "once per consumer and minute, cached per worker, and an HMAC-SHA256 of the request; its cost is "
                 "measured), but nobody verifies it.")
        L.append("- nginx: `bench/nginx/nginx.conf.in` (1 worker, TLS 1.3, keep-alive upstream pool of 64, buffered "
                 "JSON access log); a TLS-only server (S1) and an mTLS server with the CRL (S2–S5). "
                 "worker_connections %s, worker_rlimit_nofile %s (the hard limit)." % (
                     fmt(float(self.targets["nginx"].worker_connections)),
                     fmt(float(self.targets["nginx"].nofile))))
        L.append("- Gateways: 1 worker, upstream pool 64 and at most 64 upstream connections per worker "
                 "(`max_connections`), journal on (hash-chained), admin listener, OAuth signing "
                 "key ES256; GW-S1: `client_auth: none`, `access: off` (route stage only), no policy; GW-FULL: mTLS "
                 "+ CRL, one policy (client-commune, TS-0001, 127.0.0.1/32, scopes declarations + creances, "
                 "2019–2025, quota 1,000,000/min, so it runs on every request and is never hit), quota store "
                 "Redis, its window emptied before each run (bench/README.md, \"A fresh quota window for every "
                 "run\"); GW-10K: the same plus 9,999 made-up partners.")
        L.append("- Full-chain requests: client certificate, a bearer token (the generator fetches it from the "
                 "gateway's `/token`; nginx gets the same `Authorization` header with a token from GW-FULL), a "
                 "fresh `X-Correlation-ID`, `ID_Teleservice: TS-0001`, alternating `%s` and `%s`." % tuple(PATHS))
        if self.s4_path:
            L.append("- S4 path: %s." % self.s4_why)
        L.append("- CPU: utime + stime from `/proc/PID/stat` (nginx: master + worker) of the proxy under test, of "
                 "the mock and Redis, and the generator's own (wait4), over the generator's lifetime (its 64 "
                 "connections' handshakes and the token request included: < 2%% of a 10 s run). "
                 "*Proxy CPU %%* is of one core; *requests per proxy CPU-second* = responses / proxy CPU time, an "
                 "efficiency figure that stays meaningful when the proxy is not saturated. *Core 1 %%* = generator "
                 "+ mock + Redis (S3, S3B, S3L: generator + mock, Redis being on core 0): at ≥ %.0f%% the load side, not the proxy, may be the limit. *Core 0 %% used by others* "
                 "= how busy core 0 was (`/proc/stat`) minus the proxy under test: CPU that other work on the "
                 "machine took from the proxy during the run (noted when ≥ 15%%)." % SAT_PCT)
        L.append("- A run is **flagged** (bold in the tables) when the generator saw an error, a non-2xx answer "
                 "(429 allowed only in S7), fell behind its open-loop schedule, or the proxy died. Flagged runs "
                 "stay in the medians; the summary says how many there were.")
        L.append("")
        L.append("## Summary")
        L.append("")
        L.extend(self.summary_table(rows))
        L.append("")
        others = med([x.get("core0_other_pct") for s in ("S1", "S2", "S2H", "S4", "S6") for x in self.runs.get(s, [])])
        if others is not None and others >= 30:
            L.append("**Core 0 was shared**: other work on the machine took a median %.0f%% of it during the "
                     "pinned runs (load average %s before, %s after). Then the throughput of each proxy says how "
                     "much CPU the scheduler gave it as much as how fast it is, and a process with more threads "
                     "(the gateway: a worker, its journal writer) gets a larger share than a single-threaded one "
                     "(nginx's worker, HAProxy): **read the requests per proxy CPU-second**, not the req/s "
                     "ratios." % (others, " ".join("%.1f" % x for x in mach["load_before"]),
                                  " ".join("%.1f" % x for x in mach["load_after"])))
            L.append("")
        for s, e in sorted(self.failures.items()):
            L.append("- **%s failed**: %s" % (s, e))
        if self.failures:
            L.append("")
        if pngs:
            L.append("## Plots")
            L.append("")
            for k in ("throughput", "latency"):
                if k in pngs:
                    L.append("![%s](%s)" % (k, os.path.basename(pngs[k])))
                    L.append("")
        names = {"gw": "gateway", "nginx": "nginx", "direct": "mock directly", "gw1": "GW-FULL (1 policy)",
                 "gw10k": "GW-10K", "haproxy": "HAProxy", "w1": "GW-W1 (workers 1)", "w2": "GW-W2 (workers 2)"}
        sections = (("S1", "S1 pass-through: GW-S1 vs nginx TLS-only (closed loop, keep-alive, 64 connections, 1 "
                           "thread, `%s`, no client certificate)" % ETAT, "req/s", "throughput_rps"),
                    ("S2", "S2 full chain: GW-FULL vs nginx mTLS (closed loop, keep-alive, 64 connections)", "req/s",
                     "throughput_rps"),
                    ("S2H", "S2H full chain: GW-FULL vs HAProxy 2.6 enforcing the same chain (closed loop, "
                            "keep-alive, 64 connections, both on core 0)", "req/s", "throughput_rps"),
                    ("S2W", "S2W worker scaling: GW-W1 (workers 1) vs GW-W2 (workers 2), S2 load, nothing pinned "
                            "(gateway, generator with 2 threads, mock and Redis share the 2 cores)", "req/s",
                     "throughput_rps"),
                    ("S4", "S4 handshakes: a new mTLS connection per request, 16 connections", "handshakes/s",
                     "handshake_rate"),
                    ("S6", "S6 policy count: GW-FULL (1 policy) vs GW-10K (10,000 policies), S2 load", "req/s",
                     "throughput_rps"))
        if self.func_rows is not None:
            L.extend(self.functional_section())
        for s, title, ml, metric in sections:
            if not self.runs.get(s):
                continue
            L.append("## " + title)
            L.append("")
            if s == "S2H":
                L.extend(self.s2h_text())
            L.extend(self.detail_table(s, names, ml, metric))
            L.append("")
            if s == "S4":
                sat = [x for x in self.runs[s] if x.get("gen_cpu_pct") and x["gen_cpu_pct"] >= SAT_PCT]
                gen = med([x.get("gen_cpu_pct") for x in self.runs[s]])
                L.append("The generator pays about 1 ms of CPU per mTLS handshake (docs/loadgen.md). Its median "
                         "CPU here: %s%% of core 1%s." % (
                             fmt(gen), "; **it was saturated in %d of %d runs: there the figure is a floor set by the "
                                       "generator, not the proxy's maximum**" % (len(sat), len(self.runs[s]))
                             if sat else "; it was not saturated, so the proxy (core 0) set the rate"))
                L.append("")
        L.extend(self.wake_section())
        for key in ("S3", "S3B", "S3L"):
            if not self.runs.get(key):
                continue
            pct = round(100 * S3_FRAC[key])
            L.append("## %s open-loop latency at %d%% of nginx's S2 capacity" % (key, pct))
            L.append("")
            L.append("Rate %s req/s (%d%% of %s), 64 connections, %g s per run, latency from the scheduled time "
                     "(no coordinated omission). Order rotated each round. Medians over %d rounds (min–max). "
                     "Redis runs on core 0 with the proxy under test for these runs: it is the gateway's own "
                     "dependency, so core 1 holds the same generator and mock for every target "
                     "(*core 1 %%* = generator + mock here)." % (
                         fmt(self.s3_rates.get(key)), pct, self.s3_rate_src, self.s3_duration, self.rounds))
            L.append("")
            L.append("| target | p50 | p90 | p99 | p99.9 | max | proxy CPU % | flagged |")
            L.append("|---|---|---|---|---|---|---|---|")
            for role in ("gw", "nginx", "direct"):
                rs = [x for x in self.runs[key] if x["role"] == role]
                if not rs:
                    continue
                cells = []
                for k in ("p50", "p90", "p99", "p99_9", "max"):
                    v = [x.get(k) for x in rs]
                    cells.append("%s (%s–%s)" % (fmt_us(med(v)), fmt_us(mn(v)), fmt_us(mx(v))))
                fl = sum(1 for x in rs if x["flag_errors"])
                L.append("| %s | %s | %s | %s |" % (names[role], " | ".join(cells),
                                                     fmt(med([x["proxy_cpu_pct"] for x in rs])) if role != "direct"
                                                     else "—", fl or ""))
            L.append("")
            add_gw, add_ng = self.s3_added.get(key, ([], []))
            L.append("Added p99 = p99(proxy) − p99(direct), per round then median: gateway **%s** (%s–%s), nginx "
                     "**%s** (%s–%s).%s" % (
                         fmt_us(med(add_gw)), fmt_us(mn(add_gw)), fmt_us(mx(add_gw)), fmt_us(med(add_ng)),
                         fmt_us(mn(add_ng)), fmt_us(mx(add_ng)), " Target: gateway ≤ 1 ms." if key == "S3" else ""))
            L.append("")
            L.extend(self.s3_stall_lines(key))
            L.extend(self.detail_table(key, names))
            L.append("")
        if self.s5:
            L.append("## S5 memory: idle mTLS keep-alive connections")
            L.append("")
            L.append("Each round starts a **fresh** proxy of each kind (a process that has held 10,000 connections "
                     "keeps much of that memory in its allocator, which would hide the cost the second time), warms "
                     "it with 1 s of S2 load, then: RSS before (VmRSS, nginx = master + worker, median of 3 "
                     "samples); `opale-loadgen --hold` opens the connections (≤ 256 being set up at once, 4 threads), "
                     "each completes its handshake and one full-chain request, then all stay idle; RSS while held "
                     "(median of 3 samples, ~%.1f s into the hold). Per connection = (with − before) / held." %
                     min(2.0, self.s5_hold / 3))
            L.append("")
            L.append("| round | proxy | connections held | setup (s) | RSS before (KiB) | RSS while held (KiB) | "
                     "RSS after close (KiB) | per connection (KiB) | flags |")
            L.append("|---|---|---|---|---|---|---|---|---|")
            for x in self.s5:
                L.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    x["round"], names[x["role"]], fmt(float(x["held"])), fmt(x["setup_s"], 1), fmt(x["rss_before_kb"]),
                    fmt(x["rss_with_kb"]), fmt(x["rss_after_kb"]), fmt(x["per_conn_kb"], 2),
                    "; ".join("**%s**" % e for e in x["flag_errors"])))
            L.append("")
        if self.s7:
            s7 = self.s7
            L.append("## S7 quota exactness")
            L.append("")
            L.append("Three gateways (GW-Q1..3, 1 worker each, CPU 0), one Redis, `quota.instances: 3`, window "
                     "`quota.window_s` = %d s, one policy for client-commune (`%s`) with `quota.per_minute: %d` "
                     "(the limit per window). Demand: %g req/s open loop on each gateway (4 connections), for "
                     "%g s: far above the limit." % (s7["window_s"], HAB_S7, QUOTA_S7, s7["rate_per_gateway"],
                                                     s7["duration_s"]))
            L.append("")
            L.append("| gateway | requests journalled | admitted (200) | refused 429 (quota) | other | flags |")
            L.append("|---|---|---|---|---|---|")
            for g in s7["per_gateway"]:
                L.append("| %s | %d | %d | %d | %d | %s |" % (g["gateway"], g["requests"], g["admitted"],
                                                               g["refused_quota"], g["other"],
                                                               "; ".join("**%s**" % e for e in g["flag_errors"])))
            L.append("")
            L.append("| figure | value |")
            L.append("|---|---|")
            L.append("| total admitted: Redis (its window log, polled every 0.5 s) / journals | %d / %d |" % (
                s7["admitted_redis"], s7["admitted_journal"]))
            L.append("| admissions in the journals but not seen in Redis / in Redis but not in the journals | "
                     "%d / %d |" % (s7["journal_not_in_redis"], s7["redis_not_in_journal"]))
            L.append("| the most a %d s sliding window can admit over the %s s the admissions span | %s |" % (
                s7["window_s"], fmt(s7["span_s"], 1), s7.get("ceiling", "—")))
            L.append("| **max admissions in any rolling %d s window, Redis admission times** (authoritative) | "
                     "**%s** (expected %d: %s) |" % (s7["window_s"], s7["max_window_redis"], QUOTA_S7,
                                                     "met" if s7["met"] else "NOT met"))
            L.append("| shortest span of %d consecutive admissions, Redis (must be ≥ %d ms) | %s ms |" % (
                QUOTA_S7 + 1, s7["window_s"] * 1000, s7["min_span_redis_ms"]))
            L.append("| admissions decided by the local fallback (journal `quota.store` `degraded`: the gateway's "
                     "Redis call timed out or failed), per gateway | %s (%s) |" % (
                         s7.get("admitted_degraded", "—"),
                         ", ".join(str(g.get("admitted_degraded", "—")) for g in s7.get("per_gateway", []))))
            L.append("| max admissions in any rolling %d s window, journal `ts` (completion time) | %s |" % (
                s7["window_s"], s7["max_window_journal"]))
            L.append("| shortest span of %d consecutive admissions, journal `ts` | %s ms |" % (
                QUOTA_S7 + 1, s7["min_span_journal_ms"]))
            L.append("| journal `ts` − Redis admission time, same request: median / max | %s / %s ms |" % (
                s7["lag_ms_median"], s7["lag_ms_max"]))
            L.append("")
            L.append("How the window is measured: the journal's `quota` object carries `{limit, remaining, store}` "
                     "but no decision time (docs/journal.md), and its `ts` is the time the response *completed*, "
                     "in milliseconds. The authoritative admission time is the one the quota itself uses: the "
                     "Redis Function stamps each admission with the Redis server's `TIME` (ms) as the score of the "
                     "request id in the sorted set `opale:q:{%s}`, and an admission at t leaves the window at "
                     "exactly t + window (docs/quotas.md). The bench polls that set twice a second during the run "
                     "(an entry stays %d s, so none is missed) and keeps every (request id, score). The maximum is "
                     "taken over every window [t, t + %d s) starting at an admission (the count can only rise at an "
                     "admission). The journals give the same figure from completion times, which lag the decision "
                     "by the upstream round trip and the journal queue (median and max lag above): since a slot "
                     "that frees at a window's edge is taken again within milliseconds (the demand is far above "
                     "the limit), a jitter of a few ms in completion times moves admissions across the edge, and a "
                     "window of completion times can hold a few more than the limit although no decision window "
                     "did. So the journals are a cross-check (same request ids, same count), not the verdict." % (
                         HAB_S7, s7["window_s"], s7["window_s"]))
            if s7.get("admitted_degraded"):
                L.append("")
                L.append("**Local fallback decisions in this run: %d.** A gateway whose Redis call takes longer "
                         "than `quota.redis.timeout_ms` (50 ms) decides locally, within its share (⌈50 / 3⌉ = 17) of "
                         "its own admissions, while the others go on deciding through Redis: until its next "
                         "write-back the window may hold up to N + s (docs/quotas.md, \"Bounds\"). On this shared "
                         "machine that happens when other work starves a gateway or Redis for 50 ms; "
                         "`on_store_failure: deny` keeps the count exact then, at the price of 503s." % (
                             s7["admitted_degraded"]))
            if s7["other"]:
                L.append("")
                L.append("**Other outcomes in the S7 journals**: %d, e.g. %s." % (s7["other"], s7["other_examples"]))
            L.append("")
        if self.s8:
            L.extend(self.s8_section())
        if self.args.profile:
            L.append("## Profile of S2")
            L.append("")
            if self.profile_lines:
                pr = getattr(self, "profile_run", {})
                L.append("GW-FULL under S2 load (64 connections, 10 s, %s req/s), `perf record -e cpu-clock -F 999 -g "
                         "-p PID` (no hardware counters on this VM: cpu-clock sampling), then `perf report --stdio "
                         "--no-children --sort symbol -g none` (self time per symbol, call chains omitted), top 30:"
                         % fmt(pr.get("throughput_rps")))
                L.append("")
                L.append("```")
                L.extend(self.profile_lines)
                L.append("```")
                top = self.profile_top3()
                if top:
                    L.append("")
                    L.append("**Top three costs left**: %s." % top)
                if getattr(self, "profile_dso_lines", None):
                    L.append("")
                    L.append("The same samples per library (`--sort dso`): Debian's libcrypto carries no symbols, "
                             "so its share (the ES256 signature of each `X-JWT-Assertion`, TLS records, SHA-256) "
                             "is readable only here; `[kernel.kallsyms]` is the loopback TCP path and the "
                             "hypervisor's interrupt handling (`pvm_irq_enable`).")
                    L.append("")
                    L.append("```")
                    L.extend(self.profile_dso_lines)
                    L.append("```")
            else:
                L.append("No profile: %s" % self.failures.get("profile", "perf gave nothing"))
            L.append("")
        L.append("## Anomalies")
        L.append("")
        flagged = [x for s in self.runs.values() for x in s if x["flag_errors"]]
        if not flagged and not self.notes and not self.failures and not any(x["flag_errors"] for x in self.s5):
            L.append("None: every measured run had 2xx answers only (429 in S7), no generator error, and every "
                     "process stayed up.")
        for x in flagged:
            L.append("- %s: %s" % (x["key"], "; ".join(x["flag_errors"])))
        for x in self.s5:
            if x["flag_errors"]:
                L.append("- S5 round %d %s: %s" % (x["round"], x["role"], "; ".join(x["flag_errors"])))
        for n in self.notes:
            L.append("- " + n)
        L.append("")
        L.append("Raw data: [`%s/`](%s/) (one loadgen JSON per run, `summary.json`)." % (self.stem, self.stem))
        L.append("")
        L.append("## History row")
        L.append("")
        L.append("For the table in `bench/README.md` (columns explained there):")
        L.append("")
        L.append("```")
        L.append(self.history_row(rows, mach))
        L.append("```")
        L.append("")
        md_path = stem_path + ".md"
        with open(md_path + ".tmp", "w") as f:
            f.write("\n".join(L))
        os.rename(md_path + ".tmp", md_path)
        summary = {"mode": mode, "backend": self.backend, "started": self.started_wall.isoformat(),
                   "elapsed_s": elapsed, "machine": mach, "rounds": self.rounds, "duration_s": self.duration,
                   "summary": rows, "failures": self.failures,
                   "notes": self.notes, "s3_rate": self.s3_rate, "s4_path": self.s4_path, "s5": self.s5, "s7": self.s7,
                   "runs": {s: [{k: v for k, v in x.items() if k != "percentiles"} for x in rs]
                            for s, rs in self.runs.items()},
                   "profile": self.profile_lines, "plots": pngs, "report": md_path, "s8": self.s8,
                   "functional_check": self.func_rows, "s3_rates": self.s3_rates, "wakeprobe": getattr(self, "wake", None),
                   "wakeprobe_spin": getattr(self, "wake_spin", None),
                   "history_row": self.history_row(rows, mach)}
        with open(os.path.join(self.raw_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1, default=str)
        print("\n".join(self.summary_table(rows)))
        for s, e in sorted(self.failures.items()):
            print("%s failed: %s" % (s, e))
        print("\nReport: %s (%.1f min)" % (md_path, elapsed / 60))
        for k, v in pngs.items():
            print("Plot:   %s" % v)

    # -- HAProxy, S8, history

    def functional_section(self):
        L = ["## Functional check before measuring: does each side enforce the chain?", "",
             "The same requests, by hand (Python's `http.client`, the commune's certificate unless said), against "
             "GW-FULL and HAProxy, before any measurement: a valid one, then one broken check at a time. Each must "
             "be refused (4xx) for the comparison to be honest; a peer that lets one through makes S2H invalid. "
             "Tokens other than the gateway-issued one are minted by the bench with the gateway's own signing key "
             "(`bench/benchlib/partners.py`), with exactly the claims of the gateway's `/token`, one claim "
             "changed. The rate limit and the source allowlist are checked on HAProxy only, on two more "
             "consumers it knows (GW-FULL has one policy; the gateway's quota is S7's subject and its allowlist "
             "is covered by `tests/integration/`).", "",
             "Each cell: the status, and the check that refused it: the gateway's journal `reason`, HAProxy's "
             "`deny` field (set by each rule of `haproxy.cfg.in` before its `deny`).", "",
             "| request | check broken | expected | gateway | HAProxy |", "|---|---|---|---|---|"]
        def cell(r, role):
            if r[role] is None:
                return "—"
            return "%s%s" % (r[role], " `%s`" % r[role + "_why"] if r.get(role + "_why") else "")

        for r in self.func_rows:
            L.append("| %s | %s | %s | %s | %s |" % (r["case"], r["check"], r["expect"], cell(r, "gw"),
                                                     cell(r, "haproxy")))
        bad = getattr(self, "func_bad", {})
        L.append("")
        L.append("Verdict: gateway **%s**, HAProxy **%s**." % (
            "every check enforced" if not bad.get("gw") else "FAILED: " + "; ".join(bad["gw"]),
            "every check enforced" if not bad.get("haproxy") else "FAILED: " + "; ".join(bad["haproxy"])))
        L.append("")
        return L

    def s2h_text(self):
        return [
            "HAProxy 2.6 (Debian), `bench/haproxy/haproxy.cfg.in` rendered by `bench/haproxy/genconf.py` and "
            "checked with `haproxy -c`: 1 thread, TLS 1.3, the same certificates, upstream keep-alive "
            "(`http-reuse always`), a JSON `log-format` line per request to stdout (a file). What each side does "
            "per request:", "",
            "| check | gateway (GW-FULL) | HAProxy |", "|---|---|---|",
            "| mTLS, CA, CRL | yes | yes (`verify required`, `crl-file`) |",
            "| certificate → consumer | yes (SHA-256 of the DER, policy index) | yes (`ssl_c_der,sha2(256)` → map) |",
            "| source allowlist per consumer | yes | yes (generated `src` rules) |",
            "| X-Correlation-ID (UUID), ID_Teleservice | yes | yes |",
            "| bearer: ES256 signature | once per token, then a per-worker cache | **on every request** "
            "(`jwt_verify`: no cache) |",
            "| alg, typ, iss, aud, exp, nbf, client_id | yes | yes (`jwt_header_query`, `jwt_payload_query`) |",
            "| cnf x5t#S256 = certificate | yes | yes (`ssl_c_der,sha2(256),ub64enc`) |",
            "| keytype, habilitation claims | yes | no |",
            "| scope per route, `annee` range | yes | yes (per-route ACLs, `urlp_val`) |",
            "| habilitation state and validity dates, kill switch, suspensions | yes | no |",
            "| quota | **sliding window log in Redis, shared by all gateways, exact** (S7) | stick-table "
            "`http_req_rate(60s)`: an approximate rate, local to the process, lost on restart |",
            "| journal | **hash-chained JSON journal, checkpoints**, on disk | a JSON log line (no chain) |",
            "| backend assertion | **an ES256-signed `X-JWT-Assertion` per request** | none (an `X-Consumer` "
            "header) |",
            "",
            "So HAProxy's configuration is lighter on three costly points (no Redis round trip, no hash chain, no "
            "signature towards the backend) and heavier on one (the bearer's ECDSA verification on every "
            "request). The target (gateway ≥ 2× HAProxy) is about that whole job, both on one core.", ""]

    def s8_section(self):
        s8 = self.s8
        L = ["## S8 national scale", ""]
        L.append("%s partners, each with its own client certificate (issued by the run's dev CA), its own policy "
                 "(quota %d per minute, 127.0.0.1/32, the commune's rights) and its own token (minted with the "
                 "gateway's signing key, the claims of its `/token`), each on **one** keep-alive connection; "
                 "open loop at %s req/s in total (connection *i* sends every %.2f s: exactly its quota), %g s "
                 "measured after %g s of warm-up at the same rate; `opale-loadgen --partner-certs "
                 "--partner-headers -c %d -t 2 --rate --warmup`. GW-S8: "
                 "`workers: 2`, Redis quota store, hash-chained journal, assertion per request. **Nothing is "
                 "pinned**: gateway, generator, mock and Redis share the 2 cores." % (
                     fmt(float(s8["partners"])), s8["per_minute"], fmt(s8["rate"]), 60.0 / s8["per_minute"],
                     s8["duration_s"], s8.get("warmup_s") or 0, s8["partners"]))
        L.append("")
        L.append("**Steady state, warm-up apart.** The percentiles and CPU figures are those of the measured "
                 "window. The warm-up's requests (the first request of every connection among them) run on the "
                 "same timetable but are reported apart (*warm-up p99 / max*): a first request costs what no "
                 "later one does (the server completes the client's TLS 1.3 handshake, its certificate and "
                 "Finished, only when it reads it; then the token's ES256 verification, the consumer's first "
                 "grant, and an upstream connection for each request of a burst), so measured from the first "
                 "second the whole tail was this start-up transient (bench/README.md).")
        L.append("")
        L.append("*Connect phase*: the generator's own figure, from its first connect to every connection up "
                 "(N TCP connections and N mTLS handshakes, each side's CPU: the gateway's and the generator's "
                 "on the same 2 cores); in brackets, the generator's start-up before it (reading N certificates "
                 "and keys), counted in the connect phase until 2026-12-02.")
        L.append("")
        L.append("When the full quota is not held (rate reached ≥ 98%% of the offered one, ≤ 1%% of the requests "
                 "left behind, no 5xx, no generator error), the same partners run again at a fraction of it (each "
                 "partner slower, all %s connections still there), on a fresh GW-S8 with the partners' Redis "
                 "keys removed: the highest rate held is what this machine does next to everything else. "
                 "Certificates, keys, tokens and policies: generated in %s s." % (
                     fmt(float(s8["partners"])), fmt(s8.get("generate_s"), 1)))
        L.append("")
        L.append("| step | offered req/s | reached req/s | missed | p50 | p99 | p99.9 | gateway % of the machine "
                 "| generator / mock / Redis % of a core | machine busy % | 2xx / 4xx / 5xx | 429 | quota errors "
                 "| connect phase (generator start-up) | warm-up p99 / max | held |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for st in s8["steps"]:
            rsp = st.get("responses") or {}
            L.append("| %d%% of the quota (%s/min each) | %s | **%s** | %s | %s | **%s** | %s | **%s** | %s / %s / %s "
                     "| %s | %s / %s / %s | %s | %s | %s s (%s s) | %s / %s | %s |" % (
                         round(st["fraction"] * 100), fmt(st["per_minute_each"], 1), fmt(st["rate"]),
                         fmt(st.get("throughput_rps")), st.get("missed"), fmt_us(st.get("p50")),
                         fmt_us(st.get("p99")), fmt_us(st.get("p99_9")), fmt(st.get("gw_machine_pct"), 1),
                         fmt(st.get("gen_cpu_pct")), fmt(st.get("mock_cpu_pct")), fmt(st.get("redis_cpu_pct")),
                         fmt(st.get("machine_busy_pct")), rsp.get("2xx"), rsp.get("4xx"), rsp.get("5xx"),
                         st.get("refused_429"), st.get("quota_errors"), fmt(st.get("connect_phase_s"), 1),
                         fmt(st.get("gen_startup_s"), 1),
                         fmt_us((st.get("warmup") or {}).get("p99")), fmt_us((st.get("warmup") or {}).get("max")),
                         "yes" if st["held"] else "**no**"))
        L.append("")
        stops = [(st, st.get("machine_stalls")) for st in s8["steps"] if st.get("machine_stalls")]
        if stops:
            L.append("The machine's stops over each step's measured window (`opale-wakeprobe` beside it, sleeping "
                     "to a deadline every 10 ms on each core; a stop: a wake-up %g ms late or more). A stop of "
                     "≥ %d ms holds every request due during it, %s at the full quota for 100 ms. *Floor under "
                     "p99*: the p99 that the times both cores were stopped at once impose on any server (the "
                     "generator and the two workers use both cores, so a stop of one core holds only some "
                     "requests): bench/README.md, \"The floor under a run's p99\"." % (
                         stops[0][1][0]["stall_ms"], stops[0][1][0]["long_ms"], fmt(s8["rate"] * 0.1)))
            L.append("")
            L.append("| step | p99 | floor under p99 | stops, core %s / core %s | of which ≥ %d ms "
                     "| time stopped (ms) | the longest (ms) |" % (stops[0][1][0]["cpu"], stops[0][1][-1]["cpu"],
                                               stops[0][1][0]["long_ms"]))
            L.append("|---|---|---|---|---|---|---|")
            for st, ms in stops:
                L.append("| %d%% | %s | %s | %s |" % (round(st["fraction"] * 100), fmt_us(st.get("p99")),
                                                    floor_cell(st), " | ".join(
                    stop_cells(ms, "stalls", "long_stalls", "stalled_ms", "longest"))))
            L.append("")
        full = s8["steps"][0]
        L.append("At the full quota: journal statuses %s; quota decisions by store %s (`degraded`: decided by "
                 "the instance itself after a Redis call failed or timed out); partners seen in the journal %s; "
                 "most admissions of one partner in any 60 s: %s (quota %d). Highest rate held: **%s req/s**%s." % (
                     full.get("journal_statuses"), full.get("quota_stores"), full.get("partners_seen"),
                     full.get("max_admitted_in_60s"),
                     s8["per_minute"], fmt(s8.get("held_rate")),
                     "" if s8.get("held_rate") else " (none of the steps)"))
        odd = full.get("not_200") or []
        if odd:
            L.append("")
            L.append("The journal's answers other than 200 at the full quota (the first %d): %s." % (
                len(odd), "; ".join("%s %s `%s` %s (%s, %s ms)" % (
                    r.get("status"), r.get("code"), r.get("reason"), r.get("consumer"), r.get("ts"), r.get("ms"))
                    for r in odd)))
        L.append("")
        L.append("A partner sends at most its quota during the run (%g s with the warm-up ≤ the 60 s window), so "
                 "any 429 is a quota error; admissions beyond the quota are counted from the journal's completion "
                 "times (warm-up included). S7 covers demand above the quota." % (
                     s8["duration_s"] + (s8.get("warmup_s") or 0)))
        L.append("")
        rd = s8.get("redis")
        L.append("### Redis's ceiling for the quota Function, and the production size")
        L.append("")
        if rd:
            L.append("`redis-benchmark %s` on core 0, Redis alone on core 1: %s FCALL/s measured, Redis at %s%% of "
                     "its core (the client, on a shared core, does not always saturate it), so **%s FCALL per Redis "
                     "CPU-second**: the ceiling of one Redis core for the quota Function." % (
                         rd["command"], fmt(rd["fcall_per_s"]), fmt(rd.get("redis_cpu_pct")),
                         fmt(rd.get("ceiling_per_core"))))
        else:
            L.append("Not measured (see the anomalies).")
        L.append("")
        L.append("Production: 10,000 partners at 500 per minute = **%s req/s**." % fmt(s8["prod_rate"]))
        L.append("")
        L.append("| | value |")
        L.append("|---|---|")
        if s8.get("gw_cpu_s_per_req"):
            L.append("| gateway CPU per request at S8, step at %s req/s (both workers) | %.1f µs |" % (
                fmt(s8.get("step_rate")), s8["gw_cpu_s_per_req"] * 1e6))
            L.append("| one 2-core node kept at 50%% (the S8 goal) | %s req/s |" % fmt(s8["node_capacity_50pct"]))
            L.append("| **gateway nodes for %s req/s at 50%%** (at 100%%: %d) | **%d** |" % (
                fmt(s8["prod_rate"]), s8["nodes_100pct"], s8["nodes_50pct"]))
        eff = med([x.get("req_per_proxy_cpu_s") for x in self.runs.get("S2", []) if x["role"] == "gw"])
        if eff:
            L.append("| the same from S2's requests per gateway CPU-second (%s, saturated, 1 worker) | %d nodes at "
                     "50%% |" % (fmt(eff), math.ceil(s8["prod_rate"] / (2 * 0.5 * eff))))
        if s8.get("redis_shards"):
            L.append("| Redis primaries (one core each) for the quota at the ceiling / at 50%% of it | %d / **%d** |" % (
                s8["redis_shards"], s8["redis_shards_50pct"]))
        L.append("")
        L.append("At a low rate per connection the gateway pays more CPU per request than under S2's saturated "
                 "load (a loop iteration, its system calls and a journal batch per request instead of per dozens): "
                 "the S8 figure is the conservative one. ")
        L.append("The node figure counts the gateway's own CPU only (the generator and the mock are not in "
                 "production) on nodes like this VM's cores; TLS handshakes are not in it (the partners' "
                 "connections are kept alive). A quota key lives on one Redis primary (a hash tag per "
                 "habilitation): beyond one primary, the keys spread over a Redis Cluster (`quota.redis.cluster`).")
        L.append("")
        return L

    def history_row(self, rows, mach):
        """One line for bench/README.md's history table."""
        by = {}
        for r in rows:
            by.setdefault(r["scenario"], []).append(r)

        def ratio(s, i=0):
            r = by.get(s)
            return "%.2f" % r[i]["ratio_med"] if r and len(r) > i and r[i]["ratio_med"] is not None else "—"

        def both(s):
            """req/s ratio (requests per proxy CPU-second ratio)"""
            return "%s (%s)" % (ratio(s), ratio(s, 1)) if by.get(s) else "—"

        def added(s):
            r = by.get(s)
            return fmt_us(r[0]["a_med"]) if r and r[0]["a_med"] is not None else "—"

        s5 = by.get("S5")
        s7 = self.s7
        s8 = self.s8
        s8txt = "—"
        if s8:
            full = s8["steps"][0]
            s8txt = "%s partners: %s/%s req/s, p99 %s, gw %s%% of the machine, %s quota errors%s" % (
                fmt(float(s8["partners"])), fmt(full.get("throughput_rps")), fmt(s8["rate"]),
                fmt_us(full.get("p99")), fmt(full.get("gw_machine_pct"), 0), s8.get("quota_errors"),
                "" if full["held"] else "; held %s req/s" % fmt(s8.get("held_rate")))
        return "| %s | %s | %s | %.1f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            self.started_wall.strftime("%Y-%m-%d"), mach["git"].split()[0],
            ("quick" if self.quick else "full") + (", mock" if self.backend == "mock" else ""),
            mach["load_before"][0], both("S1"), both("S2"), both("S2H"), both("S2W"), added("S3"), added("S3B"),
            both("S4"),
            "%.2f" % s5[0]["ratio_med"] if s5 and s5[0]["ratio_med"] is not None else "—",
            both("S6"), s7["max_window_redis"] if s7 else "—", s8txt)

    def profile_top3(self):
        """"by library: A x%, B y%, C z%; by symbol: ..." from the profile's
        two views (None without a profile)."""
        def top(lines, n=3):
            out = []
            for ln in lines or []:
                m = re.match(r"\s*([\d.]+)%\s+(?:\[[.k]\]\s+)?(\S.*)$", ln)
                if m:
                    out.append("`%s` %s%%" % (m.group(2).strip(), m.group(1)))
                if len(out) == n:
                    break
            return out
        lib = top(getattr(self, "profile_dso_lines", None))
        sym = top(self.profile_lines)
        if not lib and not sym:
            return None
        return "by library %s; by symbol %s" % (", ".join(lib) or "—", ", ".join(sym) or "—")

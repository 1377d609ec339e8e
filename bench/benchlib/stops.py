"""The floor the machine's stops put under a run's latency percentile
(bench/README.md, "The floor under a run's p99").

An open-loop run schedules its requests evenly over its measured window and
times each from its scheduled instant. A request due at t inside a stop
[s, e] of a core on its path cannot finish before e: the generator cannot
send it, or the proxy cannot read it, until the core runs again. So at
least a share sum(max(0, L - x)) / T of the requests take longer than x,
whatever the proxy does, L running over the stops' lengths and T being the
window's length. The floor under the p99 is the largest x for which that
share still reaches 1%.

opale-wakeprobe, beside the run, gives each core's stops in time order
("stops": [start s from the thread's start, length ms]) and each thread's
start on CLOCK_MONOTONIC ("start_mono_ns"); opale-loadgen gives its
measured window on the same clock ("window_mono_ns"). A stop the probe saw
as a wake-up late from its deadline lies inside the core's real stop, give
or take the probe's own wake-up (microseconds), so the floor errs low."""


def core_stops(core, window):
    """<core>'s stops (one CPU of opale-wakeprobe's JSON) as [start, end]
    in CLOCK_MONOTONIC ns, clipped to <window> ([start, end] ns); None when
    the probe did not list them."""
    if "stops" not in core or "start_mono_ns" not in core:
        return None
    a, b = window
    out = []
    for at_s, ms in core["stops"]:
        s = core["start_mono_ns"] + int(round(at_s * 1e9))
        e = s + int(round(ms * 1e6))
        s, e = max(s, a), min(e, b)
        if e > s:
            out.append([s, e])
    return out


def union(lists):
    """The instants covered by any of <lists> of intervals, as sorted,
    disjoint intervals."""
    out = []
    for s, e in sorted(iv for lst in lists for iv in lst):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def intersection(lists):
    """The instants covered by every one of <lists>, as sorted, disjoint
    intervals (empty for no list)."""
    if not lists:
        return []
    acc = union([lists[0]])
    for lst in lists[1:]:
        other, out, i, j = union([lst]), [], 0, 0
        while i < len(acc) and j < len(other):
            s, e = max(acc[i][0], other[j][0]), min(acc[i][1], other[j][1])
            if e > s:
                out.append([s, e])
            if acc[i][1] < other[j][1]:
                i += 1
            else:
                j += 1
        acc = out
    return acc


def floor_us(intervals, window, q=99.0):
    """The largest x (µs) such that requests due evenly over <window> take
    longer than x for a share of at least (100 - q)% because of
    <intervals> (disjoint stops within the window, ns): a floor under the
    run's q-th percentile. 0 when the stops are too short or too few to
    set one."""
    total = window[1] - window[0]
    if total <= 0:
        return 0.0
    need = (100.0 - q) / 100.0 * total
    lens = sorted((e - s for s, e in intervals), reverse=True)
    # sum(max(0, L - x)) decreases piecewise linearly in x: with the k
    # longest stops still longer than x it is sum(L_1..L_k) - k x.
    acc = 0
    for k, length in enumerate(lens, 1):
        acc += length
        nxt = lens[k] if k < len(lens) else 0
        x = (acc - need) / k
        if x >= nxt:
            return max(0.0, x) / 1000.0
    return 0.0


def run_floor(stalls, window, cores, how="any", q=99.0):
    """The floor under a run's q-th percentile (µs) and the time its
    measured <window> lost to the stops counted (ms), from the watch's
    per-core figures <stalls> (watch_end) and the generator's
    "window_mono_ns". <cores>: the CPUs whose stops count; <how>: "any"
    when every request's path crosses each of them (a stop of any one holds
    every request due during it), "all" when only a stop of all of them at
    once is sure to. None when a figure is missing."""
    if not stalls or not window:
        return None
    want = {str(x) for x in cores}
    per = []
    for c in stalls:
        if str(c["cpu"]) in want:
            lst = core_stops(c, window)
            if lst is None:
                return None
            per.append(lst)
    if len(per) != len(cores):
        return None
    ivs = union(per) if how == "any" else intersection(per)
    return {"floor_us": floor_us(ivs, window, q), "stopped_ms": sum(e - s for s, e in ivs) / 1e6,
            "cores": [str(x) for x in cores], "how": how, "q": q}

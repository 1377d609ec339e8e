"""What the measuring tools (bench/callgrind_s1.py, callgrind_s2.py,
callgrind_s4.py) share: their own Stack's paths, and reading callgrind's
output files."""

import os
import re
import shutil
import subprocess


def tool_stack(s, build, tmp):
    """Set on <s> (a benchlib Stack) what Stack reads: the binaries of
    <build>, nginx's, the run's directory <tmp>."""
    s.build = build
    s.gw_bin = os.path.join(build, "opale-gateway")
    s.mock_bin = os.path.join(build, "deploy", "mock-opale", "opale-mock")
    s.lg_bin = os.path.join(build, "bench", "opale-loadgen")
    s.nginx_bin = shutil.which("nginx")
    s.tmp = tmp
    s.targets = {}
    s.token = None


def totals(path):
    """A callgrind output file's total instructions."""
    with open(path) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError("no totals in " + path)


def annotate(path, inclusive, dso=False):
    """{function: instructions} from callgrind_annotate (inclusive or self);
    with <dso>, {shared object: instructions} instead."""
    args = ["callgrind_annotate", "--inclusive=yes" if inclusive else "--inclusive=no", "--threshold=100",
            "--auto=no", path]
    r = subprocess.run(args, stdout=subprocess.PIPE, universal_newlines=True, check=True)
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(?:\*\s+)?(\S.*?)\s*$", line)
        if m and ":" in m.group(2) and not m.group(2).startswith("=>"):
            fn = m.group(2)
            lib = re.search(r" \[([^\]]*)\]$", fn)
            fn = re.sub(r" \[[^\]]*\]$", "", fn)
            if dso:
                fn = os.path.basename(lib.group(1)) if lib else "?"
            out[fn] = out.get(fn, 0) + int(m.group(1).replace(",", ""))
    return out

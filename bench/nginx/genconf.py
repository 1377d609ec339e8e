#!/usr/bin/env python3
"""Render bench/nginx/nginx.conf.in into DIR/nginx.conf (stdlib only).

Usage: genconf.py --dir DIR --pki PKI --mock-port N --port-tls N --port-mtls N
                  [--workers 1] [--worker-connections 20000] [--nofile 45000]
                  [--upstream-keepalive 64] [--check NGINX]

DIR must exist; DIR/tmp/* are created. With --check, `NGINX -t -c` is run on
the result and its exit status returned (its output on stderr).
"""

import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "nginx.conf.in")


def render(dir, pki, mock_port, port_tls, port_mtls, workers=1, worker_connections=20000, nofile=45000,
           upstream_keepalive=64):
    """Write DIR/nginx.conf and return its path. Raises ValueError when a
    placeholder is left unreplaced."""
    values = {
        "DIR": os.path.abspath(dir), "PKI": os.path.abspath(pki), "MOCK_PORT": int(mock_port),
        "PORT_TLS": int(port_tls), "PORT_MTLS": int(port_mtls), "WORKERS": int(workers),
        "WORKER_CONNECTIONS": int(worker_connections), "NOFILE": int(nofile),
        "UPSTREAM_KEEPALIVE": int(upstream_keepalive),
    }
    with open(TEMPLATE) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise ValueError("nginx.conf.in: unreplaced placeholders %s" % sorted(set(left)))
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(dir, "tmp", sub), exist_ok=True)
    path = os.path.join(dir, "nginx.conf")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)
    return path


def check(nginx, path):
    """`nginx -t -c PATH`; returns (rc, output)."""
    r = subprocess.run([nginx, "-t", "-q", "-c", path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return r.returncode, r.stdout.decode(errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--pki", required=True)
    ap.add_argument("--mock-port", type=int, required=True)
    ap.add_argument("--port-tls", type=int, required=True)
    ap.add_argument("--port-mtls", type=int, required=True)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--worker-connections", type=int, default=20000)
    ap.add_argument("--nofile", type=int, default=45000)
    ap.add_argument("--upstream-keepalive", type=int, default=64)
    ap.add_argument("--check", metavar="NGINX")
    a = ap.parse_args()
    path = render(a.dir, a.pki, a.mock_port, a.port_tls, a.port_mtls, a.workers, a.worker_connections, a.nofile,
                  a.upstream_keepalive)
    print(path)
    if a.check:
        rc, out = check(a.check, path)
        sys.stderr.write(out)
        return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""make test-deploy: build the container images and run the compose stack for
real (docs/deploy.md, "Container and compose").

Steps, each timed and each a hard failure:
  1. the base image from Debian packages (deploy/container/base.sh, mmdebstrap);
  2. podman build of the three targets of deploy/container/Containerfile;
  3. the image's metadata: user 10001, STOPSIGNAL SIGTERM, the HEALTHCHECK,
     the volumes;
  4. deploy/compose/compose.yaml up (tests/deploy/compose_run.py): the PKI
     job, Redis, the mock, three gateways;
  5. each gateway healthy by its own HEALTHCHECK (podman healthcheck run);
  6. through each gateway: POST /token over mTLS, then a data call with that
     token (200 from the mock), and a token of one gateway accepted by the
     others (they share the token key);
  7. the quota across the three: the caisse's policy allows 12 calls a
     minute; 12 calls through gw1 are admitted, then gw2 and gw3 (which saw
     none) answer 429: the count is in the shared Redis (on_store_failure is
     "deny", so a Redis problem would be a 503, never a 200);
  8. each gateway's journal on its volume holds its calls;
  9. podman stop (SIGTERM): each gateway drains and exits 0;
 10. down (containers, network, volumes removed), also on failure.

OPALE_DEPLOY_COLD=1 makes the base image again and builds without the layer
cache (the cold run time of docs/deploy.md).

Needs root, podman, runc, mmdebstrap (make test-deploy installs them) and the
Debian archive (the image builds run apt-get). Run time: see docs/deploy.md.
"""
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import compose_run  # noqa: E402

COMPOSE = os.path.join(TOP, "deploy", "compose", "compose.yaml")
CONTAINERFILE = os.path.join(TOP, "deploy", "container", "Containerfile")
IMAGES = [(None, "localhost/opale-gateway:latest"), ("pki", "localhost/opale-gateway-pki:latest"),
          ("redis", "localhost/opale-redis:latest")]
SIREN = "732829320"
QUOTA = 12  # deploy/compose/policies/caisse-secu.json, quota.per_minute
FIGURES = []


class Failure(Exception):
    pass


def step(msg):
    print("test-deploy: %s" % msg, flush=True)


def run(args, timeout=900, check=True, env=None):
    r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise Failure("%s: exit %d\n%s" % (" ".join(args), r.returncode, (r.stdout + r.stderr)[-3000:]))
    return r


def timed(name, fn):
    t0 = time.monotonic()
    out = fn()
    dt = time.monotonic() - t0
    FIGURES.append((name, dt))
    step("%s: %.1f s" % (name, dt))
    return out


def compose_doc():
    return compose_run.load(COMPOSE)


def gateway_ips(doc):
    return {n: s["networks"]["opale"]["ipv4_address"] for n, s in doc["services"].items()
            if s["image"] == "localhost/opale-gateway:latest" and n.startswith("gw")}


class Client:
    """HTTPS to a container's address with the TLS name "localhost" (the dev
    server certificates' name) and a client certificate of the dev PKI."""

    def __init__(self, pki, cert):
        self.ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        self.ctx.load_cert_chain(os.path.join(pki, cert + ".crt"), os.path.join(pki, cert + ".key"))

    def call(self, ip, method, target, headers=None, body=None):
        conn = http.client.HTTPSConnection("localhost", 8443, context=self.ctx, timeout=10)
        conn._create_connection = lambda addr, timeout=None, source_address=None: socket.create_connection(
            (ip, 8443), timeout)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def token(self, ip):
        st, body = self.call(ip, "POST", "/token",
                             {"Content-Type": "application/x-www-form-urlencoded"},
                             urllib.parse.urlencode({"grant_type": "client_credentials"}))
        if st != 200:
            raise Failure("POST /token on %s: %d %r" % (ip, st, body[:300]))
        return json.loads(body)["access_token"]

    def data(self, ip, token, target, teleservice):
        return self.call(ip, "GET", target, {"Authorization": "Bearer " + token,
                                             "X-Correlation-ID": str(uuid.uuid4()),
                                             "ID_Teleservice": teleservice})


def check_image():
    r = run(["podman", "image", "inspect", "--format", "{{json .Config}}", IMAGES[0][1]])
    cfg = json.loads(r.stdout)
    if cfg.get("User") != "10001:10001":
        raise Failure("image user %r, expected 10001:10001" % cfg.get("User"))
    if cfg.get("StopSignal") != "SIGTERM":
        raise Failure("image StopSignal %r" % cfg.get("StopSignal"))
    # The Docker-format health check is outside the OCI config.
    hc = json.loads(run(["podman", "image", "inspect", IMAGES[0][1]]).stdout)[0].get("Healthcheck") or {}
    hc = hc.get("Test") or []
    if "/usr/local/bin/opale-healthcheck" not in hc:
        raise Failure("image health check %r" % hc)
    vols = set(cfg.get("Volumes") or {})
    if not {"/var/log/opale-gateway", "/var/lib/opale-gateway"} <= vols:
        raise Failure("image volumes %r" % vols)
    # Slim: no compiler, no -dev headers, no curl in the runtime image.
    r = run(["podman", "run", "--rm", "--entrypoint", "/bin/sh", IMAGES[0][1], "-c",
             "id -u; ls /usr/bin/gcc /usr/bin/cc /usr/include/openssl /usr/bin/curl 2>/dev/null | wc -l; "
             "/usr/local/bin/opale-gateway -v"])
    uid, extra, version = r.stdout.split("\n")[:3]
    if uid != "10001" or extra != "0" or not version.startswith("opale-gateway "):
        raise Failure("runtime image: uid %r, build tools present %r, version %r" % (uid, extra, version))
    size = run(["podman", "image", "inspect", "--format", "{{.Size}}", IMAGES[0][1]]).stdout.strip()
    FIGURES.append(("gateway image size (MB)", int(size) / 1e6))
    step("image: user 10001, STOPSIGNAL SIGTERM, HEALTHCHECK, volumes, no build tools, %.0f MB" % (int(size) / 1e6))


def wait_healthy(names, timeout=90):
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for n in sorted(pending):
            if run(["podman", "healthcheck", "run", n], check=False, timeout=30).returncode == 0:
                pending.discard(n)
        if pending:
            time.sleep(1)
    if pending:
        logs = {n: run(["podman", "logs", n], check=False).stderr[-1500:] for n in pending}
        raise Failure("not healthy within %d s: %s" % (timeout, logs))


def volume_dir(name):
    return run(["podman", "volume", "inspect", "--format", "{{.Mountpoint}}", name]).stdout.strip()


def full_chain(doc, pki):
    ips = gateway_ips(doc)
    commune = Client(pki, "client-commune")
    decl = "/opale/v1/entreprises/%s/declarations?annee=2023" % SIREN
    tokens = {}
    for name, ip in sorted(ips.items()):
        tokens[name] = commune.token(ip)
        st, body = commune.data(ip, tokens[name], decl, "TS-0001")
        if st != 200:
            raise Failure("%s (%s): data call %d %r" % (name, ip, st, body[:300]))
        step("%s (%s): token + declarations over mTLS: 200" % (name, ip))
    # One signing key for the three: a token of gw1 is good on gw2 and gw3.
    for name, ip in sorted(ips.items()):
        st, body = commune.data(ip, tokens["gw1"], decl, "TS-0001")
        if st != 200:
            raise Failure("%s: gw1's token refused: %d %r" % (name, st, body[:300]))
    # No client certificate: refused at the handshake.
    bare = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
    try:
        with socket.create_connection((ips["gw2"], 8443), timeout=5) as s:
            with bare.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"GET /opale/v1/etatSante HTTP/1.1\r\nHost: localhost\r\n\r\n")
                if t.recv(1):
                    raise Failure("gw2 answered a client without a certificate")
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        pass
    step("token of gw1 accepted by gw2 and gw3; no client certificate refused")
    return ips


def quota_across(ips, pki):
    caisse = Client(pki, "client-secu")
    target = "/opale/v1/entreprises/%s/paiements?annee=2024" % SIREN
    tok = caisse.token(ips["gw1"])
    statuses = [caisse.data(ips["gw1"], tok, target, "TS-0002")[0] for _ in range(QUOTA)]
    if statuses != [200] * QUOTA:
        raise Failure("the first %d calls through gw1: %r" % (QUOTA, statuses))
    after = {}
    for name in ("gw2", "gw3", "gw1"):
        st, body = caisse.data(ips[name], tok, target, "TS-0002")
        after[name] = st
        if st != 429:
            raise Failure("%s after %d calls through gw1: %d %r (the quota is not shared)" % (name, QUOTA, st,
                                                                                             body[:300]))
    keys = run(["podman", "exec", "opale-redis", "redis-cli", "--scan"]).stdout.split()
    if not keys:
        raise Failure("no quota key in Redis")
    step("quota: %d admitted through gw1, then 429 on gw2, gw3, gw1 (%d keys in Redis)" % (QUOTA, len(keys)))


def journals(ips):
    for name in sorted(ips):
        path = os.path.join(volume_dir("opale_journal-" + name), "access.jsonl")
        with open(path) as f:
            recs = [json.loads(line) for line in f if line.strip()]
        calls = [r for r in recs if r.get("status") in (200, 429)]
        if not calls:
            raise Failure("%s: no call in its journal %s (%d records)" % (name, path, len(recs)))
        st = os.stat(os.path.dirname(path))
        if st.st_uid != 10001:
            raise Failure("%s: journal volume owned by uid %d" % (name, st.st_uid))
    step("journals: each gateway's calls on its own volume (owned by 10001)")


def stop_gateways(ips):
    for name in sorted(ips):
        cname = "opale-" + name
        t0 = time.monotonic()
        run(["podman", "stop", "--time", "20", cname], timeout=120)
        dt = time.monotonic() - t0
        code = run(["podman", "inspect", "--format", "{{.State.ExitCode}}", cname]).stdout.strip()
        logs = run(["podman", "logs", cname]).stderr
        if code != "0" or "drained" not in logs:
            raise Failure("%s: exit %s after SIGTERM, log tail %r" % (cname, code, logs[-800:]))
        FIGURES.append(("stop %s (s)" % name, dt))
    step("SIGTERM: the three gateways drained and exited 0")


def main():
    if os.geteuid() != 0:
        print("test-deploy: needs root (rootful podman)", file=sys.stderr)
        return 1
    os.environ.setdefault("CONTAINERS_CONF", os.path.join(HERE, "containers.conf"))
    t_all = time.monotonic()
    doc = compose_doc()
    tmp = tempfile.mkdtemp(prefix="opale-test-deploy-")
    ok = False
    try:
        cold = os.environ.get("OPALE_DEPLOY_COLD") == "1"
        base = [os.path.join(TOP, "deploy", "container", "base.sh")] + (["--force"] if cold else [])
        timed("base image (mmdebstrap)", lambda: run(base))
        for target, tag in IMAGES:
            args = ["podman", "build", "--format", "docker", "--network", "host", "-f", CONTAINERFILE, "-t", tag]
            if target:
                args += ["--target", target]
            if cold and target is None:
                args.append("--no-cache")  # the other targets reuse its layers
            timed("build %s" % tag, lambda a=args: run(a + [TOP], timeout=1800))
        check_image()
        compose_run.down(COMPOSE, log=step)
        timed("compose up", lambda: compose_run.up(COMPOSE, log=step))
        ips = gateway_ips(doc)
        timed("healthy", lambda: wait_healthy(["opale-" + n for n in ips]))
        pki = os.path.join(tmp, "pki")
        shutil.copytree(volume_dir("opale_pki"), pki)
        full_chain(doc, pki)
        quota_across(ips, pki)
        journals(ips)
        stop_gateways(ips)
        ok = True
    except (Failure, compose_run.ComposeError, subprocess.TimeoutExpired) as e:
        print("test-deploy: FAILED: %s" % e, file=sys.stderr)
        for n in ("pki", "redis", "mock", "gw1", "gw2", "gw3"):
            r = run(["podman", "logs", "--tail", "20", "opale-" + n], check=False)
            if r.returncode == 0:
                print("--- opale-%s\n%s%s" % (n, r.stdout, r.stderr), file=sys.stderr)
    finally:
        compose_run.down(COMPOSE, log=step)
        shutil.rmtree(tmp, ignore_errors=True)
    FIGURES.append(("total (s)", time.monotonic() - t_all))
    for name, v in FIGURES:
        print("test-deploy: figure: %s: %.1f" % (name, v))
    print("test-deploy: %s" % ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

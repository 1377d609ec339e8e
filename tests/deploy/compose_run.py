#!/usr/bin/env python3
"""Run deploy/compose/compose.yaml with plain podman commands.

Debian 12's podman-compose (1.0.3) has neither `networks: {N: {ipv4_address}}`
nor `depends_on` conditions, and the gateway's configuration needs numeric
addresses; so `make test-deploy` derives the podman commands from the YAML
itself (python3-yaml). Only the Compose keys that compose.yaml uses are
understood; any other key is an error, so the file and this runner cannot
drift apart silently. `ports` are not published (the test reaches each
container on its network address, and the host's 8443 may be taken).

  compose_run.py up   FILE      network, volumes, then the services in
                                depends_on order (a service_completed_
                                successfully dependency is waited for)
  compose_run.py down FILE      stop (each service's stop_grace_period) and
                                remove the containers, the network, the volumes
  compose_run.py print FILE     print the podman commands of `up`
"""
import os
import shlex
import subprocess
import sys
import time

import yaml

SERVICE_KEYS = {"image", "depends_on", "read_only", "stop_grace_period", "ulimits", "restart",
                "network_mode", "volumes", "command", "entrypoint", "networks", "ports", "environment"}
TOP_KEYS = {"name", "services", "networks", "volumes"}


class ComposeError(Exception):
    pass


def load(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    unknown = set(k for k in doc if not k.startswith("x-")) - TOP_KEYS
    if unknown:
        raise ComposeError("%s: unsupported top-level keys %s" % (path, sorted(unknown)))
    for name, svc in doc["services"].items():
        bad = set(svc) - SERVICE_KEYS
        if bad:
            raise ComposeError("%s: services.%s: unsupported keys %s" % (path, name, sorted(bad)))
    return doc


def seconds(text):
    text = str(text)
    if text.endswith("ms"):
        return max(1, int(text[:-2]) // 1000)
    if text.endswith("m"):
        return int(text[:-1]) * 60
    return int(text.rstrip("s"))


def order(doc):
    """Services in depends_on order (a cycle is an error)."""
    done, out = set(), []

    def visit(name, stack):
        if name in done:
            return
        if name in stack:
            raise ComposeError("depends_on cycle through %s" % name)
        for dep in deps(doc["services"][name]):
            visit(dep, stack | {name})
        done.add(name)
        out.append(name)

    for name in doc["services"]:
        visit(name, set())
    return out


def deps(svc):
    d = svc.get("depends_on") or {}
    if isinstance(d, list):
        return {n: "service_started" for n in d}
    return {n: (c or {}).get("condition", "service_started") for n, c in d.items()}


def project(doc):
    return doc.get("name") or "compose"


def network_name(doc, net):
    return "%s_%s" % (project(doc), net)


def volume_name(doc, vol):
    return "%s_%s" % (project(doc), vol)


def container_name(doc, svc):
    return "%s-%s" % (project(doc), svc)


def run_args(doc, base, name):
    svc = doc["services"][name]
    args = ["podman", "run", "--name", container_name(doc, name)]
    job = str(svc.get("restart", "")) == "no"
    if not job:
        args.append("--detach")
    if svc.get("read_only"):
        args.append("--read-only")
    if "stop_grace_period" in svc:
        args += ["--stop-timeout", str(seconds(svc["stop_grace_period"]))]
    for k, v in (svc.get("ulimits") or {}).items():
        if isinstance(v, dict):
            v = "%s:%s" % (v["soft"], v["hard"])
        else:
            v = "%s:%s" % (v, v)
        args += ["--ulimit", "%s=%s" % (k, v)]
    for k, v in (svc.get("environment") or {}).items():
        args += ["--env", "%s=%s" % (k, v)]
    if svc.get("network_mode") == "none":
        args += ["--network", "none"]
    elif "network_mode" in svc:
        raise ComposeError("services.%s.network_mode: only none is supported" % name)
    nets = svc.get("networks") or {}
    if len(nets) > 1:
        raise ComposeError("services.%s.networks: one network only" % name)
    for net, conf in nets.items():
        args += ["--network", network_name(doc, net)]
        if conf and "ipv4_address" in conf:
            args += ["--ip", conf["ipv4_address"]]
    for v in svc.get("volumes") or []:
        src, dst, *mode = v.split(":")
        if src.startswith((".", "/")):
            src = os.path.normpath(os.path.join(base, src))
        else:
            if src not in (doc.get("volumes") or {}):
                raise ComposeError("services.%s.volumes: %s is not declared" % (name, src))
            src = volume_name(doc, src)
        args += ["--volume", ":".join([src, dst] + mode)]
    ep = svc.get("entrypoint")
    if ep is not None:
        ep = [ep] if isinstance(ep, str) else ep
        args += ["--entrypoint", ep[0]]
    args.append(svc["image"])
    if ep is not None:
        args += ep[1:]
    cmd = svc.get("command")
    if cmd is not None:
        args += [cmd] if isinstance(cmd, str) else cmd
    return args, job


def sh(args, check=True, timeout=300, quiet=False):
    r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise ComposeError("%s: exit %d: %s" % (" ".join(map(shlex.quote, args)), r.returncode,
                                                (r.stderr or r.stdout).strip()[-2000:]))
    return r


def up_commands(doc):
    cmds = []
    for net, conf in (doc.get("networks") or {}).items():
        c = ["podman", "network", "create"]
        for ipam in ((conf or {}).get("ipam") or {}).get("config") or []:
            c += ["--subnet", ipam["subnet"]]
        cmds.append(c + [network_name(doc, net)])
    for vol in doc.get("volumes") or {}:
        cmds.append(["podman", "volume", "create", volume_name(doc, vol)])
    return cmds


def up(path, log=print):
    doc = load(path)
    base = os.path.dirname(os.path.abspath(path))
    for c in up_commands(doc):
        sh(c)
    for name in order(doc):
        for dep, cond in deps(doc["services"][name]).items():
            if cond == "service_completed_successfully":
                wait_exit0(doc, dep)
            elif cond != "service_started":
                raise ComposeError("services.%s.depends_on.%s: condition %s unsupported" % (name, dep, cond))
        args, job = run_args(doc, base, name)
        t0 = time.monotonic()
        sh(args, timeout=300)
        log("compose_run: %s %s (%.1f s)" % (name, "done" if job else "started", time.monotonic() - t0))


def wait_exit0(doc, name, timeout=120):
    cname = container_name(doc, name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = sh(["podman", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", cname])
        status, code = r.stdout.split()
        if status == "exited":
            if code != "0":
                logs = sh(["podman", "logs", cname], check=False)
                raise ComposeError("%s exited %s: %s" % (name, code, (logs.stdout + logs.stderr)[-2000:]))
            return
        time.sleep(0.5)
    raise ComposeError("%s did not finish within %d s" % (name, timeout))


def down(path, log=print):
    doc = load(path)
    for name in reversed(order(doc)):
        cname = container_name(doc, name)
        grace = seconds(doc["services"][name].get("stop_grace_period", "10s"))
        if sh(["podman", "container", "exists", cname], check=False).returncode == 0:
            sh(["podman", "stop", "--time", str(grace), cname], check=False, timeout=grace + 60)
            sh(["podman", "rm", "--force", "--volumes", cname], check=False)  # and its anonymous volumes
    for net in doc.get("networks") or {}:
        sh(["podman", "network", "rm", "--force", network_name(doc, net)], check=False)
    for vol in doc.get("volumes") or {}:
        sh(["podman", "volume", "rm", "--force", volume_name(doc, vol)], check=False)
    log("compose_run: down")


def main(argv):
    if len(argv) != 3 or argv[1] not in ("up", "down", "print"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[1] == "up":
            up(argv[2])
        elif argv[1] == "down":
            down(argv[2])
        else:
            doc = load(argv[2])
            base = os.path.dirname(os.path.abspath(argv[2]))
            for c in up_commands(doc):
                print(" ".join(map(shlex.quote, c)))
            for name in order(doc):
                print(" ".join(map(shlex.quote, run_args(doc, base, name)[0])))
    except ComposeError as e:
        print("compose_run: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

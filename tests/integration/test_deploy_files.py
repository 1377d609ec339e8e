"""The deployment files, checked without building an image (make test; the
real build and run is make test-deploy, tests/deploy/test_deploy.py):

- deploy/container/Containerfile: multi-stage on the local Debian 12 base,
  runtime stage without build tools, non-root USER, STOPSIGNAL SIGTERM,
  HEALTHCHECK on /healthz, the journal and state as volumes;
- the image's health check script against a real gateway;
- deploy/compose/compose.yaml: three gateways sharing one Redis, the mock,
  the PKI job first, and the configuration they mount passing -t;
- deploy/k8s/: every manifest parses, the kustomization renders (kubectl
  kustomize when kubectl is installed, and always a small renderer here), the
  probes, the grace period against the drain timeout of the ConfigMap's
  configuration, the security context, the Service, the PDB, the
  NetworkPolicy against the configured addresses, the Secret against the
  paths the configuration names; the ConfigMap's configuration and policies
  pass -t with the dev PKI in place of the Secret.
"""
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import unittest

import yaml

import harness
from harness import Stack, require_binaries

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTAINERFILE = os.path.join(TOP, "deploy", "container", "Containerfile")
HEALTHCHECK = os.path.join(TOP, "deploy", "container", "healthcheck.sh")
COMPOSE_DIR = os.path.join(TOP, "deploy", "compose")
K8S = os.path.join(TOP, "deploy", "k8s")
sys.path.insert(0, os.path.join(TOP, "tests", "deploy"))
import compose_run  # noqa: E402

GATEWAY_IMAGE = "localhost/opale-gateway:latest"


def containerfile_stages():
    """[(name, base, [(INSTRUCTION, args)])] with continuation lines joined."""
    lines, cur = [], ""
    with open(CONTAINERFILE) as f:
        for raw in f:
            s = raw.rstrip("\n")
            if not cur and (not s.strip() or s.lstrip().startswith("#")):
                continue
            if s.lstrip().startswith("#"):
                continue
            if s.endswith("\\"):
                cur += s[:-1] + " "
                continue
            lines.append(cur + s)
            cur = ""
    args, stages = {}, []
    for line in lines:
        instr, _, rest = line.strip().partition(" ")
        instr = instr.upper()
        if instr == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip()
        elif instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest.strip(), re.I)
            stages.append((m.group(2), m.group(1), []))
        else:
            stages[-1][2].append((instr, rest.strip()))
    return args, stages


def rewrite_paths(obj, prefix):
    """Every string that is an absolute /etc/opale-gateway, /var/log or
    /var/lib path, moved under <prefix>."""
    if isinstance(obj, dict):
        return {k: rewrite_paths(v, prefix) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rewrite_paths(v, prefix) for v in obj]
    if isinstance(obj, str) and obj.startswith(("/etc/opale-gateway", "/var/log/opale-gateway",
                                                "/var/lib/opale-gateway")):
        return prefix + obj
    return obj


def check_config(testcase, conf, policies, secrets_map=None, extra_listener_port=True):
    """Lay out <conf> (a dict with container paths) and <policies> ({name:
    text}) under a temporary root, the dev PKI as /etc/opale-gateway/pki (or
    <secrets_map> {secret file: dev PKI file} as /etc/opale-gateway/secrets),
    and run opale-gateway -t on it; returns (rc, stderr)."""
    root = harness.make_tmpdir("deploy-conf")
    etc = os.path.join(root, "etc", "opale-gateway")
    os.makedirs(os.path.join(etc, "policies"))
    os.makedirs(os.path.join(root, "var", "log", "opale-gateway"))
    os.makedirs(os.path.join(root, "var", "lib", "opale-gateway"))
    pki = harness.pki_dir()
    if secrets_map is None:
        os.symlink(pki, os.path.join(etc, "pki"))
    else:
        os.makedirs(os.path.join(etc, "secrets"))
        for name, src in secrets_map.items():
            shutil.copy(os.path.join(pki, src), os.path.join(etc, "secrets", name))
    for name, text in policies.items():
        with open(os.path.join(etc, "policies", name), "w") as f:
            f.write(text)
    conf = rewrite_paths(conf, root)
    # The listeners' ports may be privileged or taken; -t binds nothing, but
    # keep them as written.
    path = os.path.join(etc, "gateway.json")
    with open(path, "w") as f:
        json.dump(conf, f)
    r = subprocess.run([harness.GW_BIN, "-t", "-c", path], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stderr


class TestContainerfile(unittest.TestCase):
    def setUp(self):
        self.args, self.stages = containerfile_stages()
        self.by_name = {n: (b, i) for n, b, i in self.stages}

    def instr(self, stage, what):
        return [a for i, a in self.by_name[stage][1] if i == what]

    def test_multi_stage_on_local_debian_base(self):
        self.assertEqual(self.args.get("BASE"), "localhost/debian:bookworm")
        self.assertGreaterEqual(len(self.stages), 2)
        for name, base, _ in self.stages:
            self.assertIn(base, ("${BASE}", "runtime"), "stage %s from %s" % (name, base))
        self.assertIn("build", self.by_name)
        self.assertEqual(self.by_name["gateway"][0], "runtime")
        # the gateway is the last stage: the default target of a plain build
        self.assertEqual(self.stages[-1][0], "gateway")

    def test_runtime_has_only_runtime_libraries(self):
        runs = " ".join(self.instr("runtime", "RUN"))
        pkgs = re.search(r"--no-install-recommends\s+(.*?)\s*&&", runs).group(1).split()
        self.assertTrue(pkgs)
        for p in pkgs:
            self.assertFalse(p.endswith("-dev") or p in ("gcc", "make", "cmake", "build-essential", "curl"),
                             "build tool %s in the runtime stage" % p)
        copies = self.instr("runtime", "COPY")
        self.assertTrue(any(c.startswith("--from=build /build/opale-gateway ") for c in copies), copies)
        build_runs = " ".join(self.instr("build", "RUN"))
        self.assertIn("libssl-dev", build_runs)

    def test_gateway_stage(self):
        users = self.instr("gateway", "USER")
        self.assertTrue(users)
        uid = users[-1].split(":")[0]
        self.assertTrue(uid.isdigit() and int(uid) != 0, users)
        self.assertIn("--uid %s" % uid, " ".join(self.instr("runtime", "RUN")))
        self.assertEqual(self.instr("gateway", "STOPSIGNAL"), ["SIGTERM"])
        hc = self.instr("gateway", "HEALTHCHECK")
        self.assertEqual(len(hc), 1)
        self.assertIn('CMD ["/usr/local/bin/opale-healthcheck"]', hc[0])
        vols = json.loads(self.instr("gateway", "VOLUME")[0])
        self.assertIn("/var/log/opale-gateway", vols)
        self.assertIn("/var/lib/opale-gateway", vols)
        self.assertEqual(json.loads(self.instr("gateway", "ENTRYPOINT")[0]), ["/usr/local/bin/opale-gateway"])
        self.assertEqual(json.loads(self.instr("gateway", "CMD")[0]), ["-c", "/etc/opale-gateway/gateway.json"])
        # the configuration is not baked in: it is a mount
        for i, a in self.by_name["gateway"][1] + self.by_name["runtime"][1]:
            if i == "COPY":
                self.assertNotIn("gateway.json", a)
                self.assertNotIn("policies", a)


class TestHealthcheckScript(unittest.TestCase):
    """The image's health check (and the Kubernetes exec probes) against a
    real gateway's admin listener."""

    @classmethod
    def setUpClass(cls):
        require_binaries()
        cls.stack = Stack("healthcheck")
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    def run_check(self, port, *args):
        env = dict(os.environ, OPALE_ADMIN_PORT=str(port))
        return subprocess.run(["bash", HEALTHCHECK, *args], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=20).returncode

    def test_healthy_and_ready(self):
        self.assertEqual(self.run_check(self.stack.admin_port), 0)
        self.assertEqual(self.run_check(self.stack.admin_port, "/healthz"), 0)
        self.assertEqual(self.run_check(self.stack.admin_port, "/readyz"), 0)

    def test_down_or_not_200(self):
        self.assertEqual(self.run_check(harness.closed_port()), 1)
        # the public TLS port does not answer an HTTP 200 in clear
        self.assertEqual(self.run_check(self.stack.port), 1)
        self.assertEqual(self.run_check(self.stack.admin_port, "/metrics"), 2)


class TestCompose(unittest.TestCase):
    def setUp(self):
        self.doc = compose_run.load(os.path.join(COMPOSE_DIR, "compose.yaml"))
        self.svcs = self.doc["services"]
        self.gws = {n: s for n, s in self.svcs.items() if s["image"] == GATEWAY_IMAGE and "entrypoint" not in s}
        with open(os.path.join(COMPOSE_DIR, "gateway.json")) as f:
            self.conf = json.load(f)

    def ip(self, svc):
        return list(self.svcs[svc]["networks"].values())[0]["ipv4_address"]

    def test_three_gateways_share_one_redis(self):
        self.assertEqual(sorted(self.gws), ["gw1", "gw2", "gw3"])
        q = self.conf["quota"]
        self.assertEqual(q["store"], "redis")
        self.assertEqual(q["instances"], 3)
        self.assertEqual(q["redis"]["nodes"], ["%s:6379" % self.ip("redis")])
        self.assertIn("6379", self.svcs["redis"]["command"])
        self.assertEqual(self.conf["upstreams"][0]["servers"], ["%s:9080" % self.ip("mock")])
        self.assertIn("9080", self.svcs["mock"]["command"])
        subnet = ipaddress.ip_network(self.doc["networks"]["opale"]["ipam"]["config"][0]["subnet"])
        ips = [self.ip(n) for n in self.svcs if n != "pki"]
        self.assertEqual(len(set(ips)), len(ips))
        for a in ips:
            self.assertIn(ipaddress.ip_address(a), subnet)

    def test_gateways_mounts_and_order(self):
        drain_s = self.conf["timeouts"]["drain_ms"] / 1000
        journals = set()
        for name, svc in self.gws.items():
            mounts = {v.split(":")[1]: v for v in svc["volumes"]}
            self.assertTrue(mounts["/etc/opale-gateway/gateway.json"].startswith("./gateway.json:"))
            self.assertTrue(mounts["/etc/opale-gateway/policies"].endswith(":ro"))
            self.assertTrue(mounts["/etc/opale-gateway/pki"].startswith("pki:"))
            journals.add(mounts["/var/log/opale-gateway"].split(":")[0])
            self.assertIn("/var/lib/opale-gateway", mounts)
            d = compose_run.deps(svc)
            self.assertEqual(d.get("pki"), "service_completed_successfully", name)
            self.assertIn("redis", d)
            self.assertIn("mock", d)
            # the drain, then at most 5 s for the journal to flush (docs/journal.md)
            self.assertGreater(compose_run.seconds(svc["stop_grace_period"]), drain_s + 5)
            self.assertTrue(svc.get("read_only"))
        self.assertEqual(len(journals), 3, "each gateway needs its own journal volume")
        self.assertEqual(str(self.svcs["pki"]["restart"]), "no")
        order = compose_run.order(self.doc)
        self.assertLess(order.index("pki"), min(order.index(n) for n in self.gws))

    def test_runner_commands(self):
        base = COMPOSE_DIR
        args, job = compose_run.run_args(self.doc, base, "gw2")
        self.assertFalse(job)
        self.assertIn("--read-only", args)
        self.assertEqual(args[args.index("--ip") + 1], self.ip("gw2"))
        self.assertIn("opale_journal-gw2:/var/log/opale-gateway", args)
        self.assertTrue(compose_run.run_args(self.doc, base, "pki")[1])
        bad = {"services": {"x": {"image": "i", "privileged": True}}}
        with open(os.path.join(harness.make_tmpdir("compose-bad"), "c.yaml"), "w") as f:
            yaml.safe_dump(bad, f)
            path = f.name
        with self.assertRaises(compose_run.ComposeError):
            compose_run.load(path)

    def test_configuration_passes_check(self):
        require_binaries(mock=False)
        pols = {}
        pdir = os.path.join(COMPOSE_DIR, "policies")
        for n in os.listdir(pdir):
            with open(os.path.join(pdir, n)) as f:
                pols[n] = f.read()
        rc, err = check_config(self, self.conf, pols)
        self.assertEqual(rc, 0, err)
        self.assertIn("configuration is valid (2 habilitations)", err)


def load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}


def render_kustomization(path):
    """The subset of kustomize that deploy/k8s uses: resources, namespace,
    labels (pairs, without selectors). Anything else is an error."""
    with open(os.path.join(path, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    unknown = set(k) - {"apiVersion", "kind", "namespace", "labels", "resources"}
    if unknown:
        raise AssertionError("kustomization keys this renderer does not know: %s" % sorted(unknown))
    out = []
    for res in k["resources"]:
        for d in load_yaml_docs(os.path.join(path, res)):
            md = d.setdefault("metadata", {})
            if k.get("namespace") and d["kind"] not in CLUSTER_SCOPED:
                md["namespace"] = k["namespace"]
            for lab in k.get("labels") or []:
                md.setdefault("labels", {}).update(lab["pairs"])
                if lab.get("includeSelectors") or lab.get("includeTemplates"):
                    raise AssertionError("labels with selectors/templates: not rendered here")
            out.append(d)
    return out


class TestKubernetes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objs = render_kustomization(K8S)
        cls.by_kind = {}
        for o in cls.objs:
            cls.by_kind.setdefault(o["kind"], []).append(o)
        cls.dep = cls.one("Deployment")
        cls.pod = cls.dep["spec"]["template"]["spec"]
        cls.ctr = cls.pod["containers"][0]
        cms = {c["metadata"]["name"]: c for c in cls.by_kind["ConfigMap"]}
        cls.cm_conf = cms["opale-gateway-config"]
        cls.cm_pol = cms["opale-gateway-policies"]
        cls.conf = json.loads(cls.cm_conf["data"]["gateway.json"])

    @classmethod
    def one(cls, kind):
        objs = cls.by_kind.get(kind) or []
        assert len(objs) == 1, "%d %s" % (len(objs), kind)
        return objs[0]

    def mount(self, path):
        m = [v for v in self.ctr["volumeMounts"] if v["mountPath"] == path]
        self.assertEqual(len(m), 1, path)
        vol = [v for v in self.pod["volumes"] if v["name"] == m[0]["name"]][0]
        return m[0], vol

    def test_every_manifest_parses_and_is_listed(self):
        with open(os.path.join(K8S, "kustomization.yaml")) as f:
            listed = set(yaml.safe_load(f)["resources"])
        files = {n for n in os.listdir(K8S) if n.endswith(".yaml") and n != "kustomization.yaml"}
        self.assertEqual(listed, files)
        for n in files:
            for d in load_yaml_docs(os.path.join(K8S, n)):
                self.assertIn("apiVersion", d, n)
                self.assertIn("kind", d, n)
                self.assertIn("name", d["metadata"], n)
        kinds = sorted(self.by_kind)
        for k in ("ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget",
                  "Secret", "Service"):
            self.assertIn(k, kinds)
        for o in self.objs:
            if o["kind"] != "Namespace":
                self.assertEqual(o["metadata"]["namespace"], "opale", o["metadata"]["name"])

    def test_kubectl_kustomize_renders_the_same(self):
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.skipTest("kubectl not installed: the renderer of this test stands in (docs/deploy.md)")
        r = subprocess.run([kubectl, "kustomize", K8S], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0 and ("not found" in r.stderr or "dispatcher" in r.stderr):
            self.skipTest("kubectl cannot run here: %s" % r.stderr.strip()[:200])
        self.assertEqual(r.returncode, 0, r.stderr)
        theirs = [d for d in yaml.safe_load_all(r.stdout) if d]
        key = lambda o: (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))  # noqa: E731
        self.assertEqual(sorted(map(key, theirs)), sorted(map(key, self.objs)))
        mine = {key(o): o for o in self.objs}
        for o in theirs:
            self.assertEqual(o["metadata"].get("labels"), mine[key(o)]["metadata"].get("labels"), key(o))
            self.assertEqual(o.get("spec"), mine[key(o)].get("spec"), key(o))
            self.assertEqual(o.get("data"), mine[key(o)].get("data"), key(o))

    def test_deployment_probes(self):
        self.assertEqual(self.dep["spec"]["replicas"], 3)
        rp, lp = self.ctr["readinessProbe"], self.ctr["livenessProbe"]
        self.assertEqual(rp["exec"]["command"], ["/usr/local/bin/opale-healthcheck", "/readyz"])
        self.assertEqual(lp["exec"]["command"], ["/usr/local/bin/opale-healthcheck", "/healthz"])
        # the probes talk to the configured admin port
        env = {e["name"]: e.get("value") for e in self.ctr["env"]}
        self.assertEqual(int(env["OPALE_ADMIN_PORT"]), self.conf["admin"]["port"])
        # liveness gives up later than readiness
        self.assertGreater(lp["periodSeconds"] * lp["failureThreshold"], rp["periodSeconds"] * rp["failureThreshold"])

    def test_grace_period_above_prestop_and_drain(self):
        pre = self.ctr["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre[:1], ["/bin/sleep"])
        pause = float(pre[1])
        drain = self.conf["timeouts"]["drain_ms"] / 1000.0
        grace = self.pod["terminationGracePeriodSeconds"]
        self.assertGreater(grace, pause + drain, "SIGKILL would cut the drain")
        strat = self.dep["spec"]["strategy"]
        self.assertEqual(strat["rollingUpdate"]["maxUnavailable"], 0)

    def test_security_context(self):
        psc, csc = self.pod["securityContext"], self.ctr["securityContext"]
        self.assertTrue(psc["runAsNonRoot"])
        self.assertNotEqual(psc["runAsUser"], 0)
        _, stages = containerfile_stages()
        user = [a for n, b, ins in stages if n == "gateway" for i, a in ins if i == "USER"][-1]
        self.assertEqual(str(psc["runAsUser"]), user.split(":")[0], "image user and runAsUser differ")
        self.assertTrue(csc["readOnlyRootFilesystem"])
        self.assertFalse(csc["allowPrivilegeEscalation"])
        self.assertEqual(csc["capabilities"]["drop"], ["ALL"])
        self.assertNotIn("add", csc["capabilities"])
        self.assertFalse(self.pod["automountServiceAccountToken"])
        res = self.ctr["resources"]
        for k in ("cpu", "memory"):
            self.assertIn(k, res["requests"])
            self.assertIn(k, res["limits"])
        # every writable place is a volume (the root file system is read-only)
        for path in ("/var/log/opale-gateway", "/var/lib/opale-gateway"):
            m, _ = self.mount(path)
            self.assertFalse(m.get("readOnly", False))
        self.assertTrue(self.conf["journal"]["path"].startswith("/var/log/opale-gateway/"))
        self.assertTrue(self.conf["access"]["suspensions_file"].startswith("/var/lib/opale-gateway/"))

    def test_journal_per_pod_and_policies_live(self):
        m, vol = self.mount("/var/log/opale-gateway")
        self.assertEqual(m["subPathExpr"], "$(POD_NAME)")
        self.assertIn("persistentVolumeClaim", vol)
        env = {e["name"]: e for e in self.ctr["env"]}
        self.assertEqual(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name")
        # policies: the whole ConfigMap as a directory (no subPath: subPath
        # mounts never see updates), watched by the gateway
        m, vol = self.mount(self.conf["policies_dir"])
        self.assertNotIn("subPath", m)
        self.assertEqual(vol["configMap"]["name"], "opale-gateway-policies")
        self.assertIs(self.conf["policies_watch"], True)
        m, vol = self.mount("/etc/opale-gateway/gateway.json")
        self.assertEqual(vol["configMap"]["name"], "opale-gateway-config")

    def test_service_pdb(self):
        svc = self.one("Service")
        port = svc["spec"]["ports"][0]
        self.assertEqual(port["protocol"], "TCP")
        self.assertEqual(port["port"], 443)
        named = {p["name"]: p["containerPort"] for p in self.ctr["ports"]}
        self.assertEqual(named[port["targetPort"]], self.conf["listeners"][0]["port"])
        self.assertEqual(svc["spec"]["externalTrafficPolicy"], "Local")
        labels = self.dep["spec"]["template"]["metadata"]["labels"]
        for sel in (svc["spec"]["selector"], self.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]):
            for k, v in sel.items():
                self.assertEqual(labels.get(k), v)
        pdb = self.one("PodDisruptionBudget")
        self.assertLess(pdb["spec"]["minAvailable"], self.dep["spec"]["replicas"])
        self.assertGreaterEqual(pdb["spec"]["minAvailable"], 2)

    def test_networkpolicy_egress_only_redis_and_backends(self):
        np = self.one("NetworkPolicy")
        self.assertEqual(sorted(np["spec"]["policyTypes"]), ["Egress", "Ingress"])
        allowed = []
        for rule in np["spec"]["egress"]:
            self.assertTrue(rule.get("to"), "an egress rule without 'to' opens everything")
            self.assertTrue(rule.get("ports"), "an egress rule without ports")
            for t in rule["to"]:
                self.assertEqual(list(t), ["ipBlock"])
                net = ipaddress.ip_network(t["ipBlock"]["cidr"])
                for p in rule["ports"]:
                    allowed.append((net, p["port"]))
        needed = list(self.conf["quota"]["redis"]["nodes"])
        for u in self.conf["upstreams"]:
            needed += u["servers"]
        for hp in needed:
            host, port = hp.rsplit(":", 1)
            self.assertTrue(any(ipaddress.ip_address(host) in n and int(port) == p for n, p in allowed),
                            "%s not allowed by the NetworkPolicy" % hp)
        # and nothing more than those: every allowed (net, port) serves one
        for n, p in allowed:
            self.assertTrue(any(ipaddress.ip_address(h.rsplit(":", 1)[0]) in n and int(h.rsplit(":", 1)[1]) == p
                                for h in needed), (str(n), p))
        ing = np["spec"]["ingress"]
        self.assertEqual([p["port"] for r in ing for p in r["ports"]], [self.conf["listeners"][0]["port"]])

    def secret_paths(self):
        out = set()

        def walk(o):
            if isinstance(o, dict):
                for v in o.values():
                    walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)
            elif isinstance(o, str) and o.startswith("/etc/opale-gateway/secrets/"):
                out.add(o[len("/etc/opale-gateway/secrets/"):])
        walk(self.conf)
        return out

    def test_secret_holds_every_key_the_config_names(self):
        sec = self.one("Secret")
        self.assertEqual(set(sec["stringData"]), self.secret_paths())
        m, vol = self.mount("/etc/opale-gateway/secrets")
        self.assertTrue(m["readOnly"])
        self.assertEqual(vol["secret"]["secretName"], sec["metadata"]["name"])
        self.assertEqual(vol["secret"]["defaultMode"] & 0o007, 0, "secrets readable by others")

    def test_configmap_configuration_passes_check(self):
        require_binaries(mock=False)
        dev = {"server-ecdsa.crt": "server-ecdsa.crt", "server-ecdsa.key": "server-ecdsa.key",
               "client-ca.pem": "ca.crt", "client-ca.crl.pem": "crl.pem", "backend-ca.pem": "ca.crt",
               "backend-client.crt": "client-commune.crt", "backend-client.key": "client-commune.key",
               "token-es256.key": "token-es256.key", "admin.token": "admin.token",
               "assertion-mac.key": "assertion-mac.key"}
        self.assertEqual(set(dev), self.secret_paths())
        rc, err = check_config(self, self.conf, dict(self.cm_pol["data"]), secrets_map=dev)
        self.assertEqual(rc, 0, err)
        self.assertIn("configuration is valid (%d habilitations)" % len(self.cm_pol["data"]), err)


if __name__ == "__main__":
    unittest.main()

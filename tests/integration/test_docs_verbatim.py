"""What a user or an operator copies from the docs, run as written (issue 11).

From a clean copy of the tree (the files git tracks, nothing built or
generated), the test does what `make run` does after building: it runs
deploy/sandbox/pki.sh, then deploy/sandbox/run.sh with the SHIPPED
deploy/sandbox/gateway.json and the shipped policies/, and waits for the
banner a user waits for. Then it takes the shell blocks of:

  - README.md, section "Try it";
  - docs/operations.md, the whole runbook;
  - docs/loadgen.md, section "Examples for the sandbox stack";
  - docs/policies.md, section "Add a partner";

and runs them with bash from the copy's root, block after block in one shell
per document (as a user pasting them into one terminal), checking what each
one must give: a 200 with data and its journal record, the kill switch
cutting a partner off and lifting it, the journal verified, load-generator
runs without a 4xx or 5xx, a new partner's first call served. Any command of
a block that fails (non-zero status) fails the test with the command.

A block is left out only when the line right before its fence is the marker
`<!-- not run: REASON -->` (a production path, a load far over the sandbox's
quota). runnable_blocks() is generic: a new section or a new document is one
line in DOCS below.

Ports: the shipped config listens on 8443 (mTLS), 9901 (admin) and the mock
on 9080. To use them verbatim whatever else runs on the machine, the test
process moves into a network namespace of its own (unshare(CLONE_NEWNET), as
root; then `ip link set lo up`); everything it starts inherits it. Where that
is not possible (not root, no user namespaces) or with GW_DOCS_NO_NETNS=1, it
uses run.sh's documented override (OPALE_SANDBOX_PORT, OPALE_SANDBOX_ADMIN_PORT,
OPALE_SANDBOX_MOCK_PORT) with free ports and replaces the three ports in the
blocks, and says so on stderr. It never skips for that: if the stack does not
come up either way, the test fails with run.sh's output.

Every wait has a deadline; the stack is stopped with SIGINT (Ctrl-C) and
must exit 0.
"""

import ctypes
import http.client
import json
import os
import re
import select
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import unittest
import uuid

import harness

CLONE_NEWNET = 0x40000000
SHIPPED_PORTS = {"public": 8443, "admin": 9901, "mock": 9080}
BLOCK_TIMEOUT = 90.0      # seconds for one block (the load-generator examples run a few seconds)
UP_TIMEOUT = 60.0         # pki.sh + run.sh until the banner (ASan builds are slower)
STOP_TIMEOUT = 20.0
JOURNAL_WAIT = 5.0
VERBOSE = os.environ.get("GW_DOCS_VERBOSE") == "1"   # print each block and its output
QUOTA = 50                # the sandbox partners' calls per rolling minute

# (document, section heading or None for the whole document)
DOCS = {
    "readme": ("README.md", "Try it"),
    "operations": ("docs/operations.md", None),
    "loadgen": ("docs/loadgen.md", "Examples for the sandbox stack"),
    "add_partner": ("docs/policies.md", "Add a partner"),
}

SH_LANGS = {"sh", "bash", "shell", "console-sh"}
NOT_RUN_RE = re.compile(r"^\s*<!--\s*not run:\s*(\S.*?)\s*-->\s*$")
FENCE_RE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([A-Za-z0-9_+-]*)\s*$")
HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def runnable_blocks(path, heading=None):
    """The shell blocks of a markdown file to run, in order.

    path: the markdown file; heading: the title of a section (any level,
    compared after stripping the #s), the section running until the next
    heading of the same or a higher level; None for the whole file.
    Returns [(line_number_of_the_fence, text)], the text with the fence's
    indentation removed. A fenced block is a shell block when its info string
    is sh, bash or shell. It is left out when the non-blank line right before
    its fence is `<!-- not run: REASON -->` (REASON required). Lines inside
    fences are never taken for headings. Raises ValueError when the heading is
    missing, a fence is unclosed, or the section has no runnable block: a
    renamed section must fail the test, not empty it.
    """
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks, in_section, level = [], heading is None, 0
    found = heading is None
    i, prev = 0, ""
    while i < len(lines):
        line = lines[i]
        m = FENCE_RE.match(line)
        if m:
            indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence))
                                          and lines[i].strip().strip(fence[0]) == ""):
                body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
                i += 1
            if i >= len(lines):
                raise ValueError("%s:%d: unclosed code fence" % (path, start))
            if in_section and lang in SH_LANGS and not NOT_RUN_RE.match(prev):
                blocks.append((start, "\n".join(body) + "\n"))
            prev = lines[i]
            i += 1
            continue
        h = HEADING_RE.match(line)
        if h and heading is not None:
            lvl, title = len(h.group(1)), h.group(2)
            if in_section and lvl <= level:
                in_section = False
            elif not in_section and title == heading and not found:
                in_section, level, found = True, lvl, True
        if line.strip():
            prev = line
        i += 1
    if not found:
        raise ValueError("%s: no section %r" % (path, heading))
    if not blocks:
        raise ValueError("%s: no runnable shell block in %s" % (path, heading or "the file"))
    return blocks


class Shell:
    """One bash, like one terminal: blocks run in it in order, sharing
    variables and functions. Any command that fails prints an @@ERR line
    (ERR trap, inherited by functions and subshells)."""

    ERR_RE = re.compile(r"^@@ERR (.*)$", re.M)

    def __init__(self, cwd, env, tmp, name):
        self.cwd, self.tmp, self.name, self.n = cwd, tmp, name, 0
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        harness._register(self.proc)
        self._send("set -E; trap 'echo \"@@ERR status $? at line $LINENO: $BASH_COMMAND\"' ERR\n")

    def _send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def run(self, text, timeout=BLOCK_TIMEOUT):
        """Run one block (sourced from a file, stdin from /dev/null so that
        no command can eat the next ones). Returns (status of its last
        command, output)."""
        self.n += 1
        path = os.path.join(self.tmp, "%s-block%d.sh" % (self.name, self.n))
        with open(path, "w") as f:
            f.write(text)
        marker = "@@END-%s@@" % uuid.uuid4().hex
        self._send('source %s </dev/null; echo "%s $?"\n' % (path, marker))
        out, deadline = b"", time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        end_re = re.compile(re.escape(marker.encode()) + rb" (\d+)\n")
        while True:
            m = end_re.search(out)
            if m:
                return int(m.group(1)), out[:m.start()].decode("utf-8", "replace")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: block %d still running after %.0f s; output so far:\n%s"
                                     % (self.name, self.n, timeout, out.decode("utf-8", "replace")))
            r, _, _ = select.select([fd], [], [], min(left, 1.0))
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError("%s: the shell exited during block %d; output:\n%s"
                                         % (self.name, self.n, out.decode("utf-8", "replace")))
                out += chunk

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        harness.stop_process(self.proc, timeout=5.0)
        self.proc.stdout.close()


def enter_network_namespace():
    """Move this process into a new network namespace with loopback up.
    Returns None on success, else why not (the caller falls back)."""
    if os.environ.get("GW_DOCS_NO_NETNS") == "1":
        return "GW_DOCS_NO_NETNS=1"
    if threading.active_count() != 1:
        return "threads are running (unshare would move only one)"
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            return "unshare(CLONE_NEWNET): %s" % os.strerror(e)
        ip = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.path.exists(p)), None)
        r = subprocess.run([ip, "link", "set", "lo", "up"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10) if ip else None
        if r is None or r.returncode != 0:
            libc.setns(own, CLONE_NEWNET)
            return "ip link set lo up: %s" % ("iproute2 not installed" if r is None
                                              else r.stdout.decode(errors="replace").strip())
        return None
    finally:
        os.close(own)


def copy_tree(src, dst):
    """Copy the files git tracks in src (as they are in the working tree;
    a new file counts once `git add`ed) into dst: what a fresh clone has,
    without build dirs, PKI, journals or stray untracked files."""
    r = subprocess.run(["git", "-C", src, "ls-files", "-z", "--cached"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise AssertionError("git ls-files in %s failed (the test copies the files git knows): %s"
                             % (src, r.stderr.decode(errors="replace")))
    n = 0
    for rel in sorted(set(r.stdout.decode().split("\0")) - {""}):
        s = os.path.join(src, rel)
        if not os.path.lexists(s):
            continue  # deleted in the working tree
        d = os.path.join(dst, rel)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copy2(s, d, follow_symlinks=False)
        n += 1
    return n


class TestDocsVerbatim(unittest.TestCase):
    """The sandbox stack from a clean copy, then each document's blocks."""

    @classmethod
    def setUpClass(cls):
        harness.require_binaries()
        for tool in ("git", "bash", "curl", "jq"):
            if not shutil.which(tool):
                raise AssertionError("%s not found: make test installs it (Makefile DEPS)" % tool)
        cls.tmp = harness.make_tmpdir("docs")
        cls.tree = os.path.join(cls.tmp, "tree")
        cls.shtmp = os.path.join(cls.tmp, "tmp")
        os.makedirs(cls.tree)
        os.makedirs(cls.shtmp)
        cls.nfiles = copy_tree(harness.SRCDIR, cls.tree)
        # The copy's build/ is the build the suite runs on: the docs name
        # build/opale-gateway and build/bench/opale-loadgen, as after make.
        builddir = os.environ.get("GW_BUILDDIR") or os.path.dirname(os.path.abspath(harness.GW_BIN))
        os.symlink(builddir, os.path.join(cls.tree, "build"))

        cls.ports = dict(SHIPPED_PORTS)
        env = dict(os.environ)
        for k in ("OPALE_SANDBOX_PORT", "OPALE_SANDBOX_ADMIN_PORT", "OPALE_SANDBOX_MOCK_PORT"):
            env.pop(k, None)
        why = enter_network_namespace()
        cls.netns = why is None
        if not cls.netns:
            cls.ports = {"public": harness.free_port(), "admin": harness.free_port(), "mock": harness.free_port()}
            env.update(OPALE_SANDBOX_PORT=str(cls.ports["public"]),
                       OPALE_SANDBOX_ADMIN_PORT=str(cls.ports["admin"]),
                       OPALE_SANDBOX_MOCK_PORT=str(cls.ports["mock"]))
            sys.stderr.write("[docs] no network namespace (%s): run.sh's port override, ports %s\n"
                             % (why, cls.ports))
        cls.env = env
        cls.output, cls.stack_proc = [], None

        r = subprocess.run(["deploy/sandbox/pki.sh"], cwd=cls.tree, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        if r.returncode != 0:
            raise AssertionError("deploy/sandbox/pki.sh failed:\n" + r.stdout.decode(errors="replace"))
        cls.stack_proc = subprocess.Popen(["deploy/sandbox/run.sh", "build"], cwd=cls.tree, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        harness._register(cls.stack_proc)
        cls.reader = threading.Thread(target=cls._read_run_output, daemon=True)
        cls.reader.start()
        deadline = time.monotonic() + UP_TIMEOUT
        while not any("opale-gateway (sandbox) is up" in l for l in list(cls.output)):
            if cls.stack_proc.poll() is not None or time.monotonic() > deadline:
                cls.reader.join(timeout=2)
                cls._stop()
                raise AssertionError("deploy/sandbox/run.sh did not come up (%s); its output:\n%s"
                                     % ("exit %s" % cls.stack_proc.returncode if cls.stack_proc.returncode is not None
                                        else "no banner after %.0f s" % UP_TIMEOUT, "".join(cls.output)))
            time.sleep(0.1)
        cls.pki = os.path.join(cls.tree, "deploy", "sandbox", "pki")
        cls.journal = os.path.join(cls.tree, "deploy", "sandbox", "journal", "access.jsonl")

    @classmethod
    def _read_run_output(cls):
        for line in iter(cls.stack_proc.stdout.readline, b""):
            cls.output.append(line.decode("utf-8", "replace"))

    @classmethod
    def _stop(cls):
        if cls.stack_proc is None or cls.stack_proc.poll() is not None:
            return cls.stack_proc.returncode if cls.stack_proc else None
        cls.stack_proc.send_signal(signal.SIGINT)  # Ctrl-C, as a user stops it
        try:
            cls.stack_proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(cls.stack_proc.pid, signal.SIGKILL)
            cls.stack_proc.wait(timeout=STOP_TIMEOUT)
        return cls.stack_proc.returncode

    @classmethod
    def tearDownClass(cls):
        cls._stop()

    # -- helpers -----------------------------------------------------------

    def ported(self, text):
        """The block as run: the shipped ports, or the override's."""
        if self.netns:
            return text
        return (text.replace("localhost:%d" % SHIPPED_PORTS["public"], "localhost:%d" % self.ports["public"])
                    .replace("127.0.0.1:%d" % SHIPPED_PORTS["admin"], "127.0.0.1:%d" % self.ports["admin"])
                    .replace("127.0.0.1:%d" % SHIPPED_PORTS["mock"], "127.0.0.1:%d" % self.ports["mock"]))

    def run_doc(self, key, after=None):
        """Run the runnable blocks of DOCS[key] in one shell. after(text,
        output) is called after each block. Returns [(text, output)]."""
        rel, heading = DOCS[key]
        blocks = runnable_blocks(os.path.join(self.tree, rel), heading)
        env = dict(self.env, TMPDIR=self.shtmp)
        sh = Shell(self.tree, env, self.shtmp, key)
        done = []
        try:
            for line, text in blocks:
                status, out = sh.run(self.ported(text))
                where = "%s:%d%s" % (rel, line, " (section %r)" % heading if heading else "")
                errs = Shell.ERR_RE.findall(out)
                if errs:
                    self.fail("%s: a command failed: %s\nblock:\n%s\noutput:\n%s" % (where, errs[0], text, out))
                self.assertEqual(status, 0, "%s: the block ended with status %d\nblock:\n%s\noutput:\n%s"
                                 % (where, status, text, out))
                if VERBOSE:
                    sys.stderr.write("[docs] %s\n%s[docs] ->\n%s\n" % (where, text, out))
                done.append((text, out))
                if after:
                    after(text, out)
        finally:
            sh.close()
        return done

    def records(self):
        """The journal's request records (checkpoints left out)."""
        out = []
        try:
            with open(self.journal, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        r = json.loads(line)
                        if "type" not in r:
                            out.append(r)
        except FileNotFoundError:
            pass
        return out

    def wait_record(self, pred, since, what):
        deadline = time.monotonic() + JOURNAL_WAIT
        while True:
            new = self.records()[since:]
            hits = [r for r in new if pred(r)]
            if hits:
                return hits
            if time.monotonic() > deadline:
                self.fail("no new journal record with %s in %s within %.0f s; new records: %s"
                          % (what, self.journal, JOURNAL_WAIT, json.dumps(new)[-2000:]))
            time.sleep(0.2)

    def https(self, cert, method, target, headers=None, body=None):
        ctx = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.crt"))
        ctx.load_cert_chain(os.path.join(self.pki, cert + ".crt"), os.path.join(self.pki, cert + ".key"))
        c = http.client.HTTPSConnection("localhost", self.ports["public"], context=ctx, timeout=5)
        try:
            c.request(method, target, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def token(self, cert):
        st, body = self.https(cert, "POST", "/token", {"Content-Type": "application/x-www-form-urlencoded"},
                              "grant_type=client_credentials")
        self.assertEqual(st, 200, body)
        return json.loads(body)["access_token"]

    def assertQuotaRespected(self):
        """No partner was throttled: every example together stays under the quota."""
        throttled = [r for r in self.records() if r.get("status") == 429]
        self.assertEqual(throttled, [], "the doc examples went over a partner's quota of %d/min" % QUOTA)

    # -- the tests, in the order a newcomer reads ---------------------------

    def test_0_make_run_recipe(self):
        """make run does what this test does: build the gateway and the mock
        only, pki.sh, then run.sh on the build dir (checked with make -n)."""
        r = subprocess.run(["make", "-n", "run", "BUILD=build"], cwd=self.tree, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        lines = [l.strip() for l in out.splitlines()]
        self.assertIn("deploy/sandbox/pki.sh", lines, out)
        self.assertIn("deploy/sandbox/run.sh build", lines, out)
        builds = [l for l in lines if l.startswith("cmake --build")]
        self.assertTrue(builds, out)
        for l in builds:
            self.assertRegex(l, r"--target opale-gateway opale-mock$", "make run builds more than it needs")
        self.assertNotIn("nginx", out, "make run must not install nginx")
        self.assertIn("Try it in a second terminal", "".join(self.output))

    def test_1_readme_try_it(self):
        since = len(self.records())
        done = self.run_doc("readme")
        out = done[-1][1]
        self.assertIn('"siren":"732829320"', out, out)
        self.assertIn('"declarations":[', out, out)
        self.assertNotIn('"erreur"', out, out)
        self.wait_record(lambda r: r.get("route") == "declarations" and r.get("status") == 200
                         and r.get("decision") == "allow" and r.get("consumer") == "commune-exemple-sandbox",
                         since, "route declarations, status 200, consumer commune-exemple-sandbox")

    def test_2_operations_runbook(self):
        commune_token = self.token("client-commune")
        seen = {}

        def after(text, out):
            if "adm GET /readyz" in text:
                self.assertIn('"ready":true', out)
                seen["readyz"] = True
            if "adm GET /metrics" in text:
                self.assertRegex(out, r"(?m)^opale_journal_healthy 1$")
                seen["metrics"] = True
            if "/suspend" in text:
                self.assertIn('"suspended":true', out)
                self.assertIn('"client_id":"commune-exemple-sandbox"', out)
                # The partner's next call is refused by the kill switch.
                st, body = self.https("client-commune", "GET",
                                      "/opale/v1/entreprises/732829320/declarations?annee=2023",
                                      {"Authorization": "Bearer " + commune_token,
                                       "X-Correlation-ID": str(uuid.uuid4()), "ID_Teleservice": "TS-0001"})
                self.assertEqual(st, 403, body)
                self.assertEqual(json.loads(body)["erreur"]["code"], "910213", body)
                seen["suspend"] = True
            if "adm POST /admin/reload" in text:
                self.assertIn("configuration is valid", out)
                self.assertIn('"reloaded":true', out)
                seen["reload"] = True
            if "--verify-journal" in text:
                seen["verify"] = True
            if "jq -r 'select(.decision == \"deny\")" in text:
                seen["jq"] = True
            if "/resume" in text:
                self.assertIn('"suspended":false', out)
                st, body = self.https("client-commune", "GET", "/opale/v1/etatSante",
                                      {"X-Correlation-ID": str(uuid.uuid4())})
                self.assertEqual(st, 200, body)
                seen["resume"] = True

        self.run_doc("operations", after)
        self.assertEqual(set(seen), {"readyz", "metrics", "suspend", "reload", "verify", "jq", "resume"},
                         "a runbook command this test checks is gone from docs/operations.md")
        self.assertQuotaRespected()

    def test_3_loadgen_examples(self):
        since = len(self.records())
        done = self.run_doc("loadgen")
        out = "".join(o for _, o in done)
        runs = re.findall(r"^\s*responses\s+2xx (\d+)\s+3xx (\d+)\s+4xx (\d+)\s+5xx (\d+)", out, re.M)
        ncmds = sum(len(re.findall(r"^\$LG ", t, re.M)) for t, _ in done)
        self.assertGreaterEqual(ncmds, 3, "docs/loadgen.md lost its sandbox examples")
        self.assertEqual(len(runs), ncmds, out)
        for r in runs:
            ok, _, c4, c5 = map(int, r)
            self.assertGreater(ok, 0, out)
            self.assertEqual((c4, c5), (0, 0), "a load-generator example got 4xx/5xx answers:\n" + out)
        self.assertNotRegex(out, r"errors\s+[1-9]", out)
        new = self.records()[since:]
        per_consumer = {}
        for r in new:
            per_consumer[r.get("consumer")] = per_consumer.get(r.get("consumer"), 0) + 1
        for consumer, n in per_consumer.items():
            self.assertLessEqual(n, QUOTA * 3 // 4, "%s made %d calls: keep the examples well under %d/min"
                                 % (consumer, n, QUOTA))
        self.assertQuotaRespected()

    def test_4_add_a_partner(self):
        since = len(self.records())
        done = self.run_doc("add_partner")
        issued = re.search(r"^client-mairie ([0-9a-f]{64})$", done[0][1], re.M)
        self.assertTrue(issued, "pki.sh issue printed no fingerprint:\n" + done[0][1])
        out = done[-1][1]
        self.assertIn('"siren":"732829320"', out, out)
        self.assertNotIn('"erreur"', out, out)
        fp = issued.group(1)
        recs = self.wait_record(lambda r: r.get("status") == 200 and r.get("route") == "declarations"
                                and (r.get("tls") or {}).get("cert_sha256") == fp,
                                since, "the new partner's certificate and status 200")
        self.assertEqual(recs[0].get("teleservice"), "TS-0004", recs[0])
        self.assertEqual(recs[0].get("decision"), "allow", recs[0])
        self.assertTrue(os.path.exists(os.path.join(self.tree, "policies", "mairie-demonstration.json")))
        self.assertQuotaRespected()

    def test_9_ctrl_c_stops_the_stack(self):
        rc = self._stop()
        self.assertEqual(rc, 0, "run.sh after Ctrl-C:\n" + "".join(self.output))
        text = "".join(self.output)
        self.assertIn("drained", text)
        self.assertNotRegex(text, r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error: ")
        r = subprocess.run([os.path.join(self.tree, "build", "opale-gateway"), "--verify-journal", "-c",
                            "deploy/sandbox/gateway.json", "deploy/sandbox/journal/access.jsonl"],
                           cwd=self.tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))


if __name__ == "__main__":
    unittest.main()

"""systemd integration (docs/deploy.md, "systemd"): the gateway speaks the
sd_notify(3) datagram protocol to $NOTIFY_SOCKET. A test socket stands in
for systemd and records every datagram with its arrival time:

- READY=1 once every listener accepts and the policies are loaded;
- WATCHDOG=1 at half of $WATCHDOG_USEC, and never later than the period;
- RELOADING=1 then READY=1 around a policy reload (SIGHUP, admin API);
- STOPPING=1 when the drain starts, then nothing more;
- STATUS= lines naming the connections, the policies and the journal.

Also the unit file: `systemd-analyze verify` and its hardening directives.
"""

import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

import harness
from harness import Stack, require_binaries

WATCHDOG_USEC = 1000000  # 1 s: keep-alives expected every 0.5 s
UNIT = os.path.join(harness.SRCDIR, "deploy", "systemd", "opale-gateway.service")
LOGROTATE = os.path.join(harness.SRCDIR, "deploy", "logrotate", "opale-gateway")
POSTROTATE = "systemctl kill --kill-whom=main --signal=USR1 opale-gateway.service >/dev/null 2>&1 || true"


class NotifyListener:
    """An AF_UNIX datagram socket (a path, or '@name' in the abstract
    namespace) and a thread that records (monotonic time, message)."""

    def __init__(self, name):
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name[1:] if name.startswith("@") else name)
        self.sock.settimeout(0.2)
        self.msgs = []
        self.cond = threading.Condition()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.cond:
                self.msgs.append((time.monotonic(), data.decode()))
                self.cond.notify_all()

    def close(self):
        self.stop = True
        self.thread.join(timeout=2)
        self.sock.close()
        if not self.name.startswith("@"):
            try:
                os.unlink(self.name)
            except OSError:
                pass

    def wait_for(self, line, after=0, timeout=10.0):
        """Index of the first datagram at or after index <after> that holds
        the line <line>; fails after <timeout> s."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(after, len(self.msgs)):
                    if line in self.msgs[i][1].split("\n"):
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %r within %.1f s; got %r" % (line, timeout, self.msgs[after:]))
                self.cond.wait(left)

    def snapshot(self):
        with self.cond:
            return list(self.msgs)


class NotifyStack(Stack):
    """A Stack whose gateway runs with NOTIFY_SOCKET (and WATCHDOG_USEC)."""

    def __init__(self, name, env):
        super().__init__(name)
        self.env = env

    def start_gateway(self, extra_args=()):
        env = dict(os.environ)
        env.update(self.env)
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        self._stderr_start = os.path.getsize(self.stderr_path)
        try:
            self.gw = subprocess.Popen([harness.GW_BIN, "-c", self.conf_path, *extra_args],
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.dir, env=env)
        finally:
            out.close()
            err.close()
        harness._register(self.gw)
        # no wait_ready(): READY=1 on the socket is what the tests wait for


_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207


def ptrace_freeze(tid):
    """Stop one thread (not its process): seize it, interrupt it, wait
    until it is stopped."""
    if _libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    if _libc.ptrace(PTRACE_INTERRUPT, tid, None, None) != 0:
        e = ctypes.get_errno()
        _libc.ptrace(PTRACE_DETACH, tid, None, None)
        raise OSError(e, os.strerror(e))
    os.waitpid(tid, 0x40000000)  # __WALL


def ptrace_thaw(tid):
    _libc.ptrace(PTRACE_DETACH, tid, None, None)


def lines_of(msgs, key):
    return [(t, m) for t, m in msgs if key in m.split("\n")]


class TestNotify(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        require_binaries()

    def start(self, sockname, env_extra=None):
        lst = NotifyListener(sockname)
        self.addCleanup(lst.close)
        env = {"NOTIFY_SOCKET": sockname}
        env.update(env_extra or {})
        stack = NotifyStack(self._testMethodName, env)
        self.addCleanup(stack.stop)
        t0 = time.monotonic()
        stack.start()
        return stack, lst, t0

    def check_ready(self, stack, lst, t0):
        i = lst.wait_for("READY=1", timeout=harness.START_TIMEOUT)
        t_ready, msg = lst.snapshot()[i]
        self.assertLess(t_ready - t0, harness.START_TIMEOUT)
        # READY means serving: the listener accepts and the policies are in
        with socket.create_connection(("127.0.0.1", stack.port), timeout=2):
            pass
        status, body = stack.admin_call("GET", "/readyz")
        self.assertEqual(status, 200, body)
        m = re.search(r"^STATUS=(\d+) connections, (\d+) habilitations \((\d+) files rejected\), journal (\w+)$",
                      msg, re.M)
        self.assertIsNotNone(m, msg)
        self.assertEqual(int(m.group(2)), len(harness.PARTNERS))
        self.assertEqual(m.group(4), "ok")
        return i

    def test_sequence_path_socket(self):
        """READY, WATCHDOG on time, RELOADING/READY for SIGHUP and the admin
        API, STOPPING at drain and nothing after, exit 0."""
        d = harness.make_tmpdir("notify")
        stack, lst, t0 = self.start(os.path.join(d, "notify.sock"), {"WATCHDOG_USEC": str(WATCHDOG_USEC)})
        i_ready = self.check_ready(stack, lst, t0)

        # keep-alives: at least 4 in 3 s, no gap reaching the period
        time.sleep(3.0)
        wd = [t for t, _ in lines_of(lst.snapshot()[i_ready:], "WATCHDOG=1")]
        self.assertGreaterEqual(len(wd), 4, lst.snapshot())
        gaps = [b - a for a, b in zip(wd, wd[1:])]
        self.assertLess(max(gaps), WATCHDOG_USEC / 1e6, gaps)
        # STATUS= follows the connections: one open client shows up
        s = stack.tls_connect()
        self.addCleanup(s.close)
        n = len(lst.snapshot())
        deadline = time.monotonic() + 5
        seen = False
        while time.monotonic() < deadline and not seen:
            time.sleep(0.2)
            seen = any(re.search(r"^STATUS=1 connections", m, re.M) for _, m in lst.snapshot()[n:])
        self.assertTrue(seen, lst.snapshot()[n:])
        s.close()

        # SIGHUP: RELOADING=1 then READY=1
        n = len(lst.snapshot())
        stack.gw.send_signal(signal.SIGHUP)
        i_rl = lst.wait_for("RELOADING=1", after=n, timeout=5)
        self.assertRegex(lst.snapshot()[i_rl][1], r"(?m)^MONOTONIC_USEC=\d+$")
        lst.wait_for("READY=1", after=i_rl + 1, timeout=5)
        # the admin API's reload too
        n = len(lst.snapshot())
        status, body = stack.admin_call("POST", "/admin/reload")
        self.assertEqual(status, 200, body)
        i_rl = lst.wait_for("RELOADING=1", after=n, timeout=5)
        lst.wait_for("READY=1", after=i_rl + 1, timeout=5)

        # SIGTERM: STOPPING=1, then no keep-alive, exit 0
        n = len(lst.snapshot())
        stack.gw.send_signal(signal.SIGTERM)
        i_stop = lst.wait_for("STOPPING=1", after=n, timeout=5)
        self.assertEqual(stack.gw.wait(timeout=harness.STOP_TIMEOUT), 0)
        time.sleep(0.3)
        after = lst.snapshot()[i_stop + 1:]
        self.assertEqual(lines_of(after, "WATCHDOG=1"), [], after)
        self.assertEqual(lines_of(after, "READY=1"), [], after)
        # the whole order, once: READY before the first WATCHDOG
        allm = lst.snapshot()
        self.assertLess(i_ready, allm.index(lines_of(allm, "WATCHDOG=1")[0]))

    def test_stuck_worker_stops_watchdog(self):
        """WATCHDOG=1 proves the workers' loops run, not only the main
        thread's: with the worker threads frozen (ptrace, thread by thread;
        the main thread and the journal writer keep running), the STATUS=
        lines go on but the keep-alives stop; thawed, they come back."""
        d = harness.make_tmpdir("notify")
        stack, lst, t0 = self.start(os.path.join(d, "n.sock"), {"WATCHDOG_USEC": str(WATCHDOG_USEC)})
        i_ready = self.check_ready(stack, lst, t0)
        lst.wait_for("WATCHDOG=1", after=i_ready + 1, timeout=3)
        task = "/proc/%d/task" % stack.gw.pid
        workers = []
        for tid in os.listdir(task):
            with open(os.path.join(task, tid, "comm")) as f:
                if f.read().startswith("gw-worker-"):
                    workers.append(int(tid))
        self.assertEqual(len(workers), 2)  # the harness config's "workers": 2
        # both workers, then one only: the other keeps answering the asks it
        # got, and must not be blamed for the asks not sent while its peer
        # was stuck (the keep-alives come back once the stuck one thaws)
        for which in (workers, workers[:1]):
            frozen = []
            try:
                for tid in which:
                    try:
                        ptrace_freeze(tid)
                    except OSError as e:
                        self.skipTest("prerequisite missing: ptrace (%s)" % e)
                    frozen.append(tid)
                n = len(lst.snapshot())
                time.sleep(2.5)
                during = lst.snapshot()[n:]
                # a tick answered just before the freeze may still send one
                self.assertLessEqual(len(lines_of(during, "WATCHDOG=1")), 1, (which, during))
                self.assertGreaterEqual(sum(1 for _, m in during if "STATUS=" in m), 3, during)
            finally:
                for tid in frozen:
                    ptrace_thaw(tid)
            n = len(lst.snapshot())
            lst.wait_for("WATCHDOG=1", after=n, timeout=3)
            n = len(lst.snapshot())
            lst.wait_for("WATCHDOG=1", after=n, timeout=3)

    def test_abstract_socket(self):
        """'@name': the abstract namespace; no WATCHDOG_USEC, no keep-alive."""
        name = "@opale-itest-notify-%d-%d" % (os.getpid(), time.monotonic_ns())
        stack, lst, t0 = self.start(name)
        self.check_ready(stack, lst, t0)
        time.sleep(1.5)
        self.assertEqual(lines_of(lst.snapshot(), "WATCHDOG=1"), [])
        n = len(lst.snapshot())
        stack.gw.send_signal(signal.SIGTERM)
        lst.wait_for("STOPPING=1", after=n, timeout=5)
        self.assertEqual(stack.gw.wait(timeout=harness.STOP_TIMEOUT), 0)

    def test_watchdog_for_another_pid(self):
        """WATCHDOG_PID names another process: no keep-alive from this one."""
        d = harness.make_tmpdir("notify")
        stack, lst, t0 = self.start(os.path.join(d, "n.sock"),
                                    {"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"})
        self.check_ready(stack, lst, t0)
        time.sleep(1.2)
        self.assertEqual(lines_of(lst.snapshot(), "WATCHDOG=1"), [])


class TestUnitFile(unittest.TestCase):
    """deploy/systemd/opale-gateway.service."""

    def directives(self):
        out = {}
        with open(UNIT) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith(("#", ";", "[")):
                    continue
                k, _, v = line.partition("=")
                out.setdefault(k.strip(), []).append(v.strip())
        return out

    def test_systemd_analyze_verify(self):
        """systemd-analyze verify: no error, no warning about the unit. The
        ExecStart binary must exist for verify, so the unit is checked as
        installed: a copy whose paths point at the built binary."""
        exe = shutil.which("systemd-analyze")
        if exe is None:
            self.skipTest("prerequisite missing: systemd-analyze (package systemd)")
        d = harness.make_tmpdir("unit")
        with open(UNIT) as f:
            text = f.read()
        text = text.replace("/usr/sbin/opale-gateway", os.path.abspath(harness.GW_BIN))
        path = os.path.join(d, "opale-gateway.service")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([exe, "verify", "--man=no", path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode(errors="replace")
        # lines about other units (the container's own) are not ours
        ours = [l for l in out.splitlines() if "opale-gateway" in l]
        self.assertEqual(r.returncode, 0, out)
        self.assertEqual(ours, [], out)

    def test_hardening(self):
        d = self.directives()
        want = {
            "Type": "notify", "User": "opale-gateway", "Group": "opale-gateway",
            "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
            "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
            "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "SystemCallFilter": "@system-service",
            "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes",
            "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE", "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
            "Restart": "on-failure", "ExecReload": "/bin/kill -HUP $MAINPID",
            "ReadWritePaths": "/var/log/opale-gateway /var/lib/opale-gateway",
        }
        for k, v in want.items():
            self.assertIn(v, d.get(k, []), k)
        self.assertRegex(d["ExecStart"][0], r"^/usr/sbin/opale-gateway -c /etc/opale-gateway/gateway.json$")
        self.assertIn("WatchdogSec", d)
        # a stop must outlast the drain (timeouts.drain_ms of the production
        # example) and the journal flush
        with open(os.path.join(harness.SRCDIR, "deploy", "production", "gateway.json")) as f:
            prod = json.load(f)
        drain_s = prod.get("timeouts", {}).get("drain_ms", 30000) / 1000
        self.assertGreater(int(d["TimeoutStopSec"][0].rstrip("s")), drain_s + 5)
        # file descriptors: max_connections per worker, times the workers,
        # plus upstream connections, must fit under LimitNOFILE
        # (two per connection: the client's and its upstream's; docs/deploy.md)
        nofile = int(d["LimitNOFILE"][0])
        per_worker = prod["limits"]["max_connections"]
        self.assertGreaterEqual(nofile, 2 * per_worker * prod["workers"] + 1024)


class TestLogrotate(unittest.TestCase):
    """deploy/logrotate/opale-gateway, checked by `logrotate -d` and run once
    for real against a running gateway: rotate, SIGUSR1, and the verifier
    accepts the rotated set."""

    @classmethod
    def setUpClass(cls):
        require_binaries()
        if shutil.which("logrotate") is None:
            raise unittest.SkipTest("prerequisite missing: logrotate")

    def localized(self, stack):
        """The file with the stack's journal directory in place of
        /var/log/opale-gateway, root in place of the service user (absent
        here), and the postrotate command aimed at the stack's gateway
        (systemctl has no unit to signal here)."""
        with open(LOGROTATE) as f:
            text = f.read()
        self.assertIn(POSTROTATE, text)
        self.assertIn("su opale-gateway opale-gateway", text)
        self.assertIn("nocompress", text)
        self.assertNotRegex(text, r"(?m)^\s*copytruncate")
        jdir = os.path.dirname(stack.journal_path)
        text = text.replace("/var/log/opale-gateway", jdir)
        text = text.replace("su opale-gateway opale-gateway", "su root root")
        text = text.replace(POSTROTATE, "kill -USR1 %d" % stack.gw.pid)
        path = os.path.join(stack.dir, "logrotate.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_debug_then_real_rotation(self):
        stack = Stack("logrotate")
        self.addCleanup(stack.stop)
        stack.start()
        for _ in range(3):
            r = stack.request()
            self.assertEqual(r.status, 200)
        conf = self.localized(stack)
        state = os.path.join(stack.dir, "logrotate.state")
        jdir = os.path.dirname(stack.journal_path)
        # -d: parses, names both journals, changes nothing
        r = subprocess.run(["logrotate", "-d", "-s", state, conf], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        self.assertNotRegex(out, r"(?mi)^error")
        self.assertIn(stack.journal_path, out)
        self.assertIn(os.path.join(jdir, "events.jsonl"), out)
        self.assertFalse(os.path.exists(stack.journal_path + ".1"))
        # for real (forced: the size trigger is 2 GiB)
        r = subprocess.run(["logrotate", "-f", "-s", state, conf], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))
        self.assertTrue(os.path.exists(stack.journal_path + ".1"))
        # the gateway reopened on SIGUSR1: a new file that starts with a
        # rotate record naming the old one
        deadline = time.monotonic() + harness.JOURNAL_WAIT
        while time.monotonic() < deadline and not os.path.exists(stack.journal_path):
            time.sleep(0.05)
        r = stack.request()
        self.assertEqual(r.status, 200)
        text = ""
        while time.monotonic() < deadline + harness.JOURNAL_WAIT:
            text = stack.journal_text() if os.path.exists(stack.journal_path) else ""
            if '"type":"rotate"' in text and "etatSante" in text:
                break
            time.sleep(0.1)
        first = json.loads(text.splitlines()[0])
        self.assertEqual(first.get("type"), "rotate", text[:500])
        self.assertEqual(first.get("from"), "access.jsonl.1")
        self.assertEqual(stack.stop_gateway(), 0)
        # the verifier accepts the rotated set, in chain order whatever the
        # order given
        r = subprocess.run([harness.GW_BIN, "--verify-journal", "-c", stack.conf_path, stack.journal_path,
                            stack.journal_path + ".1"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60, cwd=stack.dir)
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        self.assertRegex(out.strip().splitlines()[-1], r"^OK")


if __name__ == "__main__":
    unittest.main()

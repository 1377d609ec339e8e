"""The Debian package and the production example (docs/deploy.md, "Debian
package and systemd").

The package is built once per run of this module with deploy/debian/build.sh
(debhelper, lintian; about a minute) into $GW_BUILDDIR/package, or taken
from $GW_DEB when set. Its contents are unpacked with `dpkg-deb -x` into a
temporary root and checked: layout, modes, conffiles, maintainer scripts,
lintian, the man page, and the unpacked binary's `-t` on the unpacked
example configuration (paths moved into the temporary root, test keys from
the dev PKI in place of the production ones).
"""

import glob
import gzip
import json
import os
import re
import shutil
import stat
import subprocess
import unittest

import harness
from harness import require_binaries

SRCDIR = harness.SRCDIR
BUILDDIR = os.environ.get("GW_BUILDDIR") or os.path.join(SRCDIR, "build")
PROD_CONF = os.path.join(SRCDIR, "deploy", "production", "gateway.json")
PROD_POLICIES = os.path.join(SRCDIR, "deploy", "production", "policies")

_deb = None


def package():
    """The .deb: $GW_DEB, or built once by deploy/debian/build.sh."""
    global _deb
    if _deb is None:
        _deb = os.environ.get("GW_DEB")
        if not _deb:
            out = os.path.join(BUILDDIR, "package")
            r = subprocess.run([os.path.join(SRCDIR, "deploy", "debian", "build.sh"), out],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=1200)
            text = r.stdout.decode(errors="replace")
            if r.returncode != 0:
                raise AssertionError("deploy/debian/build.sh failed (rc=%d):\n%s" % (r.returncode, text[-6000:]))
            _deb = text.strip().splitlines()[-1]
    return _deb


def stage_config(root, pki, conf_path=PROD_CONF, policies=PROD_POLICIES):
    """Lay the production example out under <root> as the package does, its
    absolute paths moved under <root>, the dev PKI's keys in place of the
    production ones. Returns the path of the staged gateway.json."""
    etc = os.path.join(root, "etc", "opale-gateway")
    for d in ("tls", "keys", "policies"):
        os.makedirs(os.path.join(etc, d), exist_ok=True)
    for d in ("var/log/opale-gateway", "var/lib/opale-gateway"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    with open(conf_path) as f:
        text = f.read()
    for p in ("/etc/opale-gateway", "/var/log/opale-gateway", "/var/lib/opale-gateway"):
        text = text.replace(p, root + p)
    files = {
        "tls/server-ecdsa.crt": "server-ecdsa.crt", "tls/server-ecdsa.key": "server-ecdsa.key",
        "tls/server-rsa.crt": "server-rsa.crt", "tls/server-rsa.key": "server-rsa.key",
        "tls/client-ca.pem": "ca.crt", "tls/client-ca.crl.pem": "crl.pem",
        "tls/backend-ca.pem": "ca.crt", "tls/backend-client.crt": "client-commune.crt",
        "tls/backend-client.key": "client-commune.key",
        "keys/token-es256-2026.key": "token-es256.key", "admin.token": "admin.token",
        "keys/assertion-mac.key": "assertion-mac.key",
    }
    for dst, src in files.items():
        shutil.copy(os.path.join(pki, src), os.path.join(etc, dst))
    for p in glob.glob(os.path.join(policies, "*.json")):
        shutil.copy(p, os.path.join(etc, "policies"))
    path = os.path.join(etc, "gateway.json")
    with open(path, "w") as f:
        f.write(text)
    return path


def run(args, **kw):
    r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=kw.pop("timeout", 60), **kw)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


class TestProductionConfig(unittest.TestCase):
    """deploy/production/gateway.json: what the issue asks of it, and -t."""

    @classmethod
    def setUpClass(cls):
        require_binaries(mock=False)
        with open(PROD_CONF) as f:
            cls.conf = json.load(f)

    def test_contents(self):
        c = self.conf
        lst = c["listeners"]
        self.assertEqual([(l["port"], l["environment"]) for l in lst], [(443, "production")])
        tls = lst[0]["tls"]
        self.assertEqual(tls["client_auth"], "required")
        self.assertTrue(tls["client_ca"].startswith("/etc/opale-gateway/"))
        self.assertTrue(tls["crl"].startswith("/etc/opale-gateway/"))
        self.assertEqual(c["quota"]["store"], "redis")
        self.assertTrue(c["quota"]["redis"]["cluster"])
        self.assertGreaterEqual(len(c["quota"]["redis"]["nodes"]), 3)
        # the choice is explained where an operator reads it
        with open(os.path.join(SRCDIR, "docs", "deploy.md")) as f:
            deploy = f.read()
        self.assertIn('"on_store_failure": "%s"' % c["quota"]["on_store_failure"], deploy)
        j = c["journal"]
        self.assertTrue(j["path"].startswith("/var/log/opale-gateway/"))
        self.assertTrue(j["events"]["path"].startswith("/var/log/opale-gateway/"))
        self.assertEqual(j["on_failure"], "deny")
        self.assertEqual(j["retention_days"], 365)
        self.assertEqual(c["admin"]["address"], "127.0.0.1")
        self.assertEqual(c["access"]["trusted_proxies"], [])
        self.assertTrue(c["access"]["suspensions_file"].startswith("/var/lib/opale-gateway/"))
        self.assertTrue(c["oauth"]["signing_keys"][0]["file"].startswith("/etc/opale-gateway/keys/"))

    def test_check_passes_with_test_keys(self):
        root = harness.make_tmpdir("prod")
        conf = stage_config(root, harness.pki_dir())
        rc, out, err = run([harness.GW_BIN, "-t", "-c", conf])
        self.assertEqual(rc, 0, err)
        self.assertIn("configuration is valid (1 habilitations)", err)

    def test_check_fails_without_the_signing_key(self):
        """The check really reads the staged files: a missing key is named."""
        root = harness.make_tmpdir("prod")
        conf = stage_config(root, harness.pki_dir())
        key = os.path.join(root, "etc/opale-gateway/keys/token-es256-2026.key")
        os.unlink(key)
        rc, out, err = run([harness.GW_BIN, "-t", "-c", conf])
        self.assertEqual(rc, 1, err)
        self.assertIn("%s: oauth.signing_keys[0].file: " % conf, err)
        self.assertIn(key, err)


class TestPackage(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        for tool in ("dpkg-deb",):
            if shutil.which(tool) is None:
                raise unittest.SkipTest("prerequisite missing: %s" % tool)
        cls.deb = package()
        cls.root = harness.make_tmpdir("deb")
        rc, out, err = run(["dpkg-deb", "-x", cls.deb, cls.root])
        if rc != 0:
            raise AssertionError("dpkg-deb -x: %s" % err)
        cls.ctl = harness.make_tmpdir("debctl")
        rc, out, err = run(["dpkg-deb", "-e", cls.deb, cls.ctl])
        if rc != 0:
            raise AssertionError("dpkg-deb -e: %s" % err)

    def mode(self, rel):
        st = os.lstat(os.path.join(self.root, rel))
        return stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode)

    def same_as(self, rel, src):
        with open(os.path.join(self.root, rel), "rb") as a, open(os.path.join(SRCDIR, src), "rb") as b:
            self.assertEqual(a.read(), b.read(), rel)

    def test_layout_and_modes(self):
        want = {
            "usr/sbin/opale-gateway": (stat.S_IFREG, 0o755),
            "usr/share/man/man8/opale-gateway.8.gz": (stat.S_IFREG, 0o644),
            "lib/systemd/system/opale-gateway.service": (stat.S_IFREG, 0o644),
            "etc/logrotate.d/opale-gateway": (stat.S_IFREG, 0o644),
            # configuration: not world-readable (group opale-gateway, postinst)
            "etc/opale-gateway": (stat.S_IFDIR, 0o750),
            "etc/opale-gateway/gateway.json": (stat.S_IFREG, 0o640),
            "etc/opale-gateway/keys": (stat.S_IFDIR, 0o750),
            "etc/opale-gateway/tls": (stat.S_IFDIR, 0o750),
            "etc/opale-gateway/policies": (stat.S_IFDIR, 0o755),
            # journals and state
            "var/log/opale-gateway": (stat.S_IFDIR, 0o750),
            "var/lib/opale-gateway": (stat.S_IFDIR, 0o750),
            "usr/share/doc/opale-gateway/copyright": (stat.S_IFREG, 0o644),
            "usr/share/doc/opale-gateway/changelog.Debian.gz": (stat.S_IFREG, 0o644),
            "usr/share/doc/opale-gateway/examples/production/gateway.json": (stat.S_IFREG, 0o644),
            "usr/share/doc/opale-gateway/examples/production/policies/commune-exemple.json": (stat.S_IFREG, 0o644),
        }
        for rel, (kind, mode) in want.items():
            self.assertTrue(os.path.lexists(os.path.join(self.root, rel)), rel)
            self.assertEqual(self.mode(rel), (kind, mode), "%s: %o" % (rel, self.mode(rel)[1]))
        for doc in ("deploy.md", "configuration.md", "journal.md", "operations.md", "policies.md"):
            self.assertTrue(glob.glob(os.path.join(self.root, "usr/share/doc/opale-gateway", doc + "*")), doc)
        # nothing world-writable, no setuid/setgid anywhere
        for dirpath, dirnames, filenames in os.walk(self.root):
            for n in dirnames + filenames:
                m = os.lstat(os.path.join(dirpath, n)).st_mode
                self.assertFalse(m & (stat.S_IWOTH | stat.S_ISUID | stat.S_ISGID), os.path.join(dirpath, n))
        self.same_as("lib/systemd/system/opale-gateway.service", "deploy/systemd/opale-gateway.service")
        self.same_as("etc/logrotate.d/opale-gateway", "deploy/logrotate/opale-gateway")
        self.same_as("etc/opale-gateway/gateway.json", "deploy/production/gateway.json")

    def test_control(self):
        with open(os.path.join(self.ctl, "conffiles")) as f:
            conffiles = f.read().split()
        self.assertIn("/etc/opale-gateway/gateway.json", conffiles)
        self.assertIn("/etc/logrotate.d/opale-gateway", conffiles)
        rc, out, err = run(["dpkg-deb", "-f", self.deb, "Package", "Depends"])
        self.assertEqual(rc, 0, err)
        self.assertIn("Package: opale-gateway", out)
        self.assertRegex(out, r"Depends:.*\badduser\b")
        self.assertRegex(out, r"Depends:.*\blibssl3\b")

    def test_maintainer_scripts(self):
        for s in ("postinst", "postrm"):
            path = os.path.join(self.ctl, s)
            rc, out, err = run(["sh", "-n", path])
            self.assertEqual(rc, 0, "%s: %s" % (s, err))
        with open(os.path.join(self.ctl, "postinst")) as f:
            post = f.read()
        self.assertRegex(post, r"adduser --quiet --system --group .*\\\n.*--home /var/lib/opale-gateway")
        for owner, mode, path in (("opale-gateway opale-gateway", "0750", "/var/log/opale-gateway"),
                                  ("opale-gateway opale-gateway", "0750", "/var/lib/opale-gateway"),
                                  ("root opale-gateway", "0750", "/etc/opale-gateway/keys"),
                                  ("root opale-gateway", "0640", "/etc/opale-gateway/gateway.json")):
            self.assertIn("override %s %s %s" % (owner, mode, path), post)
        # the unit is not started by the package, and enabled again only
        # where the administrator had enabled it (an upgrade)
        self.assertNotIn("deb-systemd-invoke", post)
        for m in re.finditer(r"deb-systemd-helper enable", post):
            self.assertIn("was-enabled", post[max(0, m.start() - 200):m.start()])

    def run_script(self, name, *args, users=(), overrides=(), was_enabled=False):
        """Run a maintainer script with the system commands it calls
        replaced by stubs that log their arguments (and answer as a system
        with <users> and <overrides> would). Returns (rc, calls)."""
        d = harness.make_tmpdir("maint")
        log = os.path.join(d, "calls")
        stubs = {
            "getent": 'echo "getent $*" >>"$LOG"; case " %s " in *" $2 "*) echo "$2:x:999:999::/:/bin/false";; '
                      '*) exit 2;; esac' % " ".join(users),
            "adduser": 'echo "adduser $*" >>"$LOG"',
            "dpkg-statoverride": 'echo "dpkg-statoverride $*" >>"$LOG"; if [ "$1" = --list ]; then '
                                 'case " %s " in *" $2 "*) echo "x";; *) exit 1;; esac; fi' % " ".join(overrides),
            "deb-systemd-helper": 'echo "deb-systemd-helper $*" >>"$LOG"; case "$*" in *was-enabled*) exit %d;; '
                                  '*debian-installed*) exit 0;; esac' % (0 if was_enabled else 1),
            "deb-systemd-invoke": 'echo "deb-systemd-invoke $*" >>"$LOG"',
            "systemctl": 'echo "systemctl $*" >>"$LOG"',
            "rm": 'echo "rm $*" >>"$LOG"',
        }
        bindir = os.path.join(d, "bin")
        os.makedirs(bindir)
        for cmd, body in stubs.items():
            with open(os.path.join(bindir, cmd), "w") as f:
                f.write("#!/bin/sh\n" + body + "\n")
            os.chmod(os.path.join(bindir, cmd), 0o755)
        env = {"PATH": bindir + ":/usr/bin:/bin", "LOG": log}
        r = subprocess.run(["sh", os.path.join(self.ctl, name), *args], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30, env=env)
        calls = []
        if os.path.exists(log):
            with open(log) as f:
                calls = f.read().splitlines()
        return r.returncode, r.stdout.decode(errors="replace"), calls

    def test_postinst_runs(self):
        """The postinst as dpkg runs it: a first install creates the user and
        records every owner and mode, and neither enables nor starts the
        unit; a second configure (upgrade) changes nothing it recorded."""
        rc, out, calls = self.run_script("postinst", "configure", "")
        self.assertEqual(rc, 0, out)
        adds = [c for c in calls if c.startswith("adduser ")]
        self.assertEqual(len(adds), 1, calls)
        self.assertRegex(adds[0], r"--system --group .*--home /var/lib/opale-gateway .*opale-gateway$")
        recorded = sorted(c.split(" ", 3)[3] for c in calls if c.startswith("dpkg-statoverride --update --add"))
        self.assertEqual(recorded, sorted([
            "root opale-gateway 0750 /etc/opale-gateway",
            "root opale-gateway 0640 /etc/opale-gateway/gateway.json",
            "root opale-gateway 0750 /etc/opale-gateway/keys",
            "root opale-gateway 0750 /etc/opale-gateway/tls",
            "opale-gateway opale-gateway 0750 /var/log/opale-gateway",
            "opale-gateway opale-gateway 0750 /var/lib/opale-gateway"]))
        self.assertFalse([c for c in calls if c.startswith(("deb-systemd-invoke", "systemctl"))], calls)
        self.assertFalse([c for c in calls if c.startswith("deb-systemd-helper enable")], calls)
        # upgrade: the user and the overrides exist, the unit was enabled
        paths = ["/etc/opale-gateway", "/etc/opale-gateway/gateway.json", "/etc/opale-gateway/keys",
                 "/etc/opale-gateway/tls", "/var/log/opale-gateway", "/var/lib/opale-gateway"]
        rc, out, calls = self.run_script("postinst", "configure", "0.1.0-1", users=["opale-gateway"],
                                         overrides=paths, was_enabled=True)
        self.assertEqual(rc, 0, out)
        self.assertFalse([c for c in calls if c.startswith(("adduser", "dpkg-statoverride --update"))], calls)
        self.assertIn("deb-systemd-helper enable opale-gateway.service", calls)  # kept enabled
        self.assertFalse([c for c in calls if c.startswith(("deb-systemd-invoke", "systemctl"))], calls)

    def test_postrm_purge(self):
        """purge forgets the overrides and removes the state; the journals
        (evidence) and the user stay."""
        paths = ["/etc/opale-gateway", "/var/log/opale-gateway", "/var/lib/opale-gateway"]
        rc, out, calls = self.run_script("postrm", "purge", overrides=paths)
        self.assertEqual(rc, 0, out)
        removed = [c.split()[-1] for c in calls if c.startswith("dpkg-statoverride --remove")]
        self.assertEqual(sorted(removed), sorted(paths))
        self.assertIn("rm -rf /var/lib/opale-gateway", calls)
        self.assertFalse([c for c in calls if c.startswith("rm") and "/var/log" in c], calls)
        self.assertFalse([c for c in calls if "deluser" in c], calls)
        rc, out, calls = self.run_script("postrm", "remove")
        self.assertEqual(rc, 0, out)
        self.assertFalse([c for c in calls if c.startswith(("rm", "dpkg-statoverride --remove"))], calls)

    def test_lintian_no_error(self):
        if shutil.which("lintian") is None:
            self.skipTest("prerequisite missing: lintian")
        rc, out, err = run(["lintian", "--fail-on", "error", self.deb], timeout=600)
        self.assertEqual(rc, 0, out + err)
        self.assertNotRegex(out, r"(?m)^E: ")

    def test_unpacked_binary_checks_unpacked_example(self):
        gw = os.path.join(self.root, "usr/sbin/opale-gateway")
        rc, out, err = run([gw, "-v"])
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^opale-gateway \d+\.\d+\.\d+")
        conf = stage_config(self.root, harness.pki_dir(),
                            conf_path=os.path.join(self.root, "etc/opale-gateway/gateway.json"),
                            policies=os.path.join(self.root, "usr/share/doc/opale-gateway/examples/production/policies"))
        rc, out, err = run([gw, "-t", "-c", conf])
        self.assertEqual(rc, 0, err)
        self.assertIn("configuration is valid (1 habilitations)", err)

    def test_man_page(self):
        page = os.path.join(self.root, "usr/share/man/man8/opale-gateway.8.gz")
        env = dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="0")
        r = subprocess.run(["man", "--warnings", "-l", page], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.decode(errors="replace").strip(), "")
        text = re.sub(r".\x08", "", r.stdout.decode(errors="replace"))
        for section in ("SYNOPSIS", "OPTIONS", "SIGNALS", "EXIT STATUS", "FILES"):
            self.assertRegex(text, r"(?m)^%s$" % section)
        # every option of the binary's own usage text is documented
        rc, usage, err = run([os.path.join(self.root, "usr/sbin/opale-gateway"), "--help"])
        opts = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", usage))
        self.assertIn("--verify-journal", opts)
        for o in opts | {"--help", "--version", "--expect-head"}:
            self.assertIn(o, text, o)
        for sig in ("SIGHUP", "SIGUSR1", "SIGTERM"):
            self.assertIn(sig, text)
        for f in ("/etc/opale-gateway/gateway.json", "/var/log/opale-gateway/", "/var/lib/opale-gateway/"):
            self.assertIn(f, text)


if __name__ == "__main__":
    unittest.main()

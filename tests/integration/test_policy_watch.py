"""policies_watch: the gateway reloads its policies when policies_dir changes
(inotify, debounced), without SIGHUP: a file edited in place, and the
Kubernetes ConfigMap volume update (a new hidden directory, then the
"..data" symlink renamed over). A broken edit keeps the last good version,
as on SIGHUP (docs/configuration.md, docs/deploy.md)."""
import json
import os
import shutil
import subprocess
import time
import unittest

import harness
from harness import Stack, require_binaries

SIREN = "732829320"
HABIL = "/opale/v1/entreprises/%s/habilitations" % SIREN
COMMUNE = "commune-exemple.json"
DEBOUNCE_S = 0.5   # GW_POLICY_WATCH_DEBOUNCE_MS
BOUND_S = 5.0      # the reload itself, on a loaded machine
RELOADED = "policies_watch: policies reloaded"


def watch_on(conf, stack):
    conf["policies_watch"] = True


class WatchCase(unittest.TestCase):
    watch = True

    def setUp(self):
        require_binaries()
        self.stack = Stack("pwatch", conf_hook=watch_on if self.watch else None)
        self.addCleanup(self.stack.stop)
        self.stack.start()

    def reloads(self):
        return self.stack.gateway_stderr().count(RELOADED)

    def wait_reloads(self, n, timeout=DEBOUNCE_S + BOUND_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.reloads() < n:
            time.sleep(0.05)
        return self.reloads()

    def wait_status(self, status, timeout=DEBOUNCE_S + BOUND_S):
        """The first answer to HABIL with <status> and the seconds it took."""
        t0 = time.monotonic()
        resp = None
        for _ in range(200):
            resp = self.stack.request(HABIL)
            if resp.status == status or time.monotonic() - t0 > timeout:
                break
            time.sleep(0.05)
        return resp, time.monotonic() - t0

    def policies_without_habil_scope(self):
        pols = self.stack.build_policies()
        pols[COMMUNE]["rights"]["scopes"].remove("api_opale_habilitations")
        return pols


class TestPolicyWatch(WatchCase):
    def test_edit_in_place_applies_without_sighup(self):
        st = self.stack
        self.assertIn("watching %s for policy changes" % os.path.realpath(st.policies_dir),
                      st.gateway_stderr())
        self.assertEqual(st.request(HABIL).status, 200)
        n0 = self.reloads()
        pols = self.policies_without_habil_scope()
        with open(os.path.join(st.policies_dir, COMMUNE), "w") as f:
            json.dump(pols[COMMUNE], f)
        resp, took = self.wait_status(403)
        self.assertEqual(resp.status, 403, "the edit did not apply without SIGHUP: %r" % resp)
        self.assertEqual(resp.json()["erreur"]["code"], "900910")
        self.assertLess(took, DEBOUNCE_S + BOUND_S)
        # A write is several events (truncate, write, close): one reload.
        time.sleep(DEBOUNCE_S * 2)
        self.assertEqual(self.reloads() - n0, 1, st.gateway_stderr())

    def test_broken_edit_keeps_last_good(self):
        st = self.stack
        pols = self.policies_without_habil_scope()
        path = os.path.join(st.policies_dir, COMMUNE)
        with open(path, "w") as f:
            json.dump(pols[COMMUNE], f)
        self.assertEqual(self.wait_status(403)[0].status, 403)
        n0 = len(st.gateway_stderr())
        with open(path, "w") as f:
            f.write('{"habilitation": ')
        deadline = time.monotonic() + DEBOUNCE_S + BOUND_S
        while time.monotonic() < deadline and "%s rejected" % COMMUNE not in st.gateway_stderr()[n0:]:
            time.sleep(0.05)
        err = st.gateway_stderr()[n0:]
        self.assertIn("%s rejected, its previous version stays" % COMMUNE, err)
        self.assertIsNone(st.gw.poll(), "gateway died on a broken edit")
        # The last good version (without the scope) still answers, not the
        # start version nor a refusal of every request.
        resp = st.request(HABIL)
        self.assertEqual(resp.status, 403, resp)
        self.assertEqual(resp.json()["erreur"]["code"], "900910")
        self.assertEqual(st.request("/opale/v1/entreprises/%s/declarations?annee=2023" % SIREN).status, 200)


    def test_emptied_directory_is_refused(self):
        """Like SIGHUP, the watch never forces: a directory emptied (a bad
        sync) removes every partner, so the reload is refused and the running
        set stays."""
        st = self.stack
        n0 = len(st.gateway_stderr())
        for f in os.listdir(st.policies_dir):
            os.unlink(os.path.join(st.policies_dir, f))
        msg = "policies_watch: the reload would remove 2 of 2 partners"
        deadline = time.monotonic() + DEBOUNCE_S + BOUND_S
        while time.monotonic() < deadline and msg not in st.gateway_stderr()[n0:]:
            time.sleep(0.05)
        self.assertIn(msg, st.gateway_stderr()[n0:])
        self.assertEqual(st.request(HABIL).status, 200, "the running set must stay")


class TestConfigMapSwap(WatchCase):
    """The layout kubelet gives a ConfigMap volume: DIR/..<ts>/ holds the
    files, DIR/..data -> ..<ts>, DIR/<file> -> ..data/<file>. An update writes
    DIR/..<ts2>/, points DIR/..data_tmp at it, renames ..data_tmp over ..data
    and removes the old directory: no file in DIR itself is written."""

    def make_version(self, name, pols):
        d = os.path.join(self.stack.policies_dir, name)
        os.mkdir(d)
        for fname, pol in pols.items():
            with open(os.path.join(d, fname), "w") as f:
                if isinstance(pol, str):
                    f.write(pol)
                else:
                    json.dump(pol, f)

    def swap(self, name, old):
        top = self.stack.policies_dir
        tmp = os.path.join(top, "..data_tmp")
        os.symlink(name, tmp)
        os.rename(tmp, os.path.join(top, "..data"))
        shutil.rmtree(os.path.join(top, old))

    def test_configmap_symlink_swap(self):
        st = self.stack
        top = st.policies_dir
        pols = st.build_policies()
        # Turn the plain directory into the ConfigMap layout (same content).
        self.make_version("..2026_01_01_00_00_00.1", pols)
        os.symlink("..2026_01_01_00_00_00.1", os.path.join(top, "..data"))
        n0 = self.reloads()
        for fname in pols:
            tmp = os.path.join(top, fname + ".tmp-link")
            os.symlink(os.path.join("..data", fname), tmp)
            os.rename(tmp, os.path.join(top, fname))
        self.assertGreater(self.wait_reloads(n0 + 1), n0)
        time.sleep(DEBOUNCE_S * 2)
        self.assertEqual(st.request(HABIL).status, 200)

        # The update: only ..data changes.
        self.make_version("..2026_01_01_00_01_00.2", self.policies_without_habil_scope())
        n1 = self.reloads()
        self.swap("..2026_01_01_00_01_00.2", "..2026_01_01_00_00_00.1")
        resp, took = self.wait_status(403)
        self.assertEqual(resp.status, 403, "the ConfigMap swap did not apply: %r" % resp)
        self.assertLess(took, DEBOUNCE_S + BOUND_S)
        self.assertGreater(self.reloads(), n1)
        # The hidden entries are not policies.
        self.assertNotIn("..data", st.gateway_stderr())

        # A broken version of the commune: rejected, the last good stays.
        broken = self.policies_without_habil_scope()
        broken[COMMUNE] = '{"habilitation": '
        self.make_version("..2026_01_01_00_02_00.3", broken)
        n2 = len(st.gateway_stderr())
        self.swap("..2026_01_01_00_02_00.3", "..2026_01_01_00_01_00.2")
        deadline = time.monotonic() + DEBOUNCE_S + BOUND_S
        while time.monotonic() < deadline and "%s rejected" % COMMUNE not in st.gateway_stderr()[n2:]:
            time.sleep(0.05)
        self.assertIn("%s rejected, its previous version stays" % COMMUNE, st.gateway_stderr()[n2:])
        self.assertEqual(st.request(HABIL).status, 403)

        # The fix: the scope back, applied.
        self.make_version("..2026_01_01_00_03_00.4", st.build_policies())
        self.swap("..2026_01_01_00_03_00.4", "..2026_01_01_00_02_00.3")
        self.assertEqual(self.wait_status(200)[0].status, 200)
        self.assertIsNone(st.gw.poll())


class TestWatchOffByDefault(WatchCase):
    watch = False

    def test_no_reload_without_the_key(self):
        st = self.stack
        with open(os.path.join(st.policies_dir, COMMUNE), "w") as f:
            json.dump(self.policies_without_habil_scope()[COMMUNE], f)
        time.sleep(DEBOUNCE_S + 1.5)
        self.assertEqual(st.request(HABIL).status, 200, "reloaded although policies_watch is off")
        self.assertNotIn("watching", st.gateway_stderr())


class TestWatchConfig(unittest.TestCase):
    def check(self, over):
        require_binaries(mock=False)
        st = Stack("pwatch-conf", mock=False)
        self.addCleanup(st.stop)
        st.port, st.admin_port = harness.free_port(), harness.free_port()
        conf = st.build_conf()
        conf.update(over)
        for k in [k for k, v in over.items() if v is None]:
            del conf[k]
        st.write_policies(st.build_policies())
        path = st.write_conf(conf)
        r = subprocess.run([harness.GW_BIN, "-t", "-c", path], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stderr

    def test_needs_policies_dir(self):
        rc, err = self.check({"policies_watch": True, "policies_dir": None})
        self.assertNotEqual(rc, 0)
        self.assertIn("gateway.json: policies_watch: needs policies_dir", err)

    def test_must_be_boolean(self):
        rc, err = self.check({"policies_watch": "yes"})
        self.assertNotEqual(rc, 0)
        self.assertIn("gateway.json: policies_watch: must be a boolean", err)

    def test_true_is_valid(self):
        rc, err = self.check({"policies_watch": True})
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    unittest.main()

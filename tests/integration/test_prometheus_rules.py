"""The Prometheus side of availability (docs/availability.md, "Prometheus"):
the recording and alerting rules under deploy/prometheus/ pass `promtool
check rules` and their unit tests (`promtool test rules`, synthetic
series), and the gauges they read (opale_up, opale_ready,
opale_maintenance) follow a real gateway into and out of a maintenance
slot."""

import datetime
import os
import shutil
import subprocess
import unittest

import harness
from harness import Stack
from test_metrics import samples, scrape

RULES_DIR = os.path.join(harness.SRCDIR, "deploy", "prometheus")


def promtool():
    p = shutil.which("promtool")
    if p is None:
        raise AssertionError("promtool missing: apt-get install prometheus (in the Makefile's DEPS)")
    return p


class PrometheusRules(unittest.TestCase):
    def run_promtool(self, *args):
        r = subprocess.run([promtool(), *args], cwd=RULES_DIR, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=120)
        return r.returncode, (r.stdout + r.stderr).decode(errors="replace")

    def test_check_rules(self):
        rc, out = self.run_promtool("check", "rules", "opale-availability.rules.yml")
        self.assertEqual(rc, 0, out)
        self.assertIn("SUCCESS: 8 rules found", out)

    def test_rule_unit_tests(self):
        rc, out = self.run_promtool("test", "rules", "opale-availability.test.yml")
        self.assertEqual(rc, 0, out)
        self.assertIn("SUCCESS", out)

    def test_a_broken_expectation_fails(self):
        # the unit tests can fail: the same file with one expected value changed
        with open(os.path.join(RULES_DIR, "opale-availability.test.yml")) as f:
            text = f.read()
        self.assertIn("value: 0.5042016806722688", text)
        d = harness.make_tmpdir("promrules")
        shutil.copy(os.path.join(RULES_DIR, "opale-availability.rules.yml"), d)
        with open(os.path.join(d, "t.yml"), "w") as f:
            f.write(text.replace("value: 0.5042016806722688", "value: 0.6"))
        r = subprocess.run([promtool(), "test", "rules", "t.yml"], cwd=d, capture_output=True, timeout=120)
        self.assertNotEqual(r.returncode, 0)


class LiveGauges(unittest.TestCase):
    def test_opale_up_follows_a_maintenance_slot(self):
        now = datetime.datetime.utcnow().replace(second=0, microsecond=0)
        slot = {"timezone": "UTC", "force": True,
                "slots": [{"from": now.strftime("%Y-%m-%dT%H:%M"),
                           "until": (now + datetime.timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M")}]}

        def hook(conf, st):
            if getattr(st, "maint", True):
                conf["access"] = {"maintenance": slot}

        st = Stack("gauges", conf_hook=hook)
        self.addCleanup(st.stop)
        st.start()
        m = samples(scrape(st))
        self.assertEqual((m["opale_ready"], m["opale_maintenance"], m["opale_up"]), (1, 1, 0))
        st.maint = False
        st.restart_gateway(st.build_conf())
        m = samples(scrape(st))
        self.assertEqual((m["opale_ready"], m["opale_maintenance"], m["opale_up"]), (1, 0, 1))


if __name__ == "__main__":
    unittest.main()

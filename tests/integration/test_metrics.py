"""/metrics and port probes (docs/metrics.md, docs/errors.md "Refused TLS
handshakes").

- A TCP connect-and-close with no TLS byte (a load balancer's check) is a
  port probe: counted in opale_tcp_probes_total, no journal record, not a
  handshake failure, no auth.failures event. A connection that sends bytes
  and fails is still a refusal, journalled, and ten of them raise the event.
- A live scrape, after traffic of every kind, passes `promtool check metrics`
  with exit 0 and nothing printed.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import unittest

from harness import Stack, require_binaries
from test_identity import extra_listener, free_port_other_than, pp2_local
from test_journal_it import wait_until
from test_quota import RedisServer, redis_quota, require_redis

WAIT = 5.0          # seconds, the bound of every wait here
PROBES = 12         # more than the default auth_failures threshold (10)
GARBAGE = 10        # exactly the default threshold


def scrape(stack):
    status, text = stack.admin_call("GET", "/metrics")
    if status != 200 or not isinstance(text, str):
        raise AssertionError("GET /metrics: %r %r" % (status, text))
    return text


def samples(text):
    """{sample name with labels: value} of a scrape."""
    out = {}
    for ln in text.splitlines():
        if ln and not ln.startswith("#"):
            k, _, v = ln.rpartition(" ")
            out[k] = float(v)
    return out


def events(stack, kind):
    return stack.security_events(kind)


def tls_denials(stack):
    return [r for r in stack.journal_lines()
            if r.get("decision") == "deny" and str(r.get("reason", "")).startswith("tls.")]


class TestPortProbes(unittest.TestCase):

    def test_probes_are_counted_not_journalled_and_raise_nothing(self):
        require_binaries()
        st = Stack("probes")
        self.addCleanup(st.stop)
        st.start()
        before = samples(scrape(st))
        probes0 = before["opale_tcp_probes_total"]
        failures0 = before["opale_tls_handshake_failures_total"]
        for i in range(PROBES):
            s = socket.create_connection(("127.0.0.1", st.port), timeout=WAIT)
            if i % 4 == 3:
                # some probes end with a reset instead of a FIN
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        m = wait_until(lambda: (lambda m: m["opale_tcp_probes_total"] >= probes0 + PROBES and m)(
            samples(scrape(st))))
        self.assertTrue(m, "opale_tcp_probes_total did not reach %d" % (probes0 + PROBES))
        self.assertEqual(m["opale_tcp_probes_total"], probes0 + PROBES, m)
        self.assertEqual(m["opale_tls_handshake_failures_total"], failures0, m)
        self.assertEqual(m['opale_tls_refusals_total{reason="tls.handshake"}'], 0, m)
        # a request after the probes is journalled: everything before it is too
        self.assertEqual(st.request().status, 200)
        self.assertTrue(wait_until(lambda: any(r.get("path") == "/opale/v1/etatSante"
                                               for r in st.journal_lines())))
        self.assertEqual(tls_denials(st), [])
        self.assertEqual(events(st, "auth.failures"), [])

        # Bytes that are not a TLS handshake: refusals, as before.
        for _ in range(GARBAGE):
            s = socket.create_connection(("127.0.0.1", st.port), timeout=WAIT)
            try:
                s.sendall(b"\x16\x03\x01\x00\x05garbage-not-a-client-hello\r\n\r\n")
                s.settimeout(WAIT)
                try:
                    while s.recv(4096):
                        pass
                except OSError:
                    pass
            finally:
                s.close()
        self.assertTrue(wait_until(lambda: len(tls_denials(st)) >= GARBAGE),
                        "garbage connections not journalled: %r" % tls_denials(st))
        self.assertEqual(len(tls_denials(st)), GARBAGE)
        m = samples(scrape(st))
        self.assertEqual(m["opale_tls_handshake_failures_total"], failures0 + GARBAGE, m)
        self.assertEqual(m["opale_tcp_probes_total"], probes0 + PROBES, m)
        # the detector works: ten refusals from one IP raise it, the probes did not
        ev = wait_until(lambda: events(st, "auth.failures"))
        self.assertTrue(ev, "no auth.failures event after %d refused handshakes" % GARBAGE)
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual(ev[0].get("failures"), GARBAGE, ev)

    def test_silent_connection_until_handshake_timeout_is_a_probe(self):
        require_binaries()
        st = Stack("probe-timeout")
        self.addCleanup(st.stop)
        st.start()
        probes0 = samples(scrape(st))["opale_tcp_probes_total"]
        s = socket.create_connection(("127.0.0.1", st.port), timeout=WAIT)
        with s:
            s.settimeout(WAIT)  # handshake_ms is 2000 in the harness
            try:
                self.assertEqual(s.recv(1), b"")
            except ConnectionResetError:
                pass
        self.assertTrue(wait_until(lambda: samples(scrape(st))["opale_tcp_probes_total"] == probes0 + 1))
        self.assertEqual(tls_denials(st), [])


def pp_conf(conf, stack):
    stack.pp_port = free_port_other_than({stack.port, stack.admin_port, stack.mock_port})
    extra_listener(conf, "public-pp", stack.pp_port, proxy_protocol=True)
    conf["access"] = {"trusted_proxies": ["127.0.0.1/32"]}


class TestProxyProbes(unittest.TestCase):

    def test_proxy_health_check_without_tls_is_a_probe(self):
        # a load balancer's LOCAL header then close: no TLS byte was read
        require_binaries()
        st = Stack("probe-pp", conf_hook=pp_conf)
        self.addCleanup(st.stop)
        st.start()
        probes0 = samples(scrape(st))["opale_tcp_probes_total"]
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", st.pp_port), timeout=WAIT)
            with s:
                s.sendall(pp2_local())
        self.assertTrue(wait_until(lambda: samples(scrape(st))["opale_tcp_probes_total"] == probes0 + 3))
        self.assertEqual(st.request().status, 200)
        self.assertTrue(wait_until(lambda: any(r.get("path") == "/opale/v1/etatSante"
                                               for r in st.journal_lines())))
        self.assertEqual([r for r in st.journal_lines() if r.get("decision") == "deny"], [])
        self.assertEqual(samples(scrape(st))["opale_tls_handshake_failures_total"], 0)


def small_quota(pols, stack):
    for pol in pols.values():
        pol["quota"]["per_minute"] = 3


class TestPromtool(unittest.TestCase):
    """A live scrape after traffic of every kind passes the Prometheus
    linter."""

    def test_live_scrape_passes_promtool(self):
        require_binaries()
        require_redis()
        promtool = shutil.which("promtool")
        if promtool is None:
            self.fail("promtool missing: apt-get install prometheus (in the Makefile's DEPS)")
        redis = RedisServer("promtool").start()
        self.addCleanup(redis.stop)
        st = Stack("promtool", quota=redis_quota(["127.0.0.1:%d" % redis.port]), policy_hook=small_quota)
        self.addCleanup(st.stop)
        st.start()
        data = "/opale/v1/entreprises/732829320/declarations?annee=2023"
        # allowed, then over quota (3 a minute)
        self.assertEqual(st.request(data).status, 200)
        statuses = [st.request(data).status for _ in range(5)]
        self.assertIn(429, statuses)
        # denied: unknown route, no client certificate, a port probe
        self.assertEqual(st.request("/opale/v1/nope", cert_name="client-departement").status, 404)
        self.assertEqual(st.refused_or_response(cert_name=None)[0], "refused")
        socket.create_connection(("127.0.0.1", st.port), timeout=WAIT).close()
        # token and JWKS
        st.token("client-departement", fresh=True)
        # upstream error: the mock resets every connection
        st.mock_config(reset_rate=1.0)
        r = st.request(cert_name="client-departement", teleservice=None)  # etatSante: none needed
        self.assertGreaterEqual(r.status, 500)
        st.mock_config()
        # a policy reload
        self.assertEqual(st.admin_call("POST", "/admin/reload")[0], 200)
        text = scrape(st)
        m = samples(text)
        self.assertGreaterEqual(m['opale_quota_decisions_total{outcome="refused"}'], 1, m)
        self.assertGreaterEqual(m["opale_upstream_errors_total"], 1, m)
        self.assertGreaterEqual(m["opale_request_duration_seconds_count"], 8, m)
        self.assertGreaterEqual(m["opale_redis_command_duration_seconds_count"], 1, m)
        self.assertGreaterEqual(m['opale_route_requests_total{route="token",class="2xx"}'], 1, m)
        # every family has samples, right after its HELP and TYPE
        families = [ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE ")]
        for fam in families:
            self.assertTrue(any(k == fam or k.startswith(fam + "{") or k.startswith(fam + "_")
                                for k in m), "family %s has no sample" % fam)
        p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True,
                           timeout=60)
        out = (p.stdout + p.stderr).decode(errors="replace")
        self.assertEqual(p.returncode, 0, out)
        self.assertEqual(out.strip(), "", out)


if __name__ == "__main__":
    unittest.main()

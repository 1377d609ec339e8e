"""The operator console (docs/console.md) in a real browser: Debian's
chromium, headless, driven by python3-selenium through chromium-driver,
against a real opale-gateway, opale-mock and PKI made at test time
(tests/integration/harness.py), with a partner calling the gateway in the
background the whole time.

Run by CTest as `browser.console` (label `browser`, release build only):
exit 77 (skipped) when chromium, chromium-driver or python3-selenium is
missing, 1 instead when CI=true (or 1) is set. By hand:

    cd tests/browser
    GW_BIN=../../build/opale-gateway GW_MOCK_BIN=../../build/deploy/mock-opale/opale-mock \\
        python3 test_console.py -v

GW_CONSOLE_SCREENSHOTS=DIR also saves the screenshots of docs/console.md
into DIR (relative to the source tree), e.g. GW_CONSOLE_SCREENSHOTS=docs/console.
GW_CHROMIUM and GW_CHROMEDRIVER override the browser and driver paths.

Every wait is bounded (WebDriverWait with a timeout), so is the background
traffic (a stop event, a call count and a deadline).
"""

import json
import os
import secrets
import shutil
import sys
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
from harness import GatewayTestCase, Stack, require_binaries  # noqa: E402

CHROMIUM = os.environ.get("GW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("GW_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
DEBIAN_DIST = "/usr/lib/python3/dist-packages"


def import_selenium():
    """The selenium module, or None. Debian's python3-selenium is installed
    for /usr/bin/python3: another python3 first on PATH (pyenv) does not
    see it, so Debian's directory is tried last."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        if not os.path.isdir(os.path.join(DEBIAN_DIST, "selenium")):
            return None
        sys.path.append(DEBIAN_DIST)
        try:
            import selenium  # noqa: F401,F811
        except ImportError:
            return None
    return sys.modules["selenium"]


def browser_missing():
    """Why no browser can run here (a sentence), or None."""
    missing = []
    for what, path, pkg in (("chromium", CHROMIUM, "chromium"), ("chromedriver", CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            missing.append("%s (%s, Debian package %s)" % (what, path, pkg))
    if import_selenium() is None:
        missing.append("the selenium Python module (Debian package python3-selenium)")
    if missing:
        return "no browser can run: missing " + ", ".join(missing) + "; `make deps` installs them"
    return None


def in_ci():
    return os.environ.get("CI", "").lower() in ("true", "1")


if browser_missing() is None:
    from selenium import webdriver
    from selenium.common.exceptions import (NoAlertPresentException, StaleElementReferenceException,
                                            NoSuchElementException, ElementClickInterceptedException)
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

WAIT = 15.0                 # seconds, every browser wait
COMMUNE = harness.PARTNERS["client-commune"]
DEPT = harness.PARTNERS["client-departement"]
TARGET = "/opale/v1/entreprises/732829320/declarations?annee=2023"
XSS_NAME = "<script>alert(1)</script><img src=x onerror=alert(2)> & Fils"
XSS = {"file": "xss-partner.json", "id": "H9077", "client_id": "xss-partner-sandbox", "teleservice": "TS-0077",
       "siret": harness.make_siret(77), "name": XSS_NAME}
OPERATORS = (("alice", "operator"), ("bob", "read"))


def screenshot_dir():
    d = os.environ.get("GW_CONSOLE_SCREENSHOTS")
    if not d:
        return None
    if not os.path.isabs(d):
        d = os.path.join(harness.SRCDIR, d)
    os.makedirs(d, exist_ok=True)
    return d


class Traffic(threading.Thread):
    """A partner calling the gateway with its client certificate, about
    <rate> calls a second on fresh connections, until stop() or <max_calls>
    or <max_s> seconds."""

    def __init__(self, stack, cert, partner, rate=5.0, max_calls=3000, max_s=300.0):
        super().__init__(daemon=True)
        self.stack, self.cert, self.partner = stack, cert, partner
        self.rate, self.max_calls, self.max_s = rate, max_calls, max_s
        self.halt = threading.Event()
        self.statuses = {}
        self.failures = 0

    def run(self):
        deadline = time.monotonic() + self.max_s
        for _ in range(self.max_calls):
            if self.halt.is_set() or time.monotonic() >= deadline:
                break
            try:
                r = self.stack.request(TARGET, cert_name=self.cert, teleservice=self.partner["teleservice"])
                self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
            except Exception:  # a refused connection counts, the traffic goes on
                self.failures += 1
            self.halt.wait(1.0 / self.rate)

    def stop(self):
        self.halt.set()
        self.join(timeout=harness.DEFAULT_TIMEOUT + 2)


class TestConsole(GatewayTestCase):

    @classmethod
    def setUpClass(cls):
        why = browser_missing()
        if why:
            if in_ci():
                raise AssertionError("CI=true and " + why)
            raise unittest.SkipTest(why)
        require_binaries()
        cls.tokens = {name: secrets.token_hex(32) for name, _ in OPERATORS}
        fp_xss = harness.issue_client_cert("client-xss", XSS["client_id"])

        def conf_hook(conf, stack):
            ops = []
            for name, role in OPERATORS:
                path = os.path.join(stack.dir, name + ".token")
                with open(path, "w") as f:
                    f.write(cls.tokens[name] + "\n")
                os.chmod(path, 0o600)
                ops.append({"name": name, "token_file": name + ".token", "role": role})
            conf["admin"]["operators"] = ops
            # the calendar: a daily slot starting in 6 hours and a dated one
            # in 2 days, neither in force while the suite runs
            t = time.gmtime(time.time() + 6 * 3600)
            start = (t.tm_hour * 60 + t.tm_min + 29) // 30 * 30
            hm = lambda m: "%02d:%02d" % (m // 60 % 24, m % 60)  # noqa: E731
            day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 2 * 86400))
            nxt = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 3 * 86400))
            conf.setdefault("access", {})["maintenance"] = {
                "timezone": "UTC", "force": True,
                "slots": [{"daily": "%s-%s" % (hm(start), hm(start + 30))},
                          {"from": day + "T23:30", "until": nxt + "T00:30"}]}
            cls.daily_start = hm(start)

        def policy_hook(pols, stack):
            pols[COMMUNE["file"]]["quota"] = {"per_minute": 2000}
            soon = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 10 * 86400))
            pols[XSS["file"]] = harness.make_policy("client-xss", fp_xss, partner=XSS,
                                                    habilitation={"valid_until": soon})

        st = cls.stack = Stack(cls.__name__, conf_hook=conf_hook, policy_hook=policy_hook)
        cls.addClassCleanup(st.stop)
        st.start()
        cls.base = "http://127.0.0.1:%d" % st.admin_port
        # tokens now: the thread then makes one call of /token, and a cut
        # environment (test_environment_cut_and_restore) refuses /token too
        st.token("client-commune")
        st.token("client-departement")
        cls.traffic = Traffic(st, "client-commune", COMMUNE)
        cls.traffic.start()
        cls.addClassCleanup(cls.traffic.stop)

        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        # root needs --no-sandbox. The browser's own traffic (updates, field
        # trials, safe browsing...) is turned off, and whatever is left goes
        # to a proxy on a closed loopback port: nothing leaves the machine,
        # while the admin listener on 127.0.0.1 is reached directly
        # (loopback is never proxied) and every request the page makes
        # still shows in the performance log.
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1400,1000", "--no-first-run", "--disable-extensions",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-domain-reliability", "--no-pings",
                  "--disable-client-side-phishing-detection", "--metrics-recording-only",
                  "--proxy-server=http://127.0.0.1:%d" % harness.closed_port(), "--lang=en-US"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        cls.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        cls.addClassCleanup(cls.driver.quit)
        cls.driver.set_page_load_timeout(WAIT)
        cls.driver.set_script_timeout(WAIT)

    def setUp(self):
        self.d = self.driver

    # -- browser helpers

    def wait(self, pred, what, timeout=WAIT):
        """pred()'s first truthy value within <timeout> s (a rebuilt or
        missing element counts as not yet)."""
        return WebDriverWait(self.d, timeout, poll_frequency=0.1,
                             ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)
                             ).until(lambda _: pred(), message=what)

    def q(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def text(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css).get_attribute("textContent")

    def click(self, css):
        """Click the element <css>; the page rebuilds its tables every few
        seconds, so a click on an element replaced meanwhile is retried."""
        end = time.monotonic() + WAIT
        while True:
            try:
                self.d.find_element(By.CSS_SELECTOR, css).click()
                return
            except (StaleElementReferenceException, NoSuchElementException, ElementClickInterceptedException):
                if time.monotonic() >= end:
                    raise
                time.sleep(0.1)

    def visible(self, element_id):
        return self.wait(lambda: self.d.find_element(By.ID, element_id).is_displayed(), element_id + " shown")

    def shot(self, name):
        d = screenshot_dir()
        if d:
            self.d.save_screenshot(os.path.join(d, name + ".png"))

    def open_console(self):
        self.d.get("about:blank")  # a new document: the page's memory is gone
        self.d.get(self.base + "/console/")
        self.visible("login-token")

    def login(self, name="alice", shot=None):
        self.open_console()
        if shot:
            self.shot(shot)
        self.d.find_element(By.ID, "login-token").send_keys(self.tokens[name])
        self.click("#login-submit")
        self.visible("view-overview")
        self.wait(lambda: self.text("#who-name") == name, "logged in as " + name)

    def go(self, view):
        self.d.execute_script("location.hash = arguments[0]", view)

    def row(self, client_id):
        return "#partners-body tr[data-client-id='%s']" % client_id

    def confirm(self, reason=None, shot=None):
        """Fill the confirmation dialog (the reason when given) and confirm;
        waits until it closes (the action answered 2xx)."""
        self.visible("confirm")
        if reason is not None:
            self.d.find_element(By.ID, "confirm-reason").send_keys(reason)
        if shot:
            self.shot(shot)
        self.click("#confirm-ok")
        self.wait(lambda: not self.d.find_element(By.ID, "confirm").is_displayed(),
                  "confirmation dialog closed; its error: %r" % self.text("#confirm-error"))

    def fetch(self, method, path, headers=None, body=None):
        """fetch() from the page (its cookie, its Origin): [status, JSON]."""
        return self.d.execute_async_script("""
            const [method, path, headers, body, done] = arguments;
            fetch(path, {method, headers, body, credentials: 'same-origin'})
              .then(async (r) => { let j = null; try { j = await r.json(); } catch (e) {} done([r.status, j]); })
              .catch((e) => done([0, String(e)]));""", method, path, headers or {}, body)

    def no_alert(self):
        try:
            a = self.d.switch_to.alert
        except NoAlertPresentException:
            return
        txt = a.text
        a.dismiss()
        self.fail("an alert fired: %r" % txt)

    # -- gateway helpers

    def consumer(self, cid):
        status, body = self.stack.admin_call("GET", "/admin/consumers")
        self.assertEqual(status, 200, body)
        return [c for c in body["consumers"] if c["client_id"] == cid][0]

    def call(self, partner=COMMUNE, cert="client-commune"):
        return self.stack.request(TARGET, cert_name=cert, teleservice=partner["teleservice"])

    def events(self, kind, **match):
        return [e for e in self.stack.security_events(kind) if all(e.get(k) == v for k, v in match.items())]

    def resume_by_token(self, cid):
        self.stack.admin_call("POST", "/admin/consumers/%s/resume" % cid, body={"reason": "test cleanup"})

    # -- tests

    def test_quota_bar_moves_under_traffic(self):
        self.login()
        self.go("#partners")
        bar = self.row(COMMUNE["client_id"]) + " [role=progressbar]"
        first = int(self.wait(lambda: self.q(bar) and self.q(bar)[0].get_attribute("aria-valuenow"), "quota bar"))
        self.assertEqual(self.q(bar)[0].get_attribute("aria-valuemax"), "2000")
        # the background partner calls about 5 times a second: the bar grows
        # without any reload
        later = self.wait(lambda: int(self.q(bar)[0].get_attribute("aria-valuenow")) >= first + 5 and
                          int(self.q(bar)[0].get_attribute("aria-valuenow")), "quota bar moving")
        self.assertGreater(later, first)
        self.assertRegex(self.text(self.row(COMMUNE["client_id"]) + " .qtext"), r"^\d[\d,]* / 2,000$")
        self.assertGreater(self.traffic.statuses.get(200, 0), 0, self.traffic.statuses)

    def test_suspend_and_resume_from_the_page(self):
        cid = COMMUNE["client_id"]
        self.addCleanup(self.resume_by_token, cid)
        self.assertEqual(self.call().status, 200)
        self.login()
        self.go("#partners")
        self.click(self.row(cid) + " button.action")
        self.visible("confirm")
        self.assertIn("Suspend " + cid, self.text("#confirm-title"))
        # no reason, no action: the dialog stays open; Cancel closes it
        self.click("#confirm-ok")
        time.sleep(0.3)
        self.assertTrue(self.d.find_element(By.ID, "confirm").is_displayed())
        self.click("#confirm-cancel")
        self.wait(lambda: not self.d.find_element(By.ID, "confirm").is_displayed(), "dialog cancelled")
        self.assertFalse(self.consumer(cid)["suspended"])
        self.click(self.row(cid) + " button.action")
        self.confirm("INC-42: enumeration from the console", shot="suspend-confirm")
        self.wait(lambda: "INC-42" in self.text(self.row(cid) + " .c-suspended"), "row shows the suspension")
        self.assertIn("by alice", self.text(self.row(cid) + " .c-suspended"))
        self.assertEqual(self.text(self.row(cid) + " button.action"), "Resume…")
        # the very next call is refused with the documented error body
        self.assertErrorBody(self.call(), 403, "910213")
        ev = self.wait(lambda: self.events("admin.suspend", consumer=cid, operator="alice"),
                       "admin.suspend event naming alice", timeout=harness.JOURNAL_WAIT)
        self.assertEqual(ev[-1].get("reason"), "INC-42: enumeration from the console", ev)
        # the live events view shows it too, with the operator
        self.go("#events")
        self.wait(lambda: [r for r in self.q("#events-body tr[data-event-id]")
                           if r.find_element(By.CSS_SELECTOR, ".c-type").text == "admin.suspend"
                           and r.find_element(By.CSS_SELECTOR, ".c-operator").text == "alice"], "event listed")
        self.shot("events")
        # resume from the detail page
        self.go("#partner/" + cid)
        self.wait(lambda: self.text("#pd-actions button") == "Resume…", "detail page actions")
        self.click("#pd-actions button")
        self.confirm("INC-42 closed")
        self.wait(lambda: self.text("#pd-actions button") == "Suspend…", "detail page shows it resumed")
        self.assertEqual(self.call().status, 200)
        self.wait(lambda: self.events("admin.resume", consumer=cid, operator="alice", reason="INC-42 closed"),
                  "admin.resume event naming alice", timeout=harness.JOURNAL_WAIT)

    def test_hostile_names_render_as_text(self):
        self.login()
        self.go("#partners")
        cell = self.row(XSS["client_id"]) + " .c-org"
        self.wait(lambda: self.q(cell), "the partner's row")
        self.assertEqual(self.text(cell), XSS_NAME)
        body = "#partners-body"
        self.assertEqual(len(self.q(body + " script")), 0)
        self.assertEqual(len(self.q(body + " img")), 0)
        self.assertEqual(len(self.q("img")), 0)
        # the search matches it as text
        self.d.find_element(By.ID, "partners-search").send_keys("<script>")
        self.wait(lambda: len(self.q("#partners-body tr[data-client-id]")) == 1, "one match")
        self.click(cell + " a")
        self.wait(lambda: self.text("#pd-title") == XSS_NAME + " — " + XSS["client_id"], "detail title")
        self.assertEqual(len(self.q("#view-partner script")) + len(self.q("#view-partner img")), 0)
        self.no_alert()

    def test_expiry_under_30_days_highlighted(self):
        self.login()
        self.go("#partners")
        cells = self.row(XSS["client_id"]) + " td"
        self.wait(lambda: len(self.q(cells)) > 8, "the partner's row")
        tds = self.q(cells)
        hab = [td for td in tds if "d left)" in td.get_attribute("textContent")]
        self.assertEqual(len(hab), 1, [td.get_attribute("textContent") for td in tds])
        self.assertIn("soon", hab[0].get_attribute("class"))
        # the commune's habilitation runs to 2099: not highlighted
        self.assertEqual(self.q(self.row(COMMUNE["client_id"]) + " td.soon, " + self.row(COMMUNE["client_id"])
                                + " td.expired"), [])

    def test_action_without_csrf_refused(self):
        cid = DEPT["client_id"]
        self.addCleanup(self.resume_by_token, cid)
        self.login()
        # the session cookie is HttpOnly and nothing is kept in storage
        self.assertNotIn("gw_session", self.d.execute_script("return document.cookie"))
        self.assertEqual(self.d.execute_script("return localStorage.length + sessionStorage.length"), 0)
        self.assertEqual(self.d.execute_script("return document.getElementById('login-token').value"), "")
        # reading with the cookie alone works
        st, body = self.fetch("GET", "/admin/partners")
        self.assertEqual(st, 200, body)
        payload = json.dumps({"reason": "forged"})
        path = "/admin/consumers/%s/suspend" % cid
        for hdrs in ({"Content-Type": "application/json"},
                     {"Content-Type": "application/json", "X-CSRF-Token": "x" * 43}):
            st, body = self.fetch("POST", path, hdrs, payload)
            self.assertEqual(st, 403, body)
            self.assertEqual((body or {}).get("error"), "csrf", body)
        self.assertFalse(self.consumer(cid)["suspended"])
        self.assertEqual(self.events("admin.suspend", consumer=cid, reason="forged"), [])
        # positive control: the same call with a session's CSRF value passes
        st, sess = self.fetch("POST", "/admin/session", {"Authorization": "Bearer " + self.tokens["alice"]})
        self.assertEqual(st, 200, sess)
        st, body = self.fetch("POST", path, {"Content-Type": "application/json", "X-CSRF-Token": sess["csrf"]},
                              payload)
        self.assertEqual(st, 200, body)
        self.assertTrue(self.consumer(cid)["suspended"])
        # a reload of the page forgets the session's CSRF value: log in again
        self.d.refresh()
        self.visible("login-token")

    def test_read_only_operator_cannot_act(self):
        cid = DEPT["client_id"]
        self.addCleanup(self.resume_by_token, cid)
        self.login("bob")
        self.assertEqual(self.text("#who-role"), "read-only")
        self.go("#partners")
        self.wait(lambda: self.q(self.row(cid) + " button.action"), "the partner's row")
        buttons = self.q("button.action")
        self.assertGreaterEqual(len(buttons), 4)
        self.assertTrue(all(not b.is_enabled() for b in buttons),
                        [b.text for b in buttons if b.is_enabled()])
        # the API refuses bob's session too, with its CSRF value
        st, sess = self.fetch("POST", "/admin/session", {"Authorization": "Bearer " + self.tokens["bob"]})
        self.assertEqual(st, 200, sess)
        self.assertEqual((sess["operator"], sess["role"]), ("bob", "read"))
        st, body = self.fetch("POST", "/admin/consumers/%s/suspend" % cid,
                              {"Content-Type": "application/json", "X-CSRF-Token": sess["csrf"]},
                              json.dumps({"reason": "read-only try"}))
        self.assertEqual(st, 403, body)
        self.assertEqual((body or {}).get("error"), "forbidden", body)
        self.assertFalse(self.consumer(cid)["suspended"])

    def test_environment_cut_and_restore(self):
        self.addCleanup(self.stack.admin_call, "POST", "/admin/environments/sandbox/restore",
                        body={"reason": "test cleanup"})
        self.login()
        env_button = "#ov-envs tr[data-env='sandbox'] button.action"
        self.wait(lambda: self.text(env_button) == "Cut…", "sandbox row")
        self.click(env_button)
        self.confirm("INC-43: cut from the console")
        self.wait(lambda: self.text(env_button) == "Restore…", "sandbox shown cut")
        self.assertErrorBody(self.call(DEPT, "client-departement"), 403, "910213")
        self.wait(lambda: self.events("admin.environment_cut", operator="alice"), "cut event naming alice",
                  timeout=harness.JOURNAL_WAIT)
        self.click(env_button)
        self.confirm("INC-43 closed")
        self.wait(lambda: self.text(env_button) == "Cut…", "sandbox shown serving")
        self.assertEqual(self.call(DEPT, "client-departement").status, 200)

    def test_reload_shows_each_rejected_file(self):
        bad = os.path.join(self.stack.policies_dir, "zz-broken.json")
        with open(bad, "w") as f:
            f.write('{"habilitation": 1}\n')

        def cleanup():
            os.unlink(bad)
            self.stack.admin_call("POST", "/admin/reload")
        self.addCleanup(cleanup)
        self.login()
        self.click("#act-reload")
        self.confirm()
        self.wait(lambda: self.q("#reload-rejected"), "per-file result")
        txt = self.text("#reload-rejected")
        self.assertIn("zz-broken.json", txt)
        self.assertIn("habilitation", txt)
        self.wait(lambda: self.events("admin.reload", operator="alice"), "reload event naming alice",
                  timeout=harness.JOURNAL_WAIT)

    def test_legal_hold_and_acknowledge(self):
        self.addCleanup(self.stack.admin_call, "DELETE", "/admin/journal/hold")
        self.login()
        self.click("#act-hold")
        self.confirm("INC-44: preserve from the console")
        self.wait(lambda: "INC-44" in self.text("#ov-holds"), "hold listed")
        ev = self.wait(lambda: self.events("admin.journal_hold", operator="alice"), "hold event naming alice",
                       timeout=harness.JOURNAL_WAIT)
        self.assertEqual(ev[-1].get("reason"), "INC-44: preserve from the console", ev)
        # acknowledge that event in the live view, filtered by type
        self.go("#events")
        self.d.find_element(By.ID, "ev-type").send_keys("admin.journal_hold")
        self.click("#events-filters button[type=submit]")
        rows = "#events-body tr[data-event-id]"
        self.wait(lambda: self.q(rows) and all(r.find_element(By.CSS_SELECTOR, ".c-type").text == "admin.journal_hold"
                                               for r in self.q(rows)), "filtered events")
        ev_id = self.q(rows)[0].get_attribute("data-event-id")
        self.click("#events-body tr[data-event-id='%s'] button.action" % ev_id)
        self.confirm()
        self.wait(lambda: "by alice" in self.text("#events-body tr[data-event-id='%s']" % ev_id), "acknowledged")
        # lift it from the overview
        self.go("#overview")
        self.wait(lambda: self.q("#ov-holds button.action"), "hold listed")
        self.click("#ov-holds button.action")
        self.confirm()
        self.wait(lambda: "No legal hold" in self.text("#ov-holds"), "hold lifted")
        status, body = self.stack.admin_call("GET", "/admin/journal/hold")
        self.assertEqual(body.get("holds"), [], body)

    def test_views_load_nothing_from_outside(self):
        self.d.get_log("performance")  # drop what earlier tests logged
        self.d.get_log("browser")
        self.login(shot="login")
        self.wait(lambda: self.q("#ov-chart polyline"), "chart drawn")
        self.wait(lambda: len(self.q("#ov-envs tr")) >= 2, "overview filled")
        self.shot("overview")
        self.go("#partners")
        self.wait(lambda: self.q(self.row(COMMUNE["client_id"])), "partners")
        self.shot("partners")
        self.go("#partner/" + COMMUNE["client_id"])
        self.wait(lambda: self.q("#pd-records tr") and "✓" in self.text("#pd-records"), "detail with records")
        self.shot("partner-detail")
        self.go("#events")
        self.wait(lambda: self.q("#events-body tr"), "events")
        self.go("#maintenance")
        self.wait(lambda: self.text("#mt-current") != "", "maintenance")
        self.assertIn("No slot now", self.text("#mt-current"))
        self.assertIn(" %s:00Z" % self.daily_start, self.text("#mt-next"))
        self.assertGreaterEqual(len(self.q("#mt-slots tr")), 10)  # 14 days of a daily slot, and the dated one
        self.assertIn("23:30:00Z", self.text("#mt-slots"))
        self.shot("maintenance")
        self.click("#logout")
        self.visible("login-token")

        origin = self.base
        urls, console_headers = [], None
        for entry in self.d.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            params = msg.get("params", {})
            if msg.get("method") == "Network.requestWillBeSent":
                urls.append(params["request"]["url"])
            elif msg.get("method") == "Network.responseReceived" and \
                    params["response"]["url"] == origin + "/console/":
                console_headers = {k.lower(): v for k, v in params["response"]["headers"].items()}
        self.assertTrue(urls)
        outside = [u for u in urls if not (u.startswith(origin + "/") or u.startswith("data:"))]
        self.assertEqual(outside, [], "requests off the admin listener's origin")
        paths = {urllib.parse.urlsplit(u).path for u in urls if u.startswith(origin)}
        for p in ("/console/", "/console/app.js", "/console/app.css", "/admin/session", "/admin/overview",
                  "/admin/partners", "/admin/partners/" + COMMUNE["client_id"], "/admin/events",
                  "/admin/maintenance"):
            self.assertIn(p, paths)
        # the page ran under the gateway's policy, and broke none of it
        self.assertIsNotNone(console_headers, "no response for /console/ in the log")
        csp = console_headers.get("content-security-policy", "")
        self.assertIn("script-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertEqual(console_headers.get("x-frame-options"), "DENY")
        violations = [e for e in self.d.get_log("browser")
                      if "Content Security Policy" in e.get("message", "") or "Refused to" in e.get("message", "")]
        self.assertEqual(violations, [])
        self.no_alert()


def main():
    why = browser_missing()
    if why:
        if in_ci():
            print("FAIL: CI=true and " + why, file=sys.stderr)
            return 1
        print("SKIP: " + why, file=sys.stderr)
        return 77
    prog = unittest.main(exit=False, verbosity=2, argv=sys.argv)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())

"""The chain cannot be silently cut (issue 18 §4, docs/journal.md "Tail
check", "Anchoring", "Legal hold"), against the real gateway, mock and
redis-server:

- a journal truncated and re-chained on the host verifies on its own, and is
  caught by the anchors (a command's file, a Redis list, an HTTP endpoint);
- a broken tail stops the gateway at start (exit 4, the file and the record
  on stderr, a journal.broken event); --journal-ack-break records the
  acknowledgement and the gateway starts again, the chain going on from it;
- the periodic tail check catches a break made while the gateway runs:
  /readyz false, no exchange served, a journal.broken event;
- a legal hold keeps the files retention would delete, across a restart,
  and lifting it lets them go at once.
"""

import http.server
import json
import os
import signal
import subprocess
import threading
import time
import unittest

from harness import GW_BIN, Stack, require_binaries
import test_journal_it as tj

CLI_TIMEOUT = 60
WAIT = 15.0


def write_anchor_script(stack):
    """An anchor command that appends the anchor (stdin) to DIR/anchors.jsonl."""
    out = os.path.join(stack.dir, "anchors.jsonl")
    path = os.path.join(stack.dir, "anchor.sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\ncat >> '%s'\n" % out)
    os.chmod(path, 0o755)
    return path, out


def anchors_of(path, journal):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for ln in f:
                rec = json.loads(ln)
                if rec["journal"] == journal:
                    out.append(rec)
    return out


def verify(stack, *extra):
    """(rc, stdout + stderr) of --verify-journal -c CONF [extra] JOURNAL."""
    r = subprocess.run([GW_BIN, "--verify-journal", "-c", stack.conf_path, *extra, stack.journal_path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=CLI_TIMEOUT, cwd=stack.dir)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def some_traffic(stack, n=5):
    for _ in range(n):
        r = stack.request()
        assert r.status == 200, r


def truncate_and_rechain(path, keep, forged):
    """Keep the first <keep> lines of <path>, then append <forged> records
    re-chained after them, as someone with write access who recomputes the
    hashes would: the file verifies on its own."""
    lines = tj.raw_lines(path)[:keep]
    rec, prev = tj.parse_chained(lines[-1])
    seq = rec["seq"]
    for i in range(forged):
        seq += 1
        line = tj.rechain(b'{"v":1,"forged":%d}' % i, seq, prev)
        prev = tj.parse_chained(line)[1]
        lines.append(line)
    with open(path, "wb") as f:
        f.write(b"".join(ln + b"\n" for ln in lines))


def checkpoint_line_numbers(path):
    return [n for n, ln in enumerate(tj.raw_lines(path), 1) if b'"type":"checkpoint"' in ln]


class AnchorCollector(http.server.BaseHTTPRequestHandler):
    """POST bodies (one anchor each) into the server's <anchors> list."""

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.server.anchors.append(self.rfile.read(n).decode())
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


class TestAnchors(unittest.TestCase):
    """Checkpoints every second, anchored off the host; then the journal is
    cut after an early checkpoint and re-chained with forged records."""

    def run_case(self, stack, read_anchors, anchors_arg):
        # at least two checkpoints anchored while running: traffic between
        # them (an idle journal gets no new checkpoint)
        def busy():
            some_traffic(stack, 1)
            return len(read_anchors()) >= 2
        got = tj.wait_until(busy, timeout=WAIT, step=0.3)
        self.assertTrue(got, "no anchors: %s" % stack.gateway_stderr()[-2000:])
        self.assertEqual(stack.stop_gateway(), 0)
        anchors = read_anchors()
        last = max(anchors, key=lambda a: a["seq"])
        recs = {r["seq"]: h for r, h in (tj.parse_chained(ln) for ln in tj.raw_lines(stack.journal_path))}
        # every anchor is a checkpoint of this journal, hash for hash
        for a in anchors:
            self.assertEqual(recs.get(a["seq"]), a["hash"], a)
            self.assertEqual(a["type"], "journal.anchor")
        rc, out = verify(stack, "--anchors", anchors_arg)
        self.assertEqual(rc, 0, out)
        self.assertIn("the latest seq %d" % last["seq"], out)

        # cut after the first checkpoint, forge a shorter tail: intact alone
        first_cp = checkpoint_line_numbers(stack.journal_path)[0]
        truncate_and_rechain(stack.journal_path, first_cp, 1)
        rc, out = verify(stack)
        self.assertEqual(rc, 0, "the forged journal should verify on its own:\n" + out)
        rc, out = verify(stack, "--anchors", anchors_arg)
        self.assertEqual(rc, 1, out)
        self.assertIn("truncated", out)

        # forge past the anchored seq: the anchored record no longer matches
        truncate_and_rechain(stack.journal_path, first_cp, last["seq"] + 5)
        rc, out = verify(stack)
        self.assertEqual(rc, 0, out)
        rc, out = verify(stack, "--anchors", anchors_arg)
        self.assertEqual(rc, 1, out)
        self.assertIn("modified", out)

    def test_command_anchors_catch_truncate_and_rechain(self):
        require_binaries()
        holder = {}

        def hook(conf, stack):
            script, holder["out"] = write_anchor_script(stack)
            conf["journal"].update({"checkpoint_s": 1, "anchor": {"command": script}})

        stack = Stack("anchor-cmd", conf_hook=hook)
        self.addCleanup(stack.stop)
        stack.start()
        self.run_case(stack, lambda: anchors_of(holder["out"], stack.journal_path), holder["out"])
        # the events stream anchors its own checkpoints under its own name
        events = os.path.join(os.path.dirname(stack.journal_path), "events.jsonl")
        self.assertTrue(all(a["journal"] in (stack.journal_path, events)
                            for a in map(json.loads, open(holder["out"]))))

    def test_redis_anchors_catch_truncate_and_rechain(self):
        require_binaries()
        import test_quota as tq
        tq.require_redis()
        redis = tq.RedisServer("anchors").start()
        self.addCleanup(redis.stop)

        def hook(conf, stack):
            conf["journal"].update({"checkpoint_s": 1,
                                    "anchor": {"redis": {"host": "127.0.0.1", "port": redis.port,
                                                         "key": "it:anchors"}}})

        stack = Stack("anchor-redis", conf_hook=hook)
        self.addCleanup(stack.stop)
        stack.start()

        def read():
            out = []
            for s in tq.redis_call(redis.port, "LRANGE", "it:anchors", "0", "-1") or []:
                rec = json.loads(s)
                if rec["journal"] == stack.journal_path:
                    out.append(rec)
            return out

        self.run_case(stack, read, "redis")

    def test_http_anchors_and_failures_counted(self):
        require_binaries()
        srv = http.server.HTTPServer(("127.0.0.1", 0), AnchorCollector)
        srv.anchors = []
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        url = "http://127.0.0.1:%d/anchors" % srv.server_address[1]

        def hook(conf, stack):
            conf["journal"].update({"checkpoint_s": 1, "anchor": {"http": {"url": url}, "retry_s": 1}})

        stack = Stack("anchor-http", conf_hook=hook)
        self.addCleanup(stack.stop)
        stack.start()
        path = os.path.join(stack.dir, "http-anchors.jsonl")

        def read():
            with open(path, "w") as f:
                f.write("".join(a if a.endswith("\n") else a + "\n" for a in list(srv.anchors)))
            return anchors_of(path, stack.journal_path)

        self.assertTrue(tj.wait_until(lambda: some_traffic(stack, 1) or len(read()) >= 1, timeout=WAIT, step=0.3),
                        stack.gateway_stderr()[-2000:])
        m = tj.metrics(stack)
        self.assertGreaterEqual(m["opale_journal_anchors_sent_total"], 1)
        self.assertEqual(m["opale_journal_anchor_failing"], 0)
        # the endpoint goes away: requests are still served, failures counted,
        # one journal.anchor_failed event for the streak
        srv.shutdown()
        srv.server_close()
        self.assertTrue(tj.wait_until(lambda: some_traffic(stack, 1) or
                                      tj.metrics(stack)["opale_journal_anchor_failures_total"] >= 2,
                                      timeout=WAIT, step=0.3))
        self.assertEqual(tj.metrics(stack)["opale_journal_anchor_failing"], 1)
        some_traffic(stack, 2)
        ev = tj.wait_until(lambda: stack.security_events("journal.anchor_failed"), timeout=WAIT)
        self.assertTrue(ev)
        self.assertEqual(len(stack.security_events("journal.anchor_failed")), 1)
        self.assertIn("127.0.0.1", ev[0]["error"])
        self.assertEqual(ev[0]["severity"], "high")


def break_record(path, seq):
    """Change one byte of the record <seq> (a value inside its path), keeping
    the line valid JSON: the hash no longer matches."""
    lines = tj.raw_lines(path)
    for i, ln in enumerate(lines):
        p = tj.parse_chained(ln)
        if p and p[0]["seq"] == seq:
            assert b"etatSante" in ln, ln
            lines[i] = ln.replace(b"etatSante", b"etatSanta", 1)
            break
    else:
        raise AssertionError("no record %d" % seq)
    with open(path, "wb") as f:
        f.write(b"".join(ln + b"\n" for ln in lines))


def access_seqs(path):
    return [r["seq"] for r, _ in (tj.parse_chained(ln) for ln in tj.raw_lines(path)) if "type" not in r]


class TestTailCheck(unittest.TestCase):

    def test_broken_tail_stops_the_start_until_acknowledged(self):
        require_binaries()
        stack = Stack("tail-start", conf_hook=tj.conf_journal(checkpoint_s=1))
        self.addCleanup(stack.stop)
        stack.start()
        some_traffic(stack, 4)
        self.assertEqual(stack.stop_gateway(), 0)
        seq = access_seqs(stack.journal_path)[-2]
        break_record(stack.journal_path, seq)

        # the start refuses: exit 4, the file and the record named, an event
        before = len(stack.gateway_stderr())
        with open(stack.stderr_path, "ab") as err:
            r = subprocess.run([GW_BIN, "-c", stack.conf_path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=err, timeout=CLI_TIMEOUT, cwd=stack.dir)
        self.assertEqual(r.returncode, 4)
        msg = stack.gateway_stderr()[before:]
        self.assertIn(stack.journal_path, msg)
        self.assertIn("BROKEN", msg)
        self.assertIn("seq %d" % seq, msg)
        self.assertIn("--journal-ack-break", msg)
        self.assertNotIn("ready", msg)
        ev = stack.security_events("journal.broken")
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual((ev[0]["record_seq"], ev[0]["at"], ev[0]["severity"]), (seq, "start", "critical"))
        self.assertEqual(ev[0]["file"], stack.journal_path)
        self.assertEqual(len(ev[0]["expected"]), 64)
        self.assertNotEqual(ev[0]["expected"], ev[0]["actual"])

        # the acknowledgement: a reason is required
        ack = [GW_BIN, "--journal-ack-break", "-c", stack.conf_path]
        r = subprocess.run(ack, stdin=subprocess.DEVNULL, capture_output=True, timeout=CLI_TIMEOUT, cwd=stack.dir)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run(ack + ["--reason", "disque remplacé, incident INC-42"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=CLI_TIMEOUT, cwd=stack.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        last, _ = tj.parse_chained(tj.raw_lines(stack.journal_path)[-1])
        self.assertEqual(last["type"], "break_ack")
        self.assertEqual(last["break"]["seq"], seq)
        self.assertEqual(last["break"]["file"], stack.journal_path)
        self.assertEqual(last["break"]["expected"], ev[0]["expected"])
        self.assertEqual(last["break"]["actual"], ev[0]["actual"])
        self.assertEqual(last["reason"], "disque remplacé, incident INC-42")
        self.assertTrue(last["by"])
        ack_ev = stack.security_events("journal.break_ack")
        self.assertEqual(len(ack_ev), 1)
        self.assertEqual((ack_ev[0]["record_seq"], ack_ev[0]["ack_seq"]), (seq, last["seq"]))
        # a second acknowledgement finds nothing to acknowledge
        r = subprocess.run(ack + ["--reason", "again"], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=CLI_TIMEOUT, cwd=stack.dir)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"nothing to acknowledge", r.stderr)

        # the gateway starts, the chain goes on from the acknowledgement
        stack.start_gateway()
        some_traffic(stack, 2)
        self.assertEqual(stack.stop_gateway(), 0)
        after = [tj.parse_chained(ln)[0] for ln in tj.raw_lines(stack.journal_path)]
        i = next(k for k, r in enumerate(after) if r.get("type") == "break_ack")
        self.assertEqual([r["seq"] for r in after[i:]], list(range(last["seq"], last["seq"] + len(after) - i)))
        # the verifier still reports the break itself: it happened
        rc, out = verify(stack)
        self.assertEqual(rc, 1, out)
        self.assertIn("seq %d" % seq, out)

    def test_periodic_check_catches_a_break_while_running(self):
        require_binaries()
        stack = Stack("tail-run", conf_hook=tj.conf_journal(tail_check_s=1))
        self.addCleanup(stack.stop)
        stack.start()
        some_traffic(stack, 4)
        self.assertEqual(stack.admin_call("GET", "/readyz")[0], 200)
        # cut the last two records behind the writer's back
        lines = tj.raw_lines(stack.journal_path)
        with open(stack.journal_path, "r+b") as f:
            f.truncate(sum(len(ln) + 1 for ln in lines[:-2]))
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            st, body = stack.admin_call("GET", "/readyz")
            if st == 503:
                break
            time.sleep(0.2)
        self.assertEqual(st, 503, body)
        self.assertEqual(body["journal_integrity"], "broken")
        self.assertFalse(body["ready"])
        # no exchange is served any more
        r = stack.request()
        self.assertEqual(r.status, 503)
        ev = tj.wait_until(lambda: stack.security_events("journal.broken"), timeout=WAIT)
        self.assertTrue(ev)
        self.assertEqual((ev[0]["at"], ev[0]["severity"]), ("running", "critical"))
        # the cut is seen at the end (not the writer's head) or, once the
        # writer has appended after it, as a link that does not follow
        self.assertRegex(ev[0]["what"], r"the writer's head|does not follow the record before it")
        self.assertEqual(tj.metrics(stack)["opale_journal_broken"], 1)
        self.assertIn("tail check: BROKEN", stack.gateway_stderr())


def stamp_file(path, name_stamp):
    """An old rotated file next to <path> (retention judges by the name)."""
    p = "%s.%s" % (path, name_stamp)
    with open(p, "w") as f:
        f.write('{"v":1,"old":true}\n')
    return p


class TestLegalHold(unittest.TestCase):

    def test_hold_keeps_files_across_a_restart_and_lifting_lets_them_go(self):
        require_binaries()
        stack = Stack("hold", conf_hook=tj.conf_journal(retention_days=1))
        self.addCleanup(stack.stop)
        stack.start()
        st, body = stack.admin_call("GET", "/admin/journal/hold")
        self.assertEqual((st, body), (200, {"holds": [], "retention_suspended": False}))
        st, body = stack.admin_call("POST", "/admin/journal/hold", body={"consumer": "x"})
        self.assertEqual(st, 400, body)
        st, body = stack.admin_call("POST", "/admin/journal/hold",
                                    body={"reason": "réquisition 2026-17", "consumer": "commune-exemple-sandbox"})
        self.assertEqual(st, 201, body)
        self.assertEqual(body["holds"], 1)
        ev = tj.wait_until(lambda: stack.security_events("admin.journal_hold"), timeout=WAIT)
        self.assertEqual((ev[0]["consumer"], ev[0]["reason"], ev[0]["client_ip"]),
                         ("commune-exemple-sandbox", "réquisition 2026-17", "127.0.0.1"))

        # files retention would delete at once (stamped in 2020)
        old = stamp_file(stack.journal_path, "20200101T000000Z")
        old_ev = stamp_file(os.path.join(os.path.dirname(stack.journal_path), "events.jsonl"), "20200101T000000Z")
        stack.restart_gateway()
        st, body = stack.admin_call("GET", "/readyz")
        self.assertEqual((st, body["journal_holds"]), (200, 1))
        self.assertGreaterEqual(tj.metrics(stack)["opale_journal_retention_held_total"], 1)
        self.assertTrue(os.path.exists(old) and os.path.exists(old_ev))
        st, body = stack.admin_call("GET", "/admin/journal/hold")
        self.assertEqual(body["holds"][0]["consumer"], "commune-exemple-sandbox")
        self.assertTrue(body["retention_suspended"])
        self.assertIn("legal holds in force", stack.gateway_stderr())

        # lifting the hold of another scope changes nothing
        self.assertEqual(stack.admin_call("DELETE", "/admin/journal/hold")[0], 404)
        self.assertTrue(os.path.exists(old))
        st, body = stack.admin_call("DELETE", "/admin/journal/hold?consumer=commune-exemple-sandbox")
        self.assertEqual((st, body["holds"]), (200, 0), body)
        self.assertTrue(tj.wait_until(lambda: not os.path.exists(old) and not os.path.exists(old_ev),
                                      timeout=WAIT), "retention did not run once the hold was lifted")
        rec = stack.wait_journal(lambda r: r.get("type") == "retention")
        self.assertEqual(rec["deleted"], os.path.basename(old))
        ev = tj.wait_until(lambda: stack.security_events("admin.journal_hold_lifted"), timeout=WAIT)
        self.assertEqual(ev[0]["consumer"], "commune-exemple-sandbox")
        self.assertEqual(ev[0]["holds"], 0)
        self.assertEqual(stack.admin_call("DELETE", "/admin/journal/hold?consumer=commune-exemple-sandbox")[0], 404)


if __name__ == "__main__":
    unittest.main()

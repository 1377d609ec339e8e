"""The access journal end to end (issue 6, "Tests"): records and hash chain
of real traffic (a refused handshake included), the verifier CLI on intact
and tampered copies, rotation by SIGUSR1 and by size, retention at start-up,
"no exchange without a record" on a full filesystem (on_failure "deny" and
"continue"), and SIGTERM under load losing no record.

Every test checks the HTTP answers AND the journal. The chain is checked
twice: in Python (SHA-256 recomputed over each line up to ',"hash":"', seq
+1, prev = previous hash, across files), and with
`opale-gateway --verify-journal -c <the stack's config>`, which also checks
the checkpoint signatures with the stack's keys.

The disk-full tests mount a 256 KiB tmpfs on the stack's journal directory
(`mount -t tmpfs`, which needs root / CAP_SYS_ADMIN); where mounting is not
permitted they are skipped with the reason, never faked. The mount is
removed at teardown whatever happens (lazy unmount as a last resort).
"""

import calendar
import glob
import hashlib
import json
import os
import re
import signal
import ssl
import subprocess
import threading
import time
import unittest

import harness
from harness import (GW_BIN, PeerClosed, Stack, make_tmpdir, read_response, require_binaries,
                     send_raw)

SIREN = "732829320"
GUARDED = "/opale/v1/entreprises/%s/comptes-bancaires" % SIREN
GENESIS = "0" * 64
HASH_KEY = b',"hash":"'
STAMP_RE = re.compile(r"^(?P<base>.+)\.(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?$")
LINK_RE = re.compile(rb',"seq":(\d+),"prev":"([0-9a-f]{64})"$')
WAIT = 5.0          # seconds, the bound of every journal wait here
CLI_TIMEOUT = 30


# --------------------------------------------------------------------------
# journal files and the chain, in Python


def stamp_of(t):
    """The rotated-file stamp (gw_journal_rotated_name) of Unix time <t>."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


def rotated_files(path):
    """<path>.<stamp>[-N] in chain order (stamp, then N)."""
    out = []
    for f in glob.glob(glob.escape(path) + ".*"):
        m = STAMP_RE.match(f)
        if m and m.group("base") == path:
            out.append((m.group("stamp"), int(m.group("n") or 0), f))
    return [f for _, _, f in sorted(out)]


def journal_files(path):
    """The rotated files, then <path> itself when it exists."""
    return rotated_files(path) + ([path] if os.path.exists(path) else [])


def raw_lines(path):
    """The complete lines of <path> (bytes, without '\\n'); a trailing
    partial line is left out."""
    with open(path, "rb") as f:
        data = f.read()
    return data.split(b"\n")[:-1]


def parse_chained(line):
    """(record dict, hash) of one chained line, or None when the line does not
    end in the chain members (a torn fragment)."""
    i = line.rfind(HASH_KEY)
    if i < 0 or not line.endswith(b'"}') or len(line) - i != 75:
        return None
    if LINK_RE.search(line[:i]) is None:
        return None
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec, line[i + len(HASH_KEY):i + len(HASH_KEY) + 64].decode()


def records_of(files):
    """[(file, line number, record)] of every chained line of <files>."""
    out = []
    for f in files:
        for n, line in enumerate(raw_lines(f), 1):
            p = parse_chained(line)
            if p is not None:
                out.append((f, n, p[0]))
    return out


def all_records(path):
    return [r for _, _, r in records_of(journal_files(path))]


def access_records(recs):
    """Records written for requests (the writer's own records have a type)."""
    return [r for r in recs if "type" not in r]


def sha256_hex(b):
    return hashlib.sha256(b).hexdigest()


def rechain(line, seq, prev):
    """<line> (a chained line, or a worker line '{...}') re-chained at <seq>
    after <prev>: what a forger who recomputes hashes would write."""
    i = line.rfind(b',"seq":')
    body = line[:i] if i >= 0 and parse_chained(line) else line[:-1]
    canon = body + b',"seq":%d,"prev":"%s"' % (seq, prev.encode())
    return canon + b',"hash":"' + sha256_hex(canon).encode() + b'"}'


# --------------------------------------------------------------------------
# the CLI, the admin listener, the tmpfs


def verify_cli(stack, *files, expect_head=None):
    """(exit code, stdout, stderr) of opale-gateway --verify-journal -c <the
    stack's config> [--expect-head SEQ:HASH] FILE..."""
    args = [GW_BIN, "--verify-journal", "-c", stack.conf_path]
    if expect_head:
        args += ["--expect-head", expect_head]
    r = subprocess.run(args + list(files), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=CLI_TIMEOUT, cwd=stack.dir)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def metrics(stack):
    st, text = stack.admin_call("GET", "/metrics")
    if st != 200 or not isinstance(text, str):
        raise AssertionError("GET /metrics: %r %r" % (st, text))
    out = {}
    for ln in text.splitlines():
        if ln and not ln.startswith("#"):
            k, _, v = ln.rpartition(" ")
            out[k] = float(v)
    return out


DROPPED = 'opale_journal_records_total{outcome="dropped"}'
HEALTHY = "opale_journal_healthy"


def wait_until(pred, timeout=WAIT, step=0.05):
    """The first truthy value of pred() within <timeout> s, else the last one."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def conf_journal(**over):
    """A conf_hook setting journal keys."""
    def hook(conf, stack):
        conf["journal"].update(over)
    return hook


def fill_fs(directory):
    """Fill the filesystem of <directory> with DIR/filler until ENOSPC; returns
    the filler's path."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (65536, 4096, 512, 1):
            for _ in range(1 << 20):
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as e:
                    if e.errno != 28:  # ENOSPC
                        raise
                    break
    finally:
        os.close(fd)
    st = os.statvfs(directory)
    assert st.f_bavail == 0, "filesystem of %s not full: %d blocks free" % (directory, st.f_bavail)
    return path


class JournalCase(unittest.TestCase):
    """Helpers shared by the classes below."""

    maxDiff = 4000

    def new_stack(self, name, **journal):
        """A started Stack with these journal keys; stopped at cleanup."""
        require_binaries()
        st = Stack(name, conf_hook=conf_journal(**journal))
        self.addCleanup(st.stop)
        st.start()
        return st

    def assertChain(self, files, genesis=True, allow_torn=False):
        """The Python chain check over <files> in order: every complete line is
        a chained record (or, with <allow_torn>, a fragment left by a failed
        write), its hash is SHA-256 of the line up to ',"hash":"', seq is +1
        and prev the previous hash, across files. Returns the records."""
        self.assertTrue(files, "no journal file")
        recs, prev_seq, prev_hash = [], None, None
        for f in files:
            for n, line in enumerate(raw_lines(f), 1):
                where = "%s:%d" % (f, n)
                p = parse_chained(line)
                if p is None:
                    if allow_torn:
                        continue
                    self.fail("%s: not a chained record: %r" % (where, line[:200]))
                rec, h = p
                i = line.rfind(HASH_KEY)
                self.assertEqual(sha256_hex(line[:i]), h, "%s: hash does not recompute" % where)
                self.assertEqual(rec.get("hash"), h, where)
                self.assertEqual(rec.get("v"), 1, where)
                if prev_seq is None:
                    if genesis:
                        self.assertEqual((rec.get("seq"), rec.get("prev")), (1, GENESIS),
                                         "%s: the chain does not start at the genesis" % where)
                else:
                    self.assertEqual(rec.get("seq"), prev_seq + 1, "%s: seq not consecutive" % where)
                    self.assertEqual(rec.get("prev"), prev_hash, "%s: prev is not the previous hash" % where)
                prev_seq, prev_hash = rec["seq"], h
                recs.append(rec)
        return recs

    def assertVerifies(self, stack, *files, records=None, nfiles=None, signed=True):
        """--verify-journal exits 0 with 'OK: <records> records in <nfiles>
        file(s), chain intact'; with <signed>, at least one checkpoint whose
        signature was verified. Returns the output."""
        rc, out, err = verify_cli(stack, *files)
        self.assertEqual(rc, 0, "--verify-journal %s: exit %d\n%s%s" % (" ".join(files), rc, out, err))
        last = out.strip().splitlines()[-1] if out.strip() else ""
        m = re.match(r"^OK: (\d+) records in (\d+) files?, chain intact$", last)
        self.assertIsNotNone(m, "no OK line:\n" + out)
        if records is not None:
            self.assertEqual(int(m.group(1)), records, out)
        if nfiles is not None:
            self.assertEqual(int(m.group(2)), nfiles, out)
        if signed:
            cp = re.search(r"^info: checkpoints: (\d+), signatures verified$", out, re.M)
            self.assertIsNotNone(cp, "checkpoint signatures not verified:\n" + out)
            self.assertGreaterEqual(int(cp.group(1)), 1, out)
        return out

    def wait_rids(self, path, rids, timeout=WAIT):
        """Records (across <path>'s files) of every request id in <rids>;
        fails after <timeout> s with the ones missing."""
        want = set(rids)

        def found():
            got = {r.get("request_id") for r in all_records(path)}
            return want <= got
        if not wait_until(found, timeout):
            got = {r.get("request_id") for r in all_records(path)}
            self.fail("no journal record within %.0f s for %s" % (timeout, sorted(want - got)))
        return [r for r in all_records(path) if r.get("request_id") in want]

    def guarded(self, st, **kw):
        return st.request(GUARDED, **kw)


# --------------------------------------------------------------------------
# 1, 2: records, chain, checkpoints, verifier, tampering


class TestChain(JournalCase):

    @classmethod
    def setUpClass(cls):
        require_binaries()
        cls.stack = Stack(cls.__name__, conf_hook=conf_journal(checkpoint_s=1, rotate_daily=False))
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()
        cls.stack.token("client-commune")
        # its /token record (journaled once the answer is sent) comes before the tests' records
        if not wait_until(lambda: any(r.get("path") == "/token" for r in all_records(cls.stack.journal_path))):
            raise AssertionError("no journal record for POST /token")

    def test_n_requests_n_plus_1_records_chained_and_verified(self):
        st = self.stack
        path = st.journal_path
        wait_until(lambda: st.admin_call("GET", "/readyz")[1].get("journal_queue") == 0)
        before = {r.get("request_id") for r in all_records(path)}
        sent = []  # (label, Response)
        for target in ("/opale/v1/etatSante", GUARDED,
                       "/opale/v1/entreprises/%s/declarations?annee=2024" % SIREN, GUARDED):
            sent.append(("allow " + target, st.request(target)))
        sent.append(("no token", st.request(GUARDED, token=None)))
        sent.append(("no route", st.request("/opale/v1/nope")))
        sent.append(("bad method", st.request("/opale/v1/etatSante", method="POST", body=b"x")))
        for label, r in sent:
            if label.startswith("allow"):
                self.assertEqual(r.status, 200, (label, r))
            else:
                self.assertTrue(400 <= r.status < 500, (label, r))
        rids = [r.header("X-Request-ID") for _, r in sent]
        self.assertEqual(len(set(rids)), len(sent), rids)
        kind, detail = st.refused_or_response(cert_name="client-revoked")
        self.assertEqual(kind, "refused", detail)
        revoked_fp = st.fp["client-revoked"]

        def tls_rec():
            for r in all_records(path):
                if str(r.get("reason", "")).startswith("tls.") and r.get("request_id") not in before:
                    return r
            return None
        recs = self.wait_rids(path, rids)
        hs = wait_until(tls_rec)
        self.assertIsNotNone(hs, "no tls.* record for the refused handshake")
        self.assertEqual(hs.get("reason"), "tls.cert_revoked", hs)
        self.assertEqual(hs.get("decision"), "deny", hs)
        self.assertEqual((hs.get("tls") or {}).get("cert_sha256"), revoked_fp, hs)
        self.assertIn("revoked-sandbox", (hs.get("tls") or {}).get("subject", ""), hs)

        # Exactly N+1 new access records: one per request, one for the handshake.
        new = [r for r in access_records(all_records(path)) if r.get("request_id") not in before]
        self.assertEqual(len(new), len(sent) + 1, [(r.get("request_id"), r.get("reason")) for r in new])
        self.assertEqual(sorted(r.get("request_id") for r in new), sorted(rids + [hs.get("request_id")]))
        by_rid = {r["request_id"]: r for r in recs}
        for label, resp in sent:
            rec = by_rid[resp.header("X-Request-ID")]
            self.assertEqual(rec.get("status"), resp.status, (label, rec))
            if resp.status == 200:
                self.assertEqual(rec.get("decision"), "allow", (label, rec))
            else:
                self.assertEqual(rec.get("decision"), "deny", (label, rec))
                self.assertEqual(rec.get("code"), resp.json()["erreur"]["code"], (label, rec))

        # A checkpoint covering them (checkpoint_s 1).
        head = max(r["seq"] for r in new)

        def cp():
            return [r for r in all_records(path) if r.get("type") == "checkpoint" and r.get("head_seq", 0) >= head]
        cps = wait_until(cp)
        self.assertTrue(cps, "no checkpoint after seq %d within %.0f s" % (head, WAIT))
        seqs = {r["seq"]: r for r in all_records(path)}
        c = cps[0]
        self.assertEqual(c.get("head_hash"), seqs[c["head_seq"]]["hash"], c)
        self.assertEqual(c.get("kid"), harness.TOKEN_KID, c)
        self.assertEqual(len(c.get("sig", "").split(".")), 3, c)

        # The Python check of the whole file, then the CLI.
        chain = self.assertChain([path])
        out = self.assertVerifies(st, path, records=len(chain), nfiles=1)
        self.assertIn("info: chain starts at seq 1 (genesis)", out)
        m = re.search(r"^info: head seq=(\d+) hash=([0-9a-f]{64})$", out, re.M)
        self.assertIsNotNone(m, out)
        self.assertEqual((int(m.group(1)), m.group(2)), (chain[-1]["seq"], chain[-1]["hash"]), out)
        # and the head the stderr checkpoint line anchors is accepted as expected head
        anchors = re.findall(r"checkpoint seq=(\d+) hash=([0-9a-f]{64})", st.gateway_stderr())
        self.assertTrue(anchors, st.gateway_stderr())
        rc, out2, err2 = verify_cli(st, path, expect_head="%s:%s" % anchors[-1])
        self.assertEqual(rc, 0, out2 + err2)
        self.assertIn("info: expected record seq %s found" % anchors[-1][0], out2)

    # -- 2: tampering, on copies

    def _copy_lines(self):
        """The journal's lines (at least 8 access records, flushed), a copy
        directory, and the indexes (0-based) of access records not first."""
        st = self.stack
        rids = []
        for _ in range(8):
            r = st.request(GUARDED)
            self.assertEqual(r.status, 200, r)
            rids.append(r.header("X-Request-ID"))
        self.wait_rids(st.journal_path, rids)
        lines = raw_lines(st.journal_path)
        mine = {rid.encode() for rid in rids}
        idx = [i for i, ln in enumerate(lines)
               if 0 < i < len(lines) - 1 and parse_chained(ln) and b'"status":200' in ln
               and any(b'"request_id":"%s"' % rid in ln for rid in mine)]
        self.assertGreaterEqual(len(idx), 6)
        return lines, make_tmpdir("tamper"), idx

    def _verify_copy(self, d, name, lines):
        path = os.path.join(d, name, "access.jsonl")
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(b"".join(ln + b"\n" for ln in lines))
        rc, out, err = verify_cli(self.stack, path)
        return path, rc, out + err

    def assertReported(self, path, rc, out, line, kind):
        self.assertEqual(rc, 1, "tampering (%s at line %d) not detected:\n%s" % (kind, line, out))
        self.assertRegex(out, re.compile(r"^%s:%d: %s: " % (re.escape(path), line, kind), re.M))
        self.assertEqual(out.strip().splitlines()[-1], "FAIL: %s:%d: %s" % (path, line, kind), out)

    def test_tampered_copies_detected(self):
        lines, d, idx = self._copy_lines()
        k = idx[len(idx) // 2]          # 0-based index of an allowed request's record, mid-journal

        # control: the untampered copy verifies
        path, rc, out = self._verify_copy(d, "intact", lines)
        self.assertEqual(rc, 0, out)

        # a modified field (hash left as it was)
        mod = list(lines)
        self.assertIn(b'"status":200', mod[k])
        mod[k] = mod[k].replace(b'"status":200', b'"status":403', 1)
        path, rc, out = self._verify_copy(d, "modified", mod)
        self.assertReported(path, rc, out, k + 1, "modified")

        # a deleted line: reported at the record after the gap
        dele = lines[:k] + lines[k + 1:]
        path, rc, out = self._verify_copy(d, "deleted", dele)
        self.assertReported(path, rc, out, k + 1, "deleted")

        # an inserted line: a forged record with a recomputed hash, linked to the
        # record before it and claiming the next seq
        prev = json.loads(lines[k - 1])
        forged_src = lines[k].replace(b'"status":200', b'"status":201', 1)
        forged = rechain(forged_src, prev["seq"] + 1, prev["hash"])
        self.assertIsNotNone(parse_chained(forged))
        ins = lines[:k] + [forged] + lines[k:]
        path, rc, out = self._verify_copy(d, "inserted", ins)
        self.assertReported(path, rc, out, k + 1, "inserted")

        # two lines swapped
        sw = list(lines)
        sw[k], sw[k + 1] = sw[k + 1], sw[k]
        path, rc, out = self._verify_copy(d, "swapped", sw)
        self.assertReported(path, rc, out, k + 1, "reordered")


# --------------------------------------------------------------------------
# 3: rotation (SIGUSR1 after a logrotate rename, and rotate_bytes)


class TestRotation(JournalCase):

    def _reopen(self, st, new_name):
        """Requests, rename the journal to <new_name>, SIGUSR1, requests:
        returns (rids before, rids after, rotated path)."""
        path = st.journal_path
        before = []
        for _ in range(3):
            r = self.guarded(st)
            self.assertEqual(r.status, 200, r)
            before.append(r.header("X-Request-ID"))
        self.wait_rids(path, before)
        rotated = os.path.join(os.path.dirname(path), new_name)
        os.rename(path, rotated)
        st.gw.send_signal(signal.SIGUSR1)
        after = []
        for _ in range(3):
            r = self.guarded(st)
            self.assertEqual(r.status, 200, r)
            after.append(r.header("X-Request-ID"))
        self.assertTrue(wait_until(lambda: os.path.exists(path)), "no new file at %s after SIGUSR1" % path)

        def has_all():
            return set(after) <= {r.get("request_id") for _, _, r in records_of([rotated, path])}
        self.assertTrue(wait_until(has_all), "records after SIGUSR1 never written")
        self.assertIsNone(st.gw.poll(), "gateway died on SIGUSR1")
        old = [r for _, _, r in records_of([rotated])]
        new = [r for _, _, r in records_of([path])]
        self.assertTrue(set(before) <= {r.get("request_id") for r in old}, "records before the rename moved")
        self.assertFalse(set(before) & {r.get("request_id") for r in new}, "records duplicated in the new file")
        self.assertTrue(set(after) <= {r.get("request_id") for r in new}, "records after SIGUSR1 not in the new file")
        self.assertFalse(set(after) & {r.get("request_id") for r in old}, "records after SIGUSR1 in the old file")
        first = new[0]
        self.assertEqual((first.get("type"), first.get("reason"), first.get("from")),
                         ("rotate", "reopen", new_name), first)
        self.assertEqual(first.get("prev"), old[-1]["hash"], "the new file does not continue the old one")
        self.assertChain([rotated, path])
        return before, after, rotated

    def test_sigusr1_dateext_rename_chain_continues(self):
        # logrotate with `dateext` and `dateformat .%Y%m%dT%H%M%SZ`: the
        # gateway's own rotated-file name, which the CLI expands from PATH.
        st = self.new_stack("reopen-stamp", checkpoint_s=1, rotate_daily=False)
        name = os.path.basename(st.journal_path) + "." + stamp_of(time.time() - 3600)
        _, _, rotated = self._reopen(st, name)
        wait_until(lambda: any(r.get("type") == "checkpoint" for _, _, r in records_of([st.journal_path])))
        # counted and verified at rest: a running gateway (checkpoint_s 1)
        # may add a record between the count and the verifier's read
        self.assertEqual(st.stop_gateway(), 0, st.gateway_stderr())
        n = len(records_of([rotated, st.journal_path]))
        self.assertVerifies(st, st.journal_path, records=n, nfiles=2)

    def test_sigusr1_logrotate_default_rename_chain_continues(self):
        # logrotate's default: PATH -> PATH.1, then SIGUSR1 (postrotate).
        # Fails at commit beac74c (issue 6 report): gw_journal_sort_files()
        # puts a name that is not PATH.<stamp> after PATH ("PATH" < "PATH.1"),
        # so the two files given in chain order are verified in the wrong one
        # and reported "reordered" (exit 1) although the chain is intact.
        st = self.new_stack("reopen-dot1", checkpoint_s=1, rotate_daily=False)
        _, _, rotated = self._reopen(st, os.path.basename(st.journal_path) + ".1")
        wait_until(lambda: any(r.get("type") == "checkpoint" for _, _, r in records_of([st.journal_path])))
        # at rest (see the dateext case: ASan and TSan rounds counted one
        # record fewer than the verifier read)
        self.assertEqual(st.stop_gateway(), 0, st.gateway_stderr())
        n = len(records_of([rotated, st.journal_path]))
        # The two files, given explicitly in chain order (old, then current).
        rc, out, err = verify_cli(st, rotated, st.journal_path)
        self.assertEqual(rc, 0, "--verify-journal %s %s (chain order): exit %d\n%s%s"
                         % (rotated, st.journal_path, rc, out, err))
        self.assertIn("OK: %d records in 2 files, chain intact" % n, out)

    def test_rotate_bytes_files_verify_together(self):
        limit = 4000
        st = self.new_stack("rotate-bytes", checkpoint_s=1, rotate_bytes=limit, rotate_daily=False)
        path = st.journal_path
        rids = []
        for i in range(14):
            r = self.guarded(st) if i % 3 else st.request("/opale/v1/nope")
            self.assertIn(r.status, (200, 404), r)
            rids.append(r.header("X-Request-ID"))
        self.wait_rids(path, rids)
        rot = rotated_files(path)
        self.assertGreaterEqual(len(rot), 2, "rotate_bytes %d: rotated files %r" % (limit, os.listdir(os.path.dirname(path))))
        longest = max(len(ln) + 1 for f in rot for ln in raw_lines(f))
        for f in rot:
            self.assertRegex(os.path.basename(f), r"^access\.jsonl\.\d{8}T\d{6}Z(-\d+)?$")
            self.assertLessEqual(os.path.getsize(f), limit + longest, "%s beyond rotate_bytes + one record" % f)
        files = journal_files(path)
        for older, newer in zip(files, files[1:]):
            first = records_of([newer])[0][2]
            self.assertEqual((first.get("type"), first.get("reason"), first.get("from")),
                             ("rotate", "size", os.path.basename(older)), (newer, first))
        chain = self.assertChain(files)
        got = [r.get("request_id") for r in access_records(chain)]
        for rid in rids:
            self.assertEqual(got.count(rid), 1, rid)
        wait_until(lambda: any(r.get("type") == "checkpoint" and r.get("head_seq", 0) >= max(
            x["seq"] for x in chain if x.get("request_id") in rids) for r in all_records(path)))
        self.assertGreaterEqual(metrics(st)['opale_journal_events_total{event="rotation"}'], len(rot))
        # counted and verified at rest: a running gateway (checkpoint_s 1) may
        # add a record (a checkpoint, or the rotation a checkpoint causes)
        # between the count and the verifier's read
        self.assertEqual(st.stop_gateway(), 0, st.gateway_stderr())
        files = journal_files(path)
        n = len(self.assertChain(files))
        self.assertVerifies(st, path, records=n, nfiles=len(files))
        # the same files named one by one, in any order: the CLI sorts them
        self.assertVerifies(st, *reversed(files), records=n, nfiles=len(files))


# --------------------------------------------------------------------------
# 4: retention


class TestRetention(JournalCase):

    def test_old_rotated_file_deleted_and_recorded(self):
        st = self.new_stack("retention", checkpoint_s=1, rotate_bytes=3000, rotate_daily=False,
                            retention_days=365)
        path = st.journal_path
        rids = [self.guarded(st).header("X-Request-ID") for _ in range(8)]
        self.wait_rids(path, rids)
        self.assertEqual(st.stop_gateway(), 0, st.gateway_stderr())
        rot = rotated_files(path)
        self.assertGreaterEqual(len(rot), 2, os.listdir(os.path.dirname(path)))
        # The oldest rotated file becomes 400 days old (a valid chained file).
        oldest = rot[0]
        old_recs = [r for _, _, r in records_of([oldest])]
        self.assertTrue(old_recs)
        old_name = os.path.basename(path) + "." + stamp_of(time.time() - 400 * 86400)
        old_path = os.path.join(os.path.dirname(path), old_name)
        os.rename(oldest, old_path)
        self.assertEqual(rotated_files(path)[0], old_path)
        kept = rotated_files(path)[1:]
        n_before = len(all_records(path))
        # Restart in a later second than the newest rotation: a size rotation at
        # start-up in the same second would take the name just freed above
        # (PATH.<stamp>, before PATH.<stamp>-1 in name order; see the report).
        newest = max(calendar.timegm(time.strptime(STAMP_RE.match(f).group("stamp"), "%Y%m%dT%H%M%SZ"))
                     for f in kept)
        wait_until(lambda: time.time() >= newest + 1, timeout=2)

        st.start_gateway()

        def ret():
            for r in all_records(path):
                if r.get("type") == "retention":
                    return r
            return None
        rec = wait_until(ret)
        self.assertIsNotNone(rec, "no retention record within %.0f s; stderr:\n%s" % (WAIT, st.gateway_stderr()))
        self.assertFalse(os.path.exists(old_path), "%s (400 days old) not deleted" % old_path)
        for f in kept:
            self.assertTrue(os.path.exists(f), "%s (younger than retention) deleted" % f)
        self.assertEqual(rec.get("deleted"), old_name, rec)
        self.assertEqual(rec.get("first_seq"), old_recs[0]["seq"], rec)
        self.assertEqual(rec.get("last_seq"), old_recs[-1]["seq"], rec)
        self.assertEqual(rec.get("last_hash"), old_recs[-1]["hash"], rec)
        self.assertGreater(rec["seq"], n_before, "the retention record is not new")
        self.assertEqual(len([r for r in all_records(path) if r.get("type") == "retention"]), 1)
        self.assertEqual(metrics(st)['opale_journal_events_total{event="retention_delete"}'], 1)
        # The service runs, and the retained chain verifies from the deletion on.
        r = self.guarded(st)
        self.assertEqual(r.status, 200, r)
        self.wait_rids(path, [r.header("X-Request-ID")])
        # at rest (the checkpoint covering that request may come at any time)
        self.assertEqual(st.stop_gateway(), 0, st.gateway_stderr())
        files = journal_files(path)
        n = len(self.assertChain(files, genesis=False))
        self.assertEqual(records_of(files)[0][2]["prev"], old_recs[-1]["hash"])
        out = self.assertVerifies(st, path, records=n, nfiles=len(files))
        self.assertIn("info: chain starts at seq %d after the records deleted by retention" % (old_recs[-1]["seq"] + 1),
                      out)


# --------------------------------------------------------------------------
# 5, 6: disk full


class DiskFullCase(JournalCase):
    on_failure = None

    def setUp(self):
        require_binaries()
        st = Stack(self.id().rsplit(".", 1)[-1][:40],
                   conf_hook=conf_journal(checkpoint_s=1, rotate_daily=False, on_failure=self.on_failure))
        self.jdir = os.path.join(st.dir, "journal")
        try:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0750", "tmpfs", self.jdir],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=10)
            why = None if r.returncode == 0 else "mount -t tmpfs exited %d: %s" % (
                r.returncode, r.stdout.decode(errors="replace").strip())
        except OSError as e:  # no mount command
            why = "mount: %s" % e
        if why is not None:
            st.stop()
            self.skipTest("cannot mount a 256 KiB tmpfs for the disk-full test (needs root or "
                          "CAP_SYS_ADMIN): " + why)
        self.addCleanup(self._umount)   # runs after st.stop (cleanups are LIFO)
        self.addCleanup(st.stop)
        st.start()
        self.st = st
        st.token("client-commune")
        r = self.guarded(st)
        self.assertEqual(r.status, 200, r)
        self.wait_rids(st.journal_path, [r.header("X-Request-ID")])
        self.assertNotEqual(os.stat(self.jdir).st_dev, os.stat(st.dir).st_dev, "journal not on the tmpfs")

    def _umount(self):
        r = subprocess.run(["umount", self.jdir], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", self.jdir], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10)

    def readyz(self):
        return self.st.admin_call("GET", "/readyz")


class TestDiskFullDeny(DiskFullCase):
    on_failure = "deny"

    def test_disk_full_refuses_then_resumes(self):
        st = self.st
        filler = fill_fs(self.jdir)
        # The gateway reads the free space (at most every 50 ms): with less
        # than a record's reservation left it is not ready. Refusals (no
        # token: 401) meanwhile are counted for a summary record, not written
        # into the room the reservations need (docs/journal.md, "No exchange
        # without a record").
        probes = []

        def probe_failed():
            r = st.request(GUARDED, token=None)
            self.assertEqual(r.status, 401, r)
            probes.append(r.header("X-Request-ID"))
            return self.readyz()[0] == 503
        self.assertTrue(wait_until(probe_failed, step=0.2),
                        "/readyz still ready with the journal's filesystem full; stderr:\n" + st.gateway_stderr())
        status, body = self.readyz()
        self.assertEqual(status, 503, body)
        self.assertIs(body.get("ready"), False, body)

        stats0 = st.mock_stats()
        refused = []
        for target in (GUARDED, "/opale/v1/entreprises/%s/declarations?annee=2024" % SIREN, "/opale/v1/etatSante",
                       GUARDED):
            r = st.request(target)
            self.assertEqual(r.status, 503, (target, r))
            err = r.json()["erreur"]
            self.assertEqual(err.get("code"), "910240", r)
            refused.append(r.header("X-Request-ID"))
        stats1 = st.mock_stats()
        self.assertEqual(stats1["requests"], stats0["requests"], "a request reached the mock: %r" % stats1)
        self.assertEqual(stats1["assertion_refused"], stats0["assertion_refused"], stats1)
        self.assertEqual(self.readyz()[0], 503)
        # a request's counters are updated once its response is on the wire:
        # the last one may still be on its way into them (seen under TSan)
        key = 'opale_denials_total{reason="journal.unavailable",code="910240"}'
        m = {}

        def counted():
            m.clear()
            m.update(metrics(st))
            return m.get(key, 0) >= len(refused)

        wait_until(counted)
        self.assertEqual(m[HEALTHY], 0, m)
        self.assertGreaterEqual(m[key], len(refused), m)

        # Space returns: service resumes within a bounded time.
        os.unlink(filler)
        resumed = []

        def served():
            r = st.request(GUARDED)
            resumed.append(r)
            return r.status == 200
        self.assertTrue(wait_until(served, timeout=10, step=0.2),
                        "not served 10 s after space returned: %r" % resumed[-1:])
        for r in resumed[:-1]:
            self.assertEqual((r.status, r.json()["erreur"]["code"]), (503, "910240"), r)
        self.assertEqual(st.mock_stats()["requests"], stats1["requests"] + 1)
        self.assertEqual(wait_until(lambda: self.readyz()[0] == 200), True, self.readyz())
        ok_rid = resumed[-1].header("X-Request-ID")
        rec = self.wait_rids(st.journal_path, [ok_rid])[0]
        self.assertEqual((rec.get("status"), rec.get("decision")), (200, "allow"), rec)

        # The refusals not written while the disk was full are counted in a
        # summary record written once space returned; nothing was dropped,
        # and the access journal never hit ENOSPC.
        written = {r.get("request_id") for r in all_records(st.journal_path)}
        unwritten = [rid for rid in probes + refused if rid not in written]
        self.assertTrue(unwritten, "every refusal written, yet the disk was full?")
        summaries = wait_until(lambda: [r for r in all_records(st.journal_path)
                                        if r.get("type") == "summary"])
        self.assertTrue(summaries, "no summary record after space returned")
        self.assertEqual(sum(r["unwritten"] for r in summaries), len(unwritten), summaries)
        reasons = {}
        for r in summaries:
            for k, v in r["reasons"].items():
                reasons[k] = reasons.get(k, 0) + v
        self.assertEqual(sum(reasons.values()), len(unwritten), reasons)
        self.assertTrue(set(reasons) <= {"bearer.missing", "journal.unavailable"}, reasons)
        m = metrics(st)
        self.assertEqual(m[DROPPED], 0, m)
        self.assertEqual(m[HEALTHY], 1, m)
        self.assertNotIn("journal %s: write failed" % st.journal_path, st.gateway_stderr())
        wait_until(lambda: all_records(st.journal_path)[-1].get("type") == "checkpoint")
        chain = self.assertChain([st.journal_path])
        self.assertVerifies(st, st.journal_path, records=len(chain), nfiles=1)


class TestDiskFullContinue(DiskFullCase):
    on_failure = "continue"

    def test_disk_full_served_and_loss_counted(self):
        st = self.st
        filler = fill_fs(self.jdir)
        stats0 = st.mock_stats()
        answered = []

        def lost_counted():
            r = st.request(GUARDED)
            self.assertEqual(r.status, 200, "on_failure continue must serve: %r" % r)
            answered.append(r.header("X-Request-ID"))
            return metrics(st)[DROPPED] >= 1
        self.assertTrue(wait_until(lost_counted, step=0.2), "no dropped record counted with the disk full")
        for _ in range(3):
            r = st.request(GUARDED)
            self.assertEqual(r.status, 200, r)
            answered.append(r.header("X-Request-ID"))
        self.assertEqual(st.mock_stats()["requests"], stats0["requests"] + len(answered))
        status, body = self.readyz()
        self.assertEqual(status, 200, body)  # "continue": the operator chose to keep serving
        m = metrics(st)
        self.assertEqual(m[HEALTHY], 0, m)
        self.assertEqual(m.get('opale_denials_total{reason="journal.unavailable",code="910240"}', 0), 0, m)

        os.unlink(filler)
        r = st.request(GUARDED)
        self.assertEqual(r.status, 200, r)
        answered.append(r.header("X-Request-ID"))
        self.wait_rids(st.journal_path, [answered[-1]])
        written = {x.get("request_id") for x in all_records(st.journal_path)}
        lost = [rid for rid in answered if rid not in written]
        self.assertTrue(lost, "every record written although the disk was full?")
        m = metrics(st)
        self.assertGreaterEqual(m[DROPPED], len(lost), m)
        self.assertEqual(wait_until(lambda: metrics(st)[HEALTHY] == 1), True)
        self.assertIn("write failed: No space left on device", st.gateway_stderr())
        # The loss is in the journal too: a gap record counts the records
        # lost on write errors, and the verifier reports it (status 3).
        gaps = wait_until(lambda: [r for r in all_records(st.journal_path) if r.get("type") == "gap"])
        self.assertTrue(gaps, "no gap record after the write errors")
        self.assertEqual({g["reason"] for g in gaps}, {"write_error"}, gaps)
        self.assertGreaterEqual(sum(g["lost"] for g in gaps), len(lost), gaps)
        wait_until(lambda: all_records(st.journal_path)[-1].get("type") == "checkpoint")
        chain = self.assertChain([st.journal_path], allow_torn=True)
        rc, out, err = verify_cli(st, st.journal_path)
        self.assertEqual(rc, 3, out + err)
        self.assertRegex(out, r"(?m)^gap: .*: seq \d+: \d+ records lost \(write_error\)$")
        self.assertRegex(out.strip().splitlines()[-1],
                         r"^LOSS: %d records in 1 file, chain intact, \d+ gap records?: up to \d+ records lost$"
                         % len(chain))


# --------------------------------------------------------------------------
# 7: SIGTERM under load


class TestSigtermUnderLoad(JournalCase):

    def test_sigterm_under_load_loses_no_record(self):
        st = self.new_stack("sigterm-load", checkpoint_s=1, rotate_daily=False)
        token = st.token("client-commune")
        st.mock_config(latency_ms=30)
        answered = []            # (request_id, status, after SIGTERM)
        lock = threading.Lock()
        term = threading.Event()
        stop = threading.Event()
        errors = []
        deadline = time.monotonic() + 20

        def client(n):
            targets = [GUARDED, "/opale/v1/etatSante", "/opale/v1/nope"]
            i = 0
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    s = st.tls_connect("client-commune", timeout=3)
                except (OSError, ssl.SSLError) as e:
                    if term.is_set():
                        return
                    errors.append(repr(e))
                    time.sleep(0.05)
                    continue
                try:
                    for _ in range(10):
                        i += 1
                        send_raw(s, st.build_request(targets[(i + n) % 3], token=token))
                        r = read_response(s, timeout=3)
                        with lock:
                            answered.append((r.header("X-Request-ID"), r.status, term.is_set()))
                        if (r.header("Connection") or "").lower() == "close":
                            break
                except (PeerClosed, OSError, ssl.SSLError, ValueError):
                    pass
                finally:
                    s.close()

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(8)]
        for t in threads:
            t.start()
        self.assertTrue(wait_until(lambda: len(answered) >= 150, timeout=10), "load too low: %d" % len(answered))
        st.gw.send_signal(signal.SIGTERM)
        term.set()
        try:
            rc = st.gw.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.fail("gateway still running 15 s after SIGTERM; stderr:\n" + st.gateway_stderr())
        stop.set()
        for t in threads:
            t.join(timeout=10)
            self.assertFalse(t.is_alive(), "client thread stuck")
        self.assertEqual(rc, 0, st.gateway_stderr())
        self.assertFalse(errors, errors[:5])
        # Requests were in flight (upstream latency 30 ms) when SIGTERM came:
        # the drain answered some of them.
        self.assertGreaterEqual(sum(1 for a in answered if a[2]), 1, "no request answered after SIGTERM")

        recs = all_records(st.journal_path)
        count = {}
        for r in recs:
            if "request_id" in r:
                count[r["request_id"]] = count.get(r["request_id"], 0) + 1
        self.assertEqual(len(set(a[0] for a in answered)), len(answered), "duplicate X-Request-ID")
        missing = [a for a in answered if count.get(a[0], 0) == 0]
        twice = [a for a in answered if count.get(a[0], 0) > 1]
        self.assertFalse(missing, "%d of %d answered requests have no record: %r"
                         % (len(missing), len(answered), missing[:5]))
        self.assertFalse(twice, twice[:5])
        by_rid = {r["request_id"]: r for r in recs if "request_id" in r}
        for rid, status, _ in answered:
            self.assertEqual(by_rid[rid].get("status"), status, by_rid[rid])
        self.assertGreaterEqual(len(access_records(recs)), len(answered))
        # closed cleanly: the last record is the closing checkpoint over the head
        chain = self.assertChain([st.journal_path])
        self.assertEqual(chain[-1].get("type"), "checkpoint", chain[-1])
        self.assertEqual(chain[-1].get("head_seq"), chain[-2]["seq"], chain[-1])
        self.assertRegex(st.gateway_stderr(), r"flushing journal")
        self.assertVerifies(st, st.journal_path, records=len(chain), nfiles=1)
        self.assertNotIn("records after the last checkpoint", verify_cli(st, st.journal_path)[1])


if __name__ == "__main__":
    unittest.main()


# --------------------------------------------------------------------------
# Security events: the second chained stream and the alert hook


class TestSecurityEvents(JournalCase):

    def test_enumeration_raises_one_event_and_the_hook_runs(self):
        require_binaries()
        hook_out = os.path.join(make_tmpdir("events-hook"), "hook.log")
        hook = os.path.join(os.path.dirname(hook_out), "hook.sh")
        with open(hook, "w") as f:
            f.write("#!/bin/sh\necho \"$1 $2 $OPALE_EVENT\" >> %s\n" % hook_out)
        os.chmod(hook, 0o755)
        events = {"enumeration": {"distinct_sirens": 3, "window_s": 300},
                  "alert": {"command": hook, "min_severity": "medium", "max_per_minute": 10}}
        st = Stack("events", conf_hook=conf_journal(checkpoint_s=1, events=events))
        self.addCleanup(st.stop)
        st.start()
        events_path = os.path.join(os.path.dirname(st.journal_path), "events.jsonl")
        sirens = ["732829320", "404833048", "356000000", "552100554"]
        for s in sirens:
            r = st.request("/opale/v1/entreprises/%s/comptes-bancaires" % s)
            self.assertIn(r.status, (200, 403, 404), r.status)

        def enum_events():
            if not os.path.exists(events_path):
                return []
            out = []
            for line in raw_lines(events_path):
                p = parse_chained(line)
                if p and p[0].get("event") == "siren.enumeration":
                    out.append(p[0])
            return out
        self.assertTrue(wait_until(lambda: len(enum_events()) >= 1, WAIT),
                        "no siren.enumeration event in %s" % events_path)
        time.sleep(0.5)
        evs = enum_events()
        # four distinct SIRENs over a threshold of three: one event per window
        self.assertEqual(len(evs), 1, evs)
        self.assertEqual(evs[0].get("type"), "security_event")
        self.assertIn(evs[0].get("severity"), ("medium", "high", "critical"))
        def hook_ran():
            if not os.path.exists(hook_out):
                return False
            with open(hook_out) as f:
                return "siren.enumeration" in f.read()
        self.assertTrue(wait_until(hook_ran, WAIT), "the alert hook did not run")
        # the stream is chained like the access journal and verifies
        time.sleep(1.5)
        self.assertChain([events_path])
        rc, out, err = verify_cli(st, events_path)
        self.assertEqual(rc, 0, out + err)

#!/usr/bin/env python3
"""The ports the harness hands to the services it starts.

A CI run failed when two services of one test got the same port: the old
free_port bound port 0, read the port and closed, so the port was free again
for the next call before the first service bound it. These tests pin the
allocator's contract: no port twice in a process, none held by another test
process, none from the kernel's ephemeral range (where outgoing connections
and bind(port 0) take theirs), and each one actually bindable."""

import fcntl
import json
import os
import socket
import subprocess
import sys
import unittest

import harness

N = 300


def ephemeral_low():
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        return int(f.read().split()[0])


class Ports(unittest.TestCase):

    def test_distinct_in_range_and_bindable(self):
        low, high = harness.port_range()
        self.assertLessEqual(high, ephemeral_low())
        ports = [harness.free_port() for _ in range(N)]
        self.assertEqual(len(set(ports)), N, "a port was handed out twice")
        for p in ports:
            self.assertTrue(low <= p < high, p)
        # Every port given is usable by a service that binds with SO_REUSEADDR,
        # as the gateway, the mock and redis-server do.
        for p in ports[:20]:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", p))
                s.listen(1)

    def test_not_given_to_another_process_while_held(self):
        mine = {harness.free_port() for _ in range(N)}
        code = ("import json, harness\n"
                "print(json.dumps([harness.free_port() for _ in range(%d)]))\n" % N)
        r = subprocess.run([sys.executable, "-c", code], cwd=harness.HERE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, env=dict(os.environ))
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        theirs = set(json.loads(r.stdout.decode()))
        self.assertEqual(len(theirs), N)
        # 300 draws each from the same 10,000 ports would meet about 9 times
        # without the reservation.
        self.assertEqual(mine & theirs, set(), "ports held here were given to another process")

    def test_released_when_the_process_exits(self):
        code = ("import json, harness\n"
                "print(json.dumps([harness.free_port() for _ in range(50)]))\n")
        r = subprocess.run([sys.executable, "-c", code], cwd=harness.HERE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, env=dict(os.environ))
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        for p in json.loads(r.stdout.decode()):
            fd = os.open(os.path.join(harness.PORT_LOCK_DIR, str(p)), os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


if __name__ == "__main__":
    unittest.main()

"""TLS upstreams: the gateway verifies the backend's certificate against the
configured CA and name, presents its own client certificate (upstream mTLS),
and refuses (502) a backend it cannot authenticate, forwarding nothing."""

import os
import socket
import ssl
import unittest

import harness
from harness import ScriptedUpstream, Stack, require_binaries

OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"
      b"Connection: close\r\n\r\n{\"tls\":true}")


class TLSUpstream(ScriptedUpstream):
    """ScriptedUpstream speaking TLS with <cert>/<key>, requiring a client
    certificate from <client_ca>; records the client certificate's CN."""

    def __init__(self, cert, key, client_ca):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.load_cert_chain(cert, key)
        self.ctx.load_verify_locations(client_ca)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.peers = []
        self.handshake_errors = 0
        super().__init__(lambda head: OK)

    def _serve(self, c):
        c.settimeout(harness.DEFAULT_TIMEOUT)
        try:
            s = self.ctx.wrap_socket(c, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshake_errors += 1
            c.close()
            return
        cert = s.getpeercert() or {}
        cn = [v for rdn in cert.get("subject", ()) for (k, v) in rdn if k == "commonName"]
        self.peers.append(cn[0] if cn else None)
        super()._serve(s)


def upstream_tls(server_name="localhost", ca="pki/ca.crt"):
    def hook(conf, stack):
        for u in conf["upstreams"]:
            u["tls"] = {"ca": ca, "cert": "pki/client-commune.crt",
                        "key": "pki/client-commune.key", "server_name": server_name}
    return hook


class TestUpstreamTLS(unittest.TestCase):

    def start(self, upstream, **kw):
        require_binaries()
        st = Stack(self.id().rsplit(".", 1)[-1][:30], conf_hook=upstream_tls(**kw),
                   upstream_servers=["127.0.0.1:%d" % upstream.port])
        self.addCleanup(st.stop)
        st.start()
        return st

    def new_upstream(self, cert="server-ecdsa"):
        pki = harness.pki_dir()
        up = TLSUpstream(os.path.join(pki, cert + ".crt"), os.path.join(pki, cert + ".key"),
                         os.path.join(pki, "ca.crt"))
        self.addCleanup(up.stop)
        return up

    def test_verified_backend_with_upstream_mtls(self):
        up = self.new_upstream()
        st = self.start(up)
        r = st.request("/opale/v1/etatSante")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.body, b'{"tls":true}')
        self.assertEqual(up.peers, ["commune-exemple-sandbox"])
        self.assertEqual(len(up.requests), 1)
        self.assertIn("X-JWT-Assertion: ", up.requests[0])
        self.assertIn("\r\nHost: localhost\r\n", up.requests[0])

    def test_backend_name_mismatch_refused(self):
        up = self.new_upstream()
        st = self.start(up, server_name="opale.internal")
        r = st.request("/opale/v1/etatSante")
        self.assertEqual(r.status, 502, r.body)
        self.assertIn(b'"910502"', r.body)
        self.assertEqual(up.requests, [])

    def test_backend_of_another_ca_refused(self):
        up = self.new_upstream(cert="server-ecdsa")
        # the gateway trusts only the unknown CA: the backend cannot be verified
        st = self.start(up, ca="pki/unknown-ca.crt")
        r = st.request("/opale/v1/etatSante")
        self.assertEqual(r.status, 502, r.body)
        self.assertIn(b'"910502"', r.body)
        self.assertEqual(up.requests, [])


if __name__ == "__main__":
    unittest.main()

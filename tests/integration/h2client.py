"""A small HTTP/2 client for the tests, on Debian's python3-h2 over a real
mTLS socket (the test PKI's client certificate, ALPN "h2"). It can send
what a well-behaved client sends and, with validation off, what a hostile
one sends: raw frames, malformed fields, floods.

Every read is bounded in time (a deadline) and in size."""

import socket
import struct
import sys
import time

try:
    import h2  # noqa: F401
except ImportError:
    # a python3 other than Debian's (pyenv, venv) in front of it on PATH:
    # Debian's python3-h2 (pure Python) is still usable, looked up last
    sys.path.append("/usr/lib/python3/dist-packages")
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

import harness

# frame types and flags (RFC 9113 6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
# error codes
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0, 1, 3, 7, 8, 11


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream_id) + payload


class Closed(Exception):
    pass


def connect(port, cert_name="client-commune", pki=None, timeout=10):
    """A TLS socket to 127.0.0.1:<port> offering only ALPN h2, handshake done."""
    ctx = harness.tls_context(pki=pki, cert_name=cert_name)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.settimeout(timeout)
    return s


def close_quietly(sock):
    try:
        sock.close()
    except OSError:
        pass


class H2Conn:
    """One HTTP/2 connection. <validate>=False lets the caller send fields
    that RFC 9113 forbids (uppercase names, connection headers, ...)."""

    def __init__(self, port, cert_name="client-commune", pki=None, timeout=10, validate=True,
                 window=None):
        self.sock = connect(port, cert_name, pki, timeout)
        self.alpn = self.sock.selected_alpn_protocol()
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                        validate_outbound_headers=validate,
                                        normalize_outbound_headers=validate,
                                        validate_inbound_headers=False)
        self.c = h2.connection.H2Connection(config=cfg)
        self.c.initiate_connection()
        if window is not None:
            self.c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.streams = {}  # id -> dict(status, headers, body, ended, reset)
        self.goaway = None  # error code of a GOAWAY received
        self.goaway_last = None
        self.closed = False
        self.server_settings = False

    def flush(self):
        data = self.c.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data):
        self.sock.sendall(data)

    def close(self):
        close_quietly(self.sock)

    def _st(self, sid):
        return self.streams.setdefault(sid, {"status": None, "headers": [], "body": b"", "ended": False,
                                             "reset": None})

    def pump(self, timeout=0.5):
        """Read what arrives within <timeout> s (at most), feed it to h2."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return
            except (ConnectionResetError, OSError):
                self.closed = True
                return
            if not data:
                self.closed = True
                return
            try:
                events = self.c.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.closed = True
                return
            for ev in events:
                self._event(ev)
            try:
                self.flush()
            except OSError:
                self.closed = True
                return

    def _event(self, ev):
        if isinstance(ev, h2.events.ResponseReceived):
            st = self._st(ev.stream_id)
            st["headers"] = [(k.decode(), v.decode("latin-1")) for k, v in ev.headers]
            st["status"] = int(dict(st["headers"])[":status"])
        elif isinstance(ev, h2.events.DataReceived):
            self._st(ev.stream_id)["body"] += ev.data
            self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self._st(ev.stream_id)["ended"] = True
        elif isinstance(ev, h2.events.StreamReset):
            self._st(ev.stream_id)["reset"] = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = int(ev.error_code)
            self.goaway_last = ev.last_stream_id
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            self.server_settings = True

    def wait(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        while not pred() and not self.closed and time.monotonic() < deadline:
            self.pump(min(0.5, max(0.01, deadline - time.monotonic())))
        return pred()

    def wait_settings(self, timeout=5):
        """Until the server's SETTINGS came and ours were acknowledged."""
        return self.wait(lambda: self.server_settings, timeout)

    def request(self, path, method="GET", headers=(), body=None, authority="localhost", end=True,
                pseudo=None):
        sid = self.c.get_next_available_stream_id()
        hdrs = pseudo if pseudo is not None else [(":method", method), (":scheme", "https"),
                                                  (":authority", authority), (":path", path)]
        hdrs = list(hdrs) + list(headers)
        if body is not None and not any(n.lower() == "content-length" for n, _ in headers) and end:
            hdrs.append(("content-length", str(len(body))))
        self.c.send_headers(sid, hdrs, end_stream=end and body is None)
        if body is not None:
            self.c.send_data(sid, body, end_stream=end)
        self.flush()
        self._st(sid)
        return sid

    def response(self, sid, timeout=10):
        """The harness.Response of stream <sid> once it ended (None when it
        did not: reset, closed, timeout)."""
        st = self._st(sid)
        self.wait(lambda: st["ended"] or st["reset"] is not None, timeout)
        if not st["ended"]:
            return None
        hdrs = [(n, v) for n, v in st["headers"] if not n.startswith(":")]
        return harness.Response("HTTP/2", st["status"], "", hdrs, st["body"])


def request_headers(stack, cert_name="client-commune", correlation_id=True, teleservice=harness.TELESERVICE,
                    token=True, extra=()):
    """The fields a partner sends (lowercase): x-correlation-id,
    id_teleservice, authorization (the certificate's token), then <extra>."""
    h = []
    if correlation_id is True:
        correlation_id = harness.new_uuid()
    if correlation_id:
        h.append(("x-correlation-id", correlation_id))
    if teleservice is not None:
        h.append(("id_teleservice", teleservice))
    if token is True:
        token = stack.default_token(cert_name)
    if token:
        h.append(("authorization", "Bearer " + token))
    return h + list(extra)

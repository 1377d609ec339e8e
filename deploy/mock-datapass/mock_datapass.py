#!/usr/bin/env python3
"""mock-datapass: a small DataPass stand-in for the tests and the sandbox
(docs/datapass.md, "The mock DataPass"). Its own code, sharing nothing with
the gateway.

Serves, over TLS, the part of DataPass's public API v1 the gateway's sync
reads (shared/reference/datapass-openapi-v1.yaml):

  POST /api/v1/oauth/token          client_credentials (form), -> Bearer token
  GET  /api/v1/habilitations        limit, offset, state, siret; Bearer needed
  GET  /api/v1/habilitations/{id}

and fires signed webhooks (X-Hub-Signature-256: sha256=<hex HMAC-SHA256>,
X-App-Environment) at the gateway. Control endpoints (loopback, no auth):

  PUT    /__control/habilitations/{id}   store a habilitation (HabilitationDetailed)
  DELETE /__control/habilitations/{id}   forget it (the API no longer returns it)
  POST   /__control/fire                 {"event", "habilitation", "environment",
                                          "deliver": true} -> the webhook's answer
  GET    /__control/stats                calls counted
"""

import argparse
import hashlib
import hmac
import http.client
import json
import os
import secrets
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, client_id, client_secret, hook_secrets, webhook_url, webhook_ca):
        self.lock = threading.Lock()
        self.habs = {}            # id -> habilitation
        self.tokens = {}          # token -> expiry
        self.client_id = client_id
        self.client_secret = client_secret
        self.hook_secrets = hook_secrets  # environment -> bytes
        self.webhook_url = webhook_url
        self.webhook_ca = webhook_ca
        self.next_event = 1000
        self.stats = {"token": 0, "token_refused": 0, "list": 0, "list_refused": 0, "fired": 0}


def load_secret(path):
    with open(path, "rb") as f:
        return f.read().rstrip(b"\r\n")


class Handler(BaseHTTPRequestHandler):
    server_version = "mock-datapass"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if not self.server.quiet:
            sys.stderr.write("mock-datapass: " + (fmt % args) + "\n")

    @property
    def st(self):
        return self.server.state

    def reply(self, status, obj):
        data = (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def error(self, status, title):
        self.reply(status, {"errors": [{"title": title, "detail": title}]})

    def authorized(self):
        h = self.headers.get("Authorization") or ""
        if not h.startswith("Bearer "):
            return False
        with self.st.lock:
            exp = self.st.tokens.get(h[7:])
        return exp is not None and exp > time.time()

    # -- API

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/api/v1/oauth/token":
            return self.token()
        if u.path == "/__control/fire":
            return self.fire()
        self.error(404, "Not found")

    def token(self):
        form = urllib.parse.parse_qs(self.body().decode(errors="replace"))
        get = lambda k: (form.get(k) or [""])[0]
        with self.st.lock:
            ok = (get("grant_type") == "client_credentials" and get("client_id") == self.st.client_id
                  and hmac.compare_digest(get("client_secret"), self.st.client_secret))
            self.st.stats["token" if ok else "token_refused"] += 1
            if not ok:
                pass
            else:
                tok = secrets.token_urlsafe(32)
                self.st.tokens[tok] = time.time() + 7200
        if not ok:
            return self.error(401, "invalid_client")
        self.reply(200, {"access_token": tok, "token_type": "Bearer", "expires_in": 7200,
                         "created_at": int(time.time())})

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/__control/stats":
            with self.st.lock:
                return self.reply(200, dict(self.st.stats))
        if u.path.startswith("/api/v1/habilitations"):
            if not self.authorized():
                with self.st.lock:
                    self.st.stats["list_refused"] += 1
                return self.error(401, "Unauthorized")
            rest = u.path[len("/api/v1/habilitations"):]
            with self.st.lock:
                self.st.stats["list"] += 1
                habs = [json.loads(json.dumps(h)) for h in self.st.habs.values()]
            if rest in ("", "/"):
                q = urllib.parse.parse_qs(u.query)
                try:
                    limit = int((q.get("limit") or ["10"])[0])
                    offset = int((q.get("offset") or ["0"])[0])
                except ValueError:
                    return self.error(400, "bad limit or offset")
                if not 1 <= limit <= 1000 or offset < 0:
                    return self.error(400, "bad limit or offset")
                states = q.get("state") or q.get("state[]")
                if states:
                    habs = [h for h in habs if h.get("state") in states]
                if q.get("siret"):
                    habs = [h for h in habs if (h.get("organization") or {}).get("siret") == q["siret"][0]]
                habs.sort(key=lambda h: (h.get("created_at") or "", h["id"]), reverse=True)
                return self.reply(200, habs[offset:offset + limit])
            try:
                hid = int(rest.strip("/"))
            except ValueError:
                return self.error(404, "Not found")
            for h in habs:
                if h["id"] == hid:
                    return self.reply(200, h)
            return self.error(404, "Not found")
        self.error(404, "Not found")

    # -- control

    def do_PUT(self):
        u = urllib.parse.urlsplit(self.path)
        if not u.path.startswith("/__control/habilitations/"):
            return self.error(404, "Not found")
        try:
            hid = int(u.path.rsplit("/", 1)[1])
            hab = json.loads(self.body())
        except ValueError:
            return self.error(400, "bad habilitation")
        hab["id"] = hid
        with self.st.lock:
            self.st.habs[hid] = hab
        self.reply(200, hab)

    def do_DELETE(self):
        u = urllib.parse.urlsplit(self.path)
        if not u.path.startswith("/__control/habilitations/"):
            return self.error(404, "Not found")
        try:
            hid = int(u.path.rsplit("/", 1)[1])
        except ValueError:
            return self.error(400, "bad id")
        with self.st.lock:
            gone = self.st.habs.pop(hid, None)
        self.reply(200 if gone else 404, {"deleted": gone is not None})

    def fire(self):
        try:
            req = json.loads(self.body())
            hid = int(req["habilitation"])
            event = str(req["event"])
        except (ValueError, KeyError, TypeError):
            return self.error(400, "need event and habilitation")
        env = req.get("environment", "sandbox")
        with self.st.lock:
            hab = self.st.habs.get(hid)
            self.st.next_event += 1
            eid = self.st.next_event
            secret = self.st.hook_secrets.get(env)
        if hab is None:
            return self.error(404, "no such habilitation")
        if secret is None or not self.st.webhook_url:
            return self.error(400, "no webhook secret for %s or no --webhook-url" % env)
        body = json.dumps({"id": eid, "event": event, "fired_at": int(time.time()),
                           "model_type": "AuthorizationRequest", "data": hab}).encode()
        if req.get("deliver", True) is False:
            # a lost webhook: DataPass thinks it sent it
            return self.reply(200, {"event_id": eid, "delivered": False})
        sig = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        u = urllib.parse.urlsplit(self.st.webhook_url)
        ctx = ssl.create_default_context(cafile=self.st.webhook_ca)
        ctx.check_hostname = False
        c = http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=10)
        try:
            c.request("POST", u.path or "/", body=body,
                      headers={"Content-Type": "application/json", "X-App-Environment": env,
                               "X-Hub-Signature-256": sig})
            r = c.getresponse()
            status, text = r.status, r.read().decode(errors="replace")
        except OSError as e:
            status, text = 0, str(e)
        finally:
            c.close()
        with self.st.lock:
            self.st.stats["fired"] += 1
        self.reply(200, {"event_id": eid, "delivered": True, "status": status, "response_body": text})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret-file", required=True)
    ap.add_argument("--secret", action="append", default=[], metavar="ENV=FILE",
                    help="the webhook secret of an environment (sandbox, staging, production)")
    ap.add_argument("--webhook-url", help="https://host:port/datapass/webhook of the gateway")
    ap.add_argument("--webhook-ca", help="CA bundle to verify the gateway's webhook listener")
    ap.add_argument("--data", help="a JSON array of habilitations to start with")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    hook = {}
    for s in a.secret:
        env, _, path = s.partition("=")
        hook[env] = load_secret(path)
    st = State(a.client_id, load_secret(a.client_secret_file).decode(), hook, a.webhook_url, a.webhook_ca)
    if a.data:
        with open(a.data) as f:
            for h in json.load(f):
                st.habs[int(h["id"])] = h
    srv = ThreadingHTTPServer((a.listen, a.port), Handler)
    srv.daemon_threads = True
    srv.state = st
    srv.quiet = a.quiet
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, a.port_file)
    sys.stderr.write("mock-datapass: listening on https://%s:%d\n" % (a.listen, port))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""The lab's web server: a tiny HTTP(S) server that says which lab host answered.

Run inside a lab namespace by ``python -m lab up`` (port 8080), and by tests for
TLS, redirects and silence. It binds by IP and never resolves names
(http.server's default ``server_bind`` calls ``getfqdn``, which would send DNS
queries out of the lab).

Paths: ``/`` (200, JSON naming the host), ``/status/CODE``, ``/redirect/N`` (a
chain of N redirects ending at ``/``), ``/redirect?to=URL`` (one 302 to URL),
``/delay?ms=N`` (answers after N ms, at most 10 s), ``/auth`` (200 only with the
Authorization header given by ``--auth``, else 401); anything else is 404.
``--silent`` accepts connections and never answers.
"""

import argparse
import json
import socket
import ssl
import time
from urllib.parse import parse_qs, urlsplit

try:  # run as a script (python lab/X.py) or imported as lab.X
    from httpbase import NoDnsHTTPServer, QuietHandler
except ImportError:
    from .httpbase import NoDnsHTTPServer, QuietHandler


class LabHandler(QuietHandler):
    server_version = "netcheck-lab/1"

    def _route(self):
        """(status, extra headers) for the request path."""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        path = parts.path
        if path in ("/", "/index.html"):
            return 200, {}
        if path.startswith("/status/") and path[8:].isdigit() and 100 <= int(path[8:]) <= 599:
            return int(path[8:]), {}
        if path.startswith("/redirect/") and path[10:].isdigit():
            left = int(path[10:])
            return 302, {"Location": "/redirect/%d" % (left - 1) if left > 0 else "/"}
        if path == "/redirect" and "to" in query:
            return 302, {"Location": query["to"][0]}
        if path == "/delay":
            time.sleep(min(int(query.get("ms", ["0"])[0]), 10000) / 1000.0)
            return 200, {}
        if path == "/auth":
            if self.server.auth and self.headers.get("Authorization") == self.server.auth:
                return 200, {}
            return 401, {"WWW-Authenticate": "Bearer"}
        return 404, {}

    # /bytes?n=N: N bytes of body, headers and body in ONE write, so that the first TCP segments are as
    # large as the path's MSS allows: behind an MTU black hole the answer never arrives (docs/path.md)
    MAX_BYTES = 1 << 20

    def _bytes(self, with_body):
        query = parse_qs(urlsplit(self.path).query)
        count = min(max(int((query.get("n") or ["0"])[0] or 0), 0), self.MAX_BYTES)
        head = ("HTTP/1.0 200 OK\r\nServer: %s\r\nContent-Type: application/octet-stream\r\n"
                "Content-Length: %d\r\nX-Lab-Host: %s\r\n\r\n" % (self.server_version, count, self.server.lab_name))
        self.close_connection = True
        self.wfile.write(head.encode() + (bytes(count) if with_body else b""))

    def _answer(self, with_body):
        if urlsplit(self.path).path == "/bytes" and (parse_qs(urlsplit(self.path).query).get("n") or [""])[0].isdigit():
            return self._bytes(with_body)
        name = self.server.lab_name
        status, extra = self._route()
        body = json.dumps({"host": name, "path": self.path, "status": status}).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Lab-Host", name)
        for header, value in extra.items():
            self.send_header(header, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._answer(True)

    def do_HEAD(self):  # noqa: N802
        self._answer(False)


class LabServer(NoDnsHTTPServer):
    tls_context = None
    auth = None

    def get_request(self):
        conn, address = self.socket.accept()
        if self.tls_context is not None:
            # no handshake here, in the accept loop: the handler's thread does it on its first read
            conn = self.tls_context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, address


def serve_silently(bind, port):
    """Accept every connection and never answer (a hung service), for a bounded hour."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind((bind, port))
    server.listen(1024)
    held = []
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        server.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            conn, _ = server.accept()
        except socket.timeout:
            break
        held.append(conn)  # keep it open, say nothing


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", default="::")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--name", required=True, help="the lab host name sent in X-Lab-Host")
    parser.add_argument("--tls-cert", help="PEM certificate (chain): serve HTTPS")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--auth", help="the Authorization header value /auth accepts")
    parser.add_argument("--silent", action="store_true", help="accept connections, never answer")
    args = parser.parse_args(argv)
    if args.silent:
        serve_silently(args.bind, args.port)
        return
    LabServer.address_family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    server = LabServer((args.bind, args.port), LabHandler)
    server.lab_name = args.name
    server.auth = args.auth
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.tls_context = context
    server.serve_forever()


if __name__ == "__main__":
    main()

"""The lab's web server: a tiny HTTP server that says which lab host answered.

Run inside a lab namespace by ``python -m lab up``. It binds by IP and never
resolves names (http.server's default ``server_bind`` calls ``getfqdn``, which
would send DNS queries out of the lab).
"""

import argparse
import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LabHandler(BaseHTTPRequestHandler):
    server_version = "netcheck-lab/1"
    protocol_version = "HTTP/1.1"

    def _answer(self, with_body):
        name = self.server.lab_name
        if self.path.split("?", 1)[0] in ("/", "/index.html"):
            status = 200
            body = json.dumps({"host": name, "path": self.path}).encode() + b"\n"
        else:
            status = 404
            body = b"not found\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if status == 200 else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Lab-Host", name)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._answer(True)

    def do_HEAD(self):  # noqa: N802
        self._answer(False)

    def address_string(self):
        return self.client_address[0]  # no reverse DNS

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.client_address[0], fmt % args))


class LabServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            # one socket for IPv4 and IPv6, as most real services do
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        # TCPServer.server_bind without HTTPServer's getfqdn()
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name = self.server_address[0]
        self.server_port = self.server_address[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", default="::")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--name", required=True, help="the lab host name sent in X-Lab-Host")
    args = parser.parse_args(argv)
    LabServer.address_family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    server = LabServer((args.bind, args.port), LabHandler)
    server.lab_name = args.name
    server.serve_forever()


if __name__ == "__main__":
    main()

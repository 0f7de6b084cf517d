"""A "what is my IP" stand-in: ``GET /`` answers the client's address as text and a newline.

The lab has no internet, so no public echo service: tests run this on the
controller's side of the lab bridge (the root namespace, bound to the controller's
lab address) and a lab host asks it which address it came from. It binds by IP
and never resolves names (http.server's default ``server_bind`` calls ``getfqdn``).

``--port 0`` takes a free port; the address served is printed on stdout as
``listening on http://ADDRESS:PORT/`` once the socket listens. Requests are logged
to stderr. Any path but ``/`` is 404.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


def client_ip(address):
    """The client's address as a person would write it (IPv4-mapped IPv6 shown as IPv4)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    return str(ip)


class EchoHandler(BaseHTTPRequestHandler):
    server_version = "netcheck-whatismyip/1"
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if urlsplit(self.path).path == "/":
            status, body = 200, (client_ip(self.client_address[0]) + "\n").encode()
        else:
            status, body = 404, b"Not Found\n"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET  # noqa: N815

    def address_string(self):
        return self.client_address[0]  # no reverse DNS

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.client_address[0], fmt % args))
        sys.stderr.flush()


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, EchoHandler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        # TCPServer.server_bind without HTTPServer's getfqdn()
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name = self.server_address[0]
        self.server_port = self.server_address[1]

    @property
    def url(self):
        host = self.server_address[0]
        return "http://%s:%d/" % ("[%s]" % host if ":" in host else host, self.server_address[1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", required=True, help="address to listen on (an IP, never a name)")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one, printed on stdout)")
    args = parser.parse_args(argv)
    try:
        ipaddress.ip_address(args.bind)
    except ValueError:
        parser.error("--bind %r: an IP address is needed (names are never resolved)" % args.bind)
    server = EchoServer((args.bind, args.port))
    print("listening on %s" % server.url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

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
from urllib.parse import urlsplit

try:  # run as a script (python lab/X.py) or imported as lab.X
    from httpbase import NoDnsHTTPServer, QuietHandler
except ImportError:
    from .httpbase import NoDnsHTTPServer, QuietHandler


def client_ip(address):
    """The client's address as a person would write it (IPv4-mapped IPv6 shown as IPv4)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    return str(ip)


class EchoHandler(QuietHandler):
    server_version = "netcheck-whatismyip/1"

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


class EchoServer(NoDnsHTTPServer):

    def __init__(self, address):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, EchoHandler)

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

"""What every lab HTTP server shares: bind by IP, never resolve a name, log plainly.

http.server's own ``HTTPServer.server_bind`` calls ``socket.getfqdn`` and its
handlers look up client names; inside a lab namespace either would send DNS
queries (LAB.md's first trap). These bases do neither.
"""

import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs client addresses, never names, to stderr."""

    protocol_version = "HTTP/1.1"

    def address_string(self):
        return self.client_address[0]  # no reverse DNS

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.client_address[0], fmt % args))
        sys.stderr.flush()


class NoDnsHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server bound by IP; ``::`` is dual stack (IPv4 and IPv6)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # tests open hundreds of connections at once

    def server_bind(self):
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        # TCPServer.server_bind without HTTPServer's getfqdn()
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name = self.server_address[0]
        self.server_port = self.server_address[1]

    def handle_error(self, request, client_address):
        sys.stderr.write("%s error: %s\n" % (client_address[0], sys.exc_info()[1]))

"""An EC2 instance metadata service (IMDSv2) stand-in for the lab.

The lab has no EC2: tests add 169.254.169.254/32 to a lab host's ``lo`` and run this
server there, inside that host's namespace, so that a module on the host talks to
"its" metadata service and nothing leaves the lab. It binds by IP and never
resolves names (http.server's default ``server_bind`` calls ``getfqdn``).

It behaves as IMDSv2 does for what the project uses:

- ``PUT /latest/api/token`` needs ``X-aws-ec2-metadata-token-ttl-seconds`` (1-21600);
  without it, or with a bad value: 400. Returns a token (random, or ``--token``).
- ``GET /latest/meta-data/<key>`` needs ``X-aws-ec2-metadata-token`` holding a token
  issued and not expired: 401 without it, as with IMDSv2 required. Keys:
  ``public-ipv4`` (404 when ``--public-ipv4`` is not given: an instance without a
  public IPv4 address), ``local-ipv4``, ``instance-id``; ``/latest/meta-data/``
  lists the keys that exist. Anything else is 404; ``GET`` of the token path is 405.

Each request is logged to stderr (client, request line, status); the token is never logged.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import secrets
import socket
import threading
import time
from urllib.parse import urlsplit

try:  # run as a script (python lab/X.py) or imported as lab.X
    from httpbase import NoDnsHTTPServer, QuietHandler
except ImportError:
    from .httpbase import NoDnsHTTPServer, QuietHandler

TOKEN_PATH = "/latest/api/token"
METADATA_PREFIX = "/latest/meta-data/"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TTL_S = 21600


class ImdsHandler(QuietHandler):
    server_version = "EC2ws"

    def _send(self, status, body=b"", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for header, value in (extra or {}).items():
            self.send_header(header, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _discard_body(self):
        # a keep-alive connection stays in step only when the request body is read
        length = self.headers.get("Content-Length", "0")
        if length.isdigit() and int(length) > 0:
            self.rfile.read(min(int(length), 65536))

    def do_PUT(self):  # noqa: N802 (http.server's naming)
        self._discard_body()
        if urlsplit(self.path).path != TOKEN_PATH:
            self._send(404, b"Not Found\n")
            return
        ttl = (self.headers.get(TTL_HEADER) or "").strip()
        if not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TTL_S:
            self._send(400, b"Bad Request: %s must be 1-%d\n" % (TTL_HEADER.encode(), MAX_TTL_S))
            return
        token = self.server.issue_token(int(ttl))
        self._send(200, token.encode(), {TTL_HEADER: ttl})

    def do_GET(self):  # noqa: N802
        path = urlsplit(self.path).path
        if path == TOKEN_PATH:
            self._send(405, b"Method Not Allowed\n", {"Allow": "PUT"})
            return
        if not (path + "/").startswith(METADATA_PREFIX):
            self._send(404, b"Not Found\n")
            return
        if not self.server.token_valid(self.headers.get(TOKEN_HEADER)):
            self._send(401, b"Unauthorized\n")
            return
        key = path[len(METADATA_PREFIX):]
        if key == "":
            listing = "\n".join(sorted(k for k, v in self.server.metadata.items() if v is not None))
            self._send(200, listing.encode())
            return
        value = self.server.metadata.get(key)
        if value is None:
            self._send(404, b"Not Found\n")
            return
        self._send(200, value.encode())

    do_HEAD = do_GET  # noqa: N815


class ImdsServer(NoDnsHTTPServer):
    clock = staticmethod(time.monotonic)  # tests replace it to expire tokens without waiting

    def __init__(self, address, metadata, fixed_token=None):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.metadata = dict(metadata)
        self.fixed_token = fixed_token
        self._tokens = {}  # token -> monotonic expiry
        self._lock = threading.Lock()
        super().__init__(address, ImdsHandler)

    def issue_token(self, ttl_s):
        token = self.fixed_token or secrets.token_urlsafe(42)
        with self._lock:
            self._tokens[token] = self.clock() + ttl_s
        return token

    def token_valid(self, token):
        if not token:
            return False
        now = self.clock()
        with self._lock:
            # compare_digest: the stand-in should not teach timing leaks by example
            return any(hmac.compare_digest(token, known) and expiry > now
                       for known, expiry in self._tokens.items())


def make_server(bind, port, local_ipv4, instance_id, public_ipv4=None, token=None):
    """An ImdsServer bound and listening (call serve_forever to answer)."""
    metadata = {"public-ipv4": public_ipv4, "local-ipv4": local_ipv4, "instance-id": instance_id}
    return ImdsServer((bind, port), metadata, fixed_token=token)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", default="169.254.169.254",
                        help="address to listen on (an IP; add it to the namespace's lo first)")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--public-ipv4", help="served as public-ipv4; when absent, 404 (no public address)")
    parser.add_argument("--local-ipv4", required=True, help="served as local-ipv4")
    parser.add_argument("--instance-id", required=True, help="served as instance-id")
    parser.add_argument("--token", help="issue this token instead of random ones (tests compare it)")
    args = parser.parse_args(argv)
    try:
        ipaddress.ip_address(args.bind)
    except ValueError:
        parser.error("--bind %r: an IP address is needed (names are never resolved)" % args.bind)
    server = make_server(args.bind, args.port, args.local_ipv4, args.instance_id, args.public_ipv4, args.token)
    server.serve_forever()


if __name__ == "__main__":
    main()

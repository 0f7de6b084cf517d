"""Helpers shared by the unit tests: what this machine's loopback offers."""

import contextlib
import socket
import threading

import pytest


def has_ipv6_loopback():
    """Whether ::1 can be bound here (some CI containers have no IPv6 at all)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")


@contextlib.contextmanager
def serving(server):
    """Serve ``server`` (a socketserver on 127.0.0.1) in a thread; yields its port, stops it after."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

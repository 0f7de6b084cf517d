"""Helpers shared by the unit tests: what this machine's loopback offers."""

import socket

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

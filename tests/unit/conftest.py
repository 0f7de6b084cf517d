"""Unit-test setup: loopback-only socket helpers shared by the TCP tests (the code under test is
imported under the collection's name, set up by tests/conftest.py).

The repository root is computed from this file's own location, never hard-coded.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo_root():
    """The repository root (the directory holding library/, module_utils/, plugins/)."""
    return REPO_ROOT


@pytest.fixture
def listening_port():
    """A TCP port on 127.0.0.1 with a socket listening on it (nothing ever accepts)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def closed_port():
    """A TCP port on 127.0.0.1 that nothing listens on: bound to get a free one, then closed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port

"""Shared by the verdict tests: the session lab grown to four hosts, and a full accept queue."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

from harness import LAB_HOSTS

HOSTS = 4
QUEUE_PORT = 9100


@contextmanager
def grown_lab(lab, count=HOSTS):
    """The session lab with ``count`` hosts for a while; back to its own size afterwards."""
    lab.up(count)
    try:
        yield lab.hosts(count)
    finally:
        lab.up(LAB_HOSTS)


@contextmanager
def accept_queue_filled(target, port=QUEUE_PORT):
    """A listener with backlog 1 in ``target`` that never accepts, and two connections filling its queue."""
    code = ("import socket,time\ns=socket.socket(socket.AF_INET6)\ns.setsockopt(socket.SOL_SOCKET,"
            "socket.SO_REUSEADDR,1)\ns.bind(('::',%d))\ns.listen(1)\nprint('up',flush=True)\ntime.sleep(600)\n"
            % port)
    listener = subprocess.Popen(["ip", "netns", "exec", target.namespace, sys.executable, "-c", code],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    fillers = []
    try:
        assert listener.stdout.readline().strip() == "up"
        deadline = time.monotonic() + 10
        while len(fillers) < 2 and time.monotonic() < deadline:
            fillers.append(socket.create_connection((target.ip, port), timeout=2))
        yield target
    finally:
        for sock in fillers:
            sock.close()
        listener.send_signal(signal.SIGTERM)
        listener.wait(timeout=10)

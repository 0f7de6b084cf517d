"""How long 1,000 loopback TCP targets take: one concurrent invocation against one-by-one.

Run: .venv/bin/python bench/port_check_bench.py [--targets 1000] [--ansible]

Loopback only (127.0.0.1): half the targets are ports this script listens on,
half are ports nothing listens on (the kernel answers RST). Every number printed
is measured in this run; the ratios compare measurements of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "module_utils"))

from netcheck.tcp import check_target, check_targets, parse_targets  # noqa: E402

LISTENERS = 20
BANNER_DELAY_S = 0.005


def start_listeners(count):
    """Listening sockets on 127.0.0.1 with a thread each that accepts and closes."""
    servers = []
    for _ in range(count):
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen(1024)
        servers.append(server)

        def drain(srv=server):
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                conn.close()

        threading.Thread(target=drain, daemon=True).start()
    return servers


def start_slow_banner_server(delay_s):
    """A server on 127.0.0.1 that greets each client after ``delay_s`` (like a busy SMTP or SSH daemon)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(1024)

    def greet(conn):
        with conn:
            time.sleep(delay_s)
            try:
                conn.sendall(b"220 bench ready\r\n")
            except OSError:
                pass

    def accept():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=greet, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server


def closed_ports(count):
    """Ports on 127.0.0.1 that nothing listens on: bound once by us, then released."""
    ports = []
    for _ in range(count):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    return ports


def build_targets(total):
    servers = start_listeners(LISTENERS)
    open_ports = [s.getsockname()[1] for s in servers]
    half = total // 2
    raw = [{"host": "127.0.0.1", "port": open_ports[i % LISTENERS]} for i in range(half)]
    raw += [{"host": "127.0.0.1", "port": p, "expected": "closed"} for p in closed_ports(total - half)]
    return servers, raw


def timed(func):
    start = time.perf_counter()
    value = func()
    return time.perf_counter() - start, value


def via_ansible(raw):
    """One `ansible localhost -m port_check` invocation with every target (local connection)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    argv = [str(Path(sys.executable).parent / "ansible"), "localhost", "-c", "local", "-i", "localhost,",
            "-e", "ansible_python_interpreter=%s" % sys.executable, "-m", "netcheck.netcheck.port_check",
            "-a", json.dumps({"targets": raw, "timeout": 2})]
    seconds, proc = timed(lambda: subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                                                 timeout=300, check=False))
    if proc.returncode != 0:
        raise SystemExit("ansible run failed:\n%s%s" % (proc.stdout[-2000:], proc.stderr[-2000:]))
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--ansible", action="store_true", help="also time one ansible invocation (local)")
    args = parser.parse_args()
    if not 1 <= args.targets <= 20000:
        raise SystemExit("--targets: 1 to 20000")

    servers, raw = build_targets(args.targets)
    targets = parse_targets(raw, default_timeout=2.0)

    concurrent_s, results = timed(lambda: check_targets(targets))
    bad = [r for r in results if not r["ok"]]
    if bad:
        raise SystemExit("unexpected verdicts: %s" % bad[:3])
    sequential_s, _ = timed(lambda: [check_target(t) for t in targets])

    print("port_check benchmark: %d loopback targets (%d open, %d closed)"
          % (len(targets), sum(r["state"] == "open" for r in results), sum(r["state"] == "closed" for r in results)))
    print("  concurrent, one invocation : %8.3f s  (%.0f targets/s)" % (concurrent_s, len(targets) / concurrent_s))
    print("  one target after another   : %8.3f s  (%.0f targets/s)" % (sequential_s, len(targets) / sequential_s))
    print("  ratio sequential/concurrent: %8.2f x  (loopback answers in microseconds: threads cost more"
          " than they save)" % (sequential_s / concurrent_s))

    # A server that takes a moment to answer (send/expect): here waiting dominates, as on a real network.
    slow = start_slow_banner_server(BANNER_DELAY_S)
    greeted = parse_targets([{"host": "127.0.0.1", "port": slow.getsockname()[1], "expect": "^220 "}] * len(targets),
                            default_timeout=2.0)
    concurrent_slow_s, slow_results = timed(lambda: check_targets(greeted))
    if not all(r["ok"] for r in slow_results):
        raise SystemExit("unexpected verdicts: %s" % [r for r in slow_results if not r["ok"]][:3])
    sequential_slow_s, _ = timed(lambda: [check_target(t) for t in greeted])
    slow.close()
    print("with expect, server greets after %g ms: %d targets" % (BANNER_DELAY_S * 1000, len(greeted)))
    print("  concurrent, one invocation : %8.3f s" % concurrent_slow_s)
    print("  one target after another   : %8.3f s" % sequential_slow_s)
    print("  ratio sequential/concurrent: %8.2f x" % (sequential_slow_s / concurrent_slow_s))
    if args.ansible:
        ansible_s = via_ansible(raw)
        print("  ansible -m port_check (1 task, all targets, local): %.3f s" % ansible_s)
    for server in servers:
        server.close()


if __name__ == "__main__":
    main()

"""100 URLs that each take 50 ms to answer: one http_check invocation against one URL after another.

Run: .venv/bin/python bench/http_bench.py [--urls 100] [--delay-ms 50] [--tls]

With --tls the server speaks HTTPS with a certificate made for 127.0.0.1 in this run (openssl), and
every URL verifies it (ca_path): the TLS handshakes are in both times.

Loopback only: the lab's own web server (lab/webserver.py, its /delay endpoint, in its own process) on
127.0.0.1. Every number printed is measured in this run.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "module_utils"))
sys.path.insert(0, str(REPO))

from netcheck.http import check_url, check_urls, parse_targets  # noqa: E402


class ServerProcess(object):
    """The lab's web server (lab/webserver.py) in its own process on 127.0.0.1, as on a lab host: its
    threads do not share this process's interpreter with the probe being measured."""

    def __init__(self, cert=None):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        argv = [sys.executable, str(REPO / "lab" / "webserver.py"), "--bind", "127.0.0.1", "--port", str(self.port),
                "--name", "bench"]
        if cert:
            argv += ["--tls-cert", cert[0], "--tls-key", cert[1]]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15.0
        while True:  # wait for the port, bounded
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.shutdown()
                    raise SystemExit("the web server did not start on 127.0.0.1:%d" % self.port)
                time.sleep(0.05)

    def shutdown(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_server(cert=None):
    """The lab's web server on 127.0.0.1 (a free port) in its own process; returns (server, base URL).
    ``cert``: (certificate, key) PEM paths to serve HTTPS."""
    server = ServerProcess(cert)
    return server, "%s://127.0.0.1:%d" % ("https" if cert else "http", server.port)


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1 (openssl): (certificate, key) paths."""
    cert, key = str(Path(directory) / "cert.pem"), str(Path(directory) / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def measured(run):
    """(wall s, CPU s of this process, threads started, value) of run(); the server is another process."""
    started = []
    start_thread = threading.Thread.start

    def counted_start(thread):
        started.append(thread.name)
        start_thread(thread)

    threading.Thread.start = counted_start
    try:
        before, start = os.times(), time.perf_counter()
        value = run()
        wall, after = time.perf_counter() - start, os.times()
    finally:
        threading.Thread.start = start_thread
    return wall, after.user + after.system - before.user - before.system, len(started), value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=100)
    parser.add_argument("--delay-ms", type=int, default=50)
    parser.add_argument("--tls", action="store_true", help="HTTPS, the certificate verified by every URL")
    args = parser.parse_args()
    if not 1 <= args.urls <= 1000 or not 0 <= args.delay_ms <= 1000:
        raise SystemExit("--urls 1..1000, --delay-ms 0..1000")
    work = tempfile.TemporaryDirectory(prefix="nchttpbench")
    cert = make_certificate(work.name) if args.tls else None
    server, base = start_server(cert)
    urls = [{"url": "%s/delay?ms=%d&n=%d" % (base, args.delay_ms, n)} for n in range(args.urls)]
    if cert:
        for url in urls:
            url["ca_path"] = cert[0]
    targets = parse_targets(urls)

    concurrent_s, concurrent_cpu, concurrent_threads, results = measured(lambda: check_urls(targets))
    sequential_s, sequential_cpu, sequential_threads, sequential = measured(lambda: [check_url(t) for t in targets])
    server.shutdown()
    bad = [r for r in results + sequential if not r["ok"]]
    if bad:
        raise SystemExit("unexpected results: %s" % bad[:2])
    work.cleanup()
    print("HTTP benchmark: %d %s URLs on 127.0.0.1, each answering after %d ms"
          % (args.urls, "HTTPS (verified)" if cert else "HTTP", args.delay_ms))
    print("  http_check probe, one invocation: %8.3f s, %6.3f s CPU of this process, %d threads started"
          % (concurrent_s, concurrent_cpu, concurrent_threads))
    print("  one URL after another:            %8.3f s, %6.3f s CPU of this process, %d threads started"
          % (sequential_s, sequential_cpu, sequential_threads))
    print("  ratio sequential/concurrent:      %8.1f x" % (sequential_s / concurrent_s))


if __name__ == "__main__":
    main()

"""100 URLs that each take 50 ms to answer: one http_check invocation against one URL after another.

Run: .venv/bin/python bench/http_bench.py [--urls 100] [--delay-ms 50] [--tls]

With --tls the server speaks HTTPS with a certificate made for 127.0.0.1 in this run (openssl), and
every URL verifies it (ca_path): the TLS handshakes are in both times.

Loopback only: the lab's own web server (lab/webserver.py, its /delay endpoint) on
127.0.0.1. Every number printed is measured in this run.
"""

from __future__ import annotations

import argparse
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "module_utils"))
sys.path.insert(0, str(REPO))

from lab.webserver import LabHandler, LabServer  # noqa: E402
from netcheck.http import check_url, check_urls, parse_targets  # noqa: E402


class SilentHandler(LabHandler):
    def log_message(self, fmt, *args):
        pass  # 200 lines of access log would bury the result


def start_server(cert=None):
    """The lab's web server on 127.0.0.1 (a free port), silent, in a thread; returns (server, base URL).
    ``cert``: (certificate, key) PEM paths to serve HTTPS."""
    server = LabServer(("127.0.0.1", 0), SilentHandler)
    server.lab_name, server.auth = "bench", None
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*cert)
        server.tls_context = context
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, "%s://127.0.0.1:%d" % ("https" if cert else "http", server.server_address[1])


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1 (openssl): (certificate, key) paths."""
    cert, key = str(Path(directory) / "cert.pem"), str(Path(directory) / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


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

    start = time.perf_counter()
    results = check_urls(targets)
    concurrent_s = time.perf_counter() - start
    start = time.perf_counter()
    sequential = [check_url(t) for t in targets]
    sequential_s = time.perf_counter() - start
    server.shutdown()
    bad = [r for r in results + sequential if not r["ok"]]
    if bad:
        raise SystemExit("unexpected results: %s" % bad[:2])
    work.cleanup()
    print("HTTP benchmark: %d %s URLs on 127.0.0.1, each answering after %d ms"
          % (args.urls, "HTTPS (verified)" if cert else "HTTP", args.delay_ms))
    print("  http_check probe, one invocation: %8.3f s" % concurrent_s)
    print("  one URL after another:            %8.3f s" % sequential_s)
    print("  ratio sequential/concurrent:      %8.1f x" % (sequential_s / concurrent_s))


if __name__ == "__main__":
    main()

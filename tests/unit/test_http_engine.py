"""http_check's engine: every URL of one run in flight at once on one selector, no thread per URL
(issue 22). Loopback only: the lab's web server in a thread of this process.

What is asserted is not time: the server counts the requests it is answering at the same moment,
and the probe's own thread starts are counted.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

for _path in (str(Path(__file__).resolve().parents[2]),):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from lab.webserver import LabHandler, LabServer  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import http as http_probe  # noqa: E402

URLS = 20


class CountingHandler(LabHandler):
    """The lab's handler, counting the requests answered at the same moment (no access log)."""

    def log_message(self, fmt, *args):
        pass

    def _answer(self, with_body):
        server = self.server
        with server.count_lock:
            server.in_flight += 1
            server.most_in_flight = max(server.most_in_flight, server.in_flight)
        try:
            return LabHandler._answer(self, with_body)
        finally:
            with server.count_lock:
                server.in_flight -= 1


def test_every_url_is_in_flight_at_once_without_a_thread_per_url():
    server = LabServer(("127.0.0.1", 0), CountingHandler)
    server.lab_name, server.auth = "engine", None
    server.count_lock, server.in_flight, server.most_in_flight = threading.Lock(), 0, 0
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    base = "http://127.0.0.1:%d" % server.server_address[1]
    started = []
    start_thread = threading.Thread.start

    def counted_start(thread):
        started.append(thread.name)
        start_thread(thread)

    try:
        targets = http_probe.parse_targets(["%s/delay?ms=300&n=%d" % (base, n) for n in range(URLS)])
        threading.Thread.start = counted_start
        try:
            results = http_probe.check_urls(targets)
        finally:
            threading.Thread.start = start_thread
    finally:
        server.shutdown()
    assert [r["state"] for r in results] == ["answered"] * URLS and all(r["ok"] for r in results)
    assert [r["target"] for r in results] == [t.url for t in targets]
    # the server's own threads answer; the probe started none of its own
    assert [name for name in started if "process_request" not in name] == []
    # each URL waits 300 ms at the server: all of them were there at once, not one after another
    assert server.most_in_flight > URLS // 2, server.most_in_flight

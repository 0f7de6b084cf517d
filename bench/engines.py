"""The probe engines alone, on loopback: many targets in one invocation against one after another.

Run (as root, for raw ICMP sockets): .venv/bin/python bench/engines.py [--tcp 10000] [--icmp 1000] [--urls 1000]

  TCP   10,000 targets on 127.0.0.1, half open (listeners of bench/port_check_bench.py), half closed
  ICMP  1,000 targets x 3 echoes 0.2 s apart on 127.0.0.1-127.0.0.250 (127.0.0.x only, so addresses
        repeat: the engine echoes each distinct address once and gives every target its answer)
  HTTP  1,000 URLs of the lab's web server on 127.0.0.1 (bench/http_bench.py's server)

Each engine is whatever module_utils/netcheck/<layer>.py offers today. The one-after-another loop
calls the same probe for one target at a time; for ICMP, where each target takes the echo interval
twice whatever the engine, it runs a sample (--icmp-sequential) and scales it to every target
(marked "extrapolated"). Peak threads and RSS of this process are sampled during each run.
Every number is measured in this run; `--json FILE` keeps them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import http_bench  # noqa: E402  (puts module_utils and the repository on sys.path)
import port_check_bench  # noqa: E402
from netcheck import http, icmp, tcp  # noqa: E402


class Sampler:
    """Peak thread count and RSS of this process while a block runs (read from /proc every 5 ms)."""

    def __enter__(self):
        # threads left from an earlier run (the TCP listeners' acceptors) are not the engine's
        self.baseline_threads = threading.active_count()
        self.peak_threads, self.peak_rss_kib, self._stop = 0, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("Threads:"):
                    # minus the threads there before, and the sampler itself
                    self.peak_threads = max(self.peak_threads, int(line.split()[1]) - 1 - self.baseline_threads)
                elif line.startswith("VmRSS:"):
                    self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))
            self._stop.wait(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measure(func):
    """Wall seconds, peak threads, peak RSS MiB and the value of func()."""
    with Sampler() as sampler:
        seconds, value = port_check_bench.timed(func)
    return {"s": round(seconds, 3), "peak_threads": sampler.peak_threads,
            "peak_rss_mib": round(sampler.peak_rss_kib / 1024.0, 1)}, value


def bench_tcp(count):
    servers, raw = port_check_bench.build_targets(count)
    targets = tcp.parse_targets(raw, default_timeout=2.0)
    one, results = measure(lambda: tcp.check_targets(targets))
    seq, _ = measure(lambda: [tcp.check_target(t) for t in targets])
    for server in servers:
        server.close()
    return {"targets": len(targets), "open": sum(r["state"] == "open" for r in results),
            "closed": sum(r["state"] == "closed" for r in results), "all_ok": all(r["ok"] for r in results),
            "one_invocation": one, "one_after_another": seq}


def bench_icmp(count, sequential_sample, echoes=3, interval=0.2, timeout=1.0):
    addresses = ["127.0.0.%d" % (1 + i % 250) for i in range(count)]
    targets = icmp.parse_targets(addresses)
    one, (results, method, _) = measure(lambda: icmp.ping_targets(targets, echoes, interval, timeout))
    sample = targets[:min(sequential_sample, count)]
    seq, _ = measure(lambda: [icmp.ping_targets([t], echoes, interval, timeout) for t in sample])
    seq["measured_targets"] = len(sample)
    if len(sample) < count:
        seq["measured_s"] = seq["s"]
        seq["s"] = round(seq["s"] * count / len(sample), 3)
        seq["extrapolated"] = True
    replies = sum(r["detail"]["received"] for r in results)
    return {"targets": count, "distinct_addresses": len(set(addresses)), "echoes": echoes, "interval_s": interval,
            "method": method, "replies": replies, "all_ok": all(r["ok"] for r in results),
            "one_invocation": one, "one_after_another": seq}


def bench_http(count, delay_ms):
    server, base = http_bench.start_server()
    targets = http.parse_targets(["%s/delay?ms=%d&n=%d" % (base, delay_ms, n) for n in range(count)])
    one, results = measure(lambda: http.check_urls(targets))
    seq, _ = measure(lambda: [http.check_url(t) for t in targets])
    server.shutdown()
    return {"urls": count, "server_delay_ms": delay_ms, "all_ok": all(r["ok"] for r in results),
            "one_invocation": one, "one_after_another": seq}


def run_all(tcp_count=10000, icmp_count=1000, url_count=1000, icmp_sequential=100, http_delay_ms=0):
    report = {}
    if tcp_count:
        report["tcp"] = bench_tcp(tcp_count)
    if icmp_count:
        report["icmp"] = bench_icmp(icmp_count, icmp_sequential)
    if url_count:
        report["http"] = bench_http(url_count, http_delay_ms)
    for entry in report.values():
        entry["ratio_sequential_over_one"] = round(entry["one_after_another"]["s"] / entry["one_invocation"]["s"], 2)
    return report


def lines(report):
    out = ["engine | targets | one invocation s | one after another s | ratio | threads started | peak RSS MiB",
           "--- | --- | --- | --- | --- | --- | ---"]
    for layer, entry in report.items():
        one, seq = entry["one_invocation"], entry["one_after_another"]
        out.append("%s | %d | %.3f | %.3f%s | %.1fx | %d | %.1f" % (
            layer, entry.get("targets") or entry.get("urls"), one["s"], seq["s"],
            " (extrapolated from %d)" % seq["measured_targets"] if seq.get("extrapolated") else "",
            entry["ratio_sequential_over_one"], one["peak_threads"], one["peak_rss_mib"]))
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tcp", type=int, default=10000, help="TCP targets (0 skips)")
    parser.add_argument("--icmp", type=int, default=1000, help="ICMP targets (0 skips)")
    parser.add_argument("--urls", type=int, default=1000, help="URLs (0 skips)")
    parser.add_argument("--icmp-sequential", type=int, default=100,
                        help="ICMP targets timed one after another, scaled to all (default 100)")
    parser.add_argument("--http-delay-ms", type=int, default=0, help="server delay per URL (default 0)")
    parser.add_argument("--json", help="also write the numbers to this file (e.g. bench/results/<date>-engines.json)")
    args = parser.parse_args()
    if not 0 <= args.tcp <= 20000 or not 0 <= args.icmp <= 2000 or not 0 <= args.urls <= 2000:
        raise SystemExit("--tcp 0..20000, --icmp 0..2000, --urls 0..2000")
    if args.icmp and os.geteuid() != 0:
        raise SystemExit("ICMP needs root (raw sockets); --icmp 0 skips it")
    # 10,000 sockets at once need the descriptors: raise the soft limit to the hard one
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load = os.getloadavg()
    report = run_all(args.tcp, args.icmp, args.urls, args.icmp_sequential, args.http_delay_ms)
    report = {"meta": {"load_before": [round(x, 2) for x in load], "load_after": [round(x, 2) for x in os.getloadavg()],
                       "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
              "engines": report}
    print(lines(report["engines"]))
    print("load average before %s, after %s" % (report["meta"]["load_before"], report["meta"]["load_after"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0 if all(e["all_ok"] for e in report["engines"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

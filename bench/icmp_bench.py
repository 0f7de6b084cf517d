"""100 targets x 3 echoes: one icmp_ping invocation against the system ping, one target after another.

Run (as root, for raw sockets): .venv/bin/python bench/icmp_bench.py [--targets 100] [--count 3] [--interval 0.2]

Loopback only: the targets are 127.0.0.1, 127.0.0.2, ... (all of 127.0.0.0/8 answers
on Linux). Every number printed is measured in this run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "module_utils"))

from netcheck.icmp import parse_ping_output, parse_targets, ping_targets  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    if not 1 <= args.targets <= 250 or not 1 <= args.count <= 10:
        raise SystemExit("--targets 1..250, --count 1..10")
    ping = shutil.which("ping")
    if not ping:
        raise SystemExit("no ping binary: apt-get install iputils-ping")
    addresses = ["127.0.0.%d" % i for i in range(1, args.targets + 1)]
    targets = parse_targets(addresses)

    start = time.perf_counter()
    results, method, _ = ping_targets(targets, args.count, args.interval, args.timeout)
    ours_s = time.perf_counter() - start
    received = sum(r["detail"]["received"] for r in results)

    start = time.perf_counter()
    system_received = 0
    for address in addresses:
        proc = subprocess.run([ping, "-n", "-c", str(args.count), "-i", "%g" % args.interval,
                               "-W", str(max(1, int(args.timeout))), address],
                              capture_output=True, text=True, timeout=60, check=False)
        system_received += len(parse_ping_output(proc.stdout).rtts)
    system_s = time.perf_counter() - start

    total = args.targets * args.count
    print("ICMP benchmark: %d loopback targets x %d echoes, interval %g s" % (args.targets, args.count, args.interval))
    print("  icmp_ping probe, one invocation (%s): %8.3f s  %d/%d replies" % (method, ours_s, received, total))
    print("  system ping, one target after another: %8.3f s  %d/%d replies" % (system_s, system_received, total))
    print("  ratio sequential/concurrent:           %8.1f x" % (system_s / ours_s))


if __name__ == "__main__":
    main()

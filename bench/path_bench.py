"""The cost of the path probe and of MTU discovery per failing pair, on a routed lab.

Run (as root): .venv/bin/python bench/path_bench.py [--reps 3] [--timeout 0.5] [--attempts 2]

Brings up its own routed lab (lab/topologies/routed.yml as ``ncrbench``, 10.78.149.x is not
used: the networks get 10.78.145-148 unless NETCHECK_TEST_ROUTED_BASE says otherwise), makes one
fault at a time on a router, runs the probe from a1 to b1 (3 hops) inside a1's namespace and
prints, per fault, the median wall time, the packets sent and what it found. A healthy pair
costs nothing: the probe is not run. Traffic stays inside the lab; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.routed import DEFAULT_TOPOLOGY, RoutedLab, Topology  # noqa: E402

RUNNER = REPO / "tests" / "integration" / "path_runner.py"
WEB = 8080

CASES = [
    # (label, fault, kind, protocol)
    ("trace, healthy path (REACHED, on request)", None, "trace", "tcp"),
    ("trace, FORWARD drop on r2 (DROPPED_AFTER_HOP)", ("fault_forward", ("r2", "drop", "tcp", WEB)), "trace", "tcp"),
    ("trace, FORWARD reject on r2 (REJECTED_AT_HOP)", ("fault_forward", ("r2", "reject", "tcp", WEB)), "trace", "tcp"),
    ("trace, routing loop r1<->r2 (ROUTING_LOOP)", ("fault_routing_loop", ("r2", "r1", "b1")), "trace", "tcp"),
    ("mtu, 1500 link, frag-needed comes back (PMTU_REDUCED)", None, "mtu", None),
    ("mtu, frag-needed dropped on r1 (MTU_BLACKHOLE)", ("fault_drop_frag_needed", ("r1",)), "mtu", None),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--attempts", type=int, default=2)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the routed lab needs root")
    if not 1 <= args.reps <= 20:
        raise SystemExit("--reps 1..20")
    base = int(os.environ.get("NETCHECK_TEST_ROUTED_BASE", "145"))
    data = yaml.safe_load(DEFAULT_TOPOLOGY.read_text())
    for offset, spec in enumerate(data["networks"].values()):
        spec["ipv4"] = "10.78.%d.0/24" % (base + offset)
        spec["ipv6"] = "fd6e:6574:6369:%d::/64" % (base + offset)
    lab = RoutedLab(Topology(data, name="ncrbnch"))
    lab.down()
    lab.up()
    target = str(lab.topology.address(lab.topology.nodes["b1"], "b"))
    try:
        print("%-58s %10s %8s  %s" % ("case (a1 -> b1, 3 hops)", "median s", "packets", "found"))
        for label, fault, kind, protocol in CASES:
            lab.reset()
            if fault:
                getattr(lab, fault[0])(*fault[1])
            times, packets, found = [], None, None
            for _ in range(args.reps):
                options = {"timeout": args.timeout, "attempts": args.attempts}
                if kind == "trace":
                    options.update(port=WEB, protocol=protocol)
                out = subprocess.run(["ip", "netns", "exec", lab.ns("a1"), sys.executable, str(RUNNER), kind, target,
                                      json.dumps(options)], capture_output=True, text=True, timeout=120, check=True)
                result = json.loads(out.stdout)
                times.append(result["elapsed_ms"] / 1000.0)
                if kind == "trace":
                    packets = result["probes"]
                    found = "%s at hop %s" % (result["stop"]["code"], result["stop"]["hop"])
                else:
                    packets = result["packets"]
                    found = "%s, path MTU %s" % (result["code"], result["path_mtu"])
            print("%-58s %10.3f %8s  %s" % (label, statistics.median(times), packets, found))
        print("healthy pair: no path probe is sent (0 s, 0 packets); timeout %.2f s, attempts %d; load %s"
              % (args.timeout, args.attempts, " ".join(Path("/proc/loadavg").read_text().split()[:3])))
    finally:
        lab.down()


if __name__ == "__main__":
    main()

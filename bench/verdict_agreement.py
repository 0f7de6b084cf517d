"""Verdict agreement with nmap, and what confirmation costs: the mixed matrix (IPv4 and IPv6: per
port a DROP, every REJECT type, tcp-reset, nothing listening, DROP ports next to REJECT ports) and
the rate-limited case (one IPv6 target, 50 REJECT and 5 DROP ports) repeated N times.

Run (root): .venv/bin/python bench/verdict_agreement.py [--reps 10] [--slot 251]

Brings up its own 3-host namespace lab (name ``vagr<slot>``, 10.77.<slot>.0/24), makes the faults
with iptables inside host 2, runs port_check's engine in host 1's namespace (the module's own code,
in-process) and nmap -sS -Pn --reason in host 3's (paced by the target's ICMP rate limit, see
tests/integration/verdict_faults.py), and takes everything down at the end. Traffic stays inside
the lab. Every number printed is measured in this run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from lab import Lab, LabConfig  # noqa: E402
from verdict_faults import (  # noqa: E402
    MIXED_DROP, MIXED_REJECT, RATE_DROP, RATE_REJECT, V4_FAULTS, V6_FAULTS, add_rules, agrees, nmap_states,
    undo_rules,
)

TIMEOUT = 2.0
RUNNER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from netcheck import tcp
raw, budget = json.loads(sys.stdin.read())
start = time.monotonic()
results = tcp.check_targets(tcp.parse_targets(raw, %r), confirm_budget=budget)
print(json.dumps({"results": results, "elapsed_s": time.monotonic() - start}))
""" % TIMEOUT


def run_engine(namespace, targets, budget):
    proc = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", RUNNER, str(REPO / "module_utils")],
                          input=json.dumps([targets, budget]), capture_output=True, text=True, timeout=300,
                          check=True)
    return json.loads(proc.stdout)


def cases(dst):
    mixed = []
    for address, faults in ((dst.ip, V4_FAULTS), (dst.ip6, V6_FAULTS)):
        mixed += [(address, fault[0]) for fault in faults]
        mixed += [(address, port) for port in MIXED_DROP + MIXED_REJECT]
    rate = [(dst.ip6, port) for port in RATE_REJECT + RATE_DROP]
    return {"mixed": mixed, "rate-limited (IPv6 50 REJECT + 5 DROP)": rate}


def one_round(src, dst, oracle, name, ports, budget):
    document = run_engine(src.namespace, [{"host": address, "port": port} for address, port in ports], budget)
    results = document["results"]
    main_run_s = max(r["timings"].get("connect_ms", 0.0) for r in results) / 1000.0
    reprobes = sum(r["detail"]["outcome"]["probes"] - 1 for r in results)
    confirmed = sum(1 for r in results if r["detail"]["outcome"]["probes"] > 1 and r["state"] == "rejected")
    agree = total = 0
    wrong = []
    for address in sorted({address for address, _ in ports}):
        numbers = [port for a, port in ports if a == address]
        truth = nmap_states(oracle.namespace, address, numbers)
        for (a, port), result in zip(ports, results):
            if a != address:
                continue
            total += 1
            if agrees(result, truth[port]):
                agree += 1
            else:
                wrong.append((address, port, result["state"], truth[port]))
    return {"case": name, "agree": agree, "total": total, "elapsed_s": document["elapsed_s"],
            "extra_s": max(0.0, document["elapsed_s"] - main_run_s), "reprobes": reprobes, "confirmed": confirmed,
            "wrong": wrong}


def free_slot(slot):
    used = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    if " 10.77.%d." % slot in used:
        raise SystemExit("slot %d (10.77.%d.0/24) is in use here: pick another with --slot" % (slot, slot))
    return slot


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--slot", type=int, default=251)
    parser.add_argument("--budget", type=float, default=30.0, help="port_check's confirm_budget (seconds)")
    args = parser.parse_args()
    slot = free_slot(args.slot)
    lab = Lab(LabConfig(name="vagr%d" % slot, subnet="10.77.%d.0/24" % slot,
                        subnet6="fd6e:6574:6368:%x::/64" % slot))
    lab.up(3)
    try:
        src, dst, oracle = lab.hosts(3)
        added = add_rules(dst.namespace)
        try:
            rows = []
            for rep in range(args.reps):
                for name, ports in cases(dst).items():
                    row = one_round(src, dst, oracle, name, ports, args.budget)
                    rows.append(row)
                    print("rep %2d  %-40s agree %3d/%3d  run %5.2f s  confirmation +%5.2f s  %3d re-probes  "
                          "%2d rejects confirmed by a re-probe%s" % (
                              rep + 1, name, row["agree"], row["total"], row["elapsed_s"], row["extra_s"],
                              row["reprobes"], row["confirmed"], ("  DISAGREE %s" % row["wrong"]) if row["wrong"] else ""),
                          flush=True)
        finally:
            undo_rules(dst.namespace, added)
    finally:
        lab.down()
    print()
    print("| case | runs | agreement with nmap | run (median) | confirmation cost (median extra s, max) | re-probes per run (median) |")
    print("|---|---|---|---|---|---|")

    def median(values):
        return sorted(values)[len(values) // 2]

    for name in cases(dst):
        mine = [row for row in rows if row["case"] == name]
        agree, total = sum(r["agree"] for r in mine), sum(r["total"] for r in mine)
        print("| %s | %d | %d/%d = %.1f %% | %.2f s | +%.2f s, max +%.2f s | %d |" % (
            name, len(mine), agree, total, 100.0 * agree / total, median([r["elapsed_s"] for r in mine]),
            median([r["extra_s"] for r in mine]), max(r["extra_s"] for r in mine),
            median([r["reprobes"] for r in mine])))
    print("load average: %s" % open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()

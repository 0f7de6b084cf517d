"""How long the on-host per-flow summary of a 100,000-packet pcap takes.

Run: .venv/bin/python bench/capture_bench.py [--packets 100000] [--python PATH]

The pcap is made here, synthetically (no traffic at all): TCP conversations of 10
packets each (handshake, a request, an answer, the FIN exchange), every tenth one
unanswered SYNs instead, plus ICMP echo pairs, over Ethernet. It is summarised by
module_utils/netcheck/pcap.py as the module does on the host, with this Python or
the one given (e.g. a 3.8 like an old host's). When tshark is installed, the time
`tshark -q -z conv,tcp` takes to read the same file is printed beside it (one
run, same file): the summary should not cost more than a reader people already use.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "unit"))

from pcapcraft import SYN, handshake, icmp, ip, pcap_bytes, tcp_packet  # noqa: E402

SUMMARY_CODE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from netcheck.pcap import summarize_file
began = time.perf_counter()
result = summarize_file(sys.argv[2], ["10.1.0.1"])
elapsed = time.perf_counter() - began
print(json.dumps({"seconds": elapsed, "packets": result["packets"], "flows": len(result["flows"]),
                  "echo_pairs": len(result["icmp_echo"]), "python": sys.version.split()[0]}))
"""


def synthetic_packets(count):
    """About ``count`` packets: 10-packet conversations, unanswered SYNs, echo pairs."""
    packets, conversation, t = [], 0, 1_700_000_000.0
    while len(packets) < count:
        client = "10.1.%d.%d" % (conversation // 250 % 250, conversation % 250 + 1)
        port = 1024 + conversation % 60000
        if conversation % 10 == 9:
            packets += [(t + i, tcp_packet(client, port, "10.1.255.1", 5432, SYN, 77)) for i in range(3)]
        elif conversation % 10 == 8:
            packets += [(t, ip(client, "10.1.255.1", 1, icmp(8, 0))), (t + 0.001, ip("10.1.255.1", client, 1, icmp(0, 0)))]
        else:
            packets += handshake(client, port, "10.1.255.1", 8080, t0=t, rtt=0.0005, data=b"GET / HTTP/1.1\r\n\r\n")
        conversation += 1
        t += 0.01
    return packets[:count]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--python", default=sys.executable, help="the interpreter that summarises")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="netcheck-capture-bench-") as tmp:
        path = os.path.join(tmp, "bench.pcap")
        began = time.perf_counter()
        data = pcap_bytes(synthetic_packets(args.packets))
        with open(path, "wb") as handle:
            handle.write(data)
        made = time.perf_counter() - began
        print("pcap: %d packets, %.1f MB, made in %.2f s" % (args.packets, len(data) / 1e6, made))

        out = subprocess.run([args.python, "-c", SUMMARY_CODE, str(REPO / "module_utils"), path],
                             check=True, capture_output=True, text=True).stdout
        summary = json.loads(out)
        print("summary (pcap.py, Python %s): %.2f s, %d flows, %d echo pairs, %.0f packets/s"
              % (summary["python"], summary["seconds"], summary["flows"], summary["echo_pairs"],
                 summary["packets"] / summary["seconds"]))

        if shutil.which("tshark"):
            began = time.perf_counter()
            subprocess.run(["tshark", "-n", "-q", "-r", path, "-z", "conv,tcp"], check=True,
                           capture_output=True)
            tshark_s = time.perf_counter() - began
            print("tshark -z conv,tcp on the same file: %.2f s (summary / tshark = %.2f)"
                  % (tshark_s, summary["seconds"] / tshark_s))


if __name__ == "__main__":
    main()

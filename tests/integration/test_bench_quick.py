"""bench/mesh.py --quick (N=2, one repetition) runs end to end, so the benchmark cannot rot.

Times are not asserted (the machine is shared); the table's columns and the agreement of the
three ways are. The benchmark brings up and removes its own lab, apart from the session's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness import REPO, _SLOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the namespace lab needs root")


def test_quick_benchmark_prints_every_column_and_the_three_ways_agree(tmp_path):
    env = dict(os.environ)
    env.setdefault("NETCHECK_BENCH_LAB_NAME", "ncbq%d" % _SLOT)
    env.setdefault("NETCHECK_BENCH_LAB_SUBNET", "10.78.%d.0/24" % _SLOT)
    env.setdefault("NETCHECK_BENCH_LAB_SUBNET6", "fd6e:6574:6368:%x::/64" % (0x100 + _SLOT))
    out, png = tmp_path / "quick.json", tmp_path / "mesh.png"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "mesh.py"), "--quick", "--out", str(out),
                           "--plot", str(png)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    report = json.loads(out.read_text())
    header, rule, row = report["table"].splitlines()
    assert header.split(" | ") == ["N", "builtin s", "check.yml s", "floor s", "speed-up", "overhead",
                                   "CPU ours/floor", "CPU s/host", "peak RSS MiB", "agree"]
    cells = row.split(" | ")
    assert cells[0] == "2" and cells[-1] == "yes"
    assert all(cell not in ("", "-") for cell in cells), row
    assert report["table"] in proc.stdout
    # issue 22's ratios, from this one run
    assert report["targets"] in proc.stdout
    assert "N=2   check.yml / (floor + slowest probe) = " in report["targets"]
    assert "N=2   controller CPU check.yml / floor = " in report["targets"]
    assert "N=2   pairs agree with the floor's reachability: yes" in report["targets"]

    (result,) = report["rows"]
    assert set(result["ways"]) == {"builtin", "ours", "floor"}
    # every pair of the mesh (2 x 2, itself included) on three layers, the same in both ways
    assert result["ours_pairs"] == result["builtin_pairs"] == {"total": 12, "reachable": 12}
    assert result["pairs_differing"] == []
    assert result["floor_answered"] == 2
    assert 0 < result["peak_rss_mib"] < 64
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

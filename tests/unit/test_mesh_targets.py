"""bench/mesh.py's issue-22 ratios and its model of the builtin way above --builtin-max hosts.

Pure functions over result rows (no lab): the text says met or NOT met against each bound, and the
model holds the builtin way's cost per pair at the largest N it ran.
"""

from __future__ import annotations

import sys

from collection_loader import REPO

sys.path.insert(0, str(REPO / "bench"))
import mesh  # noqa: E402


def row(n, ours_s, floor_s, slowest_s, cpu_ratio, builtin_s=None):
    ways = {"ours": {"median_s": ours_s}, "floor": {"median_s": floor_s}}
    if builtin_s is not None:
        ways["builtin"] = {"median_s": builtin_s}
    facts = {"n": n, "ways": ways, "agree": True, "slowest_probe_s": slowest_s, "cpu_ours_over_floor": cpu_ratio,
             "overhead_over_floor": round(ours_s / (floor_s + slowest_s), 2), "floor_over_ours": round(floor_s / ours_s, 2)}
    if builtin_s is not None:
        facts["speedup"] = round(builtin_s / ours_s, 1)
    return facts


def test_the_builtin_way_is_modelled_from_its_cost_per_pair_at_the_largest_n_it_ran():
    rows = [row(16, 12.0, 7.0, 3.0, 1.5, builtin_s=256.0), row(32, 30.0, 13.0, 3.0, 1.2, builtin_s=1024.0)]
    model = mesh.model_builtin(rows, 64)
    assert model["from_n"] == 32 and model["per_pair_s"] == 1.0 and model["median_s"] == 4096.0
    assert mesh.model_builtin([row(8, 5.0, 4.0, 1.0, 1.1)], 64) is None  # nothing to model from


def test_each_target_of_issue_22_is_printed_with_its_bound_and_whether_it_was_met():
    rows = [row(8, 5.0, 4.25, 0.5, 1.5, builtin_s=60.0), row(32, 40.0, 13.0, 3.0, 1.4)]
    text = mesh.targets(rows)
    assert "N=8   check.yml / (floor + slowest probe) = 1.05x  (target <= 1.2x): met" in text
    assert "N=8   controller CPU check.yml / floor = 1.50x  (no target below 32 hosts)" in text
    assert "N=8   speed-up over builtin 12.0x = 0.85 of builtin / floor (14.1x)  (target >= 0.8): met" in text
    assert "N=32  check.yml / (floor + slowest probe) = 2.50x  (target <= 1.2x): NOT met" in text
    assert "N=32  controller CPU check.yml / floor = 1.40x  (target <= 1.3x): NOT met" in text
    assert "N=32  pairs agree with the floor's reachability: yes" in text

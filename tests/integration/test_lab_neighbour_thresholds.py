"""The lab makes room in the kernel's shared neighbour table for its full mesh, and gives it back.

These tests only read the real thresholds and let the lab raise them: other labs run on this
machine at the same time, so nothing here ever sets them lower by hand.
"""

from __future__ import annotations

import json
import os

import pytest

from harness import LAB_HOSTS, spare_lab_config
from lab import Lab
from lab.lab import NEIGH_FAMILIES, NEIGH_REGISTRY, NEIGH_RESERVE, NeighbourTable, neighbour_entries_needed


def _registered():
    return {path.stem: json.loads(path.read_text()) for path in (NEIGH_REGISTRY / "labs").glob("*.json")}


def test_a_lab_that_is_up_has_room_for_its_full_mesh(lab):
    entry = _registered()[lab.config.name]
    assert entry == {"name": lab.config.name, "bridge": lab.config.bridge, "hosts": LAB_HOSTS,
                     "need": neighbour_entries_needed(LAB_HOSTS)}
    values = NeighbourTable().read()
    for family in NEIGH_FAMILIES:
        assert values[family]["gc_thresh3"] >= NEIGH_RESERVE["gc_thresh3"] + entry["need"]
        assert values[family]["gc_thresh2"] >= NEIGH_RESERVE["gc_thresh2"] + entry["need"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the namespace lab needs root")
def test_down_of_another_lab_keeps_the_room_of_the_labs_still_up(lab):
    cfg = spare_lab_config("ncnb")
    other = Lab(cfg)
    try:
        other.up(6)
        assert _registered()[cfg.name]["need"] == neighbour_entries_needed(6)
        raised = NeighbourTable().read()
        needs = sum(e["need"] for e in _registered().values())
        assert raised["ipv4"]["gc_thresh3"] >= NEIGH_RESERVE["gc_thresh3"] + needs
    finally:
        other.down()
    assert cfg.name not in _registered()
    after = NeighbourTable().read()
    still_up = sum(e["need"] for e in _registered().values())
    assert lab.config.name in _registered()
    for family in NEIGH_FAMILIES:
        assert after[family]["gc_thresh3"] >= NEIGH_RESERVE["gc_thresh3"] + still_up

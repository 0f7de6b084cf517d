"""The lab's handling of the kernel's shared neighbour-table thresholds, on a fake /proc/sys.

No root and no real sysctl is touched: the table reads and writes files laid out like
/proc/sys/net/<family>/neigh/default/gc_thresh1..3 in a temporary directory.
"""

from __future__ import annotations

import pytest

from lab.lab import NEIGH_FAMILIES, NeighbourTable, neighbour_entries_needed, neighbour_targets

DEFAULTS = {"gc_thresh1": 128, "gc_thresh2": 512, "gc_thresh3": 1024}


@pytest.fixture
def fake_kernel(tmp_path):
    """A fake sysctl tree with the kernel defaults, the bridges that exist, and a table using both."""
    for family in NEIGH_FAMILIES:
        folder = tmp_path / "sys" / "net" / family / "neigh" / "default"
        folder.mkdir(parents=True)
        for key, value in DEFAULTS.items():
            (folder / key).write_text("%d\n" % value)
    bridges = set()

    def table():
        return NeighbourTable(registry=tmp_path / "run", sysctl_root=tmp_path / "sys",
                              link_exists=lambda name: name in bridges)

    return table, bridges


def test_a_full_mesh_of_32_needs_more_than_the_default_table():
    assert neighbour_entries_needed(32) > 32 * 32 + 32
    assert neighbour_entries_needed(32) > DEFAULTS["gc_thresh3"]
    assert neighbour_entries_needed(3) < 128


def test_targets_add_every_registered_need_to_the_kernel_defaults():
    assert neighbour_targets(DEFAULTS, [100, 50]) == {"gc_thresh1": 128, "gc_thresh2": 662, "gc_thresh3": 1174}
    assert neighbour_targets(DEFAULTS, []) == DEFAULTS
    # a machine already configured with more room than the labs need keeps its values
    large = {"gc_thresh1": 1024, "gc_thresh2": 4096, "gc_thresh3": 8192}
    assert neighbour_targets(large, [1000]) == large


def test_up_raises_and_the_last_down_restores_the_originals(fake_kernel):
    table, bridges = fake_kernel
    bridges.add("big-br")
    need = neighbour_entries_needed(32)
    assert table().register("big", "big-br", 32)
    for family in NEIGH_FAMILIES:
        assert table().read()[family] == {"gc_thresh1": 128, "gc_thresh2": 512 + need, "gc_thresh3": 1024 + need}
    assert table().register("big", "big-br", 32) is None  # a second up changes nothing
    assert table().release("big")
    assert table().read() == {family: DEFAULTS for family in NEIGH_FAMILIES}
    assert table().release("big") is None


def test_down_of_one_lab_keeps_what_a_running_lab_needs(fake_kernel):
    table, bridges = fake_kernel
    bridges.update({"a-br", "b-br"})
    table().register("a", "a-br", 32)
    table().register("b", "b-br", 16)
    table().release("a")
    # b still runs: its need stays on top of the originals
    assert table().read()["ipv4"]["gc_thresh3"] == 1024 + neighbour_entries_needed(16)
    table().release("b")
    assert table().read()["ipv4"] == DEFAULTS


def test_values_raised_by_someone_else_are_never_lowered(fake_kernel, tmp_path):
    table, bridges = fake_kernel
    bridges.add("a-br")
    table().register("a", "a-br", 8)
    knob = tmp_path / "sys" / "net" / "ipv4" / "neigh" / "default" / "gc_thresh3"
    knob.write_text("9000\n")  # an administrator (or another tool) raised it meanwhile
    table().release("a")
    assert table().read()["ipv4"]["gc_thresh3"] == 9000
    assert table().read()["ipv6"] == DEFAULTS  # the family still as we set it is restored


def test_registering_never_lowers_higher_values(fake_kernel, tmp_path):
    table, bridges = fake_kernel
    bridges.add("a-br")
    for key, value in {"gc_thresh1": 4096, "gc_thresh2": 8192, "gc_thresh3": 16384}.items():
        (tmp_path / "sys" / "net" / "ipv4" / "neigh" / "default" / key).write_text("%d\n" % value)
    table().register("a", "a-br", 32)
    assert table().read()["ipv4"] == {"gc_thresh1": 4096, "gc_thresh2": 8192, "gc_thresh3": 16384}
    table().release("a")
    assert table().read()["ipv4"] == {"gc_thresh1": 4096, "gc_thresh2": 8192, "gc_thresh3": 16384}


def test_a_lab_that_vanished_without_down_no_longer_counts(fake_kernel):
    table, bridges = fake_kernel
    bridges.update({"gone-br", "b-br"})
    table().register("gone", "gone-br", 32)
    table().register("b", "b-br", 4)
    bridges.discard("gone-br")  # its bridge was deleted by hand, its registration stayed
    table().release("b")
    assert table().read()["ipv4"] == DEFAULTS

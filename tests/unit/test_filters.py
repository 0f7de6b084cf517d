"""Unit tests of the controller-side filters in plugins/filter/netcheck.py. Pure functions over
dictionaries; nothing is sent. (Group targets are expanded by the net_diagnose action plugin:
tests/unit/test_run_model.py.)"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


_COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"


def _load_filters():
    # as Ansible loads it: a plugin of the collection netcheck.netcheck, importing the specs by FQCN
    if str(_COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(_COLLECTIONS))
    return importlib.import_module("ansible_collections.netcheck.netcheck.plugins.filter.netcheck")


filters = _load_filters()


def test_filter_module_exposes_only_the_filters_the_role_uses():
    assert sorted(filters.FilterModule().filters()) == [
        "netcheck_checks_failed", "netcheck_http_url", "netcheck_mesh_addresses", "netcheck_target"]


# --- checks_failed ---------------------------------------------------------------------

def test_checks_failed_is_true_when_any_source_failed_could_not_run_or_missed_a_pair():
    checks_failed = filters.FilterModule().filters()["netcheck_checks_failed"]
    ok = {"netcheck_diagnose": {"results": [{"ok": True}, {"ok": True}]}}
    assert checks_failed(["a", "b"], {"a": ok, "b": {}}) is False  # b registered nothing: it failed nothing
    assert checks_failed(["a"], {"a": {"netcheck_diagnose": {"results": [], "skipped": True}}}) is False
    assert checks_failed(["a", "b"], {"a": ok, "b": {"netcheck_diagnose": {"results": [{"ok": True}, {"ok": False}]}}})
    assert checks_failed(["a", "b"], {"a": ok, "b": {"netcheck_diagnose": {"unreachable": True}}})
    assert checks_failed(["a", "b"], {"a": ok, "b": {"netcheck_diagnose": {"failed": True, "msg": "bad input"}}})
    # only the sources asked are read
    assert checks_failed(["a"], {"a": ok, "b": {"netcheck_diagnose": {"failed": True}}}) is False

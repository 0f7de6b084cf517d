"""net_diagnose and conn_limits: their documentation says exactly what they take and return."""

from __future__ import annotations

import pytest
import yaml

from collection_loader import load_module
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.diagnose import DIAGNOSE_MODULE_SPEC
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.limits import LIMITS_SPEC
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.spec import argument_spec

SPECS = {"net_diagnose": DIAGNOSE_MODULE_SPEC, "conn_limits": LIMITS_SPEC}


@pytest.fixture(scope="module", params=["net_diagnose", "conn_limits"])
def module(request):
    return load_module(request.param)


def _compare(spec, documented, path):
    assert set(spec) == set(documented), "%s: argument_spec %s, documented %s" % (
        path, sorted(spec), sorted(documented))
    for name, option in spec.items():
        doc = documented[name]
        where = "%s.%s" % (path, name)
        assert option.get("type", "str") == doc.get("type", "str"), where
        assert option.get("default") == doc.get("default") or (option.get("default"), doc.get("default")) == (
            None, None), where
        assert option.get("choices") == doc.get("choices"), where
        assert bool(option.get("required")) == bool(doc.get("required")), where
        assert option.get("elements") == doc.get("elements"), where
        assert "no_log" not in doc, where  # not a DOCUMENTATION key (validate-modules refuses it)
        if option.get("options") or doc.get("suboptions"):
            _compare(option.get("options") or {}, doc.get("suboptions") or {}, where)


def test_argument_spec_is_exactly_the_documented_options(module):
    documented = yaml.safe_load(module.DOCUMENTATION)["options"]
    _compare(argument_spec(SPECS[module.__name__.rsplit(".", 1)[1]]), documented, "options")


def test_examples_are_yaml_tasks_of_the_module(module):
    tasks = yaml.safe_load(module.EXAMPLES)
    name = module.__name__.rsplit(".", 1)[1]
    assert any("netcheck.netcheck." + name in task for task in tasks)


class _Exit(Exception):
    def __init__(self, failed, kwargs):
        super().__init__(failed)
        self.failed, self.kwargs = failed, kwargs


def _run_main(module, monkeypatch, params):
    class StandIn(object):
        def __init__(self, spec, **kwargs):
            self.params = params

        def run(self, argv):
            import subprocess
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            return proc.returncode, proc.stdout, proc.stderr

        def exit_json(self, **kwargs):
            raise _Exit(False, kwargs)

        def fail_json(self, **kwargs):
            raise _Exit(True, kwargs)

    monkeypatch.setattr(module, "NetcheckModule", StandIn)
    with pytest.raises(_Exit) as caught:
        module.main()
    return caught.value


def _returned_keys(module):
    return set(yaml.safe_load(module.RETURN))


def test_net_diagnose_returns_exactly_what_return_documents(monkeypatch, closed_port):
    module = load_module("net_diagnose")
    params = {"targets": [{"host": "127.0.0.1", "name": "self", "icmp": "skip", "neighbour": True,
                           "ports": [{"port": closed_port, "expected": "closed", "timeout": None, "send": None,
                                      "expect": None, "name": None}], "urls": None}],
              "tcp_timeout": 1.0, "icmp": {}, "http": {}, "arp_probe": False, "arp_timeout": 0.5,
              "limits": True, "limit_ports": [closed_port], "max_workers": 8, "fail_on_warn": False,
              "confirm_budget": 10.0, "path": {}}
    outcome = _run_main(module, monkeypatch, params)
    assert not outcome.failed, outcome.kwargs
    assert set(outcome.kwargs) - {"changed", "msg"} == _returned_keys(module)
    (pair,) = outcome.kwargs["results"]
    returns = yaml.safe_load(module.RETURN)
    assert set(pair) == set(returns["results"]["contains"])
    assert set(pair["verdict"]) == set(returns["results"]["contains"]["verdict"]["contains"])
    assert pair["verdict"]["code"] == "OK" and pair["target"] == "self"


def test_net_diagnose_rejects_bad_input_naming_the_field_before_probing(monkeypatch):
    module = load_module("net_diagnose")
    params = {"targets": [{"host": "127.0.0.1", "name": None, "icmp": "auto", "neighbour": True, "urls": None,
                           "ports": [{"port": 0, "expected": "open", "timeout": None, "send": None, "expect": None,
                                      "name": None}]}],
              "tcp_timeout": 1.0, "icmp": {}, "http": {}, "arp_probe": None, "arp_timeout": 0.5,
              "limits": False, "limit_ports": [], "max_workers": 8, "confirm_budget": 10.0}
    outcome = _run_main(module, monkeypatch, params)
    assert outcome.failed and outcome.kwargs["msg"].startswith("targets[0].ports[0].port:")
    assert outcome.kwargs["results"] == []


def test_conn_limits_returns_exactly_what_return_documents(monkeypatch, listening_port):
    module = load_module("conn_limits")
    outcome = _run_main(module, monkeypatch, {"ports": [listening_port]})
    assert not outcome.failed
    assert set(outcome.kwargs) - {"changed"} == _returned_keys(module)
    (listener,) = outcome.kwargs["listeners"]
    documented = yaml.safe_load(module.RETURN)["listeners"]["contains"]
    assert set(listener) == set(documented)
    assert listener["backlog"] == 64 and listener["processes"]

"""NetcheckModule, the one AnsibleModule wrapper of every module (module_utils/netcheck/module.py):
check mode on, shapes ansible-core cannot validate refused naming the field, argv-only commands,
and the probing modules' common ending. Real AnsibleModule, arguments as Ansible hands them."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.module import NetcheckModule
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import outcome, probe_result

SPEC = {
    "targets": {"type": "list", "elements": "dict", "required": True,
                "options": {"host": {"type": "str", "required": True}, "port": {"type": "int"}}},
    "timeout": {"type": "float", "default": 1.0},
}


def _answer(capsys, call):
    with pytest.raises(SystemExit):
        call()
    return json.loads(capsys.readouterr().out)


def test_check_mode_is_supported_by_default():
    with patch_module_args({"targets": [{"host": "127.0.0.1"}], "_ansible_check_mode": True}):
        module = NetcheckModule(SPEC)
    assert module.check_mode is True
    assert module.params["targets"] == [{"host": "127.0.0.1", "port": None}]


def test_a_shape_ansible_core_cannot_validate_fails_naming_the_field_without_the_values(capsys):
    args = {"targets": [{"host": "secret-host.example", "port": 1}, 7]}
    with patch_module_args(args):
        answer = _answer(capsys, lambda: NetcheckModule(SPEC))
    assert answer["failed"] is True
    assert answer["msg"] == "targets[1]: expected a mapping, got int"
    assert "secret-host" not in json.dumps(answer)


def test_an_unknown_option_is_an_error(capsys):
    with patch_module_args({"targets": [{"host": "127.0.0.1"}], "tiemout": 2}):
        answer = _answer(capsys, lambda: NetcheckModule(SPEC))
    assert answer["failed"] is True and "tiemout" in answer["msg"]


def test_run_takes_an_argv_list_and_feeds_data_to_stdin():
    with patch_module_args({"targets": [{"host": "127.0.0.1"}]}):
        module = NetcheckModule(SPEC)
    assert module.run(["printf", "%s", "a b;c"]) == (0, "a b;c", "")  # one argument, no shell
    assert module.run(["cat"], data=b"fed\n") == (0, "fed\n", "")


def test_finish_fails_naming_the_misses_and_keeps_every_result(capsys):
    results = [probe_result("127.0.0.1:1", "tcp", "closed", ok=False, error="refused"),
               probe_result("127.0.0.1:2", "tcp", "open", ok=True)]
    with patch_module_args({"targets": [{"host": "127.0.0.1"}]}):
        module = NetcheckModule(SPEC)
        answer = _answer(capsys, lambda: module.finish(outcome(results, 0.0), "all as expected"))
    assert answer["failed"] is True
    assert answer["msg"] == "1 of 2 targets missed their expectation: 127.0.0.1:1: refused"
    assert [result["target"] for result in answer["results"]] == ["127.0.0.1:1", "127.0.0.1:2"]


def test_finish_exits_with_the_message_when_every_target_is_as_expected(capsys):
    results = [probe_result("127.0.0.1:2", "tcp", "open", ok=True)]
    with patch_module_args({"targets": [{"host": "127.0.0.1"}]}):
        module = NetcheckModule(SPEC)
        answer = _answer(capsys, lambda: module.finish(outcome(results, 0.0), "all as expected"))
    assert "failed" not in answer and answer["msg"] == "all as expected" and answer["changed"] is False


@pytest.mark.parametrize("args, message", [
    ({"targets": 7}, "targets: expected a list of mappings, got int"),
    ({"targets": [{"host": "h", "port": float("inf")}]}, "targets[0].port: not a finite number"),
    ({"targets": [True]}, "targets[0]: expected a mapping, got bool"),
    ({"targets": [{"host": "h"}], "timeout": float("inf")}, None),  # a float option takes inf: no refusal
])
def test_each_shape_ansible_core_trips_on_is_named(capsys, args, message):
    with patch_module_args(args):
        if message is None:
            assert NetcheckModule(SPEC).params["timeout"] == float("inf")
            return
        answer = _answer(capsys, lambda: NetcheckModule(SPEC))
    assert answer["failed"] is True and answer["msg"] == message

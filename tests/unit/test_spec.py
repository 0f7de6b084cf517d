"""module_utils/netcheck/spec.py: one declarative spec makes the argument_spec, the key check of
controller-side input and the documented options."""

from __future__ import annotations

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import InputError
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.spec import argument_spec, check_keys, doc_options, select, validate_spec

TARGET = {
    "host": {"type": "str", "required": True, "description": "Host name or address."},
    "port": {"type": "int", "required": True, "description": "TCP port."},
    "expected": {"type": "str", "choices": ["open", "closed"], "default": "open",
                 "description": "The state it must have."},
    "token": {"type": "str", "no_log": True, "description": "A secret."},
}
MODULE = {
    "targets": {"type": "list", "elements": "dict", "required": True, "options": TARGET,
                "description": "The targets."},
    "limits": {"type": "dict", "options": {"rtt_ms": {"type": "float", "description": "RTT."}},
               "description": "Thresholds."},
    "timeout": {"type": "float", "default": 3.0, "description": "Seconds."},
}


def test_argument_spec_is_the_spec_without_descriptions_at_every_level():
    made = argument_spec(MODULE)
    assert made["timeout"] == {"type": "float", "default": 3.0}
    assert made["targets"]["options"]["host"] == {"type": "str", "required": True}
    assert made["targets"]["options"]["token"] == {"type": "str", "no_log": True}
    assert made["limits"]["options"] == {"rtt_ms": {"type": "float"}}


def test_argument_spec_is_a_copy_that_a_module_cannot_change_the_spec_through():
    made = argument_spec(MODULE)
    made["targets"]["options"]["expected"]["choices"].append("filtered")
    assert TARGET["expected"]["choices"] == ["open", "closed"]


def test_argument_spec_rejects_an_unknown_target_key_in_ansible_naming_its_path():
    result = ArgumentSpecValidator(argument_spec(MODULE)).validate(
        {"targets": [{"host": "h", "port": 1, "expected_sate": "open"}]})
    assert "targets.expected_sate" in " ".join(result.error_messages)


def test_check_keys_names_the_unknown_key_with_its_path_and_lists_the_known_keys():
    with pytest.raises(InputError) as caught:
        check_keys({"host": "h", "port": 1, "expected_sate": "closed"}, TARGET, "netcheck_tcp_group_targets[0]")
    assert str(caught.value) == ("netcheck_tcp_group_targets[0].expected_sate: unknown key; "
                                 "known: host, port, expected, token")


def test_check_keys_names_a_missing_required_key():
    with pytest.raises(InputError, match=r"^targets\[0\]\.port: required"):
        check_keys({"host": "h"}, TARGET, "targets[0]")


def test_check_keys_recurses_into_lists_of_dicts_and_dicts():
    with pytest.raises(InputError, match=r"^x\.targets\[1\]\.prot: unknown key"):
        check_keys({"targets": [{"host": "a", "port": 1}, {"host": "b", "port": 2, "prot": 3}]}, MODULE, "x")
    with pytest.raises(InputError, match=r"^x\.limits\.rtt: unknown key; known: rtt_ms"):
        check_keys({"targets": [], "limits": {"rtt": 1}}, MODULE, "x")


def test_check_keys_accepts_every_option_of_the_spec_and_returns_the_value():
    value = {"host": "h", "port": 1, "expected": "open", "token": "t"}
    assert check_keys(value, TARGET, "t") is value


def test_check_keys_refuses_a_value_that_is_not_a_mapping():
    with pytest.raises(InputError, match=r"^t\[3\]: expected a mapping"):
        check_keys("web1:22", TARGET, "t[3]")


def test_doc_options_are_documentation_shaped():
    docs = doc_options(MODULE)
    assert docs["targets"]["suboptions"]["host"] == {"description": "Host name or address.", "type": "str",
                                                     "required": True}
    assert "no_log" not in docs["targets"]["suboptions"]["token"]  # not a DOCUMENTATION key
    assert doc_options(MODULE, nested="options")["targets"]["options"]["token"]["no_log"] is True
    assert "required" not in docs["timeout"] and docs["timeout"]["default"] == 3.0
    assert doc_options(MODULE, nested="options")["limits"]["options"]["rtt_ms"]["type"] == "float"


def test_select_keeps_the_order_of_the_spec_and_refuses_unknown_names():
    assert list(select(TARGET, exclude=("host",))) == ["port", "expected", "token"]
    assert list(select(TARGET, ["token", "port"])) == ["port", "token"]
    with pytest.raises(KeyError):
        select(TARGET, exclude=("hots",))


@pytest.mark.parametrize("broken, message", [
    ({"a": {"type": "str"}}, "one-line description"),
    ({"a": {"type": "string", "description": "x"}}, "type 'string'"),
    ({"a": {"type": "str", "description": "x", "defualt": 1}}, "unknown option key"),
    ({"a": {"type": "int", "required": True, "default": 1, "description": "x"}}, "no default"),
    ({"a": {"type": "list", "elements": "str", "options": {}, "description": "x"}}, "options belong"),
])
def test_validate_spec_catches_a_malformed_spec(broken, message):
    with pytest.raises(ValueError, match=message):
        validate_spec(broken)


def test_validate_spec_accepts_a_good_spec():
    assert validate_spec(MODULE) is MODULE


OLD_NAME = {"expected": {"type": "str", "description": "The state.", "aliases": ["expected_state"],
                         "deprecated_aliases": [{"name": "expected_state", "version": "1.0.0",
                                                 "collection_name": "netcheck.netcheck"}]}}


def test_an_alias_is_documented_passed_to_ansible_and_accepted_by_check_keys():
    assert validate_spec(OLD_NAME) is OLD_NAME
    assert doc_options(OLD_NAME)["expected"]["aliases"] == ["expected_state"]
    assert "deprecated_aliases" not in doc_options(OLD_NAME)["expected"]  # a runtime key, not documentation
    made = argument_spec(OLD_NAME)["expected"]
    assert made["aliases"] == ["expected_state"] and made["deprecated_aliases"][0]["version"] == "1.0.0"
    assert check_keys({"expected_state": "open"}, OLD_NAME, "t") == {"expected_state": "open"}


@pytest.mark.parametrize("option, message", [
    (dict(OLD_NAME["expected"], aliases="expected_state"), "aliases must be a list"),
    (dict(OLD_NAME["expected"], aliases=["other"]), "a deprecated alias must be one of its aliases"),
])
def test_validate_spec_catches_a_bad_alias(option, message):
    with pytest.raises(ValueError, match=message):
        validate_spec({"expected": option})

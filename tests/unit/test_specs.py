"""Every spec, walked: each module's argument_spec is made from its probe's spec, its documentation
(as ansible-doc renders it, doc fragments included) says the same, each documented option is
accepted and every unknown key is rejected naming its path, the roles' argument_specs are the
generated ones, and every module's RETURN is well-formed."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from collection_loader import load_module

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import (  # noqa: E402
    capture, diagnose, http, icmp, limits, path, listener, netfilter, public_ip, tcp,
)
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.spec import (  # noqa: E402
    argument_spec, validate_spec,
)
from ansible_collections.netcheck.netcheck.plugins.plugin_utils import specs as role_specs  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.ec2_explain import EC2_EXPLAIN_SPEC  # noqa: E402

# module -> the spec its argument_spec is made from
MODULE_SPECS = {
    "port_check": tcp.TCP_MODULE_SPEC,
    "http_check": http.HTTP_MODULE_SPEC,
    "icmp_ping": icmp.ICMP_MODULE_SPEC,
    "port_forward": netfilter.PORT_FORWARD_SPEC,
    "tcp_listener": listener.LISTENER_SPEC,
    "public_ip": public_ip.PUBLIC_IP_SPEC,
    "net_diagnose": diagnose.DIAGNOSE_MODULE_SPEC,
    "conn_limits": limits.LIMITS_SPEC,
    "path_probe": path.PATH_SPEC,
    "packet_capture": capture.CAPTURE_SPEC,
}
MODULES = sorted(MODULE_SPECS)
# action-only modules (library/ holds their documentation; plugins/action/ runs them on the controller)
# -> the spec their action plugin checks their options against
ACTION_SPECS = {
    "netcheck_report": role_specs.NETCHECK_REPORT_SPEC,
    "netcheck_config": role_specs.NETCHECK_CONFIG_SPEC,
    "ec2_explain": EC2_EXPLAIN_SPEC,
}
ACTIONS = sorted(ACTION_SPECS)
ALL_SPECS = dict(MODULE_SPECS, **ACTION_SPECS)
DOCUMENTED = sorted(ALL_SPECS)
# what a documented return value may hold; anything else is YAML gone wrong (issue 14 #16)
RETURN_KEYS = {"description", "returned", "type", "elements", "sample", "contains", "choices", "version_added"}


def test_every_module_of_the_collection_has_a_spec_here():
    assert sorted(p.stem for p in (REPO / "library").glob("*.py")) == DOCUMENTED


@pytest.mark.parametrize("name, spec", sorted(
    list(ALL_SPECS.items()) + [("role " + n, s) for n, (_, s) in role_specs.ROLE_SPECS.items()]
    + [("group " + n, s) for n, s in role_specs.GROUP_SPECS.items()]))
def test_every_spec_is_well_formed(name, spec):
    validate_spec(spec, name)


# --- main() builds its NetcheckModule from the spec ---------------------------------------------

class _Built(Exception):
    pass


@pytest.mark.parametrize("name", MODULES)
def test_main_builds_its_argument_spec_from_the_spec_with_check_mode(name, monkeypatch):
    module = load_module(name)
    seen = {}

    def stand_in(spec, **kwargs):
        seen.update(kwargs, argument_spec=spec)
        raise _Built()

    monkeypatch.setattr(module, "NetcheckModule", stand_in)
    with pytest.raises(_Built):
        module.main()
    assert seen["argument_spec"] == argument_spec(MODULE_SPECS[name])
    assert seen.get("supports_check_mode", True) is True  # the wrapper's default (test_module_wrapper.py)


# --- documentation == spec ---------------------------------------------------------------

@pytest.fixture(scope="module")
def rendered_docs(tmp_path_factory):
    """ansible-doc --json of every module by FQCN (doc fragments merged), run outside the clone."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "--json", "-t", "module"]
                          + ["netcheck.netcheck.%s" % name for name in DOCUMENTED],
                          cwd=str(tmp_path_factory.mktemp("doc")), env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return {fqcn.split(".")[-1]: entry for fqcn, entry in json.loads(proc.stdout).items()}


def _facts(option, nested):
    """What must agree between a spec option and a documented option."""
    facts = {key: option.get(key) for key in ("type", "default", "elements")}
    facts["type"] = facts["type"] or "str"
    facts["required"] = bool(option.get("required"))
    # no_log is not a DOCUMENTATION key (validate-modules refuses it): the spec alone carries it
    facts["choices"] = list(option["choices"]) if option.get("choices") else None
    if option.get(nested):
        facts["options"] = sorted(option[nested])
    return facts


def _compare(spec, documented, path):
    assert list(documented) and sorted(spec) == sorted(documented), "%s: documented options differ" % path
    for name, option in spec.items():
        doc = documented[name]
        assert _facts(option, "options") == _facts(doc, "suboptions"), "%s.%s" % (path, name)
        if option.get("options"):
            _compare(option["options"], doc["suboptions"], "%s.%s" % (path, name))


@pytest.mark.parametrize("name", DOCUMENTED)
def test_documentation_says_what_the_spec_says(name, rendered_docs):
    _compare(ALL_SPECS[name], rendered_docs[name]["doc"]["options"], name)


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_module_supports_check_mode_in_its_documentation(name, rendered_docs):
    assert rendered_docs[name]["doc"]["attributes"]["check_mode"]["support"] == "full"


# --- each option accepted, each unknown key rejected with its path -------------------------------

_SAMPLES = {"str": "x", "path": "/tmp/x", "int": 1, "float": 1.5, "bool": True, "raw": "x", "dict": {}}


def _sample(option):
    if option.get("choices"):
        return option["choices"][0]
    if option.get("options"):
        item = {name: _sample(sub) for name, sub in option["options"].items()}
        return [item] if option["type"] == "list" else item
    if option["type"] == "list":
        return [_SAMPLES[option.get("elements", "str")]]
    return _SAMPLES[option["type"]]


def _nested_paths(spec, prefix=""):
    """(path as ansible names it, option) of every nested spec."""
    for name, option in spec.items():
        if option.get("options"):
            yield prefix + name, option
            yield from _nested_paths(option["options"], prefix + name + ".")


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_documented_option_is_accepted(name):
    spec = ALL_SPECS[name]
    every = {option: _sample(value) for option, value in spec.items()}
    result = ArgumentSpecValidator(argument_spec(spec)).validate(every)
    assert result.error_messages == [], name


@pytest.mark.parametrize("name", DOCUMENTED)
def test_an_unknown_key_is_rejected_naming_its_path_at_every_level(name):
    spec = ALL_SPECS[name]
    every = {option: _sample(value) for option, value in spec.items()}
    result = ArgumentSpecValidator(argument_spec(spec)).validate(dict(every, colour="blue"))
    assert any("colour" in message for message in result.error_messages), name
    for path, option in _nested_paths(spec):
        value = dict(every)
        node, keys = value, path.split(".")
        for key in keys[:-1]:
            node = node[key][0] if isinstance(node[key], list) else node[key]
        item = node[keys[-1]]
        target = item[0] if isinstance(item, list) else item
        target["colour"] = "blue"
        result = ArgumentSpecValidator(argument_spec(spec)).validate(value)
        assert any("%s.colour" % path in message for message in result.error_messages), (name, path,
                                                                                         result.error_messages)
        del target["colour"]


# --- roles: argument_specs.yml generated from the specs -----------------------------------------

def test_the_roles_argument_specs_are_the_generated_ones():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_argument_specs.py"), "--check"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("role", sorted(role_specs.ROLE_SPECS))
def test_every_role_default_is_a_declared_variable_and_every_variable_has_a_default(role):
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
    assert sorted(defaults) == sorted(role_specs.ROLE_SPECS[role][1])


def test_role_variables_handed_to_a_module_option_have_its_type_and_choices():
    spec = role_specs.NETCHECK_ROLE_SPEC
    assert spec["netcheck_targets"]["options"] is diagnose.DIAGNOSE_TARGET_SPEC
    assert spec["netcheck_tcp_targets"]["options"] is role_specs.EXTRA_TARGET_SPECS["tcp"]
    assert spec["netcheck_tcp_group_targets"]["options"] is role_specs.GROUP_SPECS["tcp"]
    for variable, option in (("netcheck_tcp_timeout", diagnose.DIAGNOSE_MODULE_SPEC["tcp_timeout"]),
                             ("netcheck_max_workers", diagnose.DIAGNOSE_MODULE_SPEC["max_workers"]),
                             ("netcheck_mesh_icmp", diagnose.DIAGNOSE_TARGET_SPEC["icmp"]),
                             ("netcheck_icmp_method", icmp.ICMP_MODULE_SPEC["method"]),
                             ("netcheck_http_follow_redirects", http.HTTP_MODULE_SPEC["follow_redirects"])):
        assert {k: v for k, v in spec[variable].items() if k != "description"} == {
            k: v for k, v in option.items() if k not in ("description", "default")}


def test_role_validation_rejects_a_typo_in_a_group_target_naming_its_path():
    from ansible_collections.netcheck.netcheck.plugins.plugin_utils.config import check_variables
    _, problems = check_variables({"netcheck_tcp_group_targets": [{"group": "db", "port": 22,
                                                                   "expected_sate": "filtered"}]})
    assert problems == ["netcheck_tcp_group_targets[0].expected_sate: unknown key (did you mean expected?)"]


def test_the_netcheck_role_leaves_its_options_out_of_ansibles_dump_prone_check():
    role_spec = yaml.safe_load((REPO / "roles" / "netcheck" / "meta" / "argument_specs.yml").read_text())
    assert "options" not in role_spec["argument_specs"]["main"]


# --- RETURN: parsed, with no stray keys ------------------------------------------------------------

def _return_of(name):
    tree = ast.parse((REPO / "library" / ("%s.py" % name)).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "RETURN" for t in node.targets):
            return yaml.safe_load(ast.literal_eval(node.value))
    raise AssertionError("no RETURN in %s" % name)


def _walk_return(values, path):
    for key, value in values.items():
        where = "%s.%s" % (path, key)
        assert isinstance(value, dict), "%s: a return value must be a mapping, got %r" % (where, value)
        stray = set(value) - RETURN_KEYS
        assert not stray, "%s: stray keys %s (a ':' or ',' cut a one-line description short?)" % (where, stray)
        assert isinstance(value.get("description"), (str, list)) and value["description"], where
        assert value.get("type"), "%s: no type" % where
        if "contains" in value:
            _walk_return(value["contains"], where)


@pytest.mark.parametrize("name", DOCUMENTED)
def test_return_parses_with_no_stray_keys_at_any_depth(name):
    _walk_return(_return_of(name), name)


def test_the_return_walk_catches_a_description_cut_short_by_a_comma():
    broken = yaml.safe_load("errno: {description: The errno, else null., type: int}")
    with pytest.raises(AssertionError, match="stray keys"):
        _walk_return(broken, "x")


# --- action-only modules: the action plugin rejects an unknown option, naming it ------------------

@pytest.mark.parametrize("name, args", [
    ("netcheck_report", {"sources": ["h1"], "colour": "blue"}),
    ("ec2_explain", {"source": "10.0.0.1", "target": "10.0.0.2", "port": 22, "colour": "blue"}),
    ("net_diagnose", {"targets": [], "group_targets": {"tcp": [{"group": "db", "port": 22, "colour": "blue"}]}}),
])
def test_an_action_plugin_rejects_an_unknown_option_naming_it(name, args, monkeypatch):
    import importlib
    import types

    from ansible.errors import AnsibleActionFail
    from ansible.plugins.action import ActionBase

    plugin = importlib.import_module("ansible_collections.netcheck.netcheck.plugins.action." + name)
    monkeypatch.setattr(ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
    action = plugin.ActionModule.__new__(plugin.ActionModule)
    action._task = types.SimpleNamespace(args=args)
    with pytest.raises(AnsibleActionFail, match="colour"):
        action.run(task_vars={"inventory_hostname": "h1", "groups": {"db": ["h2"]}, "hostvars": {}})

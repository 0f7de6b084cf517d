"""library/port_check.py: its DOCUMENTATION, EXAMPLES and RETURN are valid YAML and say exactly
what the module takes and returns, and ansible-doc can render it. Results used for RETURN are real
check_targets results against loopback ports; the module's main() runs with a stand-in
AnsibleModule (no Ansible run, no SSH)."""

from __future__ import annotations

import importlib.util
import os
import socket
import socketserver
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.module import NetcheckModule
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import RESULT_KEYS, summarize
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.tcp import STATES, check_targets, parse_targets

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE_FILE = REPO_ROOT / "library" / "port_check.py"


# --- loading the module -----------------------------------------------------------------

@pytest.fixture(scope="module")
def port_check():
    """library/port_check.py imported as the collection module netcheck.netcheck.port_check
    (its relative imports reach module_utils/ as they do when Ansible runs it)."""
    from collection_loader import load_module
    return load_module("port_check")


class _Exit(Exception):
    """Raised by the stand-in module's exit_json / fail_json, carrying their arguments."""

    def __init__(self, failed, kwargs):
        super().__init__(failed, kwargs)
        self.failed = failed
        self.kwargs = kwargs


def run_main(port_check, monkeypatch, params):
    """Run port_check.main() with a stand-in NetcheckModule; return (failed, kwargs, constructor kwargs)."""
    seen = {}

    class StandIn(object):
        finish = NetcheckModule.finish

        def __init__(self, spec, **kwargs):
            seen.update(kwargs, argument_spec=spec)
            self.params = params

        def exit_json(self, **kwargs):
            raise _Exit(False, kwargs)

        def fail_json(self, **kwargs):
            raise _Exit(True, kwargs)

    monkeypatch.setattr(port_check, "NetcheckModule", StandIn)
    with pytest.raises(_Exit) as caught:
        port_check.main()
    return caught.value.failed, caught.value.kwargs, seen


def target_params(**given):
    """A target as Ansible hands it to the module after the argument spec: every sub-option present."""
    params = {"host": None, "port": None, "timeout": None, "send": None, "expect": None,
              "expected": "open", "family": "any", "name": None}
    params.update(given)
    return params


@pytest.fixture
def argument_spec(port_check, monkeypatch):
    _, _, seen = run_main(port_check, monkeypatch, {"targets": [], "timeout": 3.0, "max_workers": 0, "confirm_budget": 10.0})
    return seen["argument_spec"]


@pytest.fixture(scope="module")
def documentation():
    """DOCUMENTATION with the options of its netcheck doc fragments merged in, as ansible-doc does."""
    docs = yaml.safe_load(_module_constant("DOCUMENTATION"))
    fragments = _load_file(REPO_ROOT / "plugins" / "doc_fragments" / "probe.py").ModuleDocFragment
    attributes = _load_file(REPO_ROOT / "plugins" / "doc_fragments" / "attributes.py").ModuleDocFragment
    for name in docs.get("extends_documentation_fragment", []):
        variable = name.split(".")[3].upper() if name.count(".") == 3 else "DOCUMENTATION"
        if name.startswith("netcheck.netcheck.probe"):
            docs["options"].update(yaml.safe_load(getattr(fragments, variable))["options"])
        if name.startswith("netcheck.netcheck.attributes"):
            merged = yaml.safe_load(getattr(attributes, variable))["attributes"]
            for key, value in (docs.get("attributes") or {}).items():
                merged.setdefault(key, {}).update(value)  # the module's keys win, as in ansible-doc
            docs["attributes"] = merged
    return docs


def _load_file(path):
    spec = importlib.util.spec_from_file_location("netcheck_doc_fragment_%s" % path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def returns():
    return yaml.safe_load(_module_constant("RETURN"))


def _module_constant(name):
    """A string constant of the module, read without importing it."""
    import ast

    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("%s not found in %s" % (name, MODULE_FILE))


# --- real results against loopback -------------------------------------------------------

class _BannerServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 32


def _serve(handle):
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            try:
                handle(self.request)
            except OSError:
                pass

    server = _BannerServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def real_results():
    """check_targets results for a closed port, an open port, and an open port with send/expect."""
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    server = _serve(lambda conn: conn.sendall(b"SSH-2.0-netcheck_test\r\n"))
    try:
        open_port = server.server_address[1]
        targets = parse_targets([
            {"host": "127.0.0.1", "port": closed_port, "name": "closed"},
            {"host": "127.0.0.1", "port": open_port, "name": "open"},
            {"host": "127.0.0.1", "port": open_port, "send": "hi\r\n", "expect": "^SSH-2", "name": "banner"},
        ], default_timeout=2)
        results = check_targets(targets)
    finally:
        server.shutdown()
        server.server_close()
    assert [r["state"] for r in results] == ["closed", "open", "open"]
    return results


# --- the three documentation strings ------------------------------------------------------

def test_documentation_is_yaml_describing_port_check(documentation):
    assert documentation["module"] == "port_check"
    assert documentation["short_description"]
    assert set(documentation["options"]) >= {"targets", "timeout", "max_workers"}


def test_examples_are_yaml_tasks_whose_targets_the_module_accepts():
    tasks = yaml.safe_load(_module_constant("EXAMPLES"))
    assert isinstance(tasks, list) and tasks
    uses = [task["netcheck.netcheck.port_check"] for task in tasks if "netcheck.netcheck.port_check" in task]
    assert len(uses) >= 3
    for args in uses:
        targets = parse_targets(args["targets"], float(args.get("timeout", 3)))  # raises on a bad example
        assert len(targets) == len(args["targets"])


def test_return_is_yaml_documenting_results_summary_and_elapsed_ms(returns):
    assert set(returns) == {"results", "summary", "elapsed_ms"}
    assert returns["results"]["type"] == "list" and returns["results"]["elements"] == "dict"


# --- DOCUMENTATION options == argument_spec ----------------------------------------------

def _option_facts(option):
    """type, required, default, choices and elements of a doc option or an argument_spec entry."""
    return {
        "type": option.get("type", "str"),
        "required": bool(option.get("required", False)),
        "default": option.get("default"),
        "choices": sorted(option["choices"]) if option.get("choices") else None,
        "elements": option.get("elements"),
    }


def test_argument_spec_options_are_exactly_the_documented_options(argument_spec, documentation):
    assert set(argument_spec) == set(documentation["options"])
    assert set(argument_spec["targets"]["options"]) == set(documentation["options"]["targets"]["suboptions"])


def test_argument_spec_types_defaults_and_choices_match_the_documentation(argument_spec, documentation):
    for name, doc in documentation["options"].items():
        assert _option_facts(argument_spec[name]) == _option_facts(doc), name
    sub_docs = documentation["options"]["targets"]["suboptions"]
    for name, doc in sub_docs.items():
        assert _option_facts(argument_spec["targets"]["options"][name]) == _option_facts(doc), name


def test_expected_choices_are_the_probe_states(argument_spec, documentation):
    assert argument_spec["targets"]["options"]["expected"]["choices"] == list(STATES)
    assert documentation["options"]["targets"]["suboptions"]["expected"]["choices"] == list(STATES)


def test_module_supports_check_mode_as_documented(port_check, monkeypatch, documentation):
    _, _, seen = run_main(port_check, monkeypatch, {"targets": [], "timeout": 3.0, "max_workers": 0, "confirm_budget": 10.0})
    assert seen.get("supports_check_mode", True) is True  # NetcheckModule's default
    assert documentation["attributes"]["check_mode"]["support"] == "full"


# --- RETURN == what is returned ------------------------------------------------------------

def test_return_documents_exactly_the_result_keys(returns, real_results):
    documented = set(returns["results"]["contains"])
    assert documented == set(RESULT_KEYS)
    for result in real_results:
        assert set(result) == documented


def test_return_documents_exactly_the_detail_keys(returns, real_results):
    documented = set(returns["results"]["contains"]["detail"]["contains"])
    returned = set()
    for result in real_results:
        assert set(result["detail"]) <= documented, result["target"]
        returned |= set(result["detail"])
    assert returned == documented


def test_local_address_is_returned_only_when_connected(returns, real_results):
    closed, opened, banner = real_results
    assert "local_address" not in closed["detail"]
    assert opened["detail"]["local_address"] == "127.0.0.1"
    assert "when connected" in returns["results"]["contains"]["detail"]["contains"]["local_address"]["description"]


def test_return_sample_detail_has_the_documented_keys(returns):
    detail = returns["results"]["contains"]["detail"]
    assert set(detail["sample"]) == set(detail["contains"])


def test_return_describes_every_timing_that_is_returned(returns, real_results):
    description = returns["results"]["contains"]["timings"]["description"]
    timings = set()
    for result in real_results:
        timings |= set(result["timings"])
    assert timings == {"resolve_ms", "connect_ms", "expect_ms", "total_ms"}
    for name in timings:
        assert name in description
    assert set(returns["results"]["contains"]["timings"]["sample"]) <= timings


def test_return_state_choices_are_the_probe_states_plus_error(returns, real_results):
    choices = returns["results"]["contains"]["state"]["choices"]
    assert set(choices) == set(STATES) | {"error"}
    assert all(result["state"] in choices for result in real_results)


def test_return_summary_sample_has_the_keys_of_summarize(returns, real_results):
    assert set(returns["summary"]["sample"]) == set(summarize(real_results))


def test_return_documents_the_detail_of_a_conversation_that_failed(returns):
    def reset(conn):
        conn.recv(1024)  # after the client's send, so after its connect() returned
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    server = _serve(reset)
    try:
        targets = parse_targets([{"host": "127.0.0.1", "port": server.server_address[1], "send": "hi",
                                  "expect": "x"}],
                                default_timeout=5)  # the reset comes at once
        (result,) = check_targets(targets)
    finally:
        server.shutdown()
        server.server_close()
    if not (result["state"] == "open" and result["detail"]["errno_name"] == "ECONNRESET"):
        pytest.fail("precondition: expected a reset conversation, got %r" % (result,))  # not an xfail
    undocumented = set(result["detail"]) - set(returns["results"]["contains"]["detail"]["contains"])
    assert undocumented == set()


# --- main() with a stand-in AnsibleModule (loopback only) -----------------------------------

def test_main_returns_the_documented_top_level_keys(port_check, monkeypatch, returns, real_results):
    closed_port = int(real_results[0]["detail"]["port"])
    failed, kwargs, _ = run_main(port_check, monkeypatch, {
        "targets": [target_params(host="127.0.0.1", port=closed_port, expected="closed")],
        "timeout": 2.0, "max_workers": 256, "confirm_budget": 10.0})
    assert failed is False
    assert set(kwargs) - {"msg", "changed"} == set(returns)
    assert kwargs["changed"] is False
    assert kwargs["summary"] == {"total": 1, "ok": 1, "failed": 0, "states": {"closed": 1}}
    assert kwargs["results"][0]["state"] == "closed"
    assert isinstance(kwargs["elapsed_ms"], float)


def test_main_fails_when_a_target_misses_its_expectation_and_still_returns_results(port_check, monkeypatch,
                                                                                   real_results):
    closed_port = int(real_results[0]["detail"]["port"])
    failed, kwargs, _ = run_main(port_check, monkeypatch, {
        "targets": [target_params(host="127.0.0.1", port=closed_port)], "timeout": 2.0, "max_workers": 256, "confirm_budget": 10.0})
    assert failed is True
    assert kwargs["msg"].startswith("1 of 1 targets missed their expectation: 127.0.0.1:%d: " % closed_port)
    assert [r["state"] for r in kwargs["results"]] == ["closed"]


def test_main_rejects_bad_input_naming_the_field_before_probing(port_check, monkeypatch):
    failed, kwargs, _ = run_main(port_check, monkeypatch, {
        "targets": [target_params(host="127.0.0.1", port=22), target_params(host="a;b", port=22)],
        "timeout": 2.0, "max_workers": 256, "confirm_budget": 10.0})
    assert failed is True
    assert kwargs["msg"].startswith("targets[1].host: ")
    assert kwargs["results"] == [] and kwargs["summary"]["total"] == 0


def test_main_rejects_max_workers_below_one(port_check, monkeypatch):
    failed, kwargs, _ = run_main(port_check, monkeypatch, {
        "targets": [target_params(host="127.0.0.1", port=22)], "timeout": 2.0, "max_workers": 0, "confirm_budget": 10.0})
    assert failed is True
    assert kwargs["msg"].startswith("max_workers: 0 ")
    assert kwargs["results"] == []


def test_main_rejects_a_negative_confirm_budget_before_probing(port_check, monkeypatch):
    failed, kwargs, _ = run_main(port_check, monkeypatch, {
        "targets": [target_params(host="127.0.0.1", port=22)], "timeout": 2.0, "max_workers": 8,
        "confirm_budget": -1.0})
    assert failed is True
    assert kwargs["msg"].startswith("confirm_budget: -1.0 ")
    assert kwargs["results"] == []


# --- ansible-doc ------------------------------------------------------------------------------

def _ansible_doc():
    for candidate in (Path(sys.executable).parent / "ansible-doc", REPO_ROOT / ".venv" / "bin" / "ansible-doc"):
        if candidate.exists():
            return str(candidate)
    pytest.skip("ansible-doc is not installed next to this Python")


def _run_ansible_doc(*args):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run([_ansible_doc(), *args, "netcheck.netcheck.port_check"], cwd=str(REPO_ROOT), env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_ansible_doc_renders_the_module():
    done = _run_ansible_doc()
    assert done.returncode == 0, done.stderr
    assert "port_check" in done.stdout
    assert "expected" in done.stdout


ALL_MODULES = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "library").glob("*.py"))


@pytest.mark.parametrize("name", ALL_MODULES)
def test_every_module_documentation_renders_with_ansible_doc(name):
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "netcheck.netcheck." + name],
                          cwd=repo, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(repo / "ansible.cfg")), check=False)
    assert proc.returncode == 0 and "ERROR" not in proc.stderr, proc.stderr
    assert "EXAMPLES" in proc.stdout and "RETURN VALUES" in proc.stdout


def _documented_detail(module_name):
    import ast

    import yaml
    source = (Path(__file__).resolve().parents[2] / "library" / (module_name + ".py")).read_text()
    assigns = {node.targets[0].id: node.value.value for node in ast.parse(source).body
               if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
               and node.targets[0].id == "RETURN"}
    results = yaml.safe_load(assigns["RETURN"])["results"]["contains"]
    return set(results), set(results["detail"]["contains"])


def test_icmp_ping_return_documents_exactly_what_the_probe_returns():
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.icmp import parse_targets as icmp_targets, ping_targets
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.neighbour import next_hops
    results, _, _ = ping_targets(icmp_targets(["127.0.0.1"]), count=1, interval=0.01, timeout=0.5,
                                 neighbours=next_hops)
    top, detail = _documented_detail("icmp_ping")
    assert set(results[0]) == top
    assert set(results[0]["detail"]) == detail


def test_http_check_return_documents_exactly_what_the_probe_returns():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from lab.webserver import LabHandler, LabServer
    from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.http import check_url, parse_targets as http_targets
    server = LabServer(("127.0.0.1", 0), LabHandler)
    server.lab_name, server.auth = "docs", None
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        (target,) = http_targets(["http://127.0.0.1:%d/" % server.server_address[1]])
        result = check_url(target)
    finally:
        server.shutdown()
        server.server_close()
    top, detail = _documented_detail("http_check")
    assert result["ok"] is True
    assert set(result) == top
    assert set(result["detail"]) == detail

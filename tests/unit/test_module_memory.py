"""A module run's memory and how its answer is written (issue 15: bounded threads and memory).

port_check's main() runs in a child process against 10,000 loopback targets, as one Ansible task
would; its peak resident set (VmHWM) must stay under 64 MiB. The answer is written by
probe.StreamedResult piece by piece: the same bytes as ansible-core's own printing, never the
whole text at once. Traffic goes to one closed port on 127.0.0.1 only.
"""

from __future__ import annotations

import io
import json
import sys

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.json import Direction, get_module_encoder
from ansible.module_utils.testing import patch_module_args

from collection_loader import REPO, load_module
from netcheck.probe import StreamedResult, new_module

sys.path.insert(0, str(REPO / "bench"))
import module_rss  # noqa: E402  (the benchmark's own measurement, run as a test)

TARGETS = 10000
# Measured here (Python 3.11, ansible-core 2.19.14): 72 MiB before issue 15, 55 MiB after
# (a 7.7 MB answer). The bound leaves room for allocator noise, not for a regression that
# holds the answer, or the results, once more.
PEAK_LIMIT_MIB = 64


def test_port_check_on_10000_loopback_targets_peaks_under_64_mib(closed_port):
    facts = module_rss.in_process(TARGETS, first_port=closed_port, ports=1)
    assert facts["results"] == TARGETS and facts["states"] == {"closed": TARGETS}
    assert facts["module_args_targets"] == TARGETS
    assert facts["threads_started"] == 0, "literal targets are probed by the module's own thread"
    assert facts["peak_mib"] < PEAK_LIMIT_MIB, "peak RSS %.1f MiB" % facts["peak_mib"]


# --- StreamedResult ----------------------------------------------------------------------

ANSWER = {
    "changed": False,
    "msg": "2 of 3 targets missed their expectation: \"a\"\nb",
    "results": [{"target": "[::1]:22", "kind": "tcp", "state": "open", "ok": True,
                 "timings": {"connect_ms": 0.25}, "error": None,
                 "detail": {"banner": "caf\u00e9 \u2603\r\n", "errno": None, "ports": [1, 2.5, True]}}] * 3,
    "summary": {"total": 3, "ok": 1, "failed": 2, "states": {}},
    "elapsed_ms": 1.5,
    "invocation": {"module_args": {"targets": [{"host": "::1", "port": 22}, {"host": "x"}], "empty": []}},
}


class _Streamed(StreamedResult, basic.AnsibleModule):
    def __init__(self):  # no argument parsing: only the writing is under test
        pass


def _printed(hook, answer):
    real, sys.stdout = sys.stdout, io.StringIO()
    try:
        hook(_Streamed(), answer)
        return sys.stdout.getvalue()
    finally:
        sys.stdout = real


@pytest.mark.parametrize("profile", ["legacy", "modern"])
def test_streamed_result_writes_the_bytes_ansible_core_writes(monkeypatch, profile):
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", profile)
    ours = _printed(_Streamed._record_module_result, ANSWER)
    assert ours == _printed(basic.AnsibleModule._record_module_result, ANSWER)
    assert ours == "\n%s\n" % json.dumps(ANSWER, cls=get_module_encoder(profile, Direction.MODULE_TO_CONTROLLER))


def test_streamed_result_leaves_the_writing_to_a_replaced_hook(monkeypatch):
    written = []
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    monkeypatch.setattr(basic.AnsibleModule, "_record_module_result", lambda self, o: written.append(o))
    assert _printed(_Streamed._record_module_result, ANSWER) == ""
    assert written == [ANSWER]


def test_streamed_result_leaves_the_writing_to_ansible_core_without_a_profile(monkeypatch):
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", None)
    with pytest.raises(Exception, match="profile"):  # ansible-core's own error, not ours
        _printed(_Streamed._record_module_result, ANSWER)


def test_new_module_streams_only_for_ansible_cores_module_class():
    class StandIn(object):
        def __init__(self, argument_spec, **kwargs):
            self.params = {name: None for name in argument_spec}

    assert type(new_module(StandIn, {"targets": {"type": "list"}})) is StandIn


def test_a_refused_shape_names_the_field_and_echoes_no_value(capsys):
    module = load_module("port_check")
    with patch_module_args({"targets": [{"host": "127.0.0.1", "port": 9, "name": "s3cret-label"}, 7]}):
        with pytest.raises(SystemExit):
            module.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    assert result["failed"] is True and result["msg"] == "targets[1]: expected a mapping, got int"
    assert "s3cret" not in out and "127.0.0.1" not in out

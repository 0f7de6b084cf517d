"""A module run's memory and how its answer is written (issue 15: bounded threads and memory).

port_check's main() runs in a child process against 10,000 loopback targets, as one Ansible task
would; its peak resident set (VmHWM) must stay under 64 MiB. The answer is written by
probe.StreamedResult piece by piece: the same bytes as ansible-core's own printing, never the
whole text at once. Traffic goes to one closed port on 127.0.0.1 only.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.json import Direction, get_module_encoder
from ansible.module_utils.testing import patch_module_args

from collection_loader import REPO, load_module
from netcheck.probe import StreamedResult, new_module

TARGETS = 10000
# Measured here (Python 3.11, ansible-core 2.19.14): 72 MiB before issue 15, 55 MiB after
# (a 7.7 MB answer). The bound leaves room for allocator noise, not for a regression that
# holds the answer, or the results, once more.
PEAK_LIMIT_MIB = 64

CHILD = textwrap.dedent("""
    import json, os, sys, threading
    sys.path[:0] = [{tests!r}]
    from ansible.module_utils import basic
    from collection_loader import load_module

    def peak_kib():
        # VmHWM, the peak of this process's own memory: ru_maxrss would also count the parent's
        # resident set at the fork (Linux keeps the high-water mark across exec)
        with open("/proc/self/status") as status:
            return int([line for line in status if line.startswith("VmHWM:")][0].split()[1])

    started = []
    start_thread = threading.Thread.start

    def counted_start(self):
        started.append(self.name)
        start_thread(self)

    threading.Thread.start = counted_start  # counts the probe's threads; changes nothing else
    module = load_module("port_check")
    # what AnsiballZ hands the module: the arguments as JSON bytes, nothing else kept
    # (patch_module_args would keep the 10,000 dicts alive through the run)
    basic._ANSIBLE_ARGS = json.dumps({{"ANSIBLE_MODULE_ARGS": {{"targets": [
        {{"host": "127.0.0.1", "port": {port}}} for _ in range({count})]}}}}).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    try:
        module.main()
    except SystemExit:
        pass
    sys.stdout.flush()
    sys.stderr.write(json.dumps({{"peak_kib": peak_kib(), "threads_started": len(started)}}))
""")


def test_port_check_on_10000_loopback_targets_peaks_under_64_mib(closed_port, tmp_path):
    answer = tmp_path / "answer.json"
    with answer.open("wb") as stdout:
        proc = subprocess.run([sys.executable, "-c", CHILD.format(tests=str(REPO / "tests"), port=closed_port,
                                                                  count=TARGETS)],
                              stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60, cwd=str(tmp_path))
    facts = json.loads(proc.stderr.strip().splitlines()[-1])
    result = json.loads(answer.read_text())
    assert len(result["results"]) == TARGETS and result["summary"]["states"] == {"closed": TARGETS}
    assert len(result["invocation"]["module_args"]["targets"]) == TARGETS
    assert facts["threads_started"] == 0, "literal targets are probed by the module's own thread"
    assert facts["peak_kib"] / 1024.0 < PEAK_LIMIT_MIB, "peak RSS %.1f MiB" % (facts["peak_kib"] / 1024.0)


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

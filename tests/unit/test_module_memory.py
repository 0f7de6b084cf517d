"""A module run's memory (issue 15: bounded threads and memory) and its refused input.

port_check's main() runs in a child process against 10,000 loopback targets, as one Ansible task
would, and its peak resident set (VmHWM) is bounded. The answer is printed by ansible-core's own
exit_json (issue 20: the streamed answer used a private hook of ansible-core and was removed), so
the bound is the measured peak of that plus room for allocator noise, not the 64 MiB target of
issues 15 and 22 (docs/performance.md). Traffic goes to one closed port on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import sys

import pytest
from ansible.module_utils.testing import patch_module_args

from collection_loader import REPO, load_module

sys.path.insert(0, str(REPO / "bench"))
import module_rss  # noqa: E402  (the benchmark's own measurement, run as a test)

TARGETS = 10000
# Measured here (Python 3.11, ansible-core 2.19.14): 72 MiB before issue 15, 55 MiB with the
# streamed answer (a private hook, removed by issue 20), 73 MiB with exit_json's printing, 84-86 MiB
# since every result carries its outcome record (a 9.4 MiB answer). Issue 22's 64 MiB is out of reach
# through exit_json (docs/performance.md, bench/module_rss.py prints the split): 26 MiB loaded, plus
# remove_values' copy of the answer (about 16 MiB) and the JSON text twice (2 x 9.4 MiB) are already
# 61 MiB before the results themselves and the input. The bound leaves room for allocator noise, not
# for a regression that holds the answer, or the results, once more (that would add 9 MiB or more).
PEAK_LIMIT_MIB = 90


def test_port_check_on_10000_loopback_targets_peak_is_bounded(closed_port):
    facts = module_rss.in_process(TARGETS, first_port=closed_port, ports=1)
    assert facts["results"] == TARGETS and facts["states"] == {"closed": TARGETS}
    assert facts["module_args_targets"] in (TARGETS, None)  # None: ansible-core 2.21 echoes no invocation
    assert facts["threads_started"] == 0, "literal targets are probed by the module's own thread"
    assert facts["peak_mib"] < PEAK_LIMIT_MIB, "peak RSS %.1f MiB" % facts["peak_mib"]


def test_a_refused_shape_names_the_field_and_echoes_no_value(capsys):
    module = load_module("port_check")
    with patch_module_args({"targets": [{"host": "127.0.0.1", "port": 9, "name": "s3cret-label"}, 7]}):
        with pytest.raises(SystemExit):
            module.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    assert result["failed"] is True and result["msg"] == "targets[1]: expected a mapping, got int"
    assert "s3cret" not in out and "127.0.0.1" not in out

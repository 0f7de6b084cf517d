"""Test-only stdout callback: prints every task result of the run as one JSON document.

ansible-core 2.19 ships no json callback (it lives in ansible.posix), and tests
must read real module results, not scrape text.
"""

from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: capture_json
type: stdout
short_description: all task results as one JSON document (netcheck tests)
description:
  - 'Prints {"tasks": [{"task": NAME, "hosts": {HOST: RESULT}}], "stats": {...}} at the end.'

"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "capture_json"

    def __init__(self):
        super().__init__()
        self.tasks = []

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.tasks.append({"task": task.get_name(), "hosts": {}})

    def _record(self, result, **status):
        if not self.tasks:  # ad-hoc runs announce no task start
            self.tasks.append({"task": result.task_name, "hosts": {}})
        data = json.loads(self._dump_results(result._result, indent=None))
        if "diff" in result._result:  # _dump_results leaves the diff to v2_on_file_diff
            data["diff"] = json.loads(json.dumps(result._result["diff"], default=str))
        data.update(status)
        self.tasks[-1]["hosts"][result._host.get_name()] = data

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed)
        summary = {h: stats.summarize(h) for h in hosts}
        self._display.display(json.dumps({"tasks": self.tasks, "stats": summary}))

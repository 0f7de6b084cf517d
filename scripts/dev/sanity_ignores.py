"""Keep the ``pylint:disallowed-name`` lines of tests/sanity/ignore-2.*.txt in step with the code.

ansible-test's pylint profile forbids the name ``_``; this project uses it, as Python code commonly
does, for a value it does not need (``for _ in range(n)``, ``host, _, port = text.partition(...)``).
Renaming every such value in every file is churn, so each file that uses it gets one ignore line
with that reason. Every other ignore line is written by hand, with its own reason, and kept.

    .venv/bin/python scripts/run_ansible_test.py sanity --test pylint > /tmp/pylint.log
    .venv/bin/python scripts/dev/sanity_ignores.py /tmp/pylint.log

Run it after merging branches (ansible-test also fails on an ignore line that is no longer needed).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IGNORE_FILES = [REPO / "tests" / "sanity" / name for name in ("ignore-2.19.txt", "ignore-2.20.txt", "ignore-2.21.txt")]
REASON = "the project names a value it does not need '_' (for _ in range(n)); ansible-test's pylint forbids the name"
ERROR = re.compile(r"^ERROR: (\S+?):\d+:\d+: disallowed-name: Disallowed name \"_\"")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit(__doc__)
    # an existing line stays if the file still exists and the log does not contradict it
    found = set()
    for line in Path(argv[0]).read_text(encoding="utf-8", errors="replace").splitlines():
        match = ERROR.match(line)
        if match:
            found.add(match.group(1))
    for ignore_file in IGNORE_FILES:
        kept = []
        if ignore_file.exists():
            for line in ignore_file.read_text(encoding="utf-8").splitlines():
                path = line.split(" ", 1)[0]
                if "pylint:disallowed-name" in line:
                    if path in found or not (REPO / path).exists():
                        continue  # rewritten below, or gone
                    found.add(path)  # still ignored: the log may come from a run without pylint errors there
                    continue
                kept.append(line)
        lines = kept + ["%s pylint:disallowed-name  # %s" % (path, REASON) for path in found if (REPO / path).exists()]
        ignore_file.parent.mkdir(parents=True, exist_ok=True)
        ignore_file.write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")
        print("%s: %d lines (%d disallowed-name)" % (ignore_file.relative_to(REPO), len(lines), len(found)))


if __name__ == "__main__":
    main()

"""Run path.py inside a lab namespace (``ip netns exec NS python3 path_runner.py ...``) and print JSON.

The probes run where the flow starts, with the repository's module_utils, as a module would.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# the repository as the collection netcheck.netcheck (collections/ links back to it): one import name
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import path  # noqa: E402


def main(argv):
    kind, target = argv[0], argv[1]
    options = json.loads(argv[2]) if len(argv) > 2 else {}
    if kind == "trace":
        result = path.trace(target, **options)
        result["hint"] = path.trace_hint(result["stop"])
    else:
        result = path.discover_mtu(target, **options)
        result["hint"] = path.mtu_hint(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])

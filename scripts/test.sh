#!/usr/bin/env bash
# The README's second command: install everything, then run the whole test suite, offline:
#   1. ansible-test sanity (every Python 3.8-3.13 present) and ansible-test units (tests/unit),
#      on ansible-core 2.19 (.venv) and, where scripts/install.sh could make it, 2.21 (.venv-core221);
#   2. the integration tests (tests/integration) against a namespace lab they start and remove.
# With arguments, only pytest runs, with them (a selection: `bash scripts/test.sh tests/unit -k tcp`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
failed=()
# sanity's compile and import run on every Python 3.8-3.13 present with 2.19; with 2.21 on its own
# Python (the other tests of sanity run once per ansible-core either way). Both are CPU work only
# (no lab, no timing): 2.21's run beside 2.19's, one core each, its output printed when it ends.
core221_pid=""
if [ -x .venv-core221/bin/python ]; then
    core221_log=$(mktemp)
    py221=$(.venv-core221/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    (
        status=0
        .venv-core221/bin/python scripts/run_ansible_test.py sanity --python "$py221" || status=1
        .venv-core221/bin/python scripts/run_ansible_test.py units || status=$((status + 2))
        exit "$status"
    ) > "$core221_log" 2>&1 &
    core221_pid=$!
fi
.venv/bin/python scripts/run_ansible_test.py sanity || failed+=("sanity (2.19)")
.venv/bin/python scripts/run_ansible_test.py units || failed+=("units (2.19)")
if [ -n "$core221_pid" ]; then
    core221_status=0
    wait "$core221_pid" || core221_status=$?
    echo "=== ansible-core 2.21: sanity and units ==="
    cat "$core221_log"
    rm -f "$core221_log"
    if [ $((core221_status & 1)) -ne 0 ]; then failed+=("sanity (2.21)"); fi
    if [ $((core221_status & 2)) -ne 0 ]; then failed+=("units (2.21)"); fi
fi
# the integration tests run alone: their timeouts and ICMP rate limits want an idle machine
.venv/bin/python -m pytest tests/integration || failed+=("integration")
if [ "${#failed[@]}" -gt 0 ]; then
    echo "test.sh: failed: ${failed[*]}" >&2
    exit 1
fi
echo "test.sh: every part passed"

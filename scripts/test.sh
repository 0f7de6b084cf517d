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
for venv in .venv .venv-core221; do
    [ -x "$venv/bin/python" ] || continue
    "$venv/bin/python" scripts/run_ansible_test.py sanity || failed+=("sanity ($venv)")
    "$venv/bin/python" scripts/run_ansible_test.py units || failed+=("units ($venv)")
done
.venv/bin/python -m pytest tests/integration || failed+=("integration")
if [ "${#failed[@]}" -gt 0 ]; then
    echo "test.sh: failed: ${failed[*]}" >&2
    exit 1
fi
echo "test.sh: every part passed"

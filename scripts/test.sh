#!/usr/bin/env bash
# The README's second command: install everything, then run the whole test suite
# (unit tests, then integration tests against a namespace lab the tests start and
# remove themselves). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# The README's first command: install everything, start a 3-host namespace lab,
# and run the main job (check.yml) against it. The lab stays up afterwards;
# `.venv/bin/python -m lab down` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -m lab up 3
.venv/bin/ansible-playbook check.yml
echo
echo "The lab is still up: '.venv/bin/python -m lab status' shows it, '.venv/bin/python -m lab down' removes it."

#!/usr/bin/env bash
# Makes the playbook repository's library/ and module_utils/netcheck/ per-file links to the
# collection's plugins/modules and plugins/module_utils/netcheck (the real files). Run it after
# adding or removing a module or a module_utils file; tests/unit/test_layout.py checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
link_dir() {  # link_dir REAL_DIR LINK_DIR RELATIVE_PREFIX
    mkdir -p "$2"
    find "$2" -maxdepth 1 -name '*.py' -type l -delete
    for f in "$1"/*.py; do
        ln -s "$3/$f" "$2/$(basename "$f")"
    done
}
link_dir plugins/modules library ..
link_dir plugins/module_utils/netcheck module_utils/netcheck ../..

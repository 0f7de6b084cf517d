#!/usr/bin/env bash
# Builds the collection tarball and the execution environment's build context (context/):
# `ansible-builder create` needs no container engine; with podman or docker present, pass --build to
# build the image too (tag netcheck-ee). See execution-environment.yml.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${NETCHECK_VENV:-.venv}/bin
rm -f ee/netcheck-netcheck.tar.gz
"$BIN/ansible-galaxy" collection build --force --output-path ee . >/dev/null
mv ee/netcheck-netcheck-*.tar.gz ee/netcheck-netcheck.tar.gz
"$BIN/ansible-builder" create --file execution-environment.yml --context context --output-filename Containerfile
if [ "${1:-}" = "--build" ]; then
    "$BIN/ansible-builder" build --file execution-environment.yml --context context --tag netcheck-ee
fi

#!/usr/bin/env bash
# Installs everything netcheck needs on Debian 12, as root: the system packages,
# then a virtualenv (.venv) with the pinned Python dependencies. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (the lab needs network namespaces)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# tshark (the tests' independent pcap reader) asks whether non-root users may capture: no
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -q
# the shellcheck package: ansible-test sanity runs it on scripts/*.sh;
# chromium: the HTML report is tested in a real headless browser (tests/unit/test_report_browser.py);
# tshark: the independent reader of the packet-capture tests;
# iputils-tracepath and traceroute: the oracles of the path tests (tests/integration/test_path_lab.py);
# nmap and curl: the oracles of port states and HTTP timings (tests/integration/test_verdict_matrix.py)
apt-get install -y -q --no-install-recommends \
    python3 python3-venv ca-certificates \
    openssh-server openssh-client iproute2 iptables tcpdump iputils-ping procps util-linux \
    chromium tshark shellcheck iputils-tracepath traceroute nmap curl

# openssh-server's package leaves this out when no system sshd has run yet;
# every lab sshd needs it (privilege separation).
mkdir -p /run/sshd

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt

# The newest ansible-core (2.21) needs Python 3.12+: a second virtualenv (.venv-core221) where such a
# Python exists (pyenv's here). A fresh Debian 12 has only 3.11: then it is skipped, and so are the
# tests that use it (README: tested versions).
newer_python() {
    local minor prefix
    for minor in 3.13 3.12; do
        if command -v "python$minor" >/dev/null 2>&1 && "python$minor" -c 'import venv' 2>/dev/null; then
            command -v "python$minor"; return 0
        fi
        if command -v pyenv >/dev/null 2>&1; then
            prefix=$(pyenv prefix "$(pyenv versions --bare | grep -E "^${minor//./\\.}\\.[0-9]+$" | tail -n1)" 2>/dev/null || true)
            if [ -n "$prefix" ] && [ -x "$prefix/bin/python$minor" ]; then
                echo "$prefix/bin/python$minor"; return 0
            fi
        fi
    done
    return 1
}
if PY_NEW=$(newer_python); then
    if [ ! -x .venv-core221/bin/python ]; then
        "$PY_NEW" -m venv .venv-core221
    fi
    .venv-core221/bin/python -m pip install -q --disable-pip-version-check -r requirements-core221.txt
    echo "install.sh: $(.venv-core221/bin/ansible --version | head -n1) in .venv-core221"
else
    echo "install.sh: no Python 3.12+ here: ansible-core 2.21 is not installed; its tests will be skipped"
fi

# ansible-test makes a virtualenv per sanity test (pylint, validate-modules, ...) from PyPI on its
# first run: make them now, so that scripts/test.sh runs offline. Failures are reported by test.sh.
.venv/bin/python scripts/run_ansible_test.py --prepare sanity >/dev/null 2>&1 || true
if [ -x .venv-core221/bin/python ]; then
    .venv-core221/bin/python scripts/run_ansible_test.py --prepare sanity >/dev/null 2>&1 || true
fi
echo "install.sh: ready ($(.venv/bin/ansible --version | head -n1))"

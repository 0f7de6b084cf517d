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
# chromium: the HTML report is tested in a real headless browser (tests/unit/test_report_browser.py);
# tshark: the independent reader of the packet-capture tests;
# iputils-tracepath and traceroute: the oracles of the path tests (tests/integration/test_path_lab.py)
apt-get install -y -q --no-install-recommends \
    python3 python3-venv ca-certificates \
    openssh-server openssh-client iproute2 iptables tcpdump iputils-ping procps util-linux \
    chromium tshark iputils-tracepath traceroute

# openssh-server's package leaves this out when no system sshd has run yet;
# every lab sshd needs it (privilege separation).
mkdir -p /run/sshd

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
echo "install.sh: ready ($(.venv/bin/ansible --version | head -n1))"

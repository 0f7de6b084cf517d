#!/usr/bin/env bash
# Fill ~/.ssh/known_hosts for every host of an inventory, for a CI job (docs/ci.md#known_hosts).
#
#   bash ci/known-hosts.sh INVENTORY
#
# ansible.cfg keeps host key checking on. With a committed ci/known_hosts, its keys are trusted and
# nothing else (a host whose key changed fails the run: update the file when hosts are rebuilt).
# Without one, each host's key is fetched now with ssh-keyscan: trust on first use, every run (a
# machine in the middle at job time would go unnoticed); commit ci/known_hosts to close that gap.
set -euo pipefail
inventory=${1:?usage: ci/known-hosts.sh INVENTORY}
python=${NETCHECK_PYTHON:-.venv/bin/python}
install -d -m 700 "$HOME/.ssh"
if [ -s ci/known_hosts ]; then
  cat ci/known_hosts >> "$HOME/.ssh/known_hosts"
  echo "known_hosts: the committed ci/known_hosts ($(wc -l < ci/known_hosts) keys)"
  exit 0
fi
# every host's address and port, as Ansible will connect to them
"${python%/python}/ansible-inventory" -i "$inventory" --list | "$python" -c '
import json, sys
inventory = json.load(sys.stdin)
hostvars = inventory.get("_meta", {}).get("hostvars", {})
names = set(hostvars)
for group in inventory.values():
    if isinstance(group, dict):
        names.update(group.get("hosts") or [])
for name in sorted(names):
    facts = hostvars.get(name, {})
    print(facts.get("ansible_host") or name, facts.get("ansible_port") or 22)
' > "$HOME/.ssh/netcheck-hosts"
count=0
while read -r host port; do
  if ssh-keyscan -T 5 -p "$port" "$host" >> "$HOME/.ssh/known_hosts" 2>/dev/null; then
    count=$((count + 1))
  else
    echo "known_hosts: no key from $host:$port (the run will report it as a source that could not run)" >&2
  fi
done < "$HOME/.ssh/netcheck-hosts"
chmod 600 "$HOME/.ssh/known_hosts"
echo "known_hosts: ssh-keyscan of $count of $(wc -l < "$HOME/.ssh/netcheck-hosts") hosts (trust on first use)"

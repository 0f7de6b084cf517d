"""What each host pays before probing: the module payload Ansible ships and the imports it runs.

Run: .venv/bin/python bench/startup.py

For ansible.builtin.ping and netcheck's net_diagnose and port_check, one `ansible localhost -m MODULE`
run (connection local, pipelining off, ANSIBLE_KEEP_REMOTE_FILES=1) leaves the AnsiballZ file Ansible
ships; this script prints its size, the size of the zip inside it unpacked, and then runs that file once
with `python -X importtime` to count the modules the run imports (deterministic) and their import time
(the sum of self times; noisy on a busy machine). The net_diagnose run checks one TCP port and one ICMP
target on 127.0.0.1 and no URL, so it shows what a run that needs no HTTP imports. Loopback only.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

RUNS = {
    "ping": ("ansible.builtin.ping", ""),
    "port_check": ("netcheck.netcheck.port_check", json.dumps({"targets": [{"host": "127.0.0.1", "port": 9,
                                                                            "expected": "closed"}]})),
    "net_diagnose": ("netcheck.netcheck.net_diagnose", json.dumps({
        "targets": [{"host": "127.0.0.1", "ports": [9], "icmp": "skip"}]})),
}


def kept_payload(module, args, tmp):
    """Run the module once on localhost, keeping its AnsiballZ file; return that file's path."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_KEEP_REMOTE_FILES="1",
               ANSIBLE_PIPELINING="False", ANSIBLE_REMOTE_TMP=str(tmp), ANSIBLE_LOCAL_TEMP=str(tmp / "local"))
    argv = [str(BIN / "ansible"), "localhost", "-c", "local", "-i", "localhost,", "-m", module,
            "-e", "ansible_python_interpreter=%s" % sys.executable]
    argv += ["-a", args] if args else []
    subprocess.run(argv, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=300, check=False)
    found = sorted(tmp.rglob("AnsiballZ_*.py"))
    if not found:
        raise SystemExit("%s left no AnsiballZ file" % module)
    return found[0]


def unpacked(payload):
    """(bytes of the zip inside the AnsiballZ file, its files unpacked, file count)."""
    text = payload.read_text()
    match = re.search(r"^zip_data\s*=\s*'([A-Za-z0-9+/=]+)'", text, re.M) or re.search(r'ZIPDATA = """(.*?)"""', text, re.S)
    data = base64.b64decode(match.group(1))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        return len(data), sum(i.file_size for i in infos), len(infos)


def imports(payload):
    """(modules imported, of them netcheck's, self-time sum ms, the stdlib/top-level names) of one run."""
    proc = subprocess.run([sys.executable, "-X", "importtime", str(payload)], capture_output=True, text=True,
                          timeout=300, check=False)
    names, self_us = [], 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        fields = [f.strip() for f in line[len("import time:"):].split("|")]
        self_us += int(fields[0])
        names.append(fields[2].strip())
    ours = [n for n in names if "netcheck" in n]
    return len(names), len(ours), self_us / 1000.0, set(names)


def main():
    rows = {}
    with tempfile.TemporaryDirectory(prefix="ncstartup") as work:
        for name, (module, args) in RUNS.items():
            tmp = Path(work) / name
            tmp.mkdir()
            payload = kept_payload(module, args, tmp)
            zipped, files_bytes, files = unpacked(payload)
            count, ours, import_ms, names = imports(payload)
            rows[name] = dict(payload_bytes=payload.stat().st_size, zip_bytes=zipped, unzipped_bytes=files_bytes,
                              files=files, imports=count, netcheck_imports=ours, import_self_ms=round(import_ms, 1),
                              names=names)
    ping = rows["ping"]
    print("module       | AnsiballZ bytes | zip unpacked bytes (files) | modules imported (netcheck's) | import self-time ms")
    for name, row in rows.items():
        print("%-12s | %15d | %17d (%3d) | %18d (%2d) | %8.1f" % (
            name, row["payload_bytes"], row["unzipped_bytes"], row["files"], row["imports"], row["netcheck_imports"],
            row["import_self_ms"]))
    for name in ("port_check", "net_diagnose"):
        row = rows[name]
        extra = sorted(n for n in row["names"] - ping["names"] if "netcheck" not in n and "ansible" not in n)
        print("%s over ping: payload %.2fx, unpacked %.2fx, imports +%d; stdlib imported beyond ping's: %s" % (
            name, row["payload_bytes"] / float(ping["payload_bytes"]), row["unzipped_bytes"] / float(ping["unzipped_bytes"]),
            row["imports"] - ping["imports"], ", ".join(extra) or "none"))


if __name__ == "__main__":
    main()

"""What a host imports before probing (issue 22: module start-up; bench/startup.py measures it).

A net_diagnose run that checks no URL does not import ssl, http.client or the email package that
http.client brings: they are imported when the HTTP probe first reads one of their names.
"""

from __future__ import annotations

import json
import subprocess
import sys

from collection_loader import REPO

CHILD = """
import json, sys
sys.path[:0] = [%r]
from collection_loader import load_module
load_module("net_diagnose")
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import http
before = sorted(name for name in ("ssl", "http.client", "email.parser") if name in sys.modules)
context = http.ssl.create_default_context()  # the first use imports the module itself
print(json.dumps({"before": before, "after_use": "ssl" in sys.modules, "context": type(context).__name__}))
"""


def test_net_diagnose_imports_no_tls_or_http_client_until_a_url_is_checked():
    proc = subprocess.run([sys.executable, "-c", CHILD % str(REPO / "tests")], capture_output=True, text=True,
                          timeout=120, cwd=str(REPO), check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert facts["before"] == [], "imported at start: %s" % facts["before"]
    assert facts["after_use"] is True and facts["context"] == "SSLContext"

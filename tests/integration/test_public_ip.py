"""public_ip over SSH against lab hosts: EC2 metadata from an IMDSv2 stand-in inside a lab
host's namespace, and a what-is-my-IP stand-in on the controller's side of the lab bridge.

Safety: 169.254.169.254 is only ever contacted from inside a lab namespace. Where the
stand-in runs, that address sits on the namespace's own ``lo`` (checked with
``ip route get`` before any module runs); where it does not, the namespace has no route to
it at all (checked the same way), so the request fails at once and never leaves the host.
The listener is waited for by reading the namespace's socket table (``ss``), never by
connecting from the root namespace.
"""

from __future__ import annotations

import contextlib
import secrets
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import REPO, netns

IMDS_IP = "169.254.169.254"
IMDS_ENDPOINT = "http://%s" % IMDS_IP
PUBLIC_IPV4 = "203.0.113.77"  # TEST-NET-3: only served as text by the stand-in, never contacted
INSTANCE_ID = "i-0a1b2c3d4e5f60718"


@dataclass
class StandIn:
    url: str
    log_path: Path
    token: str = None

    def log_lines(self):
        return self.log_path.read_text().splitlines()


def _route_to_imds(namespace):
    """`ip route get 169.254.169.254` inside the namespace: (rc, output). Sends nothing."""
    proc = subprocess.run(["ip", "-n", namespace, "route", "get", IMDS_IP], capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _assert_no_route_to_imds(host):
    rc, output = _route_to_imds(host.namespace)
    if rc == 0:
        pytest.fail("%s has a route to %s (%s): refusing to run a module that would use it"
                    % (host.namespace, IMDS_IP, output.strip()))


def _wait_for_listener(namespace, address, port, proc, log_path, deadline_s=10.0):
    """Poll the namespace's socket table until address:port listens, within a bounded deadline."""
    wanted = "%s:%d" % (address, port)
    deadline = time.monotonic() + deadline_s
    while True:
        if proc.poll() is not None:
            raise AssertionError("the stand-in exited (rc %s): %s" % (proc.returncode, log_path.read_text()))
        listening = netns(namespace, "ss", "-Hltn", check=False).stdout.split()
        if wanted in listening:
            return
        if time.monotonic() > deadline:
            raise AssertionError("nothing listens on %s in %s after %g s" % (wanted, namespace, deadline_s))
        time.sleep(0.05)


@contextlib.contextmanager
def imds_standin(host, log_path, public_ipv4=None, token=None):
    """lab/imds.py inside host's namespace on 169.254.169.254:80 (added to its lo meanwhile)."""
    namespace = host.namespace
    subprocess.run(["ip", "-n", namespace, "addr", "add", IMDS_IP + "/32", "dev", "lo"], check=True)
    argv = ["ip", "netns", "exec", namespace, sys.executable, str(REPO / "lab" / "imds.py"),
            "--bind", IMDS_IP, "--port", "80", "--local-ipv4", host.ip, "--instance-id", INSTANCE_ID]
    argv += ["--public-ipv4", public_ipv4] if public_ipv4 else []
    argv += ["--token", token] if token else []
    proc = None
    try:
        rc, route = _route_to_imds(namespace)
        assert rc == 0 and route.startswith("local %s dev lo" % IMDS_IP), route  # stays in the namespace
        with open(log_path, "w") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        _wait_for_listener(namespace, IMDS_IP, 80, proc, log_path)
        yield StandIn(IMDS_ENDPOINT, log_path, token)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        subprocess.run(["ip", "-n", namespace, "addr", "del", IMDS_IP + "/32", "dev", "lo"], check=False)


@pytest.fixture(scope="module")
def third(hosts):
    if len(hosts) < 3:
        pytest.skip("needs a third lab host")
    return hosts[2]


@pytest.fixture(scope="module")
def imds_on_src(src, tmp_path_factory):
    """An EC2 instance with a public IPv4 address: the stand-in on src, issuing a known token."""
    token = "AQAEA-netcheck-test-" + secrets.token_hex(16)
    with imds_standin(src, tmp_path_factory.mktemp("imds") / "src.log", PUBLIC_IPV4, token) as standin:
        yield standin


@pytest.fixture(scope="module")
def imds_without_public_ip(third, tmp_path_factory):
    """An EC2 instance without a public IPv4 address (public-ipv4 is 404): the stand-in on the third host."""
    with imds_standin(third, tmp_path_factory.mktemp("imds") / "third.log") as standin:
        yield standin


@pytest.fixture(scope="module")
def whatismyip(lab, tmp_path_factory):
    """lab/whatismyip.py in the root namespace on the controller's lab address, on a free port."""
    log_path = tmp_path_factory.mktemp("whatismyip") / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(REPO / "lab" / "whatismyip.py"),
                                 "--bind", lab.config.controller_ip, "--port", "0"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        # it prints its URL once it listens; wait for that line within a bounded deadline
        ready, _, _ = select.select([proc.stdout], [], [], 10.0)
        line = proc.stdout.readline() if ready else ""
        assert line.startswith("listening on http://%s:" % lab.config.controller_ip), (
            "whatismyip did not start: %r %s" % (line, log_path.read_text()))
        yield StandIn(line.split()[-1], log_path)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


@pytest.fixture(scope="module")
def no_imds_on_dst(dst):
    _assert_no_route_to_imds(dst)
    return dst


def public_ip(ansible, host, check=False, verbosity=0, **args):
    # `-a '{}'` is taken as raw params, which modules refuse: say the default instead
    run = ansible.module(host.name, "public_ip", args or {"imds": True}, check=check, verbosity=verbosity)
    return run.result(host.name), run


def test_imds_gives_public_ip_local_ip_and_instance_id_using_a_token(ansible, src, imds_on_src):
    result, _ = public_ip(ansible, src)
    assert not result.get("failed"), result.get("msg")
    assert result["public_ip"] == PUBLIC_IPV4 and result["source"] == "imds"
    assert result["local_ip"] == src.ip and result["instance_id"] == INSTANCE_ID
    assert result["changed"] is False
    (attempt,) = result["results"]
    assert attempt["kind"] == "public_ip" and attempt["state"] == "answered"
    assert attempt["detail"]["source"] == "imds" and attempt["target"] == IMDS_ENDPOINT
    assert attempt["ok"] is True and attempt["error"] is None and attempt["timings"]["total_ms"] > 0
    assert result["endpoint"] == IMDS_ENDPOINT + "/latest/meta-data/public-ipv4"
    # the metadata answered only because the token was sent with every GET
    log = imds_on_src.log_lines()
    assert any('"PUT /latest/api/token HTTP/1.1" 200' in line for line in log)
    for key in ("public-ipv4", "local-ipv4", "instance-id"):
        assert any('"GET /latest/meta-data/%s HTTP/1.1" 200' % key in line for line in log)


def test_standin_refuses_metadata_without_token_and_token_without_ttl(ansible, src, imds_on_src):
    url = IMDS_ENDPOINT + "/latest/meta-data/public-ipv4"
    run = ansible.module(src.name, "http_check", {"urls": [{"url": url, "method": "GET", "status_codes": [401]}]})
    (entry,) = run.result(src.name)["results"]
    assert entry["ok"] is True and entry["detail"]["status"] == 401
    run = ansible.module(src.name, "port_check", {"targets": [{
        "host": IMDS_IP, "port": 80, "send": "PUT /latest/api/token HTTP/1.0\r\n\r\n",
        "expect": "^HTTP/1\\.[01] 400 "}]})
    (entry,) = run.result(src.name)["results"]
    assert entry["ok"] is True and entry["detail"]["expect_matched"] is True


def test_token_never_appears_in_the_vvv_output(ansible, src, imds_on_src):
    issued_before = sum('"PUT /latest/api/token' in line for line in imds_on_src.log_lines())
    result, run = public_ip(ansible, src, verbosity=3)
    assert result["source"] == "imds" and result["public_ip"] == PUBLIC_IPV4
    # the token was issued (and used) in this very run...
    assert sum('"PUT /latest/api/token' in line for line in imds_on_src.log_lines()) == issued_before + 1
    # ...and shown nowhere
    assert imds_on_src.token not in run.stdout + run.stderr
    assert "ESTABLISH SSH CONNECTION" in run.stdout + run.stderr  # it really was the -vvv output


def test_check_mode_reports_the_address_and_no_change(ansible, src, imds_on_src):
    result, _ = public_ip(ansible, src, check=True)
    assert result["public_ip"] == PUBLIC_IPV4 and result["source"] == "imds"
    assert result["changed"] is False and not result.get("skipped")


def test_host_without_imds_gets_its_address_from_the_url(ansible, no_imds_on_dst, whatismyip):
    dst = no_imds_on_dst
    result, _ = public_ip(ansible, dst, url=whatismyip.url)
    assert not result.get("failed"), result.get("msg")
    assert result["source"] == "url"
    assert result["public_ip"] == dst.ip  # the address the controller saw
    assert result["local_ip"] is None and result["instance_id"] is None
    imds_attempt, url_attempt = result["results"]
    assert imds_attempt["detail"]["source"] == "imds" and imds_attempt["ok"] is False
    assert imds_attempt["state"] == "failed" and imds_attempt["detail"]["phase"] == "connect"
    assert imds_attempt["error"] == "PUT %s/latest/api/token: network is unreachable" % IMDS_ENDPOINT
    assert imds_attempt["timings"]["total_ms"] < 500  # no route: it fails at once, not at imds_timeout
    assert url_attempt == dict(url_attempt, target=whatismyip.url, ok=True, error=None, state="answered")
    assert url_attempt["detail"]["source"] == "url" and result["endpoint"] == whatismyip.url
    assert any(line.startswith(dst.ip + ' "GET / HTTP/1.1" 200') for line in whatismyip.log_lines())


def test_imds_false_asks_only_the_url(ansible, src, imds_on_src, whatismyip):
    before = len(imds_on_src.log_lines())
    result, _ = public_ip(ansible, src, imds=False, url=whatismyip.url)
    assert result["source"] == "url" and result["public_ip"] == src.ip
    assert [a["detail"]["source"] for a in result["results"]] == ["url"]
    assert result["local_ip"] is None and result["instance_id"] is None
    assert len(imds_on_src.log_lines()) == before


def test_imds_without_public_ipv4_and_no_url_fails_with_a_clear_message(ansible, third, imds_without_public_ip):
    result, _ = public_ip(ansible, third)
    assert result["failed"] is True
    assert result["msg"] == (
        "no source gave a public IP address: imds (%s): GET %s/latest/meta-data/public-ipv4: HTTP 404, "
        "the instance has no public IPv4 address (no url to ask next)" % (IMDS_ENDPOINT, IMDS_ENDPOINT))
    assert result["public_ip"] is None and result["source"] is None
    # what IMDS did know is still reported
    assert result["local_ip"] == third.ip and result["instance_id"] == INSTANCE_ID
    (attempt,) = result["results"]
    assert attempt["detail"]["source"] == "imds" and attempt["state"] == "no_address"
    assert attempt["ok"] is False and "no public IPv4" in attempt["error"]


def test_imds_without_public_ipv4_falls_back_to_the_url(ansible, third, imds_without_public_ip, whatismyip):
    result, _ = public_ip(ansible, third, url=whatismyip.url)
    assert not result.get("failed"), result.get("msg")
    assert result["source"] == "url" and result["public_ip"] == third.ip
    assert result["local_ip"] == third.ip and result["instance_id"] == INSTANCE_ID
    assert [(a["detail"]["source"], a["ok"]) for a in result["results"]] == [("imds", False), ("url", True)]


def test_url_answer_that_is_not_an_ip_address_fails_naming_the_source(ansible, src, dst):
    url = "http://%s:8080/" % dst.ip  # the lab web server answers JSON
    result, _ = public_ip(ansible, src, imds=False, url=url)
    assert result["failed"] is True and result["public_ip"] is None
    assert result["msg"].startswith("no source gave a public IP address: url (%s): GET %s: answered '{" % (url, url))
    assert result["msg"].endswith("which is not an IP address")
    (attempt,) = result["results"]
    assert attempt["detail"]["source"] == "url" and attempt["state"] == "no_address" and attempt["ok"] is False


BAD_INPUT = [
    ({"url": "ftp://{controller}/ip"}, "url: unsupported scheme 'ftp'"),
    ({"imds_timeout": 0}, "imds_timeout: 0.0 must be greater than 0 seconds"),
    ({"url": "{whatismyip}", "url_timeout": -1}, "url_timeout: -1.0 must be greater than 0 seconds"),
    ({"imds_endpoint": "file:///etc/passwd"}, "imds_endpoint: unsupported scheme 'file'"),
    ({"imds": False}, "imds is False but all of the following are missing: url"),
]


@pytest.mark.parametrize("bad, message", BAD_INPUT, ids=[m.split(":")[0].split()[0] for _, m in BAD_INPUT])
def test_bad_input_fails_naming_the_field_and_sends_nothing(ansible, lab, src, imds_on_src, whatismyip,
                                                            bad, message):
    imds_before, url_before = len(imds_on_src.log_lines()), len(whatismyip.log_lines())
    bad = {k: v.format(controller=lab.config.controller_ip, whatismyip=whatismyip.url) if isinstance(v, str) else v
           for k, v in bad.items()}
    result, _ = public_ip(ansible, src, **bad)
    assert result["failed"] is True
    assert message in result["msg"]
    assert result.get("public_ip") is None and result.get("results", []) == []
    assert len(imds_on_src.log_lines()) == imds_before  # IMDS, always asked first, was not
    assert len(whatismyip.log_lines()) == url_before

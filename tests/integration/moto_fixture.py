"""A moto_server (the pinned moto[server]) on 127.0.0.1, standing in for the EC2 API in tests.

No test ever calls AWS: every client and the aws_ec2 inventory plugin get ``endpoint_url`` of this
server, dummy keys, and ``AWS_EC2_METADATA_DISABLED=true`` (no instance-metadata lookups)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
REGION = "eu-west-1"

# What every AWS client of the tests runs with: dummy keys, no config files, no metadata service.
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def _wait_for_url(log_path, process, deadline_s=30.0):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        match = re.search(r"Running on (http://127\.0\.0\.1:\d+)", log_path.read_text(errors="replace"))
        if match:
            return match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError("moto_server did not start: %s" % log_path.read_text(errors="replace")[-2000:])


def _wait_for_port(url, deadline_s=15.0):
    host, port = url.rsplit("/", 1)[-1].split(":")
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("moto_server at %s never accepted a connection" % url)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """The URL of a moto_server on 127.0.0.1 (a free port it picks), stopped at teardown."""
    executable = BIN / "moto_server"
    if not executable.exists():
        pytest.skip("moto[server] is not installed (pip install -r requirements.txt)")
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with open(log_path, "wb") as log:
        # the server logs every request: to a file, never to a pipe nobody reads
        process = subprocess.Popen([str(executable), "-H", "127.0.0.1", "-p", "0"], stdout=log,
                                   stderr=subprocess.STDOUT, env=dict(os.environ, **AWS_ENV))
    try:
        url = _wait_for_url(log_path, process)
        _wait_for_port(url)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def aws_env(monkeypatch):
    """This process's AWS settings for boto3: dummy keys, no config, no metadata service."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return dict(AWS_ENV)


@pytest.fixture
def ec2(moto_server, aws_env):
    """A boto3 EC2 client of the moto server, with a fresh account state for each test."""
    import boto3
    import urllib.request

    # moto's reset API: each test starts from an empty region
    urllib.request.urlopen(urllib.request.Request(moto_server + "/moto-api/reset", method="POST"), timeout=10).close()
    return boto3.client("ec2", region_name=REGION, endpoint_url=moto_server)

"""execution-environment.yml makes a build context with ansible-builder (no container engine
needed): the collection's own tarball copied in and installed in the galaxy stage, the controller's
Python and system requirements, the base image and Python asked for."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    if not (BIN / "ansible-builder").exists():
        pytest.skip("ansible-builder is not installed beside this Python (it is in .venv)")
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(REPO / "execution-environment.yml", work)
    shutil.copytree(REPO / "ee", work / "ee", ignore=shutil.ignore_patterns("*.tar.gz"))
    build = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path",
                            str(work / "ee")], capture_output=True, text=True, timeout=120, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    (tarball,) = (work / "ee").glob("netcheck-netcheck-*.tar.gz")
    tarball.rename(work / "ee" / "netcheck-netcheck.tar.gz")
    create = subprocess.run([str(BIN / "ansible-builder"), "create", "--file", "execution-environment.yml",
                             "--context", "context", "--output-filename", "Containerfile"], cwd=str(work),
                            capture_output=True, text=True, timeout=120, check=False)
    assert create.returncode == 0, create.stdout + create.stderr
    return work / "context"


def test_the_context_installs_the_collections_own_tarball_in_the_galaxy_stage(context):
    containerfile = (context / "Containerfile").read_text()
    assert "COPY _build/collections/netcheck-netcheck.tar.gz /tmp/netcheck-netcheck.tar.gz" in containerfile
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
    assert (context / "_build" / "collections" / "netcheck-netcheck.tar.gz").stat().st_size > 10000
    collections = yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]
    assert {"name": "/tmp/netcheck-netcheck.tar.gz", "type": "file"} in collections
    assert "amazon.aws" in [entry["name"] for entry in collections]


def test_the_context_has_the_controllers_requirements_base_image_and_python(context):
    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/fedora/fedora:41"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.13"' in containerfile
    assert "ansible-core>=2.19.0" in containerfile
    python = (context / "_build" / "requirements.txt").read_text()
    assert "boto3" in python and "Jinja2" in python
    assert "openssh" in (context / "_build" / "bindep.txt").read_text()

"""Run ``ansible-test`` (sanity, units) on this repository.

ansible-test wants the collection at a path ending in ``ansible_collections/netcheck/netcheck`` and
refuses directory symlinks, so this copies the repository's files (git-tracked plus new, not
ignored; the uncommitted work tree as it is) into such a path in a temporary directory and runs
ansible-test there. The development link ``collections/`` (a directory link back to the repository)
is left out: it is not part of the collection.

Every Python from 3.8 to 3.13 that is present takes part: the system's and the venv's, and pyenv's
where pyenv is installed (their ``bin`` directories are put on PATH, where ansible-test looks for
``pythonX.Y``). Missing versions are skipped by ansible-test with a warning.

    .venv/bin/python scripts/run_ansible_test.py sanity            # every sanity test
    .venv/bin/python scripts/run_ansible_test.py units             # tests/unit, on the venv's Python
    .venv-core221/bin/python scripts/run_ansible_test.py sanity    # the same on ansible-core 2.21

Extra arguments go to ansible-test. Needs no network once the sanity virtual environments exist
(``scripts/install.sh`` makes them with ``--prepare``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAMESPACE, NAME = "netcheck", "netcheck"
LEFT_OUT = ("collections/",)
PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")


def repository_files():
    """The repository's files as git lists them (tracked and new, not ignored), still present."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, stdout=subprocess.PIPE).stdout.decode()
    paths = sorted(set(path for path in listing.split("\0") if path))
    return [path for path in paths
            if not path.startswith(LEFT_OUT) and os.path.lexists(REPO / path)]


def copy_tree(destination):
    """Copy the repository's files to ``destination``; file links stay links."""
    for path in repository_files():
        source, target = REPO / path, destination / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
        else:
            shutil.copy2(source, target)


def python_dirs():
    """``bin`` directories of pyenv's Python 3.8-3.13, where pyenv is installed."""
    pyenv = shutil.which("pyenv")
    if not pyenv:
        return []
    versions = subprocess.run([pyenv, "versions", "--bare"], stdout=subprocess.PIPE,
                              universal_newlines=True, check=False).stdout.split()
    dirs = []
    for minor in PYTHONS:
        matching = [version for version in versions if version.startswith(minor + ".")]
        if matching:
            prefix = subprocess.run([pyenv, "prefix", matching[-1]], stdout=subprocess.PIPE,
                                    universal_newlines=True, check=False).stdout.strip()
            if prefix:
                dirs.append(os.path.join(prefix, "bin"))
    return dirs


def present_pythons(path):
    """The Python versions from 3.8 to 3.13 found on ``path``."""
    return [minor for minor in PYTHONS if shutil.which("python" + minor, path=path)]


def prepare_pip_bootstrap(python):
    """Put the offline get-pip stand-in and the pip wheel ansible-test asks for in its cache."""
    import ansible_test  # pylint: disable=import-outside-toplevel

    requirements = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    version = re.search(r"pip='([0-9.]+)'", requirements.read_text()).group(1)
    cache = Path("~/.ansible/test/cache").expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / ("pip-%s-py3-none-any.whl" % version)
    if not wheel.exists():
        subprocess.run([python, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                        "--no-deps", "--only-binary", ":all:", "pip==" + version, "-d", str(cache)],
                       check=True)
    shutil.copy(REPO / "scripts" / "dev" / "get_pip_offline.py",
                cache / ("get_pip_%s.py" % version.replace(".", "_")))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("command", help="ansible-test command: sanity, units, ...")
    parser.add_argument("--prepare", action="store_true",
                        help="first make ansible-test's pip bootstrap work without its CI file server")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy and say where")
    args, rest = parser.parse_known_args(argv)

    bindir = Path(sys.executable).parent
    if args.prepare:
        prepare_pip_bootstrap(sys.executable)
    ansible_test = bindir / "ansible-test"
    path = os.pathsep.join([str(bindir)] + python_dirs() + [os.environ.get("PATH", "")])
    env = dict(os.environ, PATH=path, ANSIBLE_TEST_PREFER_PODMAN="0")
    env.pop("PYTHONPATH", None)
    env.pop("ANSIBLE_CONFIG", None)

    workdir = Path(tempfile.mkdtemp(prefix="netcheck-ansible-test-"))
    root = workdir / "ansible_collections" / NAMESPACE / NAME
    try:
        copy_tree(root)
        print("run_ansible_test.py: %s %s in %s (Python %s present)" % (
            ansible_test, args.command, root, " ".join(present_pythons(path))), flush=True)
        command = [str(ansible_test), args.command, "--color", "no"] + rest
        if args.command == "units" and "--python" not in rest:
            # the unit tests need this venv's packages: run them on its Python only
            command += ["--python", "%d.%d" % sys.version_info[:2]]
        return subprocess.run(command, cwd=root, env=env, check=False).returncode
    finally:
        if args.keep:
            print("run_ansible_test.py: kept %s" % root)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

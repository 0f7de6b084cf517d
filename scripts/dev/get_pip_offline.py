"""A stand-in for get-pip.py, for ansible-test on a machine that reaches PyPI but not ansible's CI
file server: ansible-test bootstraps pip into each sanity virtual environment by running
``~/.ansible/test/cache/get_pip_<X_Y>.py``, which it downloads from ci-files.testing.ansible.com.
``scripts/run_ansible_test.py --prepare`` copies this file there instead, with the pip wheel of that
version (downloaded from PyPI with pip) beside it; this installs pip from that wheel, offline.

Arguments are get-pip.py's: pip install arguments plus its own --no-setuptools / --no-wheel.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = os.path.splitext(os.path.basename(__file__))[0][len("get_pip_"):].replace("_", ".")
WHEEL = os.path.join(HERE, "pip-%s-py3-none-any.whl" % VERSION)


def main():
    if not os.path.exists(WHEEL):
        sys.exit("get_pip: %s is missing; run scripts/run_ansible_test.py --prepare" % WHEEL)
    sys.path.insert(0, WHEEL)
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

    arguments = [argument for argument in sys.argv[1:] if argument not in ("--no-setuptools", "--no-wheel")]
    return pip_main(["install", "--upgrade", "--force-reinstall", "--no-index", "--find-links", HERE] + arguments)


if __name__ == "__main__":
    sys.exit(main())

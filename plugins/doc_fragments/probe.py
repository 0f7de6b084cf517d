# -*- coding: utf-8 -*-
"""Options shared by the probing modules, documented once (as ansible-core shares its url options).

Use with ``extends_documentation_fragment: [netcheck.netcheck.probe]`` (max_workers) or
``netcheck.netcheck.probe.validate_certs``. The options themselves are declared once in the
probes' specs (module_utils/netcheck/*.py); a unit test checks that both agree.
"""

from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  max_workers:
    description:
      - How many targets are checked at the same moment at most (at least 1).
      - With the default, 256 filtered targets take about one timeout, 512 about two.
    type: int
    default: 256
"""

    VALIDATE_CERTS = r"""
options:
  validate_certs:
    description:
      - Verify the server's TLS certificate and host name (https).
      - Set to C(false) only for a service you trust on a network you trust.
    type: bool
    default: true
"""

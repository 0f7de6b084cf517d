"""Action plugin netcheck.netcheck.ec2_explain: why EC2's configuration lets a flow through or not.

Runs on the controller only (read-only EC2 Describe calls with boto3); its documentation is
plugins/modules/ec2_explain.py. The reading is plugins/plugin_utils/ec2_fetch.py, the evaluation
plugins/plugin_utils/ec2_evaluate.py."""

from __future__ import annotations

import ipaddress

from ansible.plugins.action import ActionBase

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.spec import argument_spec
from ansible_collections.netcheck.netcheck.plugins.plugin_utils.ec2_explain import (
    EC2_EXPLAIN_SPEC, Ec2ExplainError, Ec2Fetcher, explain_flow)


def check_args(args):
    """What the argument spec cannot say, named by field; returns None when all is well."""
    for field in ("source", "target"):
        try:
            ipaddress.ip_address(args[field])
        except ValueError:
            return "%s: %r is not an IP address (a private address of an EC2 network interface)" % (field, args[field])
    if args["protocol"] in ("tcp", "udp"):
        if args["port"] is None:
            return "port: required when protocol is %s" % args["protocol"]
        if not 1 <= args["port"] <= 65535:
            return "port: %d is not a port (1-65535)" % args["port"]
    elif args["port"] is not None:
        return "port: not used with protocol icmp (an echo request is evaluated)"
    low_high = args["ephemeral_ports"]
    if len(low_high) != 2 or not 1 <= low_high[0] <= low_high[1] <= 65535:
        return "ephemeral_ports: %r is not [low, high] within 1-65535" % (low_high,)
    return None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _, args = self.validate_argument_spec(argument_spec=argument_spec(EC2_EXPLAIN_SPEC))
        result["changed"] = False
        problem = check_args(args)
        if problem:
            result.update(failed=True, msg=problem)
            return result
        fetcher = Ec2Fetcher(region=args["region"], endpoint_url=args["endpoint_url"], profile=args["profile"])
        try:
            state = fetcher.state_for([args["source"], args["target"]])
        except Ec2ExplainError as exc:
            result.update(failed=True, msg="EC2 could not be read: %s" % exc)
            return result
        explanation = explain_flow(state, args["source"], args["target"], args["protocol"], args["port"],
                                   data_plane=args["data_plane"], ephemeral=tuple(args["ephemeral_ports"]),
                                   source_hint={"instance_id": args["source_instance"]},
                                   target_hint={"instance_id": args["target_instance"]})
        result["explain"] = explanation
        result["msg"] = "%s: %s" % (explanation["code"], explanation["message"])
        if explanation["fix"]:
            result["msg"] += "; fix: %s" % explanation["fix"]
        return result

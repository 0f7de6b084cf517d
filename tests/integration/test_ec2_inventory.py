"""inventory/aws_ec2.yml.example with the real amazon.aws.aws_ec2 plugin against moto_server on
127.0.0.1: groups by tag and security group, composed addresses and users, stopped instances left
out, the groups and hostvars that check.yml's group targets need, and clear errors for a bad region
or missing credentials. No AWS call: endpoint_url is the local moto server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from moto_fixture import AWS_ENV, REGION, aws_env, ec2, moto_server  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "collections") not in sys.path:
    sys.path.insert(0, str(REPO / "collections"))  # the filter plugin imports the collection's module_utils
BIN = Path(sys.executable).parent
EXAMPLE = REPO / "inventory" / "aws_ec2.yml.example"
AMI = "ami-12c6146b"  # one of the images moto knows


def write_inventory(directory, endpoint_url, **overrides):
    """The example inventory, pointed at moto, as <directory>/test.aws_ec2.yml (with the example group_vars)."""
    config = yaml.safe_load(EXAMPLE.read_text())
    config.update(regions=[REGION], endpoint_url=endpoint_url)
    config.update(overrides)
    path = Path(directory) / "test.aws_ec2.yml"
    path.write_text(yaml.safe_dump(config))
    shutil.copytree(REPO / "inventory" / "examples" / "aws_ec2" / "group_vars", Path(directory) / "group_vars",
                    dirs_exist_ok=True)
    return path


def ansible_inventory(path, *args, env=None, extra_vars=None):
    argv = [str(BIN / "ansible-inventory"), "-i", str(path), "--list"] + list(args)
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    environment = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    environment.update(AWS_ENV if env is None else env)
    return subprocess.run(argv, cwd=REPO, env=environment, capture_output=True, text=True, timeout=120, check=False)


def _plain(value):
    """--list marks templated values as {"__ansible_unsafe": v}; a play sees them as v."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def listed(path, **kwargs):
    proc = ansible_inventory(path, **kwargs)
    assert proc.returncode == 0, proc.stderr
    return _plain(json.loads(proc.stdout))


def fleet(ec2):
    """A VPC with two subnets and groups, two web hosts, a db host, an untagged host and a stopped one."""
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    web_subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    db_subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.2.0/24")["Subnet"]["SubnetId"]
    web_sg = ec2.create_security_group(GroupName="web-sg", Description="web", VpcId=vpc)["GroupId"]
    db_sg = ec2.create_security_group(GroupName="db-sg", Description="db", VpcId=vpc)["GroupId"]

    def launch(name, subnet, group, ip, tags):
        tags = dict(tags, Name=name) if name else tags
        spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
        instance = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnet,
                                     SecurityGroupIds=[group], PrivateIpAddress=ip,
                                     TagSpecifications=spec)["Instances"][0]
        return instance["InstanceId"]

    ids = {
        "web1": launch("web1", web_subnet, web_sg, "10.20.1.11", {"role": "web", "env": "prod", "os": "ubuntu"}),
        "web2": launch("web2", web_subnet, web_sg, "10.20.1.12", {"role": "web", "env": "prod"}),
        "db1": launch("db1", db_subnet, db_sg, "10.20.2.21", {"role": "db", "env": "prod", "os": "debian"}),
        "nameless": launch(None, db_subnet, db_sg, "10.20.2.22", {"role": "db"}),
        "old-web": launch("old-web", web_subnet, web_sg, "10.20.1.19", {"role": "web", "env": "prod"}),
    }
    ec2.stop_instances(InstanceIds=[ids["old-web"]])
    return ids


def test_tag_and_security_group_groups_and_stopped_instances_left_out(ec2, tmp_path, moto_server):
    fleet(ec2)
    inventory = listed(write_inventory(tmp_path, moto_server))
    hosts = inventory["_meta"]["hostvars"]
    assert "old-web" not in hosts  # stopped
    nameless = [name for name in hosts if name.startswith("ip-10-20-2-22")]
    assert len(nameless) == 1, sorted(hosts)  # no Name tag: its private DNS name
    assert sorted(inventory["role_web"]["hosts"]) == ["web1", "web2"]
    assert sorted(inventory["role_db"]["hosts"]) == sorted(["db1"] + nameless)
    assert sorted(inventory["env_prod"]["hosts"]) == ["db1", "web1", "web2"]
    assert sorted(inventory["sg_web_sg"]["hosts"]) == ["web1", "web2"]
    assert sorted(inventory["sg_db_sg"]["hosts"]) == sorted(["db1"] + nameless)


def test_private_addresses_by_default_public_on_request_and_user_per_ami_family(ec2, tmp_path, moto_server):
    fleet(ec2)
    path = write_inventory(tmp_path, moto_server)
    hosts = listed(path)["_meta"]["hostvars"]
    assert hosts["web1"]["ansible_host"] == "10.20.1.11" == hosts["web1"]["private_ip_address"]
    assert hosts["db1"]["ansible_host"] == "10.20.2.21"
    assert (hosts["web1"]["ansible_user"], hosts["web2"]["ansible_user"], hosts["db1"]["ansible_user"]) == (
        "ubuntu", "ec2-user", "admin")
    public = listed(path, extra_vars={"netcheck_ec2_connect": "public"})["_meta"]["hostvars"]
    for name in ("web1", "db1"):
        expected = hosts[name].get("public_ip_address") or hosts[name]["private_ip_address"]
        assert public[name]["ansible_host"] == expected
        assert public[name]["private_ip_address"] == hosts[name]["private_ip_address"]  # the checks keep it


def test_group_targets_of_check_yml_get_private_addresses_of_a_tag_group(ec2, tmp_path, moto_server):
    fleet(ec2)
    inventory = listed(write_inventory(tmp_path, moto_server))
    hostvars = inventory["_meta"]["hostvars"]
    groups = {name: value.get("hosts", []) for name, value in inventory.items() if name != "_meta"}
    specs = hostvars["web1"]["netcheck_tcp_group_targets"]  # from the example group_vars/role_web.yml
    # expanded as check.yml's net_diagnose action expands them for the source web1
    from ansible_collections.netcheck.netcheck.plugins.action.net_diagnose import build_targets, module_targets
    found, explicit = build_targets("web1", groups, hostvars, group_targets={"tcp": specs})[:2]
    by_name = {target["name"]: sorted((target["host"], port["port"]) for port in target["ports"])
               for target in module_targets(found, explicit, ["tcp"])}
    assert by_name["db1"] == [("10.20.2.21", 22), ("10.20.2.21", 5432)]
    assert by_name["web2"] == [("10.20.1.12", 8080)]
    assert "web1" not in by_name  # a host skips itself
    # and the explainer knows the inventory is EC2, and its region, from the same hostvars
    from ansible_collections.netcheck.netcheck.plugins.plugin_utils.ec2_explain import inventory_options
    options = inventory_options(hostvars, endpoint_url=moto_server)
    assert {key: options[key] for key in ("region", "endpoint_url")} == {"region": REGION, "endpoint_url": moto_server}
    # each instance's id and VPC, to tell apart interfaces holding the same address
    assert options["instances"]["db1"] == {"instance_id": hostvars["db1"]["instance_id"],
                                           "vpc_id": hostvars["db1"]["vpc_id"]}


def test_unknown_region_is_a_clear_error_not_a_traceback(tmp_path, moto_server, aws_env):
    # moto answers an unknown region with a 500; real EC2 has no endpoint for it at all, and the
    # plugin then says "Could not connect to the endpoint URL" (ec2.<region>.amazonaws.com). Either
    # way: a message naming the inventory, no traceback, and with
    # ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED (docs/ec2.md) a failed run instead of one on localhost.
    path = write_inventory(tmp_path, moto_server, regions=["xx-nowhere-1"])
    proc = ansible_inventory(path, env=dict(AWS_ENV, ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="true"))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in output
    assert "Completely failed to parse inventory source %s" % path in output, output


def test_missing_credentials_is_a_clear_error_not_a_traceback(tmp_path, moto_server):
    env = {key: value for key, value in AWS_ENV.items() if not key.startswith("AWS_ACCESS") and "SECRET" not in key}
    base = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(write_inventory(tmp_path, moto_server)), "--list"],
                          cwd=REPO, env=dict(base, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                                             ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="true", **env),
                          capture_output=True, text=True, timeout=120, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in output
    assert "Unable to locate credentials" in output, output

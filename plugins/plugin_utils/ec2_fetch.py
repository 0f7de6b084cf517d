"""Reading EC2 for the explanation: read-only Describe/Get calls, collected into an ``Ec2State``.

docs/ec2.md lists the IAM actions. What one region's API cannot show never fails the read:
a peering's other VPC in another region (or deleted) is known only from the peering itself,
IDs are asked for with filters (an ID that no longer exists is simply absent, where ``VpcIds=``
would fail the whole call with ``InvalidVpcID.NotFound``), and an optional piece that cannot be
read (a prefix list's entries, instance names) is listed in ``Ec2State.not_read``. Only what
every explanation needs (the interfaces, their groups, ACLs, routes, subnets, peerings) raises
``Ec2ExplainError`` when it fails: credentials, permissions, region or endpoint.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.netcheck.netcheck.plugins.plugin_utils.ec2_evaluate import Ec2State

NO_CREDENTIALS = ("no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on"
                  " an instance with a role (docs/ec2.md has the read-only policy)")


class Ec2ExplainError(Exception):
    """The EC2 API could not be read (credentials, region, permissions, endpoint)."""


def _version(address):
    return ipaddress.ip_address(str(address)).version


def _vpc_from_peering(info):
    """What a peering connection tells of the VPC at one end (a VPC this region does not list)."""
    vpc = {"VpcId": info["VpcId"], "CidrBlock": info.get("CidrBlock"), "Region": info.get("Region"),
           "OwnerId": info.get("OwnerId"), "from_peering": True,
           "CidrBlockAssociationSet": [{"CidrBlock": item["CidrBlock"]} for item in info.get("CidrBlockSet", [])
                                       if item.get("CidrBlock")],
           "Ipv6CidrBlockAssociationSet": [{"Ipv6CidrBlock": item["Ipv6CidrBlock"]}
                                           for item in info.get("Ipv6CidrBlockSet", []) if item.get("Ipv6CidrBlock")]}
    return vpc


class Ec2Fetcher(object):
    """Reads what an explanation needs with read-only Describe calls (docs/ec2.md lists the IAM
    actions). ``endpoint_url`` points boto3 at a stand-in (moto) or a VPC endpoint."""

    def __init__(self, region=None, endpoint_url=None, profile=None, client=None):
        self.region = region
        self.endpoint_url = endpoint_url
        self.profile = profile
        self._client = client

    def client(self):
        if self._client is not None:
            return self._client
        try:
            import boto3
            import botocore.exceptions
        except ImportError as exc:
            raise Ec2ExplainError("boto3 is not installed on the controller (pip install -r requirements.txt): %s"
                                  % exc)
        try:
            session = boto3.Session(profile_name=self.profile, region_name=self.region)
        except botocore.exceptions.ProfileNotFound as exc:
            raise Ec2ExplainError("profile: %s" % exc)
        region = session.region_name
        if not region:
            raise Ec2ExplainError("region: none given and none configured (set region, AWS_REGION or a profile's"
                                  " region)")
        known = set()
        for partition in session.get_available_partitions():
            known.update(session.get_available_regions("ec2", partition_name=partition))
        if region not in known:
            raise Ec2ExplainError("region: %r is not an EC2 region this botocore knows (e.g. eu-west-1, us-east-1)"
                                  % region)
        if session.get_credentials() is None:
            raise Ec2ExplainError(NO_CREDENTIALS)
        self.region = region
        self._client = session.client("ec2", region_name=region, endpoint_url=self.endpoint_url)
        return self._client

    def _call(self, operation, key, **kwargs):
        """Every item of a Describe call (all pages)."""
        import botocore.exceptions

        client = self.client()
        try:
            if client.can_paginate(operation):
                items = []
                for page in client.get_paginator(operation).paginate(**kwargs):
                    items.extend(page.get(key, []))
                return items
            return getattr(client, operation)(**kwargs).get(key, [])
        except botocore.exceptions.NoCredentialsError:
            raise Ec2ExplainError(NO_CREDENTIALS)
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            raise Ec2ExplainError("%s: %s: %s" % (operation, error.get("Code"), error.get("Message")))
        except botocore.exceptions.BotoCoreError as exc:
            raise Ec2ExplainError("%s: %s" % (operation, exc))

    def _optional(self, not_read, what, operation, key, **kwargs):
        """A call whose failure leaves a piece out (named in ``not_read``) instead of failing the read."""
        try:
            return self._call(operation, key, **kwargs)
        except Ec2ExplainError as exc:
            not_read.append("%s: %s" % (what, exc))
            return None

    def state_for(self, addresses):
        """An Ec2State holding the interfaces of ``addresses`` and everything around them."""
        addresses = sorted(set(str(address) for address in addresses))
        v4 = [a for a in addresses if _version(a) == 4]
        v6 = [a for a in addresses if _version(a) == 6]
        enis = []
        if v4:
            enis += self._call("describe_network_interfaces", "NetworkInterfaces",
                               Filters=[{"Name": "addresses.private-ip-address", "Values": v4}])
        if v6:
            enis += self._call("describe_network_interfaces", "NetworkInterfaces",
                               Filters=[{"Name": "ipv6-addresses.ipv6-address", "Values": v6}])
        if not enis:
            return Ec2State(region=self.region)
        not_read = []
        vpc_ids = sorted(set(eni["VpcId"] for eni in enis))
        group_ids = sorted(set(group["GroupId"] for eni in enis for group in eni.get("Groups", [])))
        instance_ids = sorted(set(eni.get("Attachment", {}).get("InstanceId") for eni in enis) - {None})
        groups = self._call("describe_security_groups", "SecurityGroups",
                            Filters=[{"Name": "group-id", "Values": group_ids}]) if group_ids else []
        peerings = []
        for side in ("requester-vpc-info.vpc-id", "accepter-vpc-info.vpc-id"):
            peerings += self._call("describe_vpc_peering_connections", "VpcPeeringConnections",
                                   Filters=[{"Name": side, "Values": vpc_ids}])
        peerings = list({pcx["VpcPeeringConnectionId"]: pcx for pcx in peerings}.values())
        vpc_filter = [{"Name": "vpc-id", "Values": vpc_ids}]
        route_tables = self._call("describe_route_tables", "RouteTables", Filters=vpc_filter)
        # the peers' VPCs: this region lists those it holds; a VPC of another region (or a deleted
        # one) is known from the peering's own description of it
        peer_infos = {}
        for pcx in peerings:
            for info in (pcx.get("RequesterVpcInfo", {}), pcx.get("AccepterVpcInfo", {})):
                if info.get("VpcId"):
                    peer_infos.setdefault(info["VpcId"], info)
        wanted = sorted(set(vpc_ids) | set(peer_infos))
        vpcs = self._call("describe_vpcs", "Vpcs", Filters=[{"Name": "vpc-id", "Values": wanted}])
        listed = set(vpc["VpcId"] for vpc in vpcs)
        vpcs += [_vpc_from_peering(peer_infos[vpc_id]) for vpc_id in wanted if vpc_id not in listed
                 and vpc_id in peer_infos]
        prefix_ids = set()
        for group in groups:
            for permission in group.get("IpPermissions", []) + group.get("IpPermissionsEgress", []):
                prefix_ids.update(item["PrefixListId"] for item in permission.get("PrefixListIds", []))
        for table in route_tables:
            prefix_ids.update(route["DestinationPrefixListId"] for route in table.get("Routes", [])
                              if route.get("DestinationPrefixListId"))
        prefix_lists, names = {}, {}
        if prefix_ids:
            for item in self._optional(not_read, "prefix list names", "describe_managed_prefix_lists", "PrefixLists",
                                       Filters=[{"Name": "prefix-list-id", "Values": sorted(prefix_ids)}]) or []:
                names[item["PrefixListId"]] = item.get("PrefixListName")
            for prefix_id in sorted(prefix_ids):
                entries = self._optional(not_read, "entries of prefix list %s" % prefix_id,
                                         "get_managed_prefix_list_entries", "Entries", PrefixListId=prefix_id)
                if entries is not None:
                    prefix_lists[prefix_id] = [entry["Cidr"] for entry in entries]
        reservations = []
        if instance_ids:
            reservations = self._optional(not_read, "instance names", "describe_instances", "Reservations",
                                          Filters=[{"Name": "instance-id", "Values": instance_ids}]) or []
        return Ec2State(
            network_interfaces=enis,
            security_groups=groups,
            network_acls=self._call("describe_network_acls", "NetworkAcls", Filters=vpc_filter),
            route_tables=route_tables,
            subnets=self._call("describe_subnets", "Subnets", Filters=vpc_filter),
            vpcs=vpcs,
            peerings=peerings,
            prefix_lists=prefix_lists,
            prefix_list_names=names,
            instances=[instance for reservation in reservations for instance in reservation.get("Instances", [])],
            region=self.region,
            not_read=not_read,
        )

# -*- coding: utf-8 -*-
"""The address a host of the inventory is probed at, looked up on the controller.

A lookup resolves every variable of that host (``hostvars[name]``: a few milliseconds each), so a
full mesh of N sources looks each address up once for all of them (``mesh_addresses``, a filter
the role runs once) rather than N times in each source's action plugin.
"""

from __future__ import annotations


def host_address(hostvars, name, address_var="ansible_host"):
    """The address of inventory host ``name``: its ``address_var``, else ``ansible_host``, else its name."""
    facts = hostvars[name] if name in hostvars else {}
    return str(facts.get(address_var) or facts.get("ansible_host") or name)


def mesh_addresses(hosts, hostvars, groups, address_var="ansible_host", mesh_group=None, group_specs=None):
    """``{"address_var": ..., "addresses": {name: address}}`` of the play's hosts, the mesh group's
    and those of the groups the group specs name, each looked up once.

    Only a cache for net_diagnose's ``mesh.addresses``: a spec it cannot read is skipped here (the
    action plugin reports it, naming the field), and a host missing from it is looked up there.
    """
    address_var = address_var or "ansible_host"
    names = list(hosts or [])
    for group in [mesh_group] + [spec.get("group") for spec in group_specs or [] if isinstance(spec, dict)]:
        if isinstance(group, str) and group in groups:
            names.extend(groups[group])
    addresses = {}
    for name in dict.fromkeys(names):
        try:
            addresses[name] = host_address(hostvars, name, address_var)
        except Exception:  # noqa: BLE001 - e.g. an undefined variable in its template: the source's
            continue       # own lookup fails on it and reports it, for that source alone
    return {"address_var": address_var, "addresses": addresses}

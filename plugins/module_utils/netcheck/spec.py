# -*- coding: utf-8 -*-
"""One declarative spec per probe: every option a user may write, written down once.

A spec is a plain dict, ``option name -> option``; an option is a dict with

    type         "str", "int", "float", "bool", "list", "dict", "path" or "raw"
    description  one line, for people (role argument_specs, generated docs)
    required     True when the option must be given (default False)
    default      the value used when it is not given
    choices      the allowed values
    elements     the type of a list's items
    options      a nested spec, for a dict or a list of dicts
    no_log       True for secrets (never logged)
    aliases      other names a user may write for the option (an old spelling kept working)
    deprecated_aliases
                 those of the aliases Ansible warns about ({name, version, collection_name})

That is AnsibleModule's own argument_spec language plus ``description``, so a probe
file declares its spec once (``TCP_TARGET_SPEC``, ``TCP_MODULE_SPEC`` in tcp.py) and
everything else is made from it:

    argument_spec(SPEC)             the module's AnsibleModule(argument_spec=...)
    check_keys(value, SPEC, path)   InputError for an unknown or missing key, naming its path
                                    (``netcheck_tcp_group_targets[0].expected_sate: unknown key;
                                    known: group, port, ...``); for controller-side input
    doc_options(SPEC, nested)       DOCUMENTATION-shaped options (``suboptions``) or role
                                    argument_specs options (``options``)
    select(SPEC, names, exclude)    a new spec made of some options of another (to compose)

What a spec cannot express (host syntax, bounds, regexes, rules across fields) stays in
the probe's one validator (``parse_targets``), which runs after the argument_spec.
Stdlib only: this file runs on the managed host too.
"""

from __future__ import annotations

import copy

from .probe import InputError, reject_unknown_keys

# the keys an option may have; anything else is a typo in a spec, caught by validate_spec
OPTION_KEYS = ("type", "description", "required", "default", "choices", "elements", "options", "no_log", "aliases",
               "deprecated_aliases")
TYPES = ("str", "int", "float", "bool", "list", "dict", "path", "raw")
# what DOCUMENTATION and role argument_specs carry of an option, in this order
_DOC_KEYS = ("description", "type", "required", "default", "choices", "elements", "aliases", "no_log")


def validate_spec(spec, path="spec"):
    """Raise ValueError when a spec itself is malformed (a unit test runs this on every spec)."""
    for name, option in spec.items():
        where = "%s.%s" % (path, name)
        unknown = set(option) - set(OPTION_KEYS)
        if unknown:
            raise ValueError("%s: unknown option key(s) %s" % (where, ", ".join(sorted(unknown))))
        if option.get("type") not in TYPES:
            raise ValueError("%s: type %r is not one of %s" % (where, option.get("type"), ", ".join(TYPES)))
        description = option.get("description")
        if not isinstance(description, str) or not description or "\n" in description:
            raise ValueError("%s: needs a one-line description" % where)
        if option.get("required") and "default" in option:
            raise ValueError("%s: a required option has no default" % where)
        aliases = option.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(alias, str) and alias not in spec for alias in aliases):
            raise ValueError("%s: aliases must be a list of names no other option has" % where)
        if any(entry.get("name") not in aliases for entry in option.get("deprecated_aliases", [])):
            raise ValueError("%s: a deprecated alias must be one of its aliases" % where)
        if "options" in option:
            if option["type"] not in ("dict", "list") or (option["type"] == "list" and option.get("elements") != "dict"):
                raise ValueError("%s: options belong to a dict or a list of dicts" % where)
            validate_spec(option["options"], where)
    return spec


def argument_spec(spec):
    """AnsibleModule's argument_spec for ``spec`` (a deep copy, descriptions left out)."""
    made = {}
    for name, option in spec.items():
        entry = {key: copy.deepcopy(value) for key, value in option.items() if key not in ("description", "options")}
        if "options" in option:
            entry["options"] = argument_spec(option["options"])
        made[name] = entry
    return made


def check_keys(value, spec, path):
    """``value`` (a mapping a user wrote) has only keys of ``spec`` and every required one.

    Recurses into nested specs (dicts and lists of dicts). Raises InputError naming the
    key's path and listing the known keys. Types and values are not checked here: the
    module's argument_spec and validator do that where the value is used.
    """
    if not isinstance(value, dict):
        raise InputError("%s: expected a mapping with keys %s, got %r" % (path, ", ".join(spec), value))
    reject_unknown_keys(value, list(spec) + [alias for option in spec.values() for alias in option.get("aliases", [])],
                        path)
    for key, option in spec.items():
        if option.get("required") and value.get(key) is None:
            raise InputError("%s.%s: required (%s)" % (path, key, option["description"]))
        nested, given = option.get("options"), value.get(key)
        if nested is None or given is None:
            continue
        if option["type"] == "dict":
            check_keys(given, nested, "%s.%s" % (path, key))
        elif isinstance(given, (list, tuple)):
            for index, item in enumerate(given):
                check_keys(item, nested, "%s.%s[%d]" % (path, key, index))
    return value


def doc_options(spec, nested="suboptions"):
    """The options as DOCUMENTATION (``nested="suboptions"``) or a role's argument_specs
    (``nested="options"``) write them."""
    # no_log is an argument_spec and argument_specs key, not a DOCUMENTATION one (validate-modules)
    keys = _DOC_KEYS if nested == "options" else tuple(key for key in _DOC_KEYS if key != "no_log")
    made = {}
    for name, option in spec.items():
        entry = {}
        for key in keys:
            if key in option and not (key in ("required", "no_log") and not option[key]):
                entry[key] = copy.deepcopy(option[key])
        if "options" in option:
            entry[nested] = doc_options(option["options"], nested)
        made[name] = entry
    return made


def select(spec, names=None, exclude=()):
    """A new spec with the options of ``spec`` named in ``names`` (all when None), in
    ``spec``'s order, less those in ``exclude``."""
    unknown = set(names or ()) - set(spec) | set(exclude) - set(spec)
    if unknown:
        raise KeyError("no option(s) %s in this spec" % ", ".join(sorted(unknown)))
    return {name: copy.deepcopy(option) for name, option in spec.items()
            if (names is None or name in names) and name not in exclude}


__all__ = ["OPTION_KEYS", "TYPES", "argument_spec", "check_keys", "doc_options", "select", "validate_spec"]

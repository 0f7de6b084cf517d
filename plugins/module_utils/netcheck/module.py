# -*- coding: utf-8 -*-
# Copyright: netcheck contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one AnsibleModule wrapper of every netcheck module (amazon.aws's AnsibleAWSModule is the model).

It holds the glue the modules share, so that a module's ``main()`` reads as: build the module from
its spec, validate, probe or manage, finish. Only ansible-core's public module API is used.

- Input whose shape ansible-core cannot validate itself (a number where a mapping belongs, an
  infinite float for an int) fails the task naming the field, without echoing any value, instead
  of a traceback (``probe.shape_error``). Valid input costs nothing more: the shape is read only
  when ansible-core refused the input (and validate-modules sees the module's real argument_spec).
- ``supports_check_mode`` is on: every netcheck module either changes nothing or supports check mode.
- ``run`` is ``run_command`` with an argv list (never a shell), as the probes take it.
- ``finish`` ends a probing module: it fails when a target missed its expectation, else exits.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from .probe import failure_message, shape_error


class NetcheckModule(AnsibleModule):
    """An AnsibleModule built from a netcheck spec's argument_spec, with the shared glue."""

    def __init__(self, argument_spec, supports_check_mode=True, **kwargs):
        kwargs["supports_check_mode"] = supports_check_mode
        self._netcheck_spec, self._netcheck_kwargs, self._netcheck_building = argument_spec, kwargs, True
        try:
            super(NetcheckModule, self).__init__(argument_spec=argument_spec, **kwargs)
        except (TypeError, ValueError, OverflowError) as exc:
            # ansible-core raises a bare TypeError or OverflowError, naming no field, for some
            # shapes it cannot validate (a number where a mapping belongs, an infinite float)
            self._refuse("the options could not be read: %s: %s" % (type(exc).__name__, exc))
        self._netcheck_building = False

    def fail_json(self, msg, **kwargs):
        if getattr(self, "_netcheck_building", False):
            # ansible-core's own validation refused the input: when a shape is the cause, name its
            # field (it names none for a string it cannot read as a mapping)
            self._netcheck_building = False
            self._refuse(None)
        super(NetcheckModule, self).fail_json(msg, **kwargs)

    def _refuse(self, otherwise):
        """Fail naming the first option whose shape is wrong, read through a loose module (every
        option raw and no_log, so that nothing is echoed); else fail with ``otherwise`` (masked)
        or, when that is None, return to ansible-core's own failure."""
        loose_spec = {name: {"type": "raw", "no_log": True} for name in self._netcheck_spec}
        loose = AnsibleModule(argument_spec=loose_spec, **_without_constraints(self._netcheck_kwargs))
        error = shape_error(self._netcheck_spec, loose.params)
        if error:
            # The message names a field and a type, never a value, so nothing in it is masked (an
            # index such as targets[1] would be, when some option's value is 1); the options'
            # values are not echoed either.
            withheld = {name: "(not echoed)" for name, value in loose.params.items() if value is not None}
            loose.no_log_values.clear()
            loose.fail_json(msg=error, changed=False, invocation={"module_args": withheld})
        if otherwise is not None:
            loose.fail_json(msg=otherwise, changed=False)

    def run(self, argv, data=None):
        """``run_command`` with an argv list: ``(rc, stdout, stderr)``; ``data`` goes to stdin."""
        if data is None:
            return self.run_command(argv)
        return self.run_command(argv, data=data, binary_data=True)

    @property
    def diff_requested(self):
        """Whether the play asked for a diff (``--diff`` or ``diff: true``)."""
        return bool(self._diff)  # ansible-core's modules (copy, lineinfile) read this attribute too

    def finish(self, result, done_msg):
        """End a probing module: fail naming the misses when a target missed its expectation,
        else exit with ``done_msg``. ``result`` is ``probe.outcome(...)`` plus any extra facts."""
        if result["summary"]["failed"]:
            self.fail_json(msg=failure_message(result["results"], result["summary"]), **result)
        self.exit_json(msg=done_msg, **result)


def _without_constraints(kwargs):
    """The AnsibleModule arguments without the ones that name options (the loose module has every
    option, raw; its checks would fail on values the real module's spec reads differently)."""
    constraints = ("required_if", "required_one_of", "required_together", "mutually_exclusive",
                   "required_by")
    return {key: value for key, value in kwargs.items() if key not in constraints}

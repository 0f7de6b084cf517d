# -*- coding: utf-8 -*-
"""User regular expressions searched in what a remote peer sent, bounded in time.

Python's ``re`` backtracks: ``^(a+)+$`` against ``"a" * 40 + "!"`` runs for
hours, holding the GIL, so no thread, timer or global deadline in the same
process can stop it. The search therefore runs in a separate Python process
(the interpreter running this code, started once and reused for every search),
and the caller waits for its answer only until its deadline: a search still
running then is killed with its process and reported as :class:`RegexTimeout`.

Stdlib only, Python 3.8+.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time

# The child: one JSON line [pattern, text] in, "1" or "0" out. -I -S: no site, no
# environment, nothing imported that the search does not need.
_CHILD_CODE = r"""
import json, re, sys
compiled = {}
lines, out = sys.stdin.buffer, sys.stdout.buffer
for line in lines:
    pattern, text = json.loads(line.decode("ascii"))
    regex = compiled.get(pattern)
    if regex is None:
        regex = compiled[pattern] = re.compile(pattern)
    out.write(b"1\n" if regex.search(text) else b"0\n")
    out.flush()
"""


# A search always gets at least this long, even when its text arrived right at the deadline,
# so that a quick pattern is not reported as timed out for want of a round trip to the process.
MIN_SEARCH_S = 0.05


class RegexTimeout(Exception):
    """The search did not finish before its deadline; its process was killed."""


class BoundedMatcher(object):
    """One search process, started on first use and restarted after a timeout. Not thread-safe:
    give each thread its own (see :class:`MatcherPool`)."""

    def __init__(self):
        self._proc = None

    def start(self):
        """Start the search process now (it then boots while the caller does other work)."""
        if self._proc is None:
            self._start()

    def _start(self):
        if not sys.executable:  # an embedded interpreter: nothing to start
            return None
        self._proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _CHILD_CODE], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True)
        return self._proc

    def search(self, regex, text, deadline):
        """Whether compiled ``regex`` is found in ``text``; RegexTimeout when ``deadline``
        (a time.monotonic() value) passes first."""
        proc = self._proc or self._start()
        if proc is None:
            return bool(regex.search(text))
        started = time.monotonic()
        deadline = max(deadline, started + MIN_SEARCH_S)
        try:
            proc.stdin.write(json.dumps([regex.pattern, text]).encode("ascii") + b"\n")
            proc.stdin.flush()
            answer = self._read_line(proc, deadline)
        except (OSError, ValueError):
            answer = None
        if answer is None:
            self.close()
            raise RegexTimeout("the regular expression %r was still searching %d characters after %.1f s "
                               "(catastrophic backtracking?); stopped at the deadline"
                               % (regex.pattern, len(text), time.monotonic() - started))
        return answer == b"1"

    @staticmethod
    def _read_line(proc, deadline):
        fd = proc.stdout.fileno()
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                return None
            chunk = os.read(fd, 16)
            if not chunk:  # the child died
                return None
            data += chunk
        return data.strip()

    def close(self):
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.kill()
        except OSError:
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        proc.wait()


class MatcherPool(object):
    """Up to ``size`` BoundedMatchers shared by threads: each search borrows one."""

    def __init__(self, size=4):
        self._size = size
        self._idle = []
        self._all = []
        self._cond = threading.Condition()

    def search(self, regex, text, deadline):
        matcher = self._borrow(deadline, regex)
        try:
            return matcher.search(regex, text, deadline)
        finally:
            with self._cond:
                self._idle.append(matcher)
                self._cond.notify()

    def _borrow(self, deadline, regex):
        with self._cond:
            while not self._idle and len(self._all) >= self._size:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RegexTimeout("the regular expression %r could not be searched before the deadline "
                                       "(every search process was busy)" % regex.pattern)
                self._cond.wait(left)
            if self._idle:
                return self._idle.pop()
            matcher = BoundedMatcher()
            self._all.append(matcher)
            return matcher

    def close(self):
        with self._cond:
            for matcher in self._all:
                matcher.close()
            self._idle, self._all = [], []


__all__ = ["BoundedMatcher", "MatcherPool", "RegexTimeout"]

"""outcome.py: the one ICMP table (names and short words agree key for key), the record, the
address normaliser and the timeout classifier."""

from __future__ import annotations

import errno
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import outcome


def test_the_short_words_are_a_column_of_the_same_table():
    assert set(outcome.ICMP_TYPE_WORDS) == set(outcome.ICMP_TYPES)
    assert set(outcome.ICMP_CODE_WORDS) == set(outcome.ICMP_CODES)
    for key, codes in outcome.ICMP_CODES.items():
        assert set(outcome.ICMP_CODE_WORDS[key]) == set(codes), key


@pytest.mark.parametrize("family, kind, code, name, word", [
    ("ipv4", 3, 13, "communication administratively prohibited", "destination-unreachable/admin-prohibited"),
    ("ipv4", 3, 1, "host unreachable", "destination-unreachable/host-unreachable"),
    ("ipv6", 1, 1, "administratively prohibited", "destination-unreachable/admin-prohibited"),
    ("ipv6", 1, 6, "reject route to destination", "destination-unreachable/reject-route"),
    (socket.AF_INET6, 3, 0, "hop limit exceeded in transit", "time-exceeded/hop-limit-exceeded"),
    (4, 11, 0, "TTL exceeded in transit", "time-exceeded/ttl-exceeded"),
    (6, 2, 0, "packet too big", "packet-too-big/code-0"),
])
def test_one_name_and_one_word_per_type_and_code(family, kind, code, name, word):
    assert outcome.icmp_name(family, kind, code) == name
    assert outcome.icmp_word(family, kind, code) == word


def test_every_error_type_is_a_quoting_type_of_the_table():
    for family in ("ipv4", "ipv6"):
        assert outcome.ERROR_TYPES[family] <= outcome.QUOTING_TYPES[family]
        assert all((family, kind) in outcome.ICMP_TYPES for kind in outcome.QUOTING_TYPES[family])


def test_the_record_refuses_a_reason_outside_the_closed_set():
    with pytest.raises(ValueError):
        outcome.outcome("port_unreachable")


def test_a_record_of_silence_is_not_confirmed_and_one_of_an_answer_is():
    silent = outcome.outcome("no_answer", "connect", probes=3)
    assert (silent["answers"], silent["confirmed"]) == (0, False)
    answered = outcome.outcome("icmp_unreach", "connect", errno.EHOSTUNREACH,
                               {"type": 3, "code": 10, "from": "10.0.0.2", "family": socket.AF_INET},
                               probes=2, answers=1)
    assert (answered["icmp_family"], answered["errno_name"], answered["confirmed"]) == ("ipv4", "EHOSTUNREACH", True)


@given(st.ip_addresses())
def test_an_address_and_its_normal_form_are_the_same_address(address):
    text = str(address)
    assert outcome.same_address(text, outcome.normal_address(text))
    if address.version == 6:
        assert outcome.same_address(text.upper() + "%eth0", text)


@pytest.mark.parametrize("exc, timeout", [
    (socket.timeout("timed out"), True), (TimeoutError(), True), (OSError(errno.ETIMEDOUT, "x"), True),
    (OSError(errno.ECONNREFUSED, "x"), False), (ValueError("timed out"), False),
])
def test_timeouts_are_told_by_type_and_errno_not_by_words(exc, timeout):
    assert outcome.is_timeout(exc) is timeout

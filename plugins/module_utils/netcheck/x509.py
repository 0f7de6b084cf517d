# -*- coding: utf-8 -*-
# Copyright: netcheck contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The few facts http_check reports of a server certificate, read from its DER bytes.

Python's public ``ssl`` API decodes a peer certificate only when it was verified
(``getpeercert()`` is empty otherwise), and http_check also reports certificates that failed
verification (expired, wrong CA, wrong name). So the DER (``getpeercert(binary_form=True)``) is read
here, with a small reader of the ASN.1 DER subset an X.509 certificate uses (RFC 5280), stdlib
only. The shapes are those of ``SSLSocket.getpeercert()``: names as tuples of RDNs of
``(long name, value)`` pairs, ``notBefore``/``notAfter`` as OpenSSL prints them, the serial number
in upper-case hex, ``subjectAltName`` as ``(kind, value)`` pairs.
"""

from __future__ import annotations

import calendar
import ipaddress

# Attribute types of names, named as OpenSSL (and so getpeercert()) names them.
ATTRIBUTE_NAMES = {
    "2.5.4.3": "commonName", "2.5.4.4": "surname", "2.5.4.5": "serialNumber", "2.5.4.6": "countryName",
    "2.5.4.7": "localityName", "2.5.4.8": "stateOrProvinceName", "2.5.4.9": "streetAddress",
    "2.5.4.10": "organizationName", "2.5.4.11": "organizationalUnitName", "2.5.4.12": "title",
    "2.5.4.15": "businessCategory", "2.5.4.17": "postalCode", "2.5.4.42": "givenName",
    "2.5.4.43": "initials", "2.5.4.46": "dnQualifier", "2.5.4.65": "pseudonym",
    "2.5.4.97": "organizationIdentifier", "1.2.840.113549.1.9.1": "emailAddress",
    "0.9.2342.19200300.100.1.1": "userId", "0.9.2342.19200300.100.1.25": "domainComponent",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionLocalityName",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionStateOrProvinceName",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionCountryName",
}
SUBJECT_ALT_NAME = "2.5.29.17"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# universal tags
INTEGER, OCTET_STRING, OID, SEQUENCE, SET = 0x02, 0x04, 0x06, 0x30, 0x31
UTC_TIME, GENERALIZED_TIME = 0x17, 0x18
STRING_CODECS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1A: "ascii",
                 0x1E: "utf-16-be", 0x1C: "utf-32-be", 0x12: "ascii"}


class DerError(ValueError):
    """The bytes are not the DER of a certificate as RFC 5280 describes it."""


def _items(data):
    """The (tag, content) of every DER element in ``data``, in order."""
    items, offset = [], 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise DerError("truncated element")
        tag, length = data[offset], data[offset + 1]
        offset += 2
        if tag & 0x1F == 0x1F:
            raise DerError("high tag numbers are not used in certificates")
        if length & 0x80:
            size = length & 0x7F
            if size == 0 or size > 4 or offset + size > len(data):
                raise DerError("bad length")
            length = int.from_bytes(data[offset:offset + size], "big")
            offset += size
        if offset + length > len(data):
            raise DerError("element longer than its container")
        items.append((tag, data[offset:offset + length]))
        offset += length
    return items


def _expect(item, tag):
    if item[0] != tag:
        raise DerError("expected tag 0x%02x, found 0x%02x" % (tag, item[0]))
    return item[1]


def _oid(content):
    if not content:
        raise DerError("empty OID")
    arcs, value = [], 0
    for byte in content[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = content[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(arc) for arc in head + arcs)


def _text(tag, content):
    codec = STRING_CODECS.get(tag)
    if codec is None:
        raise DerError("not a string type: 0x%02x" % tag)
    return content.decode(codec, "replace")


def _name(content):
    """A Name: a tuple of RDNs, each a tuple of (attribute name, value)."""
    rdns = []
    for rdn in _items(content):
        pairs = []
        for attribute in _items(_expect(rdn, SET)):
            kind, value = _items(_expect(attribute, SEQUENCE))[:2]
            oid = _oid(_expect(kind, OID))
            pairs.append((ATTRIBUTE_NAMES.get(oid, oid), _text(*value)))
        rdns.append(tuple(pairs))
    return tuple(rdns)


def _time(item):
    """Seconds since the epoch, and the time as OpenSSL prints it ("Nov 26 10:00:00 2026 GMT")."""
    text = item[1].decode("ascii")
    if item[0] == UTC_TIME:
        year = int(text[:2])
        text = ("19" if year >= 50 else "20") + text  # RFC 5280 4.1.2.5.1
    elif item[0] != GENERALIZED_TIME:
        raise DerError("not a time")
    if len(text) != 15 or not text.endswith("Z") or not text[:14].isdigit():
        raise DerError("time %r is not YYYYMMDDHHMMSSZ" % text)
    fields = [int(text[start:end]) for start, end in ((0, 4), (4, 6), (6, 8), (8, 10), (10, 12), (12, 14))]
    year, month, day, hour, minute, second = fields
    if not 1 <= month <= 12:
        raise DerError("bad month")
    printed = "%s %2d %02d:%02d:%02d %d GMT" % (MONTHS[month - 1], day, hour, minute, second, year)
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)), printed


def _alt_names(extension_value):
    names = []
    for tag, content in _items(_expect(_items(extension_value)[0], SEQUENCE)):
        kind = tag & 0x1F
        if kind == 2:
            names.append(("DNS", content.decode("ascii", "replace")))
        elif kind == 1:
            names.append(("email", content.decode("ascii", "replace")))
        elif kind == 6:
            names.append(("URI", content.decode("ascii", "replace")))
        elif kind == 7 and len(content) == 4:
            names.append(("IP Address", str(ipaddress.IPv4Address(content))))
        elif kind == 7 and len(content) == 16:
            groups = [int.from_bytes(content[index:index + 2], "big") for index in range(0, 16, 2)]
            names.append(("IP Address", ":".join("%X" % group for group in groups)))
        elif kind == 4:
            names.append(("DirName", _name(_items(content)[0][1])))
        elif kind == 8:
            names.append(("Registered ID", _oid(content)))
        else:
            names.append(("othername", "<unsupported>"))
    return tuple(names)


def decode_certificate(der):
    """The facts of a DER certificate in getpeercert()'s shape; raises DerError for anything else."""
    try:
        certificate = _items(bytes(der))
        if len(certificate) != 1:
            raise DerError("not one certificate")
        parts = _items(_expect(_items(_expect(certificate[0], SEQUENCE))[0], SEQUENCE))
        if parts and parts[0][0] == 0xA0:  # [0] EXPLICIT version
            parts = parts[1:]
        serial = _expect(parts[0], INTEGER)
        if len(serial) > 1 and serial[0] == 0:
            serial = serial[1:]  # the sign byte, not part of the number
        validity = _items(_expect(parts[3], SEQUENCE))
        not_before, not_after = _time(validity[0]), _time(validity[1])
        facts = {
            "serialNumber": "".join("%02X" % byte for byte in serial),
            "issuer": _name(_expect(parts[2], SEQUENCE)),
            "subject": _name(_expect(parts[4], SEQUENCE)),
            "notBefore": not_before[1], "notAfter": not_after[1],
            "not_before_epoch": not_before[0], "not_after_epoch": not_after[0],
        }
        for tag, content in parts[6:]:
            if tag != 0xA3:  # [3] EXPLICIT extensions; [1] and [2] are unique IDs
                continue
            for extension in _items(_expect(_items(content)[0], SEQUENCE)):
                fields = _items(_expect(extension, SEQUENCE))
                if _oid(_expect(fields[0], OID)) == SUBJECT_ALT_NAME:
                    facts["subjectAltName"] = _alt_names(_expect(fields[-1], OCTET_STRING))
        return facts
    except (IndexError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, DerError):
            raise
        raise DerError(str(exc))

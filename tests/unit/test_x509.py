"""x509.decode_certificate, the public-API replacement of CPython's test-only certificate decoder:
certificates made with `cryptography` are decoded and compared with what OpenSSL says through
CPython's own decoder (``ssl._ssl._test_decode_cert``, used here as the oracle only, never in
shipped code), field by field. Garbage and truncated bytes raise DerError."""

from __future__ import annotations

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.x509 import DerError, decode_certificate

ORACLE = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
UTC = datetime.timezone.utc


def _certificate(subject, not_before, not_after, serial, alt_names=None):
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "netcheck test CA"),
                        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(serial).not_valid_before(not_before).not_valid_after(not_after))
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    return builder.sign(key, hashes.SHA256())


def _oracle(cert, tmp_path):
    if ORACLE is None:
        pytest.skip("this Python has no ssl._ssl._test_decode_cert to compare with")
    path = tmp_path / "cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ORACLE(str(path))


CASES = {
    "plain": dict(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, "netcheck tests")]),
        not_before=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        not_after=datetime.datetime(2027, 11, 26, 10, 0, 0, tzinfo=UTC),
        serial=0x1234, alt_names=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                  x509.IPAddress(ipaddress.ip_address("::1"))]),
    "after 2049 (GeneralizedTime), high serial, every kind of name": dict(
        subject=x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                           x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Île-de-France"),
                           x509.NameAttribute(NameOID.LOCALITY_NAME, "Paris"),
                           x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "réseau ☃"),
                           x509.NameAttribute(NameOID.EMAIL_ADDRESS, "ops@example.org"),
                           x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "example"),
                           x509.NameAttribute(NameOID.COMMON_NAME, "*.example.org")]),
        not_before=datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),
        not_after=datetime.datetime(2051, 7, 1, 0, 0, 1, tzinfo=UTC),
        serial=(1 << 158) | 0xFF, alt_names=[
            x509.DNSName("a.example.org"), x509.RFC822Name("ops@example.org"),
            x509.UniformResourceIdentifier("https://example.org/x"),
            x509.IPAddress(ipaddress.ip_address("fd6e:6574:6368:a6::1")),
            x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dir")]))]),
    "no alternative names, before 2000": dict(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")]),
        not_before=datetime.datetime(1999, 2, 3, 4, 5, 6, tzinfo=UTC),
        not_after=datetime.datetime(2000, 2, 3, 4, 5, 6, tzinfo=UTC), serial=1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_decoded_facts_are_what_openssl_reads(case, tmp_path):
    cert = _certificate(**CASES[case])
    ours = decode_certificate(cert.public_bytes(serialization.Encoding.DER))
    theirs = _oracle(cert, tmp_path)
    for key in ("subject", "issuer", "notBefore", "notAfter", "serialNumber"):
        assert ours[key] == theirs[key], key
    assert ours.get("subjectAltName", ()) == theirs.get("subjectAltName", ())
    assert ours["not_after_epoch"] == int(CASES[case]["not_after"].timestamp())
    assert ours["not_before_epoch"] == ssl.cert_time_to_seconds(theirs["notBefore"])


@pytest.mark.parametrize("der", [b"", b"\x30\x03not a certificate", b"\x30\x82\xff\xff\x00", b"\x04\x00"])
def test_garbage_is_a_der_error(der):
    with pytest.raises(DerError):
        decode_certificate(der)


def test_every_truncation_of_a_certificate_is_a_der_error():
    der = _certificate(**CASES["plain"]).public_bytes(serialization.Encoding.DER)
    for end in range(0, len(der), 7):
        with pytest.raises(DerError):
            decode_certificate(der[:end])

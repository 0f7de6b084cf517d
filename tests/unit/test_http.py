"""Unit tests of netcheck.http: URL, header and expectation validation, target parsing, the
checks on an answer, certificate facts, and real requests to lab web servers that the tests
start on loopback addresses only (127.0.0.1, and ::1 when the host has it)."""

from __future__ import annotations

import sys
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]
for _path in (str(_REPO_ROOT),):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import datetime  # noqa: E402
import ipaddress  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402
from loopback import needs_ipv6  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lab.webserver import LabHandler, LabServer  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.http import (  # noqa: E402
    DEFAULTS, MAX_REDIRECTS, USER_AGENT, InputError, certificate_facts, check_url, check_urls, evaluate,
    parse_targets, parse_url, tls_context, validate_expect_headers, validate_headers, validate_status_codes,
)
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck import http as http_probe  # noqa: E402
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import RESULT_KEYS  # noqa: E402

HYPOTHESIS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
AUTH = "Bearer s3cr3t-T0KEN-9f1c2a"  # what /auth accepts; must never show up in a result
PHASES = {"resolve_ms", "connect_ms", "processing_ms", "transfer_ms", "ttfb_ms", "total_ms"}


def target(url, **options):
    """One HttpTarget, through parse_targets as the module builds them."""
    return parse_targets([dict(url=url, **options)])[0]


# --- a throwaway PKI -------------------------------------------------------------------

def _name(common_name, organization=None):
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def make_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = _name("netcheck test CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_leaf(ca_key, ca_cert, not_before, not_after, serial=None):
    """A server certificate for localhost / 127.0.0.1 / ::1, signed by the test CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost", "netcheck tests")).issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _write_pem(directory, stem, key, cert):
    cert_path, key_path = directory / (stem + ".pem"), directory / (stem + ".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """CA file, a certificate valid for 10 days and one expired 3 days ago (paths and objects)."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = make_ca()
    now = datetime.datetime.now(datetime.timezone.utc)
    valid_key, valid = make_leaf(ca_key, ca_cert, now - datetime.timedelta(minutes=5),
                                 now + datetime.timedelta(days=10))
    expired_key, expired = make_leaf(ca_key, ca_cert, now - datetime.timedelta(days=20),
                                     now - datetime.timedelta(days=3))
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return {
        "ca_path": str(ca_path), "ca_cert": ca_cert, "valid": valid, "expired": expired,
        "valid_files": _write_pem(directory, "valid", valid_key, valid),
        "expired_files": _write_pem(directory, "expired", expired_key, expired),
    }


# --- lab servers on loopback -------------------------------------------------------------------

class RecordingHandler(LabHandler):
    """The lab handler, keeping the request headers it was sent (server.recorded)."""

    def _answer(self, with_body):
        self.server.recorded.append((self.command, self.path, self.headers))
        LabHandler._answer(self, with_body)

    def log_message(self, fmt, *args):
        pass


class QuietHandler(LabHandler):
    def log_message(self, fmt, *args):
        pass


class V6LabServer(LabServer):
    address_family = socket.AF_INET6


def _start(servers, name, tls_files=None, auth=None, handler=QuietHandler, bind="127.0.0.1"):
    server_class = V6LabServer if ":" in bind else LabServer
    server = server_class((bind, 0), handler)
    server.lab_name = name
    server.auth = auth
    server.recorded = []
    scheme = "http"
    if tls_files:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls_files)
        server.tls_context = context
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    servers.append((server, thread))
    host = "[%s]" % bind if ":" in bind else bind
    server.base = "%s://%s:%d" % (scheme, host, server.server_address[1])
    return server


def _stop(servers):
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(2)


@pytest.fixture(scope="module")
def web():
    """An http lab server on 127.0.0.1 named web1 whose /auth accepts AUTH."""
    servers = []
    yield _start(servers, "web1", auth=AUTH)
    _stop(servers)


@pytest.fixture(scope="module")
def tls_web(pki):
    """An https lab server on 127.0.0.1 named tls1 with a certificate valid for 10 days."""
    servers = []
    yield _start(servers, "tls1", tls_files=pki["valid_files"])
    _stop(servers)


@pytest.fixture
def start_server():
    """Start more lab servers for one test; all are shut down after it."""
    servers = []
    yield lambda *args, **kwargs: _start(servers, *args, **kwargs)
    _stop(servers)


# --- parse_url -------------------------------------------------------------------------------


@pytest.mark.parametrize("url, expected", [
    ("http://example.com", ("http", "example.com", 80, "/")),
    ("https://example.com", ("https", "example.com", 443, "/")),
    ("HTTPS://WWW.Example.COM:8443/A/b?X=1", ("https", "www.example.com", 8443, "/A/b?X=1")),
    ("http://10.0.1.20:8080/health", ("http", "10.0.1.20", 8080, "/health")),
    ("https://10.0.1.20/", ("https", "10.0.1.20", 443, "/")),
    ("https://[2001:db8::20]/status?verbose=1", ("https", "2001:db8::20", 443, "/status?verbose=1")),
    ("http://[::1]:8080/a/b?x=1&y=2", ("http", "::1", 8080, "/a/b?x=1&y=2")),
    ("http://host.example/page#section", ("http", "host.example", 80, "/page")),
    ("http://host.example/p?q=1#frag", ("http", "host.example", 80, "/p?q=1")),
    ("http://host.example?only=query", ("http", "host.example", 80, "/?only=query")),
    ("http://host.example:65535/", ("http", "host.example", 65535, "/")),
    ("https://under_score.example:1/", ("https", "under_score.example", 1, "/")),
])
def test_parse_url_returns_scheme_host_port_and_path_with_query_without_fragment(url, expected):
    assert parse_url(url, "urls[0].url") == expected


@pytest.mark.parametrize("url, why", [
    ("", "a URL is required"),
    (None, "a URL is required"),
    (8080, "a URL is required"),
    ("   ", "whitespace or control characters"),
    ("http://h/a b", "whitespace or control characters"),
    ("http://h/\ta", "whitespace or control characters"),
    ("http://h/\x00", "whitespace or control characters"),
    ("http://h/\x7f", "whitespace or control characters"),
    ("http://h/\r\nX-Injected: 1", "whitespace or control characters"),
    ("ftp://h/", "unsupported scheme 'ftp'"),
    ("file:///etc/passwd", "unsupported scheme 'file'"),
    ("gopher://h:70/", "unsupported scheme 'gopher'"),
    ("javascript:alert(1)", "unsupported scheme 'javascript'"),
    ("h.example/path", "unsupported scheme ''"),
    ("//h.example/path", "unsupported scheme ''"),
    ("http://", "has no host"),
    ("http:///path", "has no host"),
    ("https://:443/", "has no host"),
    ("http://h:99999/", "not a valid URL"),
    ("http://h:65536/", "not a valid URL"),
    ("http://h:abc/", "not a valid URL"),
    ("http://h:-1/", "not a valid URL"),
    ("http://[::1/", "not a valid URL"),
    ("http://u:p@h/", "credentials in the URL are refused"),
    ("http://user@h/", "credentials in the URL are refused"),
    ("http://h;id/", "not a host name or IP address"),
    ("http://h$(id)/", "not a host name or IP address"),
    ("http://h`id`/", "not a host name or IP address"),
    ("http://h|id/", "not a host name or IP address"),
    ("http://h&id/", "not a host name or IP address"),
    ("http://h>out/", "not a host name or IP address"),
    ("http://a'b/", "not a host name or IP address"),
    ("http://-h.example/", "not a host name or IP address"),
    ("http://300.1.1.1/", "not a valid IPv4 address"),
])
def test_parse_url_rejects_bad_urls_with_a_message_starting_with_the_field(url, why):
    with pytest.raises(InputError) as caught:
        parse_url(url, "urls[3].url")
    assert str(caught.value).startswith("urls[3].url")
    assert why in str(caught.value)


def test_parse_url_refuses_credentials_without_echoing_the_password():
    for url, password in (("http://u:p@h/", "u:p@"), ("https://admin:hunter2-Secret@h.example:8443/x", "hunter2")):
        with pytest.raises(InputError) as caught:
            parse_url(url, "urls[0].url")
        message = str(caught.value)
        assert message.startswith("urls[0].url: credentials in the URL are refused")
        assert password not in message


@pytest.mark.parametrize("url", ["ftp://admin:hunter2-Secret@h.example/", "http://admin:hunter2-Secret@h:99999/",
                                 "http://admin:hunter2-Secret@h:abc/"])
def test_parse_url_never_echoes_a_password_whatever_the_rejection(url):
    with pytest.raises(InputError) as caught:
        parse_url(url, "urls[0].url")
    assert "hunter2-Secret" not in str(caught.value)


@pytest.mark.parametrize("url", ["http://h.example:0/", "https://h.example:0/"])
def test_parse_url_rejects_port_zero_instead_of_using_the_default_port(url):
    with pytest.raises(InputError) as caught:
        parse_url(url, "urls[0].url")
    assert str(caught.value).startswith("urls[0].url")


# --- validate_headers -----------------------------------------------------------------------------

def test_validate_headers_accepts_tokens_and_turns_numbers_into_strings():
    headers = {"Authorization": "Bearer abc.def", "X-Request-ID": "a b\tc", "Accept": "*/*",
               "x_weird.but~legal!": "", "X-Count": 5, "X-Ratio": 1.5}
    assert validate_headers(headers, "headers") == {
        "Authorization": "Bearer abc.def", "X-Request-ID": "a b\tc", "Accept": "*/*",
        "x_weird.but~legal!": "", "X-Count": "5", "X-Ratio": "1.5"}


def test_validate_headers_treats_none_as_no_headers():
    assert validate_headers(None, "headers") == {}
    assert validate_headers({}, "headers") == {}


@pytest.mark.parametrize("headers", [["Authorization", "x"], "Authorization: x", 5])
def test_validate_headers_rejects_anything_but_a_mapping(headers):
    with pytest.raises(InputError, match=r"^urls\[1\]\.headers: expected a mapping"):
        validate_headers(headers, "urls[1].headers")


@pytest.mark.parametrize("name", ["", "X Foo", "X:Foo", "X-Foo:", ":authority", "X\r\nY", "Bad\x00", "Ünïcode",
                                  "(x)", 5, None])
def test_validate_headers_rejects_names_that_are_not_http_tokens(name):
    with pytest.raises(InputError) as caught:
        validate_headers({name: "value"}, "headers")
    assert str(caught.value).startswith("headers: ")
    assert "is not a valid header name" in str(caught.value)


@pytest.mark.parametrize("value", ["s3cr3t-value\r\nX-Injected: 1", "s3cr3t\nvalue", "s3cr3t\rvalue",
                                   "s3cr3t\x00value", "\n", "s3cr3t-trailing\r\n"])
def test_validate_headers_rejects_cr_lf_nul_in_values_without_echoing_the_value(value):
    with pytest.raises(InputError) as caught:
        validate_headers({"Authorization": value}, "urls[2].headers")
    message = str(caught.value)
    assert message == "urls[2].headers.Authorization: the value contains CR, LF or NUL"
    assert value not in message
    assert "s3cr3t" not in message


@pytest.mark.parametrize("value", [True, False, None, ["a"], {"a": "b"}, b"bytes"])
def test_validate_headers_rejects_values_that_are_not_strings_or_numbers(value):
    with pytest.raises(InputError) as caught:
        validate_headers({"X-Foo": value}, "headers")
    assert str(caught.value) == "headers.X-Foo: the value must be a string"


@pytest.mark.parametrize("name", ["X-Foo\n", "Authorization\n", "X-Foo\r\n"])
def test_validate_headers_and_expect_headers_reject_a_name_ending_in_a_newline(name):
    # a regex ending in '$' would match before the final newline and let it through
    with pytest.raises(InputError, match=r"^headers: .* is not a valid header name"):
        validate_headers({name: "value"}, "headers")
    with pytest.raises(InputError, match=r"^expect_headers: .* is not a valid header name"):
        validate_expect_headers({name: "x"}, "expect_headers")


# --- validate_status_codes and validate_expect_headers -----------------------------------------------

@pytest.mark.parametrize("codes", [[100], [599], [200, 301, 404], (204,)])
def test_validate_status_codes_accepts_100_to_599_and_returns_a_list(codes):
    assert validate_status_codes(codes, "status_codes") == list(codes)


@pytest.mark.parametrize("codes, prefix", [
    ([99], "status_codes[0]: 99 is not an HTTP status code"),
    ([200, 600], "status_codes[1]: 600 is not an HTTP status code"),
    ([True], "status_codes[0]: True is not"),
    ([200, False], "status_codes[1]: False is not"),
    (["200"], "status_codes[0]: '200' is not"),
    ([200.0], "status_codes[0]: 200.0 is not"),
    ([None], "status_codes[0]: None is not"),
    ([], "status_codes: give at least one status code"),
    (None, "status_codes: give at least one status code"),
    ("200", "status_codes: give at least one status code"),
    (200, "status_codes: give at least one status code"),
])
def test_validate_status_codes_rejects_non_codes_naming_the_field_and_index(codes, prefix):
    with pytest.raises(InputError) as caught:
        validate_status_codes(codes, "status_codes")
    assert str(caught.value).startswith(prefix)


def test_validate_expect_headers_lower_cases_names_and_compiles_patterns():
    compiled = validate_expect_headers({"Strict-Transport-Security": "max-age=\\d+", "X-Powered-By": None},
                                       "expect_headers")
    assert set(compiled) == {"strict-transport-security", "x-powered-by"}
    assert compiled["strict-transport-security"].search("max-age=31536000")
    assert compiled["x-powered-by"] is None  # None: the header must be absent


def test_validate_expect_headers_treats_none_as_no_expectations():
    assert validate_expect_headers(None, "expect_headers") == {}


def test_validate_expect_headers_rejects_a_bad_regex_naming_the_field_and_header():
    with pytest.raises(InputError) as caught:
        validate_expect_headers({"Server": "nginx("}, "urls[0].expect_headers")
    assert str(caught.value).startswith("urls[0].expect_headers.Server: ")
    assert "not a valid regular expression" in str(caught.value)


@pytest.mark.parametrize("expect, why", [
    ({"Bad Name": "x"}, "is not a valid header name"),
    ({5: "x"}, "is not a valid header name"),
    (["server"], "expected a mapping"),
    ("server", "expected a mapping"),
])
def test_validate_expect_headers_rejects_bad_names_and_non_mappings(expect, why):
    with pytest.raises(InputError) as caught:
        validate_expect_headers(expect, "expect_headers")
    assert str(caught.value).startswith("expect_headers: ")
    assert why in str(caught.value)


# --- parse_targets ------------------------------------------------------------------------------

def test_parse_targets_uses_the_documented_defaults():
    only = parse_targets(["http://127.0.0.1/"])[0]
    assert only.url == "http://127.0.0.1/" and only.name is None
    assert only.method == "HEAD" and only.status_codes == [200] and only.headers == {}
    assert only.expect_headers == {} and only.follow_redirects == "safe" and only.validate_certs is True
    assert only.ca_path is None and only.timeout == 5.0 and only.body_regex is None
    assert DEFAULTS["method"] == "HEAD" and DEFAULTS["timeout"] == 5.0


def test_parse_targets_accepts_plain_strings_as_urls_in_order():
    targets = parse_targets(["http://a.example/", {"url": "https://b.example/x", "name": "b"}, "http://[::1]:81/"])
    assert [t.url for t in targets] == ["http://a.example/", "https://b.example/x", "http://[::1]:81/"]
    assert [t.name for t in targets] == [None, "b", None]


def test_parse_targets_applies_module_level_defaults_and_per_url_overrides():
    defaults = {"method": "get", "status_codes": [200, 204], "timeout": 2, "follow_redirects": "none",
                "validate_certs": False, "body_regex": "ok", "ca_path": None}
    inherited, overridden = parse_targets(
        ["http://a.example/",
         {"url": "http://b.example/", "status_codes": [404], "timeout": 1.5, "follow_redirects": "all",
          "validate_certs": True, "body_regex": "^{"}],
        defaults)
    assert (inherited.method, inherited.status_codes, inherited.timeout) == ("GET", [200, 204], 2.0)
    assert (inherited.follow_redirects, inherited.validate_certs) == ("none", False)
    assert inherited.body_regex.pattern == "ok"
    assert (overridden.method, overridden.status_codes, overridden.timeout) == ("GET", [404], 1.5)
    assert (overridden.follow_redirects, overridden.validate_certs) == ("all", True)
    assert overridden.body_regex.pattern == "^{"
    assert target("http://c.example/", method="head").method == "HEAD"
    # a per-URL null means "not given": the module-level body_regex stays, so HEAD + body_regex is refused
    with pytest.raises(InputError, match=r"^urls\[0\]\.body_regex: needs method GET"):
        parse_targets([{"url": "http://b.example/", "method": "HEAD"}], defaults)


def test_parse_targets_ignores_module_level_defaults_given_as_none():
    only = parse_targets(["http://a.example/"], {"method": None, "timeout": None, "status_codes": None})[0]
    assert (only.method, only.timeout, only.status_codes) == ("HEAD", 5.0, [200])


def test_parse_targets_adds_per_url_headers_to_module_level_ones_and_per_url_wins_on_the_same_name():
    base = {"headers": {"Authorization": "Bearer module", "X-Env": "prod"}}
    plain, extended = parse_targets(
        ["http://a.example/", {"url": "http://b.example/", "headers": {"X-Env": "test", "X-Extra": 1}}], base)
    assert plain.headers == {"Authorization": "Bearer module", "X-Env": "prod"}
    assert extended.headers == {"Authorization": "Bearer module", "X-Env": "test", "X-Extra": "1"}
    assert base["headers"] == {"Authorization": "Bearer module", "X-Env": "prod"}  # not modified in place


def test_parse_targets_per_url_header_wins_whatever_the_case_of_its_name():
    only = parse_targets([{"url": "http://a.example/", "headers": {"authorization": "Bearer url"}}],
                         {"headers": {"Authorization": "Bearer module"}})[0]
    assert [value for name, value in only.headers.items() if name.lower() == "authorization"] == ["Bearer url"]


def test_parse_targets_merges_expect_headers_and_per_url_wins_whatever_the_case():
    base = {"expect_headers": {"Server": "nginx", "X-Powered-By": None}}
    plain, extended = parse_targets(
        ["http://a.example/", {"url": "http://b.example/", "expect_headers": {"server": "apache", "X-Cache": "HIT"}}],
        base)
    assert {k: (v.pattern if v else v) for k, v in plain.expect_headers.items()} == {
        "server": "nginx", "x-powered-by": None}
    assert {k: (v.pattern if v else v) for k, v in extended.expect_headers.items()} == {
        "server": "apache", "x-powered-by": None, "x-cache": "HIT"}


def test_parse_targets_upper_cases_the_method_and_rejects_others():
    assert target("http://a.example/", method="get").method == "GET"
    with pytest.raises(InputError, match=r"^urls\[0\]\.method: 'POST' is not one of HEAD, GET"):
        target("http://a.example/", method="POST")


def test_parse_targets_rejects_body_regex_with_head_naming_the_url_index():
    with pytest.raises(InputError) as caught:
        parse_targets([{"url": "http://a.example/", "method": "GET", "body_regex": "ok"},
                       {"url": "http://b.example/", "body_regex": "ok"}])
    assert str(caught.value).startswith("urls[1].body_regex: ")


def test_parse_targets_compiles_body_regex_for_get_and_rejects_a_bad_one():
    assert target("http://a.example/", method="GET", body_regex=r"\"ok\":\s*true").body_regex.search('"ok": true')
    with pytest.raises(InputError, match=r"^urls\[0\]\.body_regex: '\[' is not a valid regular expression"):
        target("http://a.example/", method="GET", body_regex="[")


def test_parse_targets_rejects_a_ca_path_that_is_not_a_file(tmp_path):
    for path in (str(tmp_path), str(tmp_path / "missing.pem")):
        with pytest.raises(InputError) as caught:
            target("https://a.example/", ca_path=path)
        assert str(caught.value).startswith("urls[0].ca_path: ")
        assert "is not a file" in str(caught.value)


def test_parse_targets_rejects_unknown_keys_naming_them():
    with pytest.raises(InputError) as caught:
        parse_targets(["http://a.example/", {"url": "http://b.example/", "verify": False, "proxy": "x"}])
    assert str(caught.value).startswith("urls[1].verify: unknown key; known: method, ")


@pytest.mark.parametrize("raw, prefix", [
    ([], "urls: give at least one URL"),
    (None, "urls: give at least one URL"),
    ("http://a.example/", "urls: give at least one URL"),
    ([5], "urls[0]: expected a URL or a mapping with url"),
    ([{"name": "no url"}], "urls[0].url: a URL is required"),
    (["http://ok.example/", "http://ok.example/", "ftp://bad/"], "urls[2].url: unsupported scheme"),
    ([{"url": "http://a.example/", "follow_redirects": "sometimes"}], "urls[0].follow_redirects: 'sometimes'"),
    ([{"url": "http://a.example/", "validate_certs": "yes"}], "urls[0].validate_certs: must be true or false"),
    ([{"url": "http://a.example/", "timeout": 0}], "urls[0].timeout: "),
    ([{"url": "http://a.example/", "timeout": "5"}], "urls[0].timeout: "),
    ([{"url": "http://a.example/", "status_codes": [1000]}], "urls[0].status_codes[0]: 1000"),
    ([{"url": "http://a.example/", "headers": {"Bad Name": "x"}}], "urls[0].headers: 'Bad Name'"),
    ([{"url": "http://a.example/", "expect_headers": {"Server": "("}}], "urls[0].expect_headers.Server: "),
    ([{"url": "http://a.example/", "name": 5}], "urls[0].name: must be a string"),
])
def test_parse_targets_rejects_bad_input_naming_the_field(raw, prefix):
    with pytest.raises(InputError) as caught:
        parse_targets(raw)
    assert str(caught.value).startswith(prefix)


def test_parse_targets_rejects_bad_module_level_headers_naming_the_module_option():
    with pytest.raises(InputError) as caught:
        parse_targets(["http://a.example/"], {"headers": {"X-Token": "abc\r\ndef"}})
    assert str(caught.value) == "headers.X-Token: the value contains CR, LF or NUL"


def test_tls_contexts_are_made_once_per_validate_certs_and_ca_path_and_only_when_needed(pki, monkeypatch):
    made = []
    real = ssl.create_default_context
    monkeypatch.setattr(http_probe, "_CONTEXTS", {})
    monkeypatch.setattr(ssl, "create_default_context", lambda **kw: made.append(kw) or real(**kw))
    ca = pki["ca_path"]
    parse_targets(["https://a.example/", "http://b.example/", {"url": "https://c.example/", "validate_certs": False}])
    assert made == []  # parsing a URL loads no CA store: that costs ~20 ms of CPU per context
    parse_targets([{"url": "https://e.example/", "ca_path": ca}, {"url": "http://f.example/", "ca_path": ca}])
    assert made == [{"cafile": ca}]  # a given CA file is loaded (and so checked) once, at parse time
    a, b = tls_context(True, None), tls_context(True, None)
    c, e = tls_context(False, None), tls_context(True, ca)
    assert a is b and len({id(a), id(c), id(e)}) == 3
    assert made == [{"cafile": ca}, {"cafile": None}]
    assert a.verify_mode == ssl.CERT_REQUIRED and a.check_hostname
    assert c.verify_mode == ssl.CERT_NONE and not c.check_hostname


# --- evaluate ------------------------------------------------------------------------------------

def _facts(status=200, **headers):
    return {"status": status, "headers": {k.replace("_", "-"): v for k, v in headers.items()}}


def test_evaluate_reports_nothing_when_every_expectation_is_met():
    t = target("http://a.example/", method="GET", status_codes=[200, 204], body_regex="ok",
               expect_headers={"Server": "^nginx", "X-Powered-By": None})
    assert evaluate(t, _facts(204, server="nginx/1.25"), b"all ok") == []


def test_evaluate_reports_a_status_not_in_status_codes():
    t = target("http://a.example/", status_codes=[200, 204])
    assert evaluate(t, _facts(500)) == ["status 500 not in [200, 204]"]


def test_evaluate_reports_a_missing_header():
    t = target("http://a.example/", expect_headers={"X-Cache": "HIT"})
    assert evaluate(t, _facts(server="nginx")) == ["header x-cache missing"]


def test_evaluate_reports_a_header_that_does_not_match_with_value_and_pattern():
    t = target("http://a.example/", expect_headers={"Server": "^nginx"})
    assert evaluate(t, _facts(server="Apache/2.4")) == ["header server: 'Apache/2.4' does not match '^nginx'"]


def test_evaluate_reports_a_header_present_that_was_expected_absent():
    t = target("http://a.example/", expect_headers={"X-Powered-By": None})
    assert evaluate(t, _facts(x_powered_by="PHP/8")) == ["header x-powered-by present, expected absent"]


def test_evaluate_reports_a_body_that_does_not_match():
    t = target("http://a.example/", method="GET", body_regex='"status": "ok"')
    assert evaluate(t, _facts(), b'{"status": "degraded"}') == ["body does not match '\"status\": \"ok\"'"]


def test_evaluate_lists_every_miss_status_first_then_headers_by_name_then_body():
    t = target("http://a.example/", method="GET", body_regex="ok",
               expect_headers={"Z-Last": "x", "A-First": "y", "M-Absent": None})
    assert evaluate(t, _facts(503, m_absent="1"), b"\xff\xfe not valid utf-8") == [
        "status 503 not in [200]", "header a-first missing", "header m-absent present, expected absent",
        "header z-last missing", "body does not match 'ok'"]


# --- certificate_facts ---------------------------------------------------------------------------

def _der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def test_certificate_facts_of_a_valid_certificate(pki):
    cert = pki["valid"]
    facts = certificate_facts(_der(cert))
    assert facts["subject"] == "commonName=localhost, organizationName=netcheck tests"
    assert facts["issuer"] == "commonName=netcheck test CA"
    assert facts["not_after"] == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert facts["not_before"] == cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", facts["not_after"])
    assert facts["days_left"] in (9, 10)
    assert facts["expired"] is False
    assert facts["san"] == ["DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"]
    assert int(facts["serial"], 16) == cert.serial_number


def test_certificate_facts_of_an_expired_certificate(pki):
    facts = certificate_facts(_der(pki["expired"]))
    assert facts["expired"] is True
    assert facts["days_left"] < 0
    assert facts["days_left"] in (-3, -4)


def test_certificate_facts_counts_days_from_the_given_now(pki):
    not_after = pki["valid"].not_valid_after_utc.timestamp()
    assert certificate_facts(_der(pki["valid"]), now=not_after - 86400 * 2 - 1)["days_left"] == 2
    late = certificate_facts(_der(pki["valid"]), now=not_after + 1)
    assert late["expired"] is True and late["days_left"] == -1


@pytest.mark.parametrize("der", [b"", None, b"\x30\x03not a certificate"])
def test_certificate_facts_of_nothing_or_garbage_is_empty(der):
    assert certificate_facts(der) == {}


# --- check_url against real loopback servers ---------------------------------------------------------

def test_head_answer_has_lower_cased_headers_and_every_phase_timed(web):
    url = web.base + "/"
    result = check_url(target(url, name="front"))
    assert tuple(result) == RESULT_KEYS
    assert (result["target"], result["kind"], result["state"], result["ok"], result["error"]) == (
        url, "http", "answered", True, None)
    detail = result["detail"]
    assert (detail["status"], detail["reason"], detail["http_version"]) == (200, "OK", "HTTP/1.1")
    assert (detail["method"], detail["name"], detail["final_url"], detail["address"]) == (
        "HEAD", "front", url, "127.0.0.1")
    assert detail["headers"]["x-lab-host"] == "web1"
    assert detail["headers"]["content-type"] == "application/json"
    assert all(name == name.lower() for name in detail["headers"])
    assert detail["body_bytes"] is None and detail["tls"] is None and detail["phase"] is None
    assert detail["redirects"] == [] and detail["failed_checks"] == []
    assert (detail["outcome"]["reason"], detail["outcome"]["phase"], detail["outcome"]["confirmed"]) == (
        "http_answer", None, True)
    timings = result["timings"]
    assert set(timings) == PHASES  # no tls_ms for http
    assert all(value >= 0 for value in timings.values())
    assert timings["ttfb_ms"] <= timings["total_ms"]
    parts = timings["resolve_ms"] + timings["connect_ms"] + timings["processing_ms"]
    assert parts - 0.01 <= timings["ttfb_ms"] <= timings["total_ms"]  # the phases, and the gaps between them


def test_request_carries_host_user_agent_and_the_given_headers(start_server):
    server = start_server("rec", handler=RecordingHandler)
    port = server.server_address[1]
    check_url(target(server.base + "/x?y=1", headers={"X-Trace": "abc"}))
    command, path, headers = server.recorded[-1]
    assert (command, path) == ("HEAD", "/x?y=1")
    assert headers.get_all("Host") == ["127.0.0.1:%d" % port]
    assert headers["User-Agent"] == USER_AGENT and headers["X-Trace"] == "abc"


def test_a_host_header_given_with_its_usual_case_replaces_the_default_one(start_server):
    server = start_server("rec", handler=RecordingHandler)
    check_url(target(server.base + "/", headers={"Host": "vhost.example"}))
    assert server.recorded[-1][2].get_all("Host") == ["vhost.example"]


def test_a_host_header_given_in_lower_case_is_the_only_host_header_sent(start_server):
    server = start_server("rec", handler=RecordingHandler)
    check_url(target(server.base + "/", headers={"host": "vhost.example"}))
    assert server.recorded[-1][2].get_all("Host") == ["vhost.example"]


def test_get_with_a_matching_body_regex_passes_and_counts_the_body(web):
    result = check_url(target(web.base + "/", method="GET", body_regex=r'"host": "web1"'))
    assert result["ok"] is True and result["state"] == "answered"
    body = json.dumps({"host": "web1", "path": "/", "status": 200}).encode() + b"\n"
    assert result["detail"]["body_bytes"] == len(body)


def test_get_with_a_body_regex_miss_answers_but_fails_with_the_check(web):
    result = check_url(target(web.base + "/", method="GET", body_regex="nomatch"))
    assert (result["state"], result["ok"]) == ("answered", False)
    assert result["detail"]["failed_checks"] == ["body does not match 'nomatch'"]
    assert result["error"] == "body does not match 'nomatch'"


def test_a_404_passes_when_status_codes_expects_it_and_fails_otherwise(web):
    expected = check_url(target(web.base + "/missing", status_codes=[404]))
    assert (expected["ok"], expected["detail"]["status"]) == (True, 404)
    unexpected = check_url(target(web.base + "/missing"))
    assert (unexpected["state"], unexpected["ok"]) == ("answered", False)
    assert unexpected["error"] == "status 404 not in [200]"


def test_expect_headers_are_checked_against_the_real_answer(web):
    result = check_url(target(web.base + "/", expect_headers={"X-Lab-Host": "^web1$", "Server": None,
                                                              "X-Missing": "."}))
    assert result["detail"]["failed_checks"] == ["header server present, expected absent", "header x-missing missing"]
    assert result["ok"] is False


def test_a_redirect_chain_is_followed_to_the_end_and_recorded(web):
    url = web.base + "/redirect/2"
    result = check_url(target(url))
    detail = result["detail"]
    assert (result["ok"], detail["status"], detail["final_url"]) == (True, 200, web.base + "/")
    assert detail["redirects"] == [
        {"url": url, "status": 302, "location": web.base + "/redirect/1"},
        {"url": web.base + "/redirect/1", "status": 302, "location": web.base + "/redirect/0"},
        {"url": web.base + "/redirect/0", "status": 302, "location": web.base + "/"},
    ]
    assert result["timings"]["total_ms"] >= result["timings"]["ttfb_ms"]


def test_follow_redirects_none_reports_the_redirect_itself(web):
    url = web.base + "/redirect/2"
    result = check_url(target(url, follow_redirects="none"))
    detail = result["detail"]
    assert (detail["status"], detail["final_url"], result["state"]) == (302, url, "answered")
    assert detail["redirects"] == [{"url": url, "status": 302, "location": web.base + "/redirect/1"}]
    assert result["error"] == "status 302 not in [200]"
    assert check_url(target(url, follow_redirects="none", status_codes=[302]))["ok"] is True


def test_ten_redirects_are_followed_and_the_eleventh_is_refused(web):
    assert check_url(target(web.base + "/redirect/%d" % (MAX_REDIRECTS - 1)))["ok"] is True
    result = check_url(target(web.base + "/redirect/%d" % MAX_REDIRECTS))
    assert (result["state"], result["detail"]["phase"]) == ("failed", "redirect")
    assert result["error"] == "redirect: more than %d redirects" % MAX_REDIRECTS
    assert len(result["detail"]["redirects"]) == MAX_REDIRECTS + 1


def test_a_redirect_to_an_unsupported_scheme_is_not_followed(web):
    result = check_url(target(web.base + "/redirect?to=file:///etc/passwd"))
    assert (result["state"], result["detail"]["phase"]) == ("failed", "redirect")
    assert result["error"].startswith("redirect: cannot follow location: unsupported scheme 'file'")


def test_a_refused_redirect_still_reports_the_last_response(web):
    url = web.base + "/redirect?to=ftp://127.0.0.1/"
    result = check_url(target(url))
    assert (result["detail"]["status"], result["detail"]["final_url"]) == (302, url)


def test_https_verified_against_the_given_ca_reports_tls_facts(tls_web, pki):
    result = check_url(target(tls_web.base + "/", ca_path=pki["ca_path"]))
    assert (result["state"], result["ok"]) == ("answered", True)
    tls = result["detail"]["tls"]
    assert tls["verified"] is True and tls["verify_error"] is None
    assert re.match(r"^TLSv1\.[23]$", tls["version"])
    assert tls["cipher"]
    assert tls["days_left"] in (9, 10) and tls["expired"] is False
    assert tls["subject"] == "commonName=localhost, organizationName=netcheck tests"
    assert "IP Address:127.0.0.1" in tls["san"]
    assert set(result["timings"]) == PHASES | {"tls_ms"}
    parts = sum(result["timings"][k] for k in ("resolve_ms", "connect_ms", "tls_ms", "processing_ms"))
    assert parts - 0.01 <= result["timings"]["ttfb_ms"] <= result["timings"]["total_ms"]


def test_https_with_an_unknown_ca_fails_in_tls_but_still_reports_the_certificate(tls_web):
    result = check_url(target(tls_web.base + "/"))
    assert tuple(result) == RESULT_KEYS
    assert (result["state"], result["ok"], result["detail"]["phase"]) == ("failed", False, "tls")
    assert result["error"].startswith("tls: certificate verification failed: ")
    assert "verif" in result["error"]
    assert (result["detail"]["outcome"]["reason"], result["detail"]["outcome"]["phase"]) == ("tls_verify", "tls")
    tls = result["detail"]["tls"]
    assert tls["verified"] is False and tls["verify_error"]
    assert tls["days_left"] in (9, 10)
    assert result["detail"]["status"] is None
    assert "tls_ms" not in result["timings"] and "total_ms" in result["timings"]


def test_https_with_an_expired_certificate_reports_how_long_ago_it_expired(start_server, pki):
    server = start_server("old", tls_files=pki["expired_files"])
    result = check_url(target(server.base + "/", ca_path=pki["ca_path"]))
    assert (result["state"], result["detail"]["phase"]) == ("failed", "tls")
    assert "expired" in result["error"]
    assert result["detail"]["outcome"]["reason"] == "tls_verify"
    tls = result["detail"]["tls"]
    assert tls["expired"] is True and tls["days_left"] < 0 and tls["verified"] is False


def test_https_without_certificate_validation_answers_unverified(tls_web):
    result = check_url(target(tls_web.base + "/", validate_certs=False))
    assert (result["state"], result["ok"]) == ("answered", True)
    assert result["detail"]["tls"]["verified"] is False
    assert result["detail"]["tls"]["days_left"] in (9, 10)


def test_an_https_to_http_redirect_is_refused_with_safe_and_followed_with_all(tls_web, web, pki):
    url = tls_web.base + "/redirect?to=" + web.base + "/"
    safe = check_url(target(url, ca_path=pki["ca_path"]))
    assert (safe["state"], safe["ok"], safe["detail"]["phase"]) == ("failed", False, "redirect")
    assert safe["error"] == ("redirect: refused to follow %s/ from https to http (follow_redirects=safe)"
                             % web.base)
    assert safe["detail"]["redirects"] == [{"url": url, "status": 302, "location": web.base + "/"}]
    followed = check_url(target(url, ca_path=pki["ca_path"], follow_redirects="all"))
    assert (followed["state"], followed["ok"], followed["detail"]["final_url"]) == ("answered", True, web.base + "/")
    assert followed["detail"]["headers"]["x-lab-host"] == "web1"
    assert followed["detail"]["tls"] is None


def test_an_http_to_https_redirect_is_followed_with_safe(tls_web, web, pki):
    result = check_url(target(web.base + "/redirect?to=" + tls_web.base + "/", ca_path=pki["ca_path"]))
    assert (result["ok"], result["detail"]["final_url"]) == (True, tls_web.base + "/")
    assert result["detail"]["tls"]["verified"] is True
    assert result["detail"]["headers"]["x-lab-host"] == "tls1"


@pytest.mark.parametrize("upper_location", [True, False])
def test_safe_refuses_an_https_to_http_redirect_whatever_the_scheme_case(tls_web, web, pki, upper_location):
    if upper_location:
        url = tls_web.base + "/redirect?to=" + web.base.replace("http://", "HTTP://") + "/"
    else:
        url = tls_web.base.replace("https://", "HTTPS://") + "/redirect?to=" + web.base + "/"
    result = check_url(target(url, ca_path=pki["ca_path"]))
    assert result["detail"]["phase"] == "redirect"
    assert result["state"] == "failed"


def test_a_closed_port_fails_in_connect_with_connection_refused(closed_port):
    url = "http://127.0.0.1:%d/" % closed_port
    result = check_url(target(url))
    assert tuple(result) == RESULT_KEYS
    assert (result["state"], result["ok"]) == ("failed", False)
    assert result["error"].startswith("connect: closed: connection refused")
    record = result["detail"]["outcome"]
    assert (record["reason"], record["phase"], record["errno_name"], record["icmp_type"]) == (
        "rst", "connect", "ECONNREFUSED", None)
    assert (result["detail"]["phase"], result["detail"]["address"], result["detail"]["final_url"]) == (
        "connect", "127.0.0.1", url)
    assert set(result["timings"]) == {"resolve_ms", "connect_ms", "total_ms"}  # connect_ms: until it failed


def test_a_silent_server_fails_in_processing_after_the_timeout(listening_port):
    start = time.monotonic()
    result = check_url(target("http://127.0.0.1:%d/" % listening_port, timeout=0.5))
    elapsed = time.monotonic() - start
    assert (result["state"], result["ok"], result["detail"]["phase"]) == ("failed", False, "processing")
    assert result["error"] == "processing: no response within 0.5 s after the request was sent"
    assert (result["detail"]["outcome"]["reason"], result["detail"]["outcome"]["phase"]) == (
        "http_timeout", "processing")
    assert 450 <= result["timings"]["total_ms"] <= 1000
    assert 0.45 <= elapsed <= 1.0
    assert "connect_ms" in result["timings"] and "processing_ms" not in result["timings"]


def test_the_authorization_header_is_sent_and_never_appears_in_the_result(web):
    allowed = check_url(target(web.base + "/auth", headers={"Authorization": AUTH}))
    assert (allowed["ok"], allowed["detail"]["status"]) == (True, 200)
    wrong_token = "Bearer wrong-T0KEN-77aa"
    denied = check_url(target(web.base + "/auth", headers={"Authorization": wrong_token}))
    assert (denied["ok"], denied["detail"]["status"]) == (False, 401)
    missing = check_url(target(web.base + "/auth"))
    assert missing["detail"]["status"] == 401
    for result, secret in ((allowed, AUTH), (denied, wrong_token)):
        text = json.dumps(result)
        assert secret not in text and secret.split()[1] not in text


def test_the_authorization_header_is_still_sent_after_a_same_origin_redirect(web):
    result = check_url(target(web.base + "/redirect?to=/auth", headers={"Authorization": AUTH}))
    assert (result["ok"], result["detail"]["final_url"]) == (True, web.base + "/auth")
    assert AUTH not in json.dumps(result)


def test_the_authorization_header_is_not_forwarded_to_another_origin(web, start_server):
    other = start_server("other", handler=RecordingHandler)
    result = check_url(target(web.base + "/redirect?to=" + other.base + "/", headers={"Authorization": AUTH}))
    assert result["detail"]["final_url"] == other.base + "/"  # it did get there
    assert other.recorded and "Authorization" not in other.recorded[-1][2]


@needs_ipv6
def test_a_bracketed_ipv6_url_is_checked_over_ipv6(start_server):
    server = start_server("web6", bind="::1", handler=RecordingHandler)
    result = check_url(target(server.base + "/"))
    assert (result["ok"], result["detail"]["address"]) == (True, "::1")
    assert server.recorded[-1][2]["Host"] == "[::1]:%d" % server.server_address[1]


def test_a_header_value_accepted_by_validation_never_makes_check_url_raise(web):
    try:
        only = target(web.base + "/", headers={"X-Token": "caf\u00e9-\u2713"})
    except InputError:
        return  # rejected before any request: fine
    assert tuple(check_url(only)) == RESULT_KEYS


# --- check_urls -------------------------------------------------------------------------------

def test_check_urls_runs_fifty_slow_urls_at_once_and_keeps_their_order(web):
    urls = ["%s/delay?ms=200&i=%d" % (web.base, i) for i in range(50)]
    targets = parse_targets(urls, {"method": "GET"})
    start = time.monotonic()
    results = check_urls(targets)
    elapsed = time.monotonic() - start
    assert elapsed < 2.0  # one after the other would take 10 s
    assert [r["target"] for r in results] == urls
    assert all(r["ok"] for r in results), [r["error"] for r in results if not r["ok"]]
    assert all(r["timings"]["processing_ms"] >= 190 for r in results)


def test_check_urls_keeps_the_order_of_mixed_outcomes_and_the_result_shape(web, closed_port):
    urls = [web.base + "/", "http://127.0.0.1:%d/" % closed_port, web.base + "/missing", web.base + "/redirect/1"]
    results = check_urls(parse_targets(urls), max_workers=2)
    assert [r["target"] for r in results] == urls
    assert [(r["state"], r["ok"]) for r in results] == [
        ("answered", True), ("failed", False), ("answered", False), ("answered", True)]
    assert all(tuple(r) == RESULT_KEYS for r in results)


# --- hypothesis ---------------------------------------------------------------------------------

_URLISH = st.builds(
    lambda scheme, rest: scheme + rest,
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "", "http:", "https://[", "http://u:p@"]),
    st.lists(st.sampled_from(list("abc019.:-_[]@/?#%&;$` \t\r\n\x00\u00e9\u0661") + ["::1", "h:", "%25"]),
             max_size=20).map("".join),
)


@given(st.one_of(st.text(max_size=80), _URLISH))
@HYPOTHESIS
def test_parse_url_raises_nothing_but_input_error_on_arbitrary_text(text):
    try:
        scheme, host, port, path = parse_url(text, "urls[0].url")
    except InputError as exc:
        assert str(exc).startswith("urls[0].url")
        return
    assert scheme in ("http", "https")
    assert host and isinstance(port, int) and 0 < port <= 65535
    assert path.startswith("/") and "#" not in path


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=30), max_size=5))
@HYPOTHESIS
def test_validate_headers_raises_nothing_but_input_error_on_arbitrary_dicts_of_text(headers):
    try:
        clean = validate_headers(headers, "headers")
    except InputError as exc:
        assert str(exc).startswith("headers")
        return
    assert clean == headers
    assert not any(c in value for value in clean.values() for c in "\r\n\0")


# --- faults of issue 14: a trickling server, backtracking regexes, odd bytes, secrets -------------

import contextlib  # noqa: E402


@contextlib.contextmanager
def raw_server(script):
    """A loopback server whose every connection runs ``script(conn)`` (a bytes-level HTTP peer)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_run_script, args=(script, conn), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield "http://127.0.0.1:%d" % server.getsockname()[1]
    finally:
        stop.set()
        server.close()


def _run_script(script, conn):
    with conn:
        conn.settimeout(10)
        try:
            conn.recv(65536)  # the request
            script(conn)
        except OSError:
            pass


def trickle_headers(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for index in range(80):  # one header line every 0.1 s: 8 s in all
        conn.sendall(b"X-Slow-%d: a\r\n" % index)
        time.sleep(0.1)
    conn.sendall(b"Content-Length: 0\r\n\r\n")


def trickle_body(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    for _ in range(100):
        conn.sendall(b"x")
        time.sleep(0.1)


def test_a_trickling_header_server_fails_at_the_timeout_naming_the_phase():
    with raw_server(trickle_headers) as base:
        start = time.monotonic()
        result = check_url(target(base + "/", timeout=1))
        elapsed = time.monotonic() - start
    assert (result["state"], result["detail"]["phase"]) == ("failed", "transfer")
    assert "still arriving when the 1 s timeout passed (headers incomplete" in result["error"]
    assert result["detail"]["outcome"]["reason"] == "http_timeout"
    assert elapsed < 1.6, elapsed


def test_a_trickling_body_fails_at_the_timeout_naming_the_body():
    with raw_server(trickle_body) as base:
        start = time.monotonic()
        result = check_url(target(base + "/", method="GET", timeout=1))
        elapsed = time.monotonic() - start
    assert result["detail"]["phase"] == "transfer"
    assert "(body incomplete" in result["error"]
    assert elapsed < 1.6, elapsed


def answer(body, headers=b""):
    def script(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), headers, body))
    return script


def test_a_backtracking_body_regex_ends_at_the_timeout_and_says_so():
    with raw_server(answer(b"a" * 40 + b"!")) as base:
        start = time.monotonic()
        result = check_url(target(base + "/", method="GET", body_regex=r"^(a+)+$", timeout=1))
        elapsed = time.monotonic() - start
    assert (result["state"], result["ok"]) == ("answered", False)
    assert "still searching" in result["error"] and "body" in result["error"]
    assert elapsed < 2.6, elapsed


def test_a_backtracking_expect_headers_regex_ends_at_the_timeout_and_says_so():
    with raw_server(answer(b"", b"X-Thing: " + b"a" * 40 + b"!\r\n")) as base:
        start = time.monotonic()
        results = check_urls(parse_targets([{"url": base + "/", "timeout": 1,
                                             "expect_headers": {"X-Thing": r"^(a+)+$"}}]))
        elapsed = time.monotonic() - start
    assert "header x-thing: the regular expression" in results[0]["error"]
    assert elapsed < 2.6, elapsed


def test_a_ca_path_that_holds_no_certificate_is_a_field_error():
    with pytest.raises(InputError, match=r"^urls\[0\]\.ca_path: '/etc/passwd' holds no usable PEM CA"):
        parse_targets([{"url": "https://127.0.0.1/", "ca_path": "/etc/passwd"}])


def test_a_non_ascii_path_is_sent_percent_encoded(start_server):
    server = start_server("utf8", handler=RecordingHandler)
    result = check_url(target(server.base + "/caf\u00e9/\u2713?q=\u00fc"))
    assert result["state"] == "answered"
    assert server.recorded[-1][1] == "/caf%C3%A9/%E2%9C%93?q=%C3%BC"


def test_a_non_ascii_redirect_location_never_crashes_the_probe(start_server):
    final = start_server("final", handler=RecordingHandler)
    location = (final.base + "/d\u00e9j\u00e0").encode("utf-8")

    def redirect(conn):
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")

    with raw_server(redirect) as base:
        result = check_url(target(base + "/"))
    assert tuple(result) == RESULT_KEYS
    assert result["state"] == "answered", result["error"]
    assert final.recorded[-1][1] == "/d%C3%A9j%C3%A0"  # the UTF-8 the server sent, percent-encoded


def test_every_user_header_is_dropped_on_a_cross_origin_redirect(web, start_server):
    other = start_server("other", handler=RecordingHandler)
    headers = {"X-Api-Key": "k-123", "X-Auth-Token": "t-456", "Authorization": AUTH}
    result = check_url(target(web.base + "/redirect?to=" + other.base + "/", headers=headers))
    assert result["detail"]["final_url"] == other.base + "/"
    sent = other.recorded[-1][2]
    assert not {"X-Api-Key", "X-Auth-Token", "Authorization"} & set(sent.keys())


def test_keep_headers_across_origins_forwards_user_headers_but_never_credentials(web, start_server):
    other = start_server("other", handler=RecordingHandler)
    headers = {"X-Trace": "abc", "Authorization": AUTH, "Cookie": "a=b"}
    check_url(target(web.base + "/redirect?to=" + other.base + "/", headers=headers,
                     keep_headers_across_origins=True))
    sent = other.recorded[-1][2]
    assert sent["X-Trace"] == "abc"
    assert "Authorization" not in sent and "Cookie" not in sent


def test_user_headers_stay_on_a_same_origin_redirect(start_server):
    server = start_server("same", handler=RecordingHandler)
    check_url(target(server.base + "/redirect?to=/", headers={"X-Api-Key": "k-123"}))
    assert [r[2]["X-Api-Key"] for r in server.recorded] == ["k-123", "k-123"]


def _ssh_banner(conn):
    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")


def test_a_server_that_does_not_speak_http_is_not_http_in_transfer():
    with raw_server(_ssh_banner) as base:
        result = check_url(target(base + "/", timeout=1))
    assert (result["state"], result["detail"]["phase"]) == ("failed", "transfer")
    assert (result["detail"]["outcome"]["reason"], result["detail"]["outcome"]["phase"]) == ("not_http", "transfer")
    assert result["timings"]["ttfb_ms"] <= result["timings"]["total_ms"]


def test_a_valid_certificate_for_another_name_is_tls_name(start_server, pki):
    # the certificate names 127.0.0.1, localhost and ::1; the server answers on 127.0.0.2 (loopback)
    server = start_server("other", tls_files=pki["valid_files"], bind="127.0.0.2")
    result = check_url(target(server.base + "/", ca_path=pki["ca_path"]))
    assert (result["state"], result["detail"]["phase"]) == ("failed", "tls")
    assert (result["detail"]["outcome"]["reason"], result["detail"]["outcome"]["phase"]) == ("tls_name", "tls")
    assert "mismatch" in result["detail"]["tls"]["verify_error"].lower()

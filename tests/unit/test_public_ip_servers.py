"""The lab's stand-ins for public_ip: the IMDSv2 server (lab/imds.py) and the what-is-my-IP
echo server (lab/whatismyip.py), each run in a thread on 127.0.0.1 with an ephemeral port.

Requests go through http.client to 127.0.0.1 only (never urllib, which would follow a
proxy from the environment)."""

from __future__ import annotations

import http.client
import socket

import pytest

from lab import imds, whatismyip
from loopback import serving

TTL = {imds.TTL_HEADER: "21600"}
METADATA = dict(local_ipv4="10.0.0.5", instance_id="i-0123456789abcdef0")


@pytest.fixture
def imds_server():
    """An IMDS stand-in with a public IPv4 address; yields (server, port)."""
    server = imds.make_server("127.0.0.1", 0, public_ipv4="203.0.113.9", **METADATA)
    with serving(server) as port:
        yield server, port


@pytest.fixture
def private_imds():
    """An IMDS stand-in of an instance without a public IPv4 address; yields its port."""
    with serving(imds.make_server("127.0.0.1", 0, **METADATA)) as port:
        yield port


def request(port, method, path, headers=None):
    """(status, body text) of one request to 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def token_of(port):
    status, token = request(port, "PUT", imds.TOKEN_PATH, TTL)
    assert status == 200 and token
    return token


# --- IMDS ---------------------------------------------------------------------------

def test_token_request_without_ttl_header_is_refused_with_400(imds_server):
    _, port = imds_server
    status, body = request(port, "PUT", imds.TOKEN_PATH)
    assert status == 400
    assert imds.TTL_HEADER in body


@pytest.mark.parametrize("ttl", ["0", "21601", "abc", ""])
def test_token_request_with_ttl_out_of_range_is_refused_with_400(imds_server, ttl):
    _, port = imds_server
    assert request(port, "PUT", imds.TOKEN_PATH, {imds.TTL_HEADER: ttl})[0] == 400


def test_token_is_random_per_request_and_echoes_the_ttl(imds_server):
    _, port = imds_server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("PUT", imds.TOKEN_PATH, headers={imds.TTL_HEADER: "60"})
    response = conn.getresponse()
    first = response.read().decode()
    conn.close()
    assert response.getheader(imds.TTL_HEADER) == "60"
    assert len(first) >= 40 and first != token_of(port)


def test_metadata_without_token_is_refused_with_401(imds_server):
    _, port = imds_server
    for key in ("public-ipv4", "local-ipv4", "instance-id", ""):
        assert request(port, "GET", imds.METADATA_PREFIX + key)[0] == 401


def test_metadata_with_a_token_never_issued_is_refused_with_401(imds_server):
    _, port = imds_server
    token_of(port)
    assert request(port, "GET", imds.METADATA_PREFIX + "public-ipv4", {imds.TOKEN_HEADER: "forged"})[0] == 401


def test_metadata_with_an_expired_token_is_refused_with_401(imds_server):
    server, port = imds_server
    token = token_of(port)  # 21600 s
    server.clock = lambda: imds.time.monotonic() + 21601
    assert request(port, "GET", imds.METADATA_PREFIX + "instance-id", {imds.TOKEN_HEADER: token})[0] == 401


def test_metadata_with_an_issued_token_serves_the_configured_values(imds_server):
    _, port = imds_server
    headers = {imds.TOKEN_HEADER: token_of(port)}
    assert request(port, "GET", imds.METADATA_PREFIX + "public-ipv4", headers) == (200, "203.0.113.9")
    assert request(port, "GET", imds.METADATA_PREFIX + "local-ipv4", headers) == (200, "10.0.0.5")
    assert request(port, "GET", imds.METADATA_PREFIX + "instance-id", headers) == (200, "i-0123456789abcdef0")
    assert request(port, "GET", imds.METADATA_PREFIX, headers) == (200, "instance-id\nlocal-ipv4\npublic-ipv4")
    assert request(port, "GET", imds.METADATA_PREFIX + "ami-id", headers)[0] == 404


def test_public_ipv4_is_404_when_the_instance_has_none(private_imds):
    headers = {imds.TOKEN_HEADER: token_of(private_imds)}
    assert request(private_imds, "GET", imds.METADATA_PREFIX + "public-ipv4", headers)[0] == 404
    assert request(private_imds, "GET", imds.METADATA_PREFIX + "local-ipv4", headers) == (200, "10.0.0.5")
    assert "public-ipv4" not in request(private_imds, "GET", imds.METADATA_PREFIX, headers)[1]


def test_fixed_token_option_issues_that_token_and_accepts_it():
    server = imds.make_server("127.0.0.1", 0, token="AQAE-fixed-token", **METADATA)
    with serving(server) as port:
        assert token_of(port) == "AQAE-fixed-token"
        headers = {imds.TOKEN_HEADER: "AQAE-fixed-token"}
        assert request(port, "GET", imds.METADATA_PREFIX + "instance-id", headers)[0] == 200


def test_token_path_answers_405_to_get_and_other_puts_404(imds_server):
    _, port = imds_server
    assert request(port, "GET", imds.TOKEN_PATH)[0] == 405
    assert request(port, "PUT", "/latest/api/other", TTL)[0] == 404


def test_imds_log_names_each_request_path_and_never_the_token(imds_server, capsys):
    _, port = imds_server
    token = token_of(port)
    request(port, "GET", imds.METADATA_PREFIX + "local-ipv4", {imds.TOKEN_HEADER: token})
    request(port, "GET", imds.METADATA_PREFIX + "local-ipv4")
    log = capsys.readouterr().err
    assert '"PUT /latest/api/token HTTP/1.1" 200' in log
    assert '"GET /latest/meta-data/local-ipv4 HTTP/1.1" 200' in log
    assert '"GET /latest/meta-data/local-ipv4 HTTP/1.1" 401' in log
    assert token not in log


# --- what is my IP ------------------------------------------------------------------

def test_whatismyip_answers_the_client_address_as_text():
    server = whatismyip.EchoServer(("127.0.0.1", 0))
    with serving(server) as port:
        assert server.url == "http://127.0.0.1:%d/" % port
        assert request(port, "GET", "/") == (200, "127.0.0.1\n")
        assert request(port, "GET", "/anything")[0] == 404


def test_whatismyip_shows_ipv4_mapped_clients_as_ipv4():
    assert whatismyip.client_ip("::ffff:10.77.0.11") == "10.77.0.11"
    assert whatismyip.client_ip("fd6e::11") == "fd6e::11"


# --- both: bind by IP, never resolve -------------------------------------------------

def test_servers_start_without_resolving_any_name(monkeypatch):
    def no_dns(*args, **kwargs):
        raise AssertionError("a name was resolved")

    monkeypatch.setattr(socket, "getfqdn", no_dns)
    monkeypatch.setattr(socket, "gethostbyaddr", no_dns)
    for server in (imds.make_server("127.0.0.1", 0, **METADATA), whatismyip.EchoServer(("127.0.0.1", 0))):
        assert server.server_name == "127.0.0.1"
        server.server_close()


@pytest.mark.parametrize("main, extra", [
    (imds.main, ["--local-ipv4", "10.0.0.5", "--instance-id", "i-1"]),
    (whatismyip.main, []),
])
def test_servers_refuse_a_name_as_bind_address(main, extra, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--bind", "localhost", "--port", "0"] + extra)
    assert exited.value.code == 2
    assert "an IP address is needed" in capsys.readouterr().err

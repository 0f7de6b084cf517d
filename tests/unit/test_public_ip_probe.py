"""module_utils/netcheck/public_ip.py against the lab's stand-ins on loopback: the shared result shape,
IMDSv2 through the HTTP probe, same-origin redirects only, and the final endpoint shown."""

from __future__ import annotations


import pytest

from lab import imds, whatismyip
from loopback import serving
from lab.httpbase import NoDnsHTTPServer, QuietHandler
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.probe import RESULT_KEYS, InputError
from ansible_collections.netcheck.netcheck.plugins.module_utils.netcheck.public_ip import STATES, find_public_ip, summary_facts, validate

METADATA = dict(local_ipv4="10.0.0.5", instance_id="i-0123456789abcdef0")


def redirector(location):
    """A server on 127.0.0.1 answering every GET with 302 to ``location`` (may use {port})."""
    class Handler(QuietHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(302)
            self.send_header("Location", location.format(port=self.server.server_address[1]))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, fmt, *args):
            pass

    return NoDnsHTTPServer(("127.0.0.1", 0), Handler)


def params(**given):
    values = dict(imds=False, imds_endpoint="http://127.0.0.1:9", imds_timeout=1.0, url=None, url_timeout=2.0,
                  validate_certs=True)
    values.update(given)
    return values


@pytest.fixture
def echo():
    server = whatismyip.EchoServer(("127.0.0.1", 0))
    with serving(server):
        yield server.url


def test_the_url_source_answers_the_shared_shape_with_the_final_endpoint(echo):
    (result,) = find_public_ip(params(url=echo))
    assert set(result) == set(RESULT_KEYS) and result["kind"] == "public_ip"
    assert result["state"] == "answered" and result["ok"] is True and result["error"] is None
    assert result["detail"] == dict(result["detail"], source="url", endpoint=echo, final_url=echo, status=200,
                                    address="127.0.0.1", phase=None)
    assert summary_facts([result]) == {"public_ip": "127.0.0.1", "source": "url", "endpoint": echo,
                                       "local_ip": None, "instance_id": None}


def test_imds_gives_the_public_address_with_a_token_and_the_instance_facts():
    with serving(imds.make_server("127.0.0.1", 0, public_ipv4="203.0.113.9", **METADATA)) as port:
        hidden = []
        (result,) = find_public_ip(params(imds=True, imds_endpoint="http://127.0.0.1:%d" % port), hide=hidden.append)
    assert result["state"] == "answered" and result["detail"]["address"] == "203.0.113.9"
    assert result["detail"]["local_ip"] == "10.0.0.5" and result["detail"]["instance_id"] == METADATA["instance_id"]
    assert result["detail"]["final_url"] == "http://127.0.0.1:%d/latest/meta-data/public-ipv4" % port
    assert len(hidden) == 1 and hidden[0] not in repr(result)


def test_imds_without_a_public_address_is_no_address_and_the_url_is_asked_next(echo):
    with serving(imds.make_server("127.0.0.1", 0, **METADATA)) as port:
        first, second = find_public_ip(params(imds=True, imds_endpoint="http://127.0.0.1:%d" % port, url=echo))
    assert first["state"] == "no_address" and "has no public IPv4 address" in first["error"]
    assert first["detail"]["local_ip"] == "10.0.0.5"
    assert second["state"] == "answered"


def test_a_closed_port_is_failed_naming_the_request_and_phase():
    with serving(redirector("/")) as port:
        pass  # the port is closed again now
    (result,) = find_public_ip(params(url="http://127.0.0.1:%d/" % port))
    assert result["state"] == "failed" and result["detail"]["phase"] == "connect"
    assert result["error"].startswith("GET http://127.0.0.1:%d/: " % port)


def test_a_redirect_to_another_origin_is_not_followed_and_says_where_it_pointed(echo):
    # 127.0.0.2 is another origin (and loopback): its answer must not be taken
    with serving(redirector("http://127.0.0.2:{port}/")) as port:
        (result,) = find_public_ip(params(url="http://127.0.0.1:%d/" % port))
    assert result["state"] == "no_address" and result["ok"] is False
    assert result["error"] == ("GET http://127.0.0.1:%d/: redirected to http://127.0.0.2:%d/, another origin: "
                               "not followed" % (port, port))
    assert result["detail"]["final_url"] == "http://127.0.0.1:%d/" % port and result["detail"]["status"] == 302


def test_a_redirect_to_the_metadata_address_is_not_followed():
    with serving(redirector("http://169.254.169.254/latest/meta-data/public-ipv4")) as port:
        (result,) = find_public_ip(params(url="http://127.0.0.1:%d/" % port))
    assert result["state"] == "no_address" and "169.254.169.254" in result["error"]


def test_a_redirect_loop_within_the_origin_ends(echo):
    with serving(redirector("/again")) as port:
        (result,) = find_public_ip(params(url="http://127.0.0.1:%d/" % port))
    assert result["state"] == "no_address" and "more than 5 redirects" in result["error"]


def test_every_state_is_one_of_the_documented_states(echo):
    assert STATES == ("answered", "no_address", "failed")


@pytest.mark.parametrize("bad, message", [
    (dict(imds_timeout=0), "imds_timeout:"),
    (dict(url="ftp://127.0.0.1/"), "url: unsupported scheme"),
    (dict(imds_endpoint="file:///etc/passwd", imds=True), "imds_endpoint: unsupported scheme"),
    (dict(imds=False, url=None), "url: required when imds is false"),
])
def test_bad_input_names_the_field(bad, message):
    with pytest.raises(InputError, match=message):
        validate(params(**bad))

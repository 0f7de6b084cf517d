# -*- coding: utf-8 -*-
"""HTTP probe: ``curl -I`` for many URLs at once, with each phase timed separately.

Stdlib only (http.client, ssl, socket). The phases are those Prometheus
blackbox_exporter reports: ``resolve`` (DNS), ``connect`` (TCP handshake),
``tls`` (TLS handshake), ``processing`` (request sent -> first byte of the
answer) and ``transfer`` (the rest of the answer); ``ttfb_ms`` is the time from
the start to the first byte and ``total_ms`` the whole check, redirects included.
A check that fails names the phase where it stopped.
"""

from __future__ import annotations

import errno
import heapq
import importlib
import io
import math
import os
import re
import select
import selectors
import socket
import threading
import time
from urllib.parse import quote, urljoin, urlsplit

from .neighbour import default_run, neighbour_table
from .probe import (
    DEFAULT_MAX_WORKERS, InputError, ms_since, probe_result, target_mappings, validate_host,
    validate_regex, validate_timeout,
)
from .outcome import normal_address, outcome
from .regex import MatcherPool, RegexTimeout
from .tcp import (
    DEFAULT_CONFIRM_BUDGET, Flow, IcmpSeen, classify_connect, confirm_flows, describe, enable_recverr, icmp_facts,
    is_icmp, read_icmp_error,
)
from .x509 import DerError, decode_certificate


class _OnFirstUse(object):
    """A stdlib module imported when one of its names is first read. ssl and http.client (which
    brings the email package) are about a fifth of net_diagnose's imports: a run that checks no URL
    does not pay for them (bench/startup.py counts the imports)."""

    def __init__(self, name):
        self._name = name
        self._module = None

    def __getattr__(self, attr):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


ssl = _OnFirstUse("ssl")
http_client = _OnFirstUse("http.client")

KIND = "http"
METHODS = ("HEAD", "GET")
FOLLOW = ("none", "safe", "all")
REDIRECT_CODES = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10
MAX_BODY_BYTES = 1024 * 1024  # what GET reads for body_regex at most
SENSITIVE_HEADERS = ("authorization", "proxy-authorization", "cookie")
USER_AGENT = "netcheck-http_check/0.3"
# an HTTP header name (RFC 9110 token); \Z, not $, which would let a trailing newline through
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_BAD_VALUE = re.compile(r"[\r\n\0]")

# The options a user writes (module_utils/netcheck/spec.py explains the format). Every request
# option is a module-level default that one URL may override (so without a default there).
HTTP_REQUEST_SPEC = {
    "method": {"type": "str", "choices": list(METHODS), "default": "HEAD", "description": "HEAD (like curl -I) or GET."},
    "status_codes": {"type": "list", "elements": "int", "default": [200],
                     "description": "The status codes that pass (100-599)."},
    "headers": {"type": "dict", "default": {}, "no_log": True,
                "description": "Headers sent with the request; their values are never logged."},
    "expect_headers": {"type": "dict", "default": {},
                       "description": "Response header name to a regex its value must match (null: must be absent)."},
    "follow_redirects": {"type": "str", "choices": list(FOLLOW), "default": "safe",
                         "description": "none, safe (never https to http) or all; at most 10 redirects."},
    "validate_certs": {"type": "bool", "default": True, "description": "Verify the server certificate and host name."},
    "ca_path": {"type": "path", "description": "A PEM file of CA certificates on the managed host (default: the system's)."},
    "timeout": {"type": "float", "default": 5.0, "description": "Seconds for each request, all its phases together."},
    "body_regex": {"type": "str", "description": "A Python regular expression the body must match (GET only)."},
    "keep_headers_across_origins": {
        "type": "bool", "default": False,
        "description": "Send headers on to another origin after a redirect (never Authorization, Cookie)."},
}
# each request option's default (None when it has none): what a URL gets when nothing overrides it
DEFAULTS = {name: option.get("default") for name, option in HTTP_REQUEST_SPEC.items()}
TARGET_KEYS = tuple(DEFAULTS) + ("url", "name")
HTTP_URL_SPEC = dict(
    {"url": {"type": "str", "required": True, "description": "An http:// or https:// URL."},
     "name": {"type": "raw", "description": "A label returned as detail.name (a string)."}},
    **{name: {key: value for key, value in option.items() if key != "default"}
       for name, option in HTTP_REQUEST_SPEC.items()})
HTTP_MODULE_SPEC = dict(
    {"urls": {"type": "list", "elements": "dict", "required": True, "options": HTTP_URL_SPEC,
              "description": "The URLs to check, all at once; each may override the options below."}},
    max_workers={"type": "int", "default": DEFAULT_MAX_WORKERS,
                 "description": "How many targets are checked at the same moment at most."},
    confirm_budget={"type": "float", "default": 10.0,
                    "description": "Seconds the paced re-probes of silent connects may add to the run (0: none)."},
    **HTTP_REQUEST_SPEC)


class HttpTarget(object):
    __slots__ = TARGET_KEYS

    def __init__(self, **values):
        for key in self.__slots__:
            setattr(self, key, values.get(key))


# --- input ------------------------------------------------------------------

def parse_url(url, field):
    """(scheme, host, port, path with query) of an http(s) URL, or InputError naming the field."""
    if not isinstance(url, str) or not url:
        raise InputError("%s: a URL is required" % field)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InputError("%s: %r is not a valid URL (%s)" % (field, url, exc))
    # before anything that quotes the URL: it must not repeat a password
    if "@" in parts.netloc:
        raise InputError("%s: credentials in the URL are refused: send them in headers (Authorization)" % field)
    if re.search(r"[\s\x00-\x1f\x7f]", url):
        raise InputError("%s: %r contains whitespace or control characters" % (field, url))
    try:
        port = parts.port
    except ValueError as exc:
        raise InputError("%s: %r is not a valid URL (%s)" % (field, url, exc))
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InputError("%s: unsupported scheme %r in %r (http or https)" % (field, parts.scheme, url))
    if port == 0:
        raise InputError("%s: port 0 in %r is not a port (1-65535)" % (field, url))
    if not parts.hostname:
        raise InputError("%s: %r has no host" % (field, url))
    host = validate_host(parts.hostname, field + " host")
    path = _ascii(parts.path) or "/"
    if parts.query:
        path += "?" + _ascii(parts.query)
    return scheme, host, port if port is not None else (443 if scheme == "https" else 80), path


def _ascii(text):
    """A URL part as HTTP/1.1 sends it: non-ASCII characters percent-encoded as UTF-8 (what
    browsers and curl do), everything already ASCII, escapes included, left as it is."""
    return quote(text, safe="".join(chr(c) for c in range(0x21, 0x7f)))


def _utf8_header(value):
    """A header http.client decoded as Latin-1, read as the UTF-8 that servers send in practice."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def validate_headers(headers, field):
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise InputError("%s: expected a mapping of header names to values" % field)
    clean = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise InputError("%s: %r is not a valid header name" % (field, name))
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise InputError("%s.%s: the value must be a string" % (field, name))
        # the value itself may be a secret: never echo it
        if _BAD_VALUE.search(str(value)):
            raise InputError("%s.%s: the value contains CR, LF or NUL" % (field, name))
        try:
            str(value).encode("latin-1")
        except UnicodeEncodeError:
            raise InputError("%s.%s: the value must be Latin-1 text (HTTP/1.1 header encoding)" % (field, name))
        clean[name] = str(value)
    return clean


def merge_headers(*layers):
    """Later layers win, whatever the case of the names (HTTP header names are case-insensitive)."""
    merged = {}
    for layer in layers:
        for name, value in layer.items():
            for existing in [key for key in merged if key.lower() == name.lower()]:
                del merged[existing]
            merged[name] = value
    return merged


def validate_status_codes(codes, field):
    if not isinstance(codes, (list, tuple)) or not codes:
        raise InputError("%s: give at least one status code" % field)
    for index, code in enumerate(codes):
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            raise InputError("%s[%d]: %r is not an HTTP status code (100-599)" % (field, index, code))
    return list(codes)


def validate_expect_headers(expect, field):
    if expect is None:
        return {}
    if not isinstance(expect, dict):
        raise InputError("%s: expected a mapping of header names to a regex (or null: must be absent)" % field)
    compiled = {}
    for name, pattern in expect.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise InputError("%s: %r is not a valid header name" % (field, name))
        compiled[name.lower()] = None if pattern is None else validate_regex(pattern, "%s.%s" % (field, name))
    return compiled


_CONTEXTS = {}
_CONTEXTS_LOCK = threading.Lock()


def tls_context(validate_certs, ca_path):
    """One SSLContext per (validate_certs, ca_path) for the whole process, made when the first TLS
    connection needs it: building one loads the CA store (about 20 ms of CPU), which a plain-http
    mesh never needs."""
    key = (validate_certs, ca_path)
    with _CONTEXTS_LOCK:
        if key not in _CONTEXTS:
            if validate_certs:
                context = ssl.create_default_context(cafile=ca_path)
            else:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            _CONTEXTS[key] = context
        return _CONTEXTS[key]


def parse_targets(raw_targets, defaults=None, field="urls"):
    """Validate every URL and option (module-level defaults, per-URL overrides) before any request."""
    base = dict(DEFAULTS)
    base.update({k: v for k, v in (defaults or {}).items() if v is not None})
    base_headers = validate_headers(base["headers"], "headers")
    base_expect = validate_expect_headers(base["expect_headers"], "expect_headers")
    targets = []
    for where, raw in target_mappings(raw_targets, field, TARGET_KEYS, shorthand="url",
                                      expected="a URL or a mapping with url", what="URL"):
        values = dict(base)
        values.update({k: v for k, v in raw.items() if v is not None and k not in ("headers", "expect_headers")})
        values["url"] = raw.get("url")
        values["name"] = raw.get("name")
        scheme = parse_url(values["url"], where + ".url")[0]
        method = str(values["method"]).upper()
        if method not in METHODS:
            raise InputError("%s.method: %r is not one of %s" % (where, values["method"], ", ".join(METHODS)))
        values["method"] = method
        values["status_codes"] = validate_status_codes(values["status_codes"], where + ".status_codes")
        values["headers"] = merge_headers(base_headers, validate_headers(raw.get("headers"), where + ".headers"))
        expect = dict(base_expect)
        expect.update(validate_expect_headers(raw.get("expect_headers"), where + ".expect_headers"))
        values["expect_headers"] = expect
        if values["follow_redirects"] not in FOLLOW:
            raise InputError("%s.follow_redirects: %r is not one of %s"
                             % (where, values["follow_redirects"], ", ".join(FOLLOW)))
        if not isinstance(values["validate_certs"], bool):
            raise InputError("%s.validate_certs: must be true or false" % where)
        values["timeout"] = validate_timeout(values["timeout"], where + ".timeout")
        if values["body_regex"] is not None:
            if method != "GET":
                raise InputError("%s.body_regex: needs method GET (HEAD has no body)" % where)
            values["body_regex"] = validate_regex(values["body_regex"], where + ".body_regex")
        if values["ca_path"] is not None and not os.path.isfile(values["ca_path"]):
            raise InputError("%s.ca_path: %r is not a file" % (where, values["ca_path"]))
        if not isinstance(values["keep_headers_across_origins"], bool):
            raise InputError("%s.keep_headers_across_origins: must be true or false" % where)
        if values["name"] is not None and not isinstance(values["name"], str):
            raise InputError("%s.name: must be a string" % where)
        target = HttpTarget(**values)
        if values["ca_path"] is not None and values["validate_certs"]:
            try:  # a CA file that cannot be used is bad input, found before any request
                tls_context(True, values["ca_path"])
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise InputError("%s.ca_path: %r holds no usable PEM CA certificate (%s)"
                                 % (where, values["ca_path"], getattr(exc, "reason", None) or exc))
        targets.append(target)
    return targets


# --- TLS facts ------------------------------------------------------------------

def _name(rdns):
    return ", ".join("%s=%s" % (key, value) for rdn in rdns or () for key, value in rdn)


def certificate_facts(der, now=None):
    """Subject, issuer, validity and SANs of a DER certificate (x509.decode_certificate), or {}."""
    if not der:
        return {}
    try:
        cert = decode_certificate(der)
    except DerError:
        return {}
    not_after, not_before = cert["not_after_epoch"], cert["not_before_epoch"]
    now = time.time() if now is None else now
    return {
        "subject": _name(cert.get("subject")),
        "issuer": _name(cert.get("issuer")),
        "not_before": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(not_before)),
        "not_after": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(not_after)),
        "days_left": int((not_after - now) // 86400),
        "expired": not_after < now,
        "san": ["%s:%s" % pair for pair in cert.get("subjectAltName", ())],
        "serial": cert.get("serialNumber"),
    }


def _tls_facts(ssock, verified, verify_error=None):
    cipher = ssock.cipher()
    facts = {"version": ssock.version(), "cipher": cipher[0] if cipher else None, "verified": verified,
             "verify_error": verify_error}
    facts.update(certificate_facts(ssock.getpeercert(binary_form=True)))
    return facts


# --- one request -------------------------------------------------------------------

class PhaseError(Exception):
    """A check stopped in ``phase``, for ``reason`` (a word of outcome.REASONS); ``record`` is the
    outcome when the caller built it (the connect's, with its ICMP evidence); ``tls`` keeps what
    was learnt of the certificate, if anything."""

    def __init__(self, phase, message, reason, tls=None, record=None, code=None):
        Exception.__init__(self, "%s: %s" % (phase, message))
        self.phase = phase
        self.message = message
        self.tls = tls
        self.record = record if record is not None else outcome(reason, phase, code)


# what a phase that ran out of time means
_TIMEOUT_REASONS = {"connect": "no_answer", "tls": "tls_handshake", "request": "http_timeout",
                    "processing": "http_timeout", "transfer": "http_timeout"}


def _remaining(deadline, phase, timeout):
    left = deadline - time.monotonic()
    if left <= 0:
        raise PhaseError(phase, "no answer within the %g s timeout" % timeout, _TIMEOUT_REASONS[phase])
    return left


def _local_address(sock):
    try:
        return sock.getsockname()[0]
    except OSError:
        return None


def _refused(address, family, code, icmp, local, timeout, timings, seen):
    """The PhaseError of a connect that got an answer other than SYN-ACK, in port_check's words."""
    state, reason = classify_connect(code, icmp, local)
    record = outcome(reason, "connect", code, icmp_facts(icmp))
    if reason in ("icmp_unreach", "icmp_error") and seen is not None:
        seen.saw(address, family, timings["connect_ms"] / 1000.0, sender=icmp["from"])
    if state is None:
        return PhaseError("connect", "connect failed: %s" % (exc_text(code)), reason, record=record)
    return PhaseError("connect", "%s: %s" % (state, describe(state, record, address, timeout)), reason, record=record)


def exc_text(code):
    return errno.errorcode.get(code, os.strerror(code) if code else "unknown error")


def _timed_out(address, family, timeout, neighbours=None):
    """A handshake timeout: ``unreachable`` when ARP/NDP for the address got no answer, else filtered."""
    table = (neighbours or (lambda: neighbour_table(default_run)))()
    state = table.get(normal_address(address))
    if state in ("INCOMPLETE", "FAILED"):
        record = outcome("no_neighbour", "connect")
        return PhaseError("connect", "unreachable: " + describe("unreachable", record, address, timeout),
                          "no_neighbour", record=record)
    record = outcome("no_answer", "connect")
    return PhaseError("connect", "filtered: no answer to the TCP handshake within %g s (SYN dropped on the way "
                                 "or by the target)" % timeout, "no_answer", record=record)


# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH: the certificate is
# valid but names another host
_NAME_MISMATCH_CODES = (62, 64)


def _unverified_facts(host, address, port, deadline, verify_error):
    """After a failed verification, look at the certificate anyway (to say e.g. how long ago it expired)."""
    context = tls_context(False, None)
    try:
        left = deadline - time.monotonic()
        if left <= 0:
            return {"verified": False, "verify_error": verify_error}
        with socket.create_connection((address, port), timeout=left) as raw:
            with context.wrap_socket(raw, server_hostname=host) as ssock:
                return _tls_facts(ssock, verified=False, verify_error=verify_error)
    except (OSError, ssl.SSLError):
        return {"verified": False, "verify_error": verify_error}


def request_once(url, target, deadline, timings, facts, headers, seen=None):
    """One HTTP exchange, blocking (public_ip's probe); fills ``timings`` and ``facts`` as it goes (so
    that a PhaseError leaves what was measured before it), and returns the body read. The same steps
    as the engine's (:func:`_request_steps`), each wait a select() on its one socket."""
    return _drive(_request_steps(url, target, deadline, timings, facts, headers, seen))


def _drive(steps):
    """Run one step generator to its end, blocking on each ``(event, sock, deadline)`` it yields."""
    try:
        event, sock, deadline = next(steps)
        while True:
            left = max(0.0, deadline - time.monotonic())
            if event == "r":
                ready = bool(select.select([sock], [], [], left)[0])
            else:
                ready = bool(select.select([], [sock], [], left)[1])
            event, sock, deadline = steps.send(ready)
    except StopIteration as done:
        return done.value


def _host_header(host, port, scheme):
    name = "[%s]" % host if ":" in host else host
    default = 443 if scheme == "https" else 80
    return name if port == default else "%s:%d" % (name, port)


def _lower_headers(pairs):
    headers = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = headers[key] + ", " + value if key in headers else value
    return headers


# --- checks -------------------------------------------------------------------

def evaluate(target, facts, body=b"", search=None):
    """The expectations the answer misses, as readable strings.

    ``search(regex, text)`` finds a user regex in what the server sent, bounded in time
    (raising RegexTimeout); by default an unbounded ``regex.search``.
    """
    search = search or (lambda regex, text: regex.search(text))
    failed = []
    if facts["status"] not in target.status_codes:
        failed.append("status %s not in %s" % (facts["status"], target.status_codes))
    for name, pattern in sorted(target.expect_headers.items()):
        value = facts["headers"].get(name)
        if pattern is None:
            if value is not None:
                failed.append("header %s present, expected absent" % name)
        elif value is None:
            failed.append("header %s missing" % name)
        else:
            try:
                if not search(pattern, value):
                    failed.append("header %s: %r does not match %r" % (name, value, pattern.pattern))
            except RegexTimeout as exc:
                failed.append("header %s: %s" % (name, exc))
    if target.body_regex is not None:
        text = body.decode("utf-8", "replace")
        try:
            if not search(target.body_regex, text):
                failed.append("body does not match %r" % target.body_regex.pattern)
        except RegexTimeout as exc:
            failed.append("body: %s" % exc)
    return failed


# --- the engine: every URL's check as a generator over one selector -----------------------------
#
# A check is written as the blocking one would read (connect, TLS, request, answer, redirects), but
# where it would wait for a socket it yields ``(event, sock, deadline)`` (event "r" or "w") and gets
# back True when the socket is ready, False when the deadline passed first. One loop (_Engine) runs
# every URL's generator over one selector, as tcp.py's engine does: no thread per URL.
# What still blocks the loop, briefly: name resolution (getaddrinfo; IP literals cost nothing), the
# kernel's neighbour table read after a connect timeout, a second look at a certificate that failed
# verification, and the regex searches (in their killable process, each bounded by the timeout).

_WOULD_BLOCK_READ = (BlockingIOError, InterruptedError)


def _connect_steps(host, port, timeout, deadline, timings, facts, seen):
    """Connect to the first address of host that accepts (as curl and create_connection do), as a generator;
    returns the socket. The outcome comes from port_check's classifier (errno and the ICMP error queue);
    an ICMP error is noted in ``seen`` (an IcmpSeen) for the confirmation of silent URLs."""
    start = time.monotonic()
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        record = outcome("dns", "resolve", probes=0)
        record["errno"] = exc.errno
        raise PhaseError("resolve", "name resolution failed: %s" % exc.strerror, "dns", record=record)
    timings["resolve_ms"] = ms_since(start)
    start = time.monotonic()
    error = None
    for family, socktype, proto, _, sockaddr in infos:
        facts["address"] = sockaddr[0]
        sock = socket.socket(family, socktype, proto)
        enable_recverr(sock, family)
        sock.setblocking(False)
        try:
            hop_deadline = time.monotonic() + _remaining(deadline, "connect", timeout)
        except PhaseError as exc:
            sock.close()
            error = exc
            break
        code = sock.connect_ex(sockaddr)
        if code in (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK):
            ready = yield ("w", sock, hop_deadline)
            if not ready:
                icmp = read_icmp_error(sock)  # an error that did not abort the handshake
                local = _local_address(sock)
                sock.close()
                timings["connect_ms"] = ms_since(start)
                if is_icmp(icmp):
                    error = _refused(sockaddr[0], family, icmp["errno"], icmp, local, timeout, timings, seen)
                else:
                    error = _timed_out(sockaddr[0], family, timeout)
                break  # the deadline is spent
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            local = _local_address(sock)
            icmp = read_icmp_error(sock)
            sock.close()
            timings["connect_ms"] = ms_since(start)
            error = _refused(sockaddr[0], family, code, icmp, local, timeout, timings, seen)
            continue
        timings["connect_ms"] = ms_since(start)
        return sock
    raise error


def _handshake_wants(ssock):
    """One step of a non-blocking TLS handshake: None when it is done, else what it waits for ("r", "w")."""
    try:
        ssock.do_handshake()
    except ssl.SSLWantReadError:
        return "r"
    except ssl.SSLWantWriteError:
        return "w"
    return None


def _handshake_steps(sock, target, host, port, deadline, timings, facts):
    """A non-blocking TLS handshake, as a generator; returns the TLS socket."""
    timeout = target.timeout
    try:
        _remaining(deadline, "tls", timeout)
    except PhaseError:
        sock.close()
        raise
    context = tls_context(target.validate_certs, target.ca_path)
    start = time.monotonic()
    ssock = None
    try:
        ssock = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
        event = _handshake_wants(ssock)
        while event:
            ready = yield (event, ssock, deadline)
            if not ready:
                ssock.close()
                raise PhaseError("tls", "no TLS handshake within %g s" % timeout, "tls_handshake")
            event = _handshake_wants(ssock)
    except ssl.SSLCertVerificationError as exc:
        (ssock or sock).close()
        tls = _unverified_facts(host, facts["address"], port, deadline, exc.verify_message)
        reason = "tls_name" if exc.verify_code in _NAME_MISMATCH_CODES else "tls_verify"
        raise PhaseError("tls", "certificate verification failed: %s" % (exc.verify_message or exc.reason), reason,
                         tls)
    except (ssl.SSLError, OSError) as exc:
        (ssock or sock).close()
        raise PhaseError("tls", "handshake failed: %s" % (getattr(exc, "reason", None) or exc), "tls_handshake",
                         code=getattr(exc, "errno", None) if not isinstance(exc, ssl.SSLError) else None)
    timings["tls_ms"] = ms_since(start)
    facts["tls_verified"] = context.verify_mode == ssl.CERT_REQUIRED  # the facts are read after the answer
    return ssock


class _RequestBytes(object):
    """What http.client's HTTPConnection writes the request to: the bytes, sent later without blocking."""

    def __init__(self):
        self.data = bytearray()

    def sendall(self, data):
        self.data += data


class _NeedMore(Exception):
    """The answer read so far ends before http.client is done with it: read more, then parse again."""


class _BufferedAnswer(io.RawIOBase):
    """The answer's bytes received so far, as http.client reads them: at their end, _NeedMore
    while the connection is open, the end of the stream once the server closed it."""

    def __init__(self, data, closed):
        io.RawIOBase.__init__(self)
        self._data = memoryview(bytes(data))
        self._closed = closed
        self._at = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        left = len(self._data) - self._at
        if not left:
            if self._closed:
                return 0
            raise _NeedMore()
        count = min(left, len(buffer))
        buffer[:count] = self._data[self._at:self._at + count]
        self._at += count
        return count


class _AnswerSocket(object):
    def __init__(self, data, closed):
        self._data, self._closed = data, closed

    def makefile(self, mode, *args, **kwargs):
        return io.BufferedReader(_BufferedAnswer(self._data, self._closed))


def _parse_answer(data, closed, method, state):
    """(response, body) of the answer in ``data``, read by http.client exactly as the blocking
    check read it; _NeedMore when more bytes are needed. ``state["part"]`` says which part of the
    answer was incomplete (headers or body)."""
    response = http_client.HTTPResponse(_AnswerSocket(data, closed), method=method)
    state["part"] = "headers"
    response.begin()
    state["part"] = "body"
    body = b""
    while method == "GET" and len(body) < MAX_BODY_BYTES:
        chunk = response.read(MAX_BODY_BYTES - len(body))
        if not chunk:
            break
        body += chunk
    if method == "GET" and len(body) < MAX_BODY_BYTES and response.length:
        # http.client's read(n) does not raise on a short body: the Content-Length says it
        raise http_client.IncompleteRead(body, response.length)
    return response, body


def _receive(sock):
    """Bytes the socket has now (b"" when the server closed), or None when it would block."""
    try:
        return sock.recv(65536)
    except ssl.SSLWantReadError:
        return None
    except ssl.SSLWantWriteError:
        return None
    except _WOULD_BLOCK_READ:
        return None


def _exchange_steps(sock, target, host, port, scheme, path, deadline, timings, headers, hop_start, facts):
    """Send the request and read the answer without blocking, as a generator; returns the body."""
    conn = http_client.HTTPConnection(host, port, timeout=target.timeout)
    conn.sock = _RequestBytes()
    start = time.monotonic()
    conn.putrequest(target.method, path, skip_host=True, skip_accept_encoding=True)
    defaults = {"Host": _host_header(host, port, scheme), "User-Agent": USER_AGENT, "Accept": "*/*"}
    for name, value in merge_headers(defaults, headers).items():
        conn.putheader(name, value)
    conn.endheaders()
    request = memoryview(bytes(conn.sock.data))
    conn.sock = None
    while request:
        try:
            sent = sock.send(request)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError, InterruptedError) as exc:
            event = "r" if isinstance(exc, ssl.SSLWantReadError) else "w"
        except OSError as exc:
            raise PhaseError("request", "sending the request failed: %s" % exc, "conversation_failed",
                             code=exc.errno)
        else:
            request = request[sent:]
            continue
        ready = yield (event, sock, deadline)
        if not ready:
            raise PhaseError("request", "no answer within the %g s timeout" % target.timeout, "http_timeout")
    # processing: until the first byte of the answer is read. Read, not polled: after a TLS 1.3
    # handshake the socket is readable at once with the server's session tickets, which are
    # not the answer (curl's time_starttransfer is the first byte of the answer too).
    while True:
        try:
            first = _receive(sock)
        except ssl.SSLError as exc:
            raise PhaseError("processing", "TLS error while waiting for the answer: %s"
                             % (getattr(exc, "reason", None) or exc), "conversation_failed")
        except OSError as exc:
            raise PhaseError("processing", "the connection failed while waiting for the answer: %s" % exc,
                             "conversation_failed", code=exc.errno)
        if first is not None:
            break
        ready = yield ("r", sock, deadline)
        if not ready:
            raise PhaseError("processing", "no response within %g s after the request was sent" % target.timeout,
                             "http_timeout")
    timings["processing_ms"] = ms_since(start)
    timings["ttfb_ms"] = ms_since(hop_start)
    first_byte = time.monotonic()
    data = bytearray(first)
    closed = not first
    state = {"part": "headers"}
    while True:
        try:
            response, body = _parse_answer(data, closed, target.method, state)
            break
        except _NeedMore:
            pass
        except http_client.HTTPException as exc:
            raise PhaseError("transfer", "bad HTTP answer: %s" % (exc.__class__.__name__ if not str(exc) else exc),
                             "not_http")
        chunk = None
        while chunk is None:
            ready = yield ("r", sock, deadline)
            if not ready:
                raise PhaseError("transfer", "the answer was still arriving when the %g s timeout passed (%s "
                                             "incomplete after %d bytes in %.1f s)"
                                 % (target.timeout, state["part"], len(data), time.monotonic() - first_byte),
                                 "http_timeout")
            try:
                chunk = _receive(sock)
            except OSError as exc:  # ssl.SSLError is an OSError
                raise PhaseError("transfer", "bad HTTP answer: %s" % (exc.__class__.__name__ if not str(exc) else exc),
                                 "conversation_failed", code=exc.errno)
        if chunk:
            data += chunk
        else:
            closed = True
    timings["transfer_ms"] = ms_since(first_byte)
    facts.update({
        "status": response.status,
        "reason": response.reason,
        "http_version": "HTTP/%s" % {9: "0.9", 10: "1.0", 11: "1.1"}.get(response.version, response.version),
        "headers": _lower_headers(response.getheaders()),
    })
    return body


def _request_steps(url, target, deadline, timings, facts, headers, seen):
    """request_once as a generator: one HTTP exchange; fills ``timings`` and ``facts`` as it goes."""
    scheme, host, port, path = parse_url(url, "url")
    hop_start = time.monotonic()
    sock = yield from _connect_steps(host, port, target.timeout, deadline, timings, facts, seen)
    try:
        if scheme == "https":
            sock = yield from _handshake_steps(sock, target, host, port, deadline, timings, facts)
        return (yield from _exchange_steps(sock, target, host, port, scheme, path, deadline, timings, headers,
                                           hop_start, facts))
    finally:
        if "tls_verified" in facts:
            # decoding the certificate costs about a millisecond: after the answer, not inside its timings
            verified = facts.pop("tls_verified")
            try:
                facts["tls"] = _tls_facts(sock, verified=verified)
            except (OSError, ValueError):
                facts["tls"] = {"verified": verified, "verify_error": None}
        sock.close()


def _check_steps(target, matchers, seen):
    """One HttpTarget's check, redirects followed as asked, as a generator; returns the result."""
    start = time.monotonic()
    url = target.url
    chain = []
    detail = {"url": target.url, "name": target.name, "method": target.method, "final_url": None,
              "address": None, "status": None, "reason": None, "http_version": None, "headers": {},
              "redirects": chain, "tls": None, "body_bytes": None, "failed_checks": [], "phase": None,
              "outcome": None}
    headers = dict(target.headers)
    try:
        while True:
            deadline = time.monotonic() + target.timeout
            timings, facts = {}, {"address": None, "tls": None}
            try:
                body = yield from _request_steps(url, target, deadline, timings, facts, headers, seen)
            except PhaseError as exc:
                detail.update(facts)
                detail["phase"] = exc.phase
                detail["outcome"] = exc.record
                detail["final_url"] = url
                detail["tls"] = exc.tls or facts["tls"]
                raise
            location = facts["headers"].get("location")
            if facts["status"] in REDIRECT_CODES and location:
                next_url = _ascii(urljoin(url, _utf8_header(location)))
                chain.append({"url": url, "status": facts["status"], "location": next_url})
                if target.follow_redirects == "none":
                    break
                # what a refused redirect still reports: the answer that asked for it
                detail.update(facts)
                detail["final_url"] = url
                try:
                    next_parts = parse_url(next_url, "location")
                except InputError as exc:
                    detail["phase"] = "redirect"
                    raise PhaseError("redirect", "cannot follow %s" % exc, "http_answer")
                current = parse_url(url, "url")
                if target.follow_redirects == "safe" and current[0] == "https" and next_parts[0] == "http":
                    detail["phase"] = "redirect"
                    raise PhaseError("redirect", "refused to follow %s from https to http "
                                                 "(follow_redirects=safe)" % next_url, "http_answer")
                if len(chain) > MAX_REDIRECTS:
                    detail["phase"] = "redirect"
                    raise PhaseError("redirect", "more than %d redirects" % MAX_REDIRECTS, "http_answer")
                if current[:3] != next_parts[:3]:
                    # Credentials stay with the origin they were given for. Any user header may be
                    # one (X-Api-Key, X-Auth-Token...): all of them stay unless the user opts in,
                    # and even then the well-known credential headers never travel.
                    if target.keep_headers_across_origins:
                        headers = {k: v for k, v in headers.items() if k.lower() not in SENSITIVE_HEADERS}
                    else:
                        headers = {}
                url = next_url
                continue
            break
    except PhaseError as exc:
        timings["total_ms"] = ms_since(start)
        detail["outcome"] = exc.record
        exc.record["verdict_ms"] = round(timings["total_ms"], 3)
        return probe_result(target.url, KIND, "failed", False, timings, str(exc), detail)
    detail.update(facts)
    detail["final_url"] = url
    detail["body_bytes"] = len(body) if target.method == "GET" else None
    regex_deadline = time.monotonic() + target.timeout
    detail["failed_checks"] = evaluate(target, facts, body,
                                       lambda regex, text: matchers.search(regex, text, regex_deadline))
    timings["total_ms"] = ms_since(start)
    detail["outcome"] = outcome("http_answer", None, verdict_ms=timings["total_ms"])
    ok = not detail["failed_checks"]
    return probe_result(target.url, KIND, "answered", ok, timings,
                        None if ok else "; ".join(detail["failed_checks"]), detail)


class _Engine(object):
    """Runs the checks' generators over one selector, at most ``max_open`` at a time."""

    def __init__(self, targets, max_open, matchers, seen, deadline_s):
        self.targets = targets
        self.max_open = max(1, max_open)
        self.matchers = matchers
        self.seen = seen
        self.deadline_s = deadline_s
        self.results = [None] * len(targets)
        self.selector = selectors.DefaultSelector()
        self.waits = []  # heap of (deadline, sequence, index)
        self.waiting = {}  # index -> (generator, sock, deadline)
        self.sequence = 0

    def run(self):
        pending = list(range(len(self.targets)))
        pending.reverse()
        generators = {}
        give_up = time.monotonic() + self.deadline_s
        try:
            while pending or generators:
                while pending and len(generators) < self.max_open:
                    index = pending.pop()
                    generators[index] = _check_steps(self.targets[index], self.matchers, self.seen)
                    self._step(index, generators, None)
                if not self.waiting:
                    continue
                now = time.monotonic()
                if now >= give_up:
                    break
                wake = min(self.waits[0][0], give_up) if self.waits else give_up
                for key, _ in self.selector.select(max(0.0, wake - now)):
                    self._resume(key.data, generators, True)
                now = time.monotonic()
                while self.waits and self.waits[0][0] <= now:
                    _, _, index = heapq.heappop(self.waits)
                    if index in self.waiting and self.waiting[index][2] <= now:
                        self._resume(index, generators, False)
        finally:
            for index, (generator, sock, _) in list(self.waiting.items()):
                self.selector.unregister(sock)
                generator.close()  # closes its socket (the finally of _request_steps)
            self.selector.close()
        reason = "no verdict within the global deadline of %g s" % self.deadline_s
        return [result if result is not None else _unfinished(self.targets[index], reason)
                for index, result in enumerate(self.results)]

    def _resume(self, index, generators, ready):
        entry = self.waiting.pop(index, None)
        if entry is None:
            return
        self.selector.unregister(entry[1])
        self._step(index, generators, ready)

    def _step(self, index, generators, value):
        generator = generators[index]
        try:
            event, sock, deadline = generator.send(value)
        except StopIteration as done:
            self.results[index] = done.value
            del generators[index]
            return
        except Exception as exc:  # a probe bug must not hide the other results
            self.results[index] = _unfinished(self.targets[index], "probe crashed: %s: %s" % (type(exc).__name__, exc))
            del generators[index]
            return
        self.selector.register(sock, selectors.EVENT_READ if event == "r" else selectors.EVENT_WRITE, index)
        self.waiting[index] = (generator, sock, deadline)
        self.sequence += 1
        heapq.heappush(self.waits, (deadline, self.sequence, index))


def check_url(target, matchers=None, seen=None):
    """Check one HttpTarget, following redirects as asked; the shared result shape.

    ``matchers`` (a MatcherPool) searches the user's regexes in a killable process; ``seen``
    (an IcmpSeen) collects the hosts that answered a connect with an ICMP error.
    """
    owned = matchers is None
    matchers = matchers or MatcherPool(1)
    try:
        return _Engine([target], 1, matchers, seen, _global_deadline([target])).run()[0]
    finally:
        if owned:
            matchers.close()


def _global_deadline(targets):
    # one bound per URL: every hop's request, then the regex searches (each at most a timeout)
    return max(t.timeout for t in targets) * (MAX_REDIRECTS + 3) + 5.0


def _unfinished(target, reason):
    return probe_result(target.url, KIND, "error", False, {}, reason,
                        {"url": target.url, "name": target.name, "phase": None, "failed_checks": [],
                         "outcome": outcome("probe_error")})


def check_urls(targets, max_workers=DEFAULT_MAX_WORKERS, confirm_budget=DEFAULT_CONFIRM_BUDGET, shared=None):
    """Check every HttpTarget at once in one non-blocking engine; results come back in the targets' order.

    At most ``max_workers`` URLs are in progress at the same moment (each holds one socket). A URL
    whose connect got no answer, on a host that answered another URL's connect with an ICMP error
    in this run, is re-probed as port_check does (tcp.Confirmer): its outcome says
    ``icmp_unreach`` only when an ICMP error for that address and port came back. ``shared``: a
    tcp.SharedConfirmation when TCP ports of the same run spend the same targets' ICMP rate limits.
    """
    targets = list(targets)
    if not targets:
        return []
    rounds = int(math.ceil(len(targets) / float(max(1, max_workers))))
    matchers = MatcherPool(4)
    seen = shared.seen if shared is not None else IcmpSeen()
    try:
        results = _Engine(targets, max_workers, matchers, seen, _global_deadline(targets) * rounds).run()
    finally:
        matchers.close()
    _confirm_silent(targets, results, seen, confirm_budget, shared.turn if shared is not None else None)
    return results


def _confirm_silent(targets, results, seen, budget, turn=None):
    silent = []
    for target, result in zip(targets, results):
        record = result["detail"].get("outcome") or {}
        if record.get("reason") == "no_answer" and record.get("phase") == "connect":
            address = result["detail"]["address"]
            port = parse_url(result["detail"]["final_url"] or target.url, "url")[2]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
            silent.append((result, Flow(address, family, sockaddr, target.timeout)))
    if not silent:
        return
    confirm_flows([flow for _, flow in silent], seen, budget, turn)
    for result, flow in silent:
        old = result["detail"]["outcome"]
        own_ms = old["verdict_ms"] + flow.spent * 1000.0
        if flow.state in ("rejected", "closed", "unreachable"):
            record = outcome(flow.reason, "connect", flow.errno, icmp_facts(flow.icmp), probes=flow.probes,
                             answers=flow.answers, verdict_ms=own_ms)
            result["error"] = "connect: %s: %s" % (flow.state, describe(flow.state, record, flow.address,
                                                                        flow.timeout))
        else:  # silence, or (rarely) a port that opened since: the URL still got no answer in time
            record = outcome("no_answer", "connect", probes=flow.probes, answers=flow.answers, verdict_ms=own_ms)
        result["detail"]["outcome"] = record
        result["timings"]["total_ms"] = round(own_ms, 3)


__all__ = ["DEFAULTS", "FOLLOW", "METHODS", "HttpTarget", "InputError", "certificate_facts", "check_url",
           "check_urls", "evaluate", "parse_targets", "parse_url", "validate_expect_headers", "validate_headers",
           "validate_status_codes", "tls_context"]

"""Misbehaving servers for the fault suite, run inside a lab host's namespace:

    ip netns exec <ns> python faultserver.py <bind address> <base port> <lifetime s>

Listens on base+0 .. base+6 of one address (never a name: nothing is resolved), serves each
connection by its port's behaviour, and exits by itself after <lifetime s> (a crashed test
cannot leave it running for ever). Prints "ready" once every port listens.
"""

from __future__ import annotations

import socket
import sys
import threading
import time

SILENT, TRICKLE_HEADERS, TRICKLE_BODY, CLOSE_MID, PLAIN_ON_TLS, REDIRECT_LOOP, REGEX_BOMB = range(7)
BEHAVIOURS = ("silent", "trickle_headers", "trickle_body", "close_mid_response", "plain_text_on_tls",
              "redirect_loop", "regex_bomb")
STEP_S = 0.25  # one trickled line or byte every 0.25 s: 4 per second, for up to 60 s


def _read_request(conn):
    conn.settimeout(5)
    try:
        return conn.recv(65536)
    except OSError:
        return b""


def serve(kind, conn, port):
    try:
        _serve(kind, conn)
    except OSError:
        pass  # the client gave up: that is the point of most of these servers


def _serve(kind, conn):
    with conn:
        if kind == SILENT:
            time.sleep(60)
        elif kind == REGEX_BOMB:
            conn.sendall(b"a" * 40 + b"!")
            time.sleep(60)
        elif kind == PLAIN_ON_TLS:
            _read_request(conn)  # the TLS ClientHello
            conn.sendall(b"220 plain text, not TLS\r\n")
            time.sleep(5)
        else:
            _read_request(conn)
            if kind == TRICKLE_HEADERS:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                for index in range(240):
                    conn.sendall(b"X-Trickle-%d: x\r\n" % index)
                    time.sleep(STEP_S)
            elif kind == TRICKLE_BODY:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 240\r\n\r\n")
                for _ in range(240):
                    conn.sendall(b"x")
                    time.sleep(STEP_S)
            elif kind == CLOSE_MID:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
            elif kind == REDIRECT_LOOP:
                conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")


def listen(address, port, kind):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(128)

    def accept():
        while True:
            conn, _ = server.accept()
            threading.Thread(target=serve, args=(kind, conn, port), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


def main():
    address, base, lifetime = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    for kind in range(len(BEHAVIOURS)):
        listen(address, base + kind, kind)
    print("ready", flush=True)
    time.sleep(lifetime)


if __name__ == "__main__":
    main()

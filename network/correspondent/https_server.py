"""The correspondent's HTTPS server (issue 13): the web root of its HTTP server, over TLS.

The standard library's threading HTTP server and file handler behind an `ssl` context (TLS
1.2+, the certificate for `cn.example` from the bed's test CA), on one or more ports of one
IPv6 address. `python -m network.correspondent.https_server --bind ADDR --ports 443,8443
--cert CN.pem --key CN.key --directory WEBROOT`.
"""

from __future__ import annotations

import argparse
import functools
import socket
import ssl
import sys
import threading
from collections.abc import Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class _Ipv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    context: ssl.SSLContext

    def get_request(self) -> tuple[socket.socket, object]:
        # The handshake runs in the request's thread (first read), never in the accept loop.
        sock, address = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), address


class _QuietHandler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, Content-Length from the file handler

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write(f"{self.client_address[0]} {format % args}\n")


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def serve(bind: str, ports: Sequence[int], cert: str, key: str, directory: str) -> None:
    context = tls_context(cert, key)
    handler = functools.partial(_QuietHandler, directory=directory)
    servers = []
    for port in ports:
        server = _Ipv6Server((bind, port), handler)
        server.context = context
        servers.append(server)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers[1:]]
    for thread in threads:
        thread.start()
    servers[0].serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="https_server", description=__doc__)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--ports", default="443")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--directory", required=True)
    args = parser.parse_args(argv)
    try:
        ports = [int(p) for p in args.ports.split(",") if p]
        serve(args.bind, ports, args.cert, args.key, args.directory)
    except (OSError, ValueError, ssl.SSLError) as exc:
        print(f"https_server: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

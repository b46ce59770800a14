"""SIP/SDP application-level gateway: the text half (pure, no packets, no table).

Inputs: one SIP message (the payload of one UDP datagram) and an address mapper (a callable
from an address literal to its translated literal, or None to leave it). Output: the
rewritten message, or :class:`SipParseError` when the message is not SIP we understand (the
caller then passes the datagram on untouched and counts it).

What is rewritten (RFC 3261 section 7 and 20, RFC 4566 for SDP, RFC 5118 for IPv6 literals):
- the request line's Request-URI;
- Via (sent-by host and the ``received``/``maddr`` parameters), Contact, Route,
  Record-Route, From, To: the address literals they carry (compact forms v, m, f, t too);
- the SDP body (Content-Type application/sdp): ``c=`` and ``o=`` (both, or the far end
  answers 488) and ``a=rtcp:`` with an address; ``m=`` ports stay as they are, because the
  translation maps the host's ports 1:1;
- Content-Length (or ``l``), recomputed for the new body.

Choices where the RFCs leave room: only the headers above are touched (Call-ID and other
headers may hold addresses too, but they are opaque tokens to both ends and rewriting them
one way only would break dialog matching); folded header lines are kept as they are; a
message whose Content-Length exceeds the datagram is malformed; multipart bodies are left.
Direction ``to_family=6`` replaces IPv4 literals (host -> IPv6 side), ``to_family=4``
replaces IPv6 literals (IPv6 side -> host).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

AddressMapper = Callable[[str], "str | None"]

_ADDRESS_HEADERS = frozenset({b"via", b"v", b"contact", b"m", b"route", b"record-route",
                              b"from", b"f", b"to", b"t"})
_LENGTH_HEADERS = frozenset({b"content-length", b"l"})
_TYPE_HEADERS = frozenset({b"content-type", b"c"})
_TOKEN = re.compile(rb"^[A-Za-z0-9.!%*_+`'~-]+$")
_STATUS_LINE = re.compile(rb"^SIP/2\.0 ([1-6][0-9][0-9]) [^\r\n]*$")
_REQUEST_LINE = re.compile(rb"^([A-Za-z0-9.!%*_+`'~-]+) (\S+) SIP/2\.0$")
_IPV4 = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
_IPV6 = rb"[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*"  # validated by the mapper (ipaddress)
# IPv4 literal not part of a longer token (host names such as 10.0.0.1.example are left)
_V4_IN_HEADER = re.compile(rb"(?<![\w.\-])(received=|maddr=)?(" + _IPV4 + rb")(?![\w.\-])")
# IPv6 literal: bracketed in URIs and sent-by, bare in received= (RFC 3261 via-received)
_V6_IN_HEADER = re.compile(rb"\[(" + _IPV6 + rb")\]|(received=)(" + _IPV6 + rb")(?=[;,>\s]|$)")
_SDP_ADDRESS = re.compile(rb"^(c=IN |o=\S+ \S+ \S+ IN |a=rtcp:\d+ IN )(IP4|IP6) (\S+)(.*)$")


class SipParseError(ValueError):
    """Not a SIP message this gateway can rewrite; `reason` names the counter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class RewriteResult:
    message: bytes
    replaced: int  # address literals changed
    is_request: bool
    method: str  # request method, or the CSeq method of a response
    status: int  # response code, 0 for a request
    has_sdp: bool
    consumed: int = 0  # octets of the input this message took (header + Content-Length body)


def _split(message: bytes) -> tuple[list[bytes], bytes]:
    head, sep, body = message.partition(b"\r\n\r\n")
    if not sep:
        raise SipParseError("no_header_end")
    lines = head.split(b"\r\n")
    if not lines or not lines[0]:
        raise SipParseError("empty_start_line")
    return lines, body


def _header_name(line: bytes) -> bytes:
    name, colon, _ = line.partition(b":")
    name = name.strip()
    if not colon or not _TOKEN.match(name):
        raise SipParseError("bad_header_line")
    return name.lower()


class _Rewriter:
    def __init__(self, mapper: AddressMapper, to_family: int) -> None:
        self.mapper = mapper
        self.to_family = to_family
        self.replaced = 0

    def _map(self, literal: bytes) -> bytes | None:
        try:
            text = literal.decode("ascii")
        except UnicodeDecodeError:
            return None
        mapped = self.mapper(text)
        if mapped is None or mapped == text:
            return None
        self.replaced += 1
        return mapped.encode("ascii")

    def header(self, value: bytes) -> bytes:
        if self.to_family == 6:
            return _V4_IN_HEADER.sub(self._v4_to_v6, value)
        return _V6_IN_HEADER.sub(self._v6_to_v4, value)

    def _v4_to_v6(self, match: re.Match[bytes]) -> bytes:
        param, literal = match.group(1) or b"", match.group(2)
        mapped = self._map(literal)
        if mapped is None:
            return match.group(0)
        if param == b"received=":  # via-received holds a bare IPv6address
            return param + mapped
        return param + b"[" + mapped + b"]"

    def _v6_to_v4(self, match: re.Match[bytes]) -> bytes:
        if match.group(1) is not None:
            mapped = self._map(match.group(1))
            return match.group(0) if mapped is None else mapped
        mapped = self._map(match.group(3))
        return match.group(0) if mapped is None else match.group(2) + mapped

    def sdp(self, body: bytes) -> bytes:
        newline = b"\r\n" if b"\r\n" in body else b"\n"
        lines = body.split(newline)
        want = b"IP4" if self.to_family == 6 else b"IP6"
        family = b"IP6" if self.to_family == 6 else b"IP4"
        for i, line in enumerate(lines):
            match = _SDP_ADDRESS.match(line)
            if match is None or match.group(2) != want:
                continue
            mapped = self._map(match.group(3))
            if mapped is not None:
                lines[i] = match.group(1) + family + b" " + mapped + match.group(4)
        return newline.join(lines)


def _start_line(line: bytes) -> tuple[bool, bytes, int]:
    """(is_request, method, status) of a start line; raises on anything else."""
    status = _STATUS_LINE.match(line)
    if status is not None:
        return False, b"", int(status.group(1))
    request = _REQUEST_LINE.match(line)
    if request is None:
        raise SipParseError("bad_start_line")
    return True, request.group(1), 0


def rewrite(message: bytes, mapper: AddressMapper, to_family: int) -> RewriteResult:
    """Rewrite the address literals of one SIP message (see the module docstring)."""
    if to_family not in (4, 6):
        raise ValueError("to_family must be 4 or 6")
    lines, body = _split(message)
    is_request, method, status = _start_line(lines[0])
    rewriter = _Rewriter(mapper, to_family)
    if is_request:
        verb, uri, version = lines[0].split(b" ")
        lines[0] = b" ".join((verb, rewriter.header(uri), version))
    length_at: int | None = None
    declared = None
    content_type = b""
    cseq_method = b""
    current = b""
    for i in range(1, len(lines)):
        line = lines[i]
        if line[:1] in (b" ", b"\t"):  # folded continuation of the previous header
            if not current:
                raise SipParseError("bad_header_line")
            if current in _ADDRESS_HEADERS:
                lines[i] = rewriter.header(line)
            continue
        current = _header_name(line)
        name, _, value = line.partition(b":")
        if current in _ADDRESS_HEADERS:
            lines[i] = name + b":" + rewriter.header(value)
        elif current in _LENGTH_HEADERS:
            try:
                declared = int(value.strip())
            except ValueError:
                raise SipParseError("bad_content_length") from None
            if declared < 0:
                raise SipParseError("bad_content_length")
            length_at = i
        elif current in _TYPE_HEADERS:
            content_type = value.strip().split(b";")[0].strip().lower()
        elif current == b"cseq":
            parts = value.split()
            if len(parts) != 2 or not parts[0].isdigit():
                raise SipParseError("bad_cseq")
            cseq_method = parts[1]
    if declared is not None:
        if declared > len(body):
            raise SipParseError("truncated_body")
        body = body[:declared]  # what follows Content-Length is not this message
    consumed = len(message) - len(_split_body(message)) + len(body)
    has_sdp = content_type == b"application/sdp" and bool(body)
    if has_sdp:
        body = rewriter.sdp(body)
    if length_at is not None:
        name = lines[length_at].partition(b":")[0]
        lines[length_at] = name + b": " + str(len(body)).encode()
    elif body:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    out = b"\r\n".join(lines) + b"\r\n\r\n" + body
    return RewriteResult(
        message=out,
        replaced=rewriter.replaced,
        is_request=is_request,
        method=(method if is_request else cseq_method).decode("ascii", "replace"),
        status=status,
        has_sdp=has_sdp,
        consumed=consumed,
    )


def _split_body(message: bytes) -> bytes:
    return message.partition(b"\r\n\r\n")[2]


def rewrite_stream(data: bytes, mapper: AddressMapper, to_family: int
                   ) -> tuple[bytes, list[RewriteResult]]:
    """Every SIP message in a stream chunk (SIP over TCP, RFC 3261 18.3: each message framed
    by its Content-Length, which a stream message must carry). CRLF keepalives (RFC 5626)
    between messages are kept. Raises SipParseError if any part is not a whole message."""
    out, results, rest = [], [], data
    while rest:
        stripped = rest.lstrip(b"\r\n")
        out.append(rest[: len(rest) - len(stripped)])
        rest = stripped
        if not rest:
            break
        head = rest.partition(b"\r\n\r\n")[0].lower()
        if b"\ncontent-length:" not in head and b"\nl:" not in head:
            raise SipParseError("stream_without_content_length")
        result = rewrite(rest, mapper, to_family)
        out.append(result.message)
        results.append(result)
        rest = rest[result.consumed:]
    return b"".join(out), results


_MEDIA_LINE = re.compile(rb"^m=[a-z]+ ([0-9]{1,5})(?:/[0-9]+)? ", re.M)


def sdp_media_ports(message: bytes) -> list[int]:
    """The media ports a SIP message's SDP announces (m= lines), with their RTCP ports
    (port + 1, RFC 3550); [] for anything else. No validation beyond that: a hint only."""
    _head, sep, body = message.partition(b"\r\n\r\n")
    if not sep or b"m=" not in body:
        return []
    ports = []
    for match in _MEDIA_LINE.finditer(body):
        port = int(match.group(1))
        if 0 < port < 65535:
            ports += [port, port + 1]
    return ports

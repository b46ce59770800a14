"""The DNS proxy for IPv4 applications (A synthesized from AAAA) and its UDP upstream client.

The proxy tests use a fake resolver (no sockets). The upstream client tests talk to a tiny
asyncio UDP server on [::1] only, each bounded by short timeouts.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Callable

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guest_agent.dns_proxy import DnsProxy
from guest_agent.dns_upstream import parse_server, upstream_udp

CN_V6 = ["2001:db8:cafe::10", "2001:db8:cafe::11", "2001:db8:cafe::12"]


# -- fakes ---------------------------------------------------------------------------------


class FakeResolver:
    """Answers from a small zone; records every query it was sent (wire bytes)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.records: list[tuple[str, int, str, list[str]]] = []  # name, ttl, type, rdata texts
        self.soa_ttl = 3600
        self.nxdomain: set[str] = set()
        self.fail_with: BaseException | None = None
        self.rcode: dns.rcode.Rcode | None = None
        self.mangle: Callable[[bytes], bytes] | None = None

    def add(self, name: str, rdtype: str, texts: list[str], ttl: int = 300) -> None:
        self.records.append((name, ttl, rdtype, texts))

    async def __call__(self, wire: bytes) -> bytes:
        self.sent.append(wire)
        if self.fail_with is not None:
            raise self.fail_with
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query, recursion_available=True)
        question = query.question[0]
        name = question.name
        if self.rcode is not None:
            response.set_rcode(self.rcode)
        elif name.to_text() in self.nxdomain:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self._soa())
        else:
            found = False
            for _ in range(10):  # follow CNAMEs like a recursive resolver does
                cname = self._lookup(name, "CNAME")
                if cname is None:
                    break
                response.answer.append(cname)
                name = cname[0].target
            rrset = self._lookup(name, dns.rdatatype.to_text(question.rdtype))
            if rrset is not None:
                response.answer.append(rrset)
                found = True
            if not found:
                response.authority.append(self._soa())
        limit = max(query.payload, 512) if query.edns >= 0 else 512
        out = response.to_wire(max_size=limit, prefer_truncation=True)
        return self.mangle(out) if self.mangle else out

    def _lookup(self, name: dns.name.Name, rdtype: str) -> dns.rrset.RRset | None:
        for owner, ttl, kind, texts in self.records:
            if kind == rdtype and dns.name.from_text(owner) == name:
                return dns.rrset.from_text_list(owner, ttl, "IN", kind, texts)
        return None

    def _soa(self) -> dns.rrset.RRset:
        return dns.rrset.from_text(
            "example.", self.soa_ttl, "IN", "SOA", "ns.example. admin.example. 1 3600 600 86400 300"
        )


class FakePool:
    """map_ipv6 like table 230: on-demand pool addresses 198.18.0.10 up, `size` of them."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.bindings: dict[bytes, bytes] = {}

    def __call__(self, ipv6: bytes) -> bytes | None:
        assert len(ipv6) == 16
        if ipv6 not in self.bindings:
            if len(self.bindings) >= self.size:
                return None
            self.bindings[ipv6] = bytes([198, 18, 0, 10 + len(self.bindings)])
        return self.bindings[ipv6]

    def v4_text(self, v6_text: str) -> str:
        return socket.inet_ntop(
            socket.AF_INET, self.bindings[socket.inet_pton(socket.AF_INET6, v6_text)]
        )


def make(resolver: FakeResolver | None = None, pool: FakePool | None = None, **kw: object):
    resolver = resolver or FakeResolver()
    pool = pool or FakePool()
    counters: Counter[str] = Counter()
    proxy = DnsProxy(resolver, pool, counters=counters, **kw)
    return proxy, resolver, pool, counters


def ask(proxy: DnsProxy, query: dns.message.Message | bytes) -> dns.message.Message | None:
    wire = query if isinstance(query, bytes) else query.to_wire()
    reply = asyncio.run(proxy.answer(wire))
    return None if reply is None else dns.message.from_wire(reply)


def a_query(name: str = "cn.example.", **kw: object) -> dns.message.Message:
    query = dns.message.make_query(name, "A", **kw)
    query.id = 0x1234
    return query


def a_texts(reply: dns.message.Message) -> list[str]:
    return [r.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for r in rrset]


# -- A via AAAA ----------------------------------------------------------------------------


def test_a_answered_from_aaaa_through_the_pool() -> None:
    proxy, resolver, pool, counters = make()
    resolver.add("cn.example.", "AAAA", CN_V6, ttl=300)
    query = a_query()
    reply = ask(proxy, query)
    assert reply is not None
    # the resolver was asked for AAAA with a different (random) id, RD set
    sent = dns.message.from_wire(resolver.sent[0])
    assert sent.question[0].rdtype == dns.rdatatype.AAAA
    assert sent.question[0].name == dns.name.from_text("cn.example.")
    assert sent.flags & dns.flags.RD
    # the host gets one A per AAAA, each bound in the table, in order
    # (DNS does not order records; dnspython shuffles them on the wire)
    assert sorted(a_texts(reply)) == sorted(pool.v4_text(v6) for v6 in CN_V6)
    assert sorted(a_texts(reply)) == ["198.18.0.10", "198.18.0.11", "198.18.0.12"]
    assert reply.answer[0].ttl == 60  # capped
    assert reply.answer[0].name == dns.name.from_text("cn.example.")
    assert query.is_response(reply)
    assert reply.id == 0x1234 and reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.RA and reply.flags & dns.flags.RD
    assert counters["dns_a_synthesized"] == 1


def test_same_name_twice_gets_same_addresses() -> None:
    proxy, resolver, _pool, _ = make()
    resolver.add("cn.example.", "AAAA", CN_V6[:1])
    first, second = ask(proxy, a_query()), ask(proxy, a_query())
    assert a_texts(first) == a_texts(second) == ["198.18.0.10"]


def test_ttl_is_the_lower_of_aaaa_and_cap() -> None:
    proxy, resolver, _, _ = make(ttl_cap=120)
    resolver.add("short.example.", "AAAA", CN_V6[:1], ttl=7)
    resolver.add("long.example.", "AAAA", CN_V6[1:2], ttl=86400)
    assert ask(proxy, a_query("short.example.")).answer[0].ttl == 7
    assert ask(proxy, a_query("long.example.")).answer[0].ttl == 120


def test_rd_clear_is_kept() -> None:
    proxy, resolver, _, _ = make()
    resolver.add("cn.example.", "AAAA", CN_V6[:1])
    query = a_query()
    query.flags &= ~dns.flags.RD
    reply = ask(proxy, query)
    assert not reply.flags & dns.flags.RD and reply.flags & dns.flags.RA


def test_cname_chain_copied() -> None:
    proxy, resolver, _, _ = make()
    resolver.add("www.example.", "CNAME", ["cdn.example."], ttl=30)
    resolver.add("cdn.example.", "CNAME", ["edge.example."], ttl=600)
    resolver.add("edge.example.", "AAAA", CN_V6[:2], ttl=20)
    reply = ask(proxy, a_query("www.example."))
    kinds = [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype), r.ttl) for r in reply.answer]
    assert kinds == [
        ("www.example.", "CNAME", 30),
        ("cdn.example.", "CNAME", 60),
        ("edge.example.", "A", 20),
    ]
    assert sorted(a_texts(reply)) == ["198.18.0.10", "198.18.0.11"]


def test_cname_loop_is_bounded() -> None:
    proxy, resolver, _, counters = make()
    resolver.add("a.example.", "CNAME", ["b.example."])
    resolver.add("b.example.", "CNAME", ["a.example."])
    reply = ask(proxy, a_query("a.example."))
    assert reply.rcode() == dns.rcode.NOERROR and a_texts(reply) == []
    assert counters["dns_nodata"] == 1


def test_nodata_when_name_has_no_aaaa() -> None:
    proxy, resolver, pool, counters = make()
    resolver.add("v4only.example.", "A", ["192.0.2.1"])
    reply = ask(proxy, a_query("v4only.example."))
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.answer == []
    assert [r.rdtype for r in reply.authority] == [dns.rdatatype.SOA]
    assert reply.authority[0].ttl == 60
    assert pool.bindings == {}
    assert counters["dns_nodata"] == 1


def test_nxdomain_copied() -> None:
    proxy, resolver, pool, counters = make()
    resolver.nxdomain.add("nope.example.")
    reply = ask(proxy, a_query("nope.example."))
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.id == 0x1234 and reply.answer == []
    assert reply.authority[0].rdtype == dns.rdatatype.SOA
    assert pool.bindings == {} and counters["dns_nxdomain"] == 1


def test_pool_exhausted_is_servfail() -> None:
    proxy, resolver, _, counters = make(pool=FakePool(size=0))
    resolver.add("cn.example.", "AAAA", CN_V6)
    reply = ask(proxy, a_query())
    assert reply.rcode() == dns.rcode.SERVFAIL and reply.answer == []
    assert counters["dns_pool_exhausted"] == 1


def test_pool_partially_exhausted_answers_what_fits() -> None:
    proxy, resolver, _, counters = make(pool=FakePool(size=2))
    resolver.add("cn.example.", "AAAA", CN_V6)
    reply = ask(proxy, a_query())
    assert reply.rcode() == dns.rcode.NOERROR
    assert sorted(a_texts(reply)) == ["198.18.0.10", "198.18.0.11"]
    assert counters["dns_pool_partial"] == 1


def test_map_failure_is_counted_not_raised() -> None:
    calls: list[bytes] = []

    def flaky(ipv6: bytes) -> bytes | None:
        calls.append(ipv6)
        if len(calls) == 1:
            raise RuntimeError("table bug")
        return bytes([198, 18, 0, 99])

    resolver = FakeResolver()
    resolver.add("cn.example.", "AAAA", CN_V6[:2])
    counters: Counter[str] = Counter()
    proxy = DnsProxy(resolver, flaky, counters=counters)
    assert a_texts(ask(proxy, a_query())) == ["198.18.0.99"]
    assert counters["dns_map_error"] == 1


def test_two_ipv6_on_one_pool_address_listed_once() -> None:
    resolver = FakeResolver()
    resolver.add("cn.example.", "AAAA", CN_V6)
    proxy = DnsProxy(resolver, lambda _v6: bytes([198, 18, 0, 7]))
    assert a_texts(ask(proxy, a_query())) == ["198.18.0.7"]


@pytest.mark.parametrize("error", [TimeoutError("no answer"), OSError(101, "unreachable")])
def test_upstream_failure_is_servfail(error: BaseException) -> None:
    proxy, resolver, _, counters = make()
    resolver.fail_with = error
    for query in (a_query(), dns.message.make_query("cn.example.", "AAAA")):
        reply = ask(proxy, query)
        assert reply.rcode() == dns.rcode.SERVFAIL and query.is_response(reply)
    assert counters["dns_upstream_failed"] == 2


@pytest.mark.parametrize("rcode", [dns.rcode.SERVFAIL, dns.rcode.REFUSED])
def test_upstream_error_rcode_copied(rcode: dns.rcode.Rcode) -> None:
    proxy, resolver, _, counters = make()
    resolver.rcode = rcode
    assert ask(proxy, a_query()).rcode() == rcode
    assert counters["dns_upstream_rcode"] == 1


@pytest.mark.parametrize(
    ("mangle", "counter"),
    [
        (lambda wire: wire[:5], "dns_upstream_malformed"),
        (lambda wire: bytes([wire[0] ^ 1]) + wire[1:], "dns_upstream_mismatch"),
    ],
)
def test_bad_upstream_reply_is_servfail(mangle: Callable[[bytes], bytes], counter: str) -> None:
    proxy, resolver, _, counters = make()
    resolver.add("cn.example.", "AAAA", CN_V6)
    resolver.mangle = mangle
    for query in (a_query(), dns.message.make_query("cn.example.", "MX")):
        assert ask(proxy, query).rcode() == dns.rcode.SERVFAIL
    assert counters[counter] == 2


def test_large_answer_truncated_for_plain_udp() -> None:
    many = [f"2001:db8:cafe::{i:x}" for i in range(1, 41)]
    proxy, resolver, _, _ = make(pool=FakePool(size=100))
    resolver.add("big.example.", "AAAA", many)
    plain = asyncio.run(proxy.answer(a_query("big.example.").to_wire()))
    assert len(plain) <= 512 and dns.message.from_wire(plain).flags & dns.flags.TC
    edns = asyncio.run(proxy.answer(a_query("big.example.", use_edns=0, payload=4096).to_wire()))
    reply = dns.message.from_wire(edns)
    assert not reply.flags & dns.flags.TC and len(a_texts(reply)) == 40
    assert reply.edns == 0


def test_truncated_upstream_without_aaaa_is_servfail() -> None:
    too_many = [f"2001:db8:cafe::{i:x}" for i in range(1, 61)]  # 60 x 28 octets > 1232
    proxy, resolver, pool, counters = make(pool=FakePool(size=100))
    resolver.add("huge.example.", "AAAA", too_many)
    reply = ask(proxy, a_query("huge.example."))
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert counters["dns_upstream_truncated"] == 1 and pool.bindings == {}


# -- pass-through --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rdtype", "texts"),
    [("AAAA", CN_V6), ("MX", ["10 mail.example."]), ("TXT", ['"hello"'])],
)
def test_other_types_pass_through(rdtype: str, texts: list[str]) -> None:
    proxy, resolver, pool, counters = make()
    resolver.add("cn.example.", rdtype, texts)
    query = dns.message.make_query("cn.example.", rdtype, use_edns=0)
    query.id = 0xBEEF
    wire = query.to_wire()
    reply_wire = asyncio.run(proxy.answer(wire))
    sent = resolver.sent[0]
    assert sent[2:] == wire[2:]  # unchanged apart from the id
    reply = dns.message.from_wire(reply_wire)
    assert reply.id == 0xBEEF and query.is_response(reply)
    assert sorted(r.to_text() for r in reply.answer[0]) == sorted(
        r.to_text() for r in dns.rrset.from_text_list("x.", 1, "IN", rdtype, texts)
    )
    assert pool.bindings == {}  # nothing allocated for IPv6 applications
    assert counters["dns_passthrough"] == 1


def test_a_in_another_class_passes_through() -> None:
    proxy, resolver, _, counters = make()
    query = dns.message.make_query("version.bind.", "A", rdclass="CH")
    ask(proxy, query)
    assert dns.message.from_wire(resolver.sent[0]).question[0].rdclass == dns.rdataclass.CH
    assert counters["dns_passthrough"] == 1


# -- bad or odd queries --------------------------------------------------------------------


@pytest.mark.parametrize("garbage", [b"", b"\x12", bytes(11), b"\x12\x34" + b"\xff" * 30])
def test_malformed_query_dropped(garbage: bytes) -> None:
    proxy, resolver, _, counters = make()
    assert asyncio.run(proxy.answer(garbage)) is None
    assert counters["dns_malformed"] == 1 and resolver.sent == []


def test_response_sent_to_us_is_dropped() -> None:
    proxy, resolver, _, counters = make()
    response = dns.message.make_response(a_query())
    assert asyncio.run(proxy.answer(response.to_wire())) is None
    assert counters["dns_not_query"] == 1 and resolver.sent == []


def test_non_query_opcode_is_notimp() -> None:
    proxy, resolver, _, counters = make()
    query = a_query()
    query.set_opcode(dns.opcode.NOTIFY)
    reply = ask(proxy, query)
    assert reply.rcode() == dns.rcode.NOTIMP and reply.id == 0x1234
    assert counters["dns_notimp"] == 1 and resolver.sent == []


def test_no_question_is_formerr() -> None:
    proxy, _, _, counters = make()
    query = dns.message.Message(id=7)
    reply = ask(proxy, query)
    assert reply.rcode() == dns.rcode.FORMERR and reply.id == 7
    assert counters["dns_formerr"] == 1


def test_overload_drops_new_queries() -> None:
    release = asyncio.Event()

    async def slow(wire: bytes) -> bytes:
        await release.wait()
        return dns.message.make_response(dns.message.from_wire(wire)).to_wire()

    counters: Counter[str] = Counter()
    proxy = DnsProxy(slow, FakePool(), counters=counters, max_in_flight=1)

    async def scenario() -> tuple[bytes | None, bytes | None]:
        first = asyncio.create_task(proxy.answer(a_query().to_wire()))
        await asyncio.sleep(0)  # let the first query reach the resolver
        second = await proxy.answer(a_query().to_wire())
        release.set()
        return await first, second

    first, second = asyncio.run(scenario())
    assert second is None and counters["dns_overload"] == 1
    assert dns.message.from_wire(first).rcode() == dns.rcode.NOERROR


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_never_raises(data: bytes) -> None:
    proxy, _, _, _ = make()
    asyncio.run(proxy.answer(data))


# -- the UDP upstream client on loopback ---------------------------------------------------


class LoopbackResolver(asyncio.DatagramProtocol):
    """Answers on [::1]; optionally first sends a reply with a wrong id, or stays silent."""

    def __init__(self, *, wrong_id_first: bool = False, silent: bool = False) -> None:
        self.wrong_id_first = wrong_id_first
        self.silent = silent
        self.sources: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.sources.append(addr[0])
        if self.silent:
            return
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.answer.append(dns.rrset.from_text("cn.example.", 60, "IN", "AAAA", CN_V6[0]))
        wire = response.to_wire()
        if self.wrong_id_first:
            self.transport.sendto(bytes([wire[0] ^ 0xFF]) + wire[1:], addr)
        self.transport.sendto(wire, addr)


async def serve(protocol: LoopbackResolver) -> tuple[asyncio.DatagramTransport, str]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: protocol, local_addr=("::1", 0), family=socket.AF_INET6
    )
    port = transport.get_extra_info("sockname")[1]
    return transport, f"[::1]:{port}"


def closed_port() -> str:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.bind(("::1", 0))
        return f"[::1]:{sock.getsockname()[1]}"


def aaaa_wire(query_id: int = 0x4242) -> bytes:
    query = dns.message.make_query("cn.example.", "AAAA")
    query.id = query_id
    return query.to_wire()


def test_upstream_udp_loopback_ignores_wrong_id_and_binds_source() -> None:
    async def scenario() -> tuple[bytes, list[str]]:
        resolver = LoopbackResolver(wrong_id_first=True)
        transport, server = await serve(resolver)
        try:
            reply = await asyncio.wait_for(
                upstream_udp(server, aaaa_wire(), source="::1", timeout=1.0), 5
            )
        finally:
            transport.close()
        return reply, resolver.sources

    reply, sources = asyncio.run(scenario())
    message = dns.message.from_wire(reply)
    assert message.id == 0x4242 and message.answer[0][0].address == CN_V6[0]
    assert sources == ["::1"]


def test_upstream_udp_falls_back_to_next_server() -> None:
    async def scenario() -> bytes:
        transport, server = await serve(LoopbackResolver())
        try:
            # the first server's port is closed: ICMP unreachable moves on without waiting
            return await asyncio.wait_for(
                upstream_udp([closed_port(), server], aaaa_wire(), timeout=1.0), 5
            )
        finally:
            transport.close()

    assert dns.message.from_wire(asyncio.run(scenario())).id == 0x4242


def test_upstream_udp_times_out_after_retries() -> None:
    async def scenario() -> LoopbackResolver:
        resolver = LoopbackResolver(silent=True)
        transport, server = await serve(resolver)
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(
                    upstream_udp(server, aaaa_wire(), timeout=0.05, retries=2), 5
                )
        finally:
            transport.close()
        return resolver

    assert len(asyncio.run(scenario()).sources) == 3  # one try plus two retries


def test_proxy_over_loopback_upstream() -> None:
    async def scenario() -> bytes | None:
        transport, server = await serve(LoopbackResolver())
        try:
            proxy = DnsProxy(lambda wire: upstream_udp(server, wire, timeout=1.0), FakePool())
            return await asyncio.wait_for(proxy.answer(a_query().to_wire()), 5)
        finally:
            transport.close()

    reply = dns.message.from_wire(asyncio.run(scenario()))
    assert a_texts(reply) == ["198.18.0.10"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2001:db8::53", ("2001:db8::53", 53)),
        ("[2001:db8::53]:5353", ("2001:db8::53", 5353)),
        ("192.0.2.53", ("192.0.2.53", 53)),
        ("192.0.2.53:5300", ("192.0.2.53", 5300)),
    ],
)
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["resolver.example", "[2001:db8::53", "192.0.2.1:0", "[::1]x"])
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_server(text)


def test_upstream_udp_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        asyncio.run(upstream_udp([], aaaa_wire()))
    with pytest.raises(ValueError):
        asyncio.run(upstream_udp("::1", b"short"))

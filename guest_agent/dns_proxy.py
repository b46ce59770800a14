"""DNS for unmodified IPv4 applications on the host (issue 3, "DNS for IPv4 apps").

The host's resolver points at the agent on the host link. An IPv4 application asks for an A
record; the correspondent may be IPv6-only, so the proxy asks the resolver at home for the
name's AAAA records instead and answers with one pool address per IPv6 address, bound in the
translation table (table 230) on demand by `map_ipv6`. Traffic the application then sends to
that pool address is translated to the IPv6 address and tunnelled home.

Everything else (AAAA for IPv6 applications, MX, TXT, PTR, ...) is passed to the resolver
unchanged apart from the message id. The proxy is I/O free: `upstream` sends a DNS message
and returns the reply (see `guest_agent.dns_upstream.upstream_udp`), so tests use a fake.

Every outcome is counted in `counters` under a `dns_` key, shown by `status`; bad input
returns None (nothing is sent) and never raises.
"""

from __future__ import annotations

import secrets
import socket
from collections import Counter
from collections.abc import Awaitable, Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

UpstreamQuery = Callable[[bytes], Awaitable[bytes]]
MapIPv6 = Callable[[bytes], bytes | None]

# Plain DNS over UDP without EDNS is limited to 512 octets (RFC 1035 4.2.1).
CLASSIC_UDP_LIMIT = 512
# EDNS buffer size we advertise, the DNS flag day 2020 value that avoids IP fragmentation.
EDNS_PAYLOAD = 1232
# Longest CNAME chain followed in an upstream answer; resolvers give up earlier (about 8-16).
MAX_CNAME_CHAIN = 16
# Queries waiting on the resolver at once; beyond it new queries are dropped (the host's
# resolver retries), so a flood cannot grow the agent's memory without bound.
DEFAULT_MAX_IN_FLIGHT = 256

_UPSTREAM_ERRORS = (TimeoutError, OSError)


class DnsProxy:
    """Answers host DNS queries: A synthesized from AAAA through the pool, the rest passed on."""

    def __init__(
        self,
        upstream: UpstreamQuery,
        map_ipv6: MapIPv6,
        *,
        ttl_cap: int = 60,
        counters: Counter[str] | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        # ttl_cap keeps hosts from caching a pool address longer than the table keeps the
        # binding alive; it should not exceed the table-230 entry lifetime.
        self._upstream = upstream
        self._map_ipv6 = map_ipv6
        self.ttl_cap = ttl_cap
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self._max_in_flight = max_in_flight
        self._in_flight = 0

    async def answer(self, query: bytes) -> bytes | None:
        """The reply to send back to the host for `query`, or None to drop it silently."""
        self.counters["dns_queries"] += 1
        try:
            message = dns.message.from_wire(query)
        except Exception:  # dnspython raises many types on garbage; none may stop the agent
            self.counters["dns_malformed"] += 1
            return None
        if message.flags & dns.flags.QR:
            self.counters["dns_not_query"] += 1  # a response sent to us: never answer it
            return None
        if message.opcode() != dns.opcode.QUERY:
            self.counters["dns_notimp"] += 1
            return self._error(message, dns.rcode.NOTIMP)
        if len(message.question) != 1:
            self.counters["dns_formerr"] += 1
            return self._error(message, dns.rcode.FORMERR)
        if self._in_flight >= self._max_in_flight:
            self.counters["dns_overload"] += 1
            return None
        self._in_flight += 1
        try:
            question = message.question[0]
            if question.rdtype == dns.rdatatype.A and question.rdclass == dns.rdataclass.IN:
                return await self._synthesize_a(message)
            return await self._pass_through(query, message)
        finally:
            self._in_flight -= 1

    # -- A via AAAA ---------------------------------------------------------------------

    async def _synthesize_a(self, message: dns.message.Message) -> bytes:
        qname = message.question[0].name
        upstream_query = dns.message.make_query(
            qname, dns.rdatatype.AAAA, use_edns=0, payload=EDNS_PAYLOAD
        )  # make_query picks a fresh random id and sets RD
        reply = await self._ask(upstream_query)
        if reply is None:
            return self._error(message, dns.rcode.SERVFAIL)
        rcode = reply.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            self.counters["dns_upstream_rcode"] += 1
            return self._error(message, rcode)

        response = self._response(message)
        name = qname
        for _ in range(MAX_CNAME_CHAIN):
            cname = _find(reply, name, dns.rdatatype.CNAME)
            if cname is None:
                break
            response.answer.append(self._capped_copy(cname))
            name = cname[0].target
        aaaa = _find(reply, name, dns.rdatatype.AAAA)
        if aaaa is None and reply.flags & dns.flags.TC:
            # The AAAA set did not fit the resolver's UDP reply; without it this is not
            # NODATA. No TCP fallback upstream, so tell the host we could not resolve.
            self.counters["dns_upstream_truncated"] += 1
            return self._error(message, dns.rcode.SERVFAIL)

        if aaaa is None or rcode == dns.rcode.NXDOMAIN:
            # NXDOMAIN or NODATA: the SOA lets the host cache the negative answer.
            response.set_rcode(rcode)
            for rrset in reply.authority:
                if rrset.rdtype == dns.rdatatype.SOA:
                    response.authority.append(self._capped_copy(rrset))
            key = "dns_nxdomain" if rcode == dns.rcode.NXDOMAIN else "dns_nodata"
            self.counters[key] += 1
            return self._wire(message, response)

        pool_addresses = self._map_all(aaaa)
        if not pool_addresses:
            self.counters["dns_pool_exhausted"] += 1
            return self._error(message, dns.rcode.SERVFAIL)
        if len(pool_addresses) < len(aaaa):
            self.counters["dns_pool_partial"] += 1
        response.answer.append(
            dns.rrset.from_text_list(
                name,
                min(aaaa.ttl, self.ttl_cap),
                dns.rdataclass.IN,
                dns.rdatatype.A,
                pool_addresses,
            )
        )
        self.counters["dns_a_synthesized"] += 1
        return self._wire(message, response)

    def _map_all(self, aaaa: dns.rrset.RRset) -> list[str]:
        """Pool addresses (dotted text) for the AAAA records, in upstream order, no repeats."""
        mapped: list[str] = []
        for rdata in aaaa:
            ipv6 = socket.inet_pton(socket.AF_INET6, rdata.address)
            try:
                ipv4 = self._map_ipv6(ipv6)
            except Exception:  # a table bug must cost one answer, not the agent
                self.counters["dns_map_error"] += 1
                ipv4 = None
            if ipv4 is None or len(ipv4) != 4:
                continue
            text = socket.inet_ntop(socket.AF_INET, ipv4)
            if text not in mapped:
                mapped.append(text)
        return mapped

    # -- everything else ----------------------------------------------------------------

    async def _pass_through(self, query: bytes, message: dns.message.Message) -> bytes:
        upstream_id = secrets.randbits(16)
        forwarded_wire = upstream_id.to_bytes(2, "big") + query[2:]
        forwarded = dns.message.from_wire(forwarded_wire)  # parsed above, cannot fail now
        try:
            reply_wire = await self._upstream(forwarded_wire)
        except _UPSTREAM_ERRORS:
            self.counters["dns_upstream_failed"] += 1
            return self._error(message, dns.rcode.SERVFAIL)
        if self._parse_reply(forwarded, reply_wire) is None:
            return self._error(message, dns.rcode.SERVFAIL)
        self.counters["dns_passthrough"] += 1
        return message.id.to_bytes(2, "big") + reply_wire[2:]

    # -- helpers ------------------------------------------------------------------------

    async def _ask(self, upstream_query: dns.message.Message) -> dns.message.Message | None:
        try:
            reply_wire = await self._upstream(upstream_query.to_wire())
        except _UPSTREAM_ERRORS:
            self.counters["dns_upstream_failed"] += 1
            return None
        return self._parse_reply(upstream_query, reply_wire)

    def _parse_reply(
        self, sent: dns.message.Message, reply_wire: bytes
    ) -> dns.message.Message | None:
        try:
            reply = dns.message.from_wire(reply_wire)
        except Exception:  # see answer(): any decoding failure is just a bad reply
            self.counters["dns_upstream_malformed"] += 1
            return None
        if not sent.is_response(reply):
            self.counters["dns_upstream_mismatch"] += 1
            return None
        return reply

    def _capped_copy(self, rrset: dns.rrset.RRset) -> dns.rrset.RRset:
        return dns.rrset.from_rdata_list(rrset.name, min(rrset.ttl, self.ttl_cap), list(rrset))

    def _response(self, message: dns.message.Message) -> dns.message.Message:
        # Keeps id, question and RD; sets QR and RA; EDNS if the query had it.
        return dns.message.make_response(
            message, recursion_available=True, our_payload=EDNS_PAYLOAD
        )

    def _error(self, message: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
        response = self._response(message)
        response.set_rcode(rcode)
        return self._wire(message, response)

    def _wire(self, message: dns.message.Message, response: dns.message.Message) -> bytes:
        """Encode for UDP to the host: within its buffer size, TC set when cut short."""
        limit = max(message.payload, CLASSIC_UDP_LIMIT) if message.edns >= 0 else 512
        return response.to_wire(max_size=limit, prefer_truncation=True)


def _find(
    reply: dns.message.Message, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    """The IN-class RRset of `rdtype` owned by `name` in the answer section, if any."""
    for rrset in reply.answer:
        if rrset.rdtype == rdtype and rrset.rdclass == dns.rdataclass.IN and rrset.name == name:
            return rrset if len(rrset) else None
    return None

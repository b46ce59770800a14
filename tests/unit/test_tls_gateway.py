"""Issue 13 (patent E8), unit tier: the test CA, Squid's configuration, the guest's policy
match and diversion rules, the CONNECT exchange (h11), config, CLI and status rendering."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import stat
import struct
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import h11
import pytest
from cryptography import x509
from rich.console import Console

from guest_agent.config import TlsGatewaySection, load_agent_config
from guest_agent.tls_divert import LOCAL_TABLE, PolicyMatcher, policy_routing
from guest_agent.tls_gateway import validate
from guest_agent.tls_relay import (
    GatewayError,
    TlsRelay,
    authority,
    connect_request,
    connect_target,
    read_connect_response,
)
from netstack.runtime.configfile import ConfigError
from provisioning import cli
from provisioning.nodes import agents, gateway, tls_ca
from provisioning.status_tls import render_tls_gateway

HOA = IPv6Address("2001:db8:6::1000")
CN = IPv6Address("2001:db8:8::1001")


# ---------------------------------------------------------------- test CA

@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    sdir = str(tmp_path_factory.mktemp("bed"))
    tls_ca.create(sdir, {"gw.example": gateway.GW_ADDRESS, "cn.example": CN},
                  clients={"mn.example": HOA})
    return sdir


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, name: str) -> ssl.SSLObject:
    """A whole TLS handshake in memory; returns the client's end."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for end in (c, s):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    c.do_handshake()
    return c


@pytest.mark.parametrize("name", ["gw.example", "cn.example"])
def test_ca_issues_certificates_clients_verify(ca_dir: str, name: str) -> None:
    files = tls_ca.server_files(ca_dir, name)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(files.certificate, files.key)
    client = ssl.create_default_context(cafile=tls_ca.ca_certificate_path(ca_dir))
    end = _handshake(server, client, name)
    assert end.version() in ("TLSv1.3", "TLSv1.2")
    with pytest.raises(ssl.SSLCertVerificationError):  # the other name does not match
        other = "cn.example" if name == "gw.example" else "gw.example"
        _handshake(server, client, other)


def test_relay_verifies_the_gateway_against_its_ca_and_name(
        ca_dir: str, tmp_path: Path) -> None:
    """The relay's client context: the configured CA and the gateway's name, nothing else."""
    files = tls_ca.server_files(ca_dir, "gw.example")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(files.certificate, files.key)
    good = TlsRelay._tls_context(TlsGatewaySection(
        ca_file=Path(tls_ca.ca_certificate_path(ca_dir)), keylog_file=tmp_path / "keys"))
    _handshake(server, good, "gw.example")
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in (tmp_path / "keys").read_text()
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, good, "evil.example")
    other = str(tmp_path / "other")
    tls_ca.create(other, {"gw.example": gateway.GW_ADDRESS})  # same name, another CA
    stranger = TlsRelay._tls_context(TlsGatewaySection(
        ca_file=Path(tls_ca.ca_certificate_path(other))))
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, stranger, "gw.example")


def test_the_relay_presents_the_terminal_certificate_when_asked(ca_dir: str) -> None:
    files = tls_ca.server_files(ca_dir, "gw.example")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(files.certificate, files.key)
    server.load_verify_locations(tls_ca.ca_certificate_path(ca_dir))
    server.verify_mode = ssl.CERT_REQUIRED  # as Squid's clientca=
    terminal = tls_ca.server_files(ca_dir, "mn.example")
    ca = Path(tls_ca.ca_certificate_path(ca_dir))
    with_cert = TlsRelay._tls_context(TlsGatewaySection(
        ca_file=ca, client_cert=Path(terminal.certificate), client_key=Path(terminal.key)))
    _handshake(server, with_cert, "gw.example")
    without = TlsRelay._tls_context(TlsGatewaySection(ca_file=ca))
    with pytest.raises(ssl.SSLError, match="CERTIFICATE"):  # the server side refuses
        _handshake(server, without, "gw.example")


def test_terminal_certificate_is_for_client_auth(ca_dir: str) -> None:
    files = tls_ca.server_files(ca_dir, "mn.example")
    cert = x509.load_pem_x509_certificate(Path(files.certificate).read_bytes())
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert stat.S_IMODE(os.stat(files.key).st_mode) == 0o600


def test_ca_files_and_extensions(ca_dir: str) -> None:
    ca = x509.load_pem_x509_certificate(Path(tls_ca.ca_certificate_path(ca_dir)).read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    files = tls_ca.server_files(ca_dir, "gw.example")
    cert = x509.load_pem_x509_certificate(Path(files.certificate).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gw.example"]
    assert san.get_values_for_type(x509.IPAddress) == [gateway.GW_ADDRESS]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert stat.S_IMODE(os.stat(files.key).st_mode) == 0o640


# ---------------------------------------------------------------- Squid

def test_squid_config_is_a_connect_only_tls_forward_proxy() -> None:
    conf = gateway.render_squid_config("/run/mip6term/t").splitlines()
    assert conf[1].startswith("https_port [2001:db8:8::3128]:3128 "
                              "tls-cert=/run/mip6term/t/tls/gw.example.pem "
                              "tls-key=/run/mip6term/t/tls/gw.example.key "
                              "clientca=/run/mip6term/t/tls/ca.pem")
    for line in ("acl tunnel_ports port 443 8443", "http_access deny !CONNECT",
                 "http_access deny !tunnel_ports", "acl home src 2001:db8:6::/64",
                 "http_access allow home", "http_access deny all", "cache deny all",
                 "pinger_enable off", "pid_filename /run/mip6term/t/gw/squid.pid",
                 "cache_log /run/mip6term/t/gw/cache.log", "cache_effective_user proxy"):
        assert line in conf, line
    assert conf.index("http_access deny !CONNECT") < conf.index("http_access allow home")
    hosts = gateway.render_hosts()
    assert "2001:db8:8::1001 cn.example\n" in hosts and "2001:db8:8::3128 gw.example\n" in hosts


def test_squid_service_name_is_per_bed() -> None:
    assert gateway.service_name("t1") != gateway.service_name("t2")
    assert gateway.service_name("m6").isalnum()


# ---------------------------------------------------------------- guest policy

def _tcp6(dst: IPv6Address, dport: int, proto: int = 6) -> bytes:
    header = struct.pack("!IHBB16s16s", 6 << 28, 20, proto, 64, HOA.packed, dst.packed)
    return header + struct.pack("!HHIIHHHH", 40000, dport, 1, 0, 0x5002, 65535, 0, 0)


def test_policy_matches_tcp_to_the_ports_only() -> None:
    policy = PolicyMatcher(TlsGatewaySection(ports=[443, 8443]))
    assert policy.matches(_tcp6(CN, 443)) and policy.matches(_tcp6(CN, 8443))
    assert not policy.matches(_tcp6(CN, 80))
    assert not policy.matches(_tcp6(CN, 443, proto=17))  # UDP 443 (QUIC) is not diverted
    assert not policy.matches(_tcp6(gateway.GW_ADDRESS, 443))  # never the gateway itself
    assert not policy.matches(_tcp6(CN, 443)[:43])  # truncated
    assert not policy.matches(b"\x45" + _tcp6(CN, 443)[1:])  # not IPv6


def test_policy_destinations_restrict_the_match() -> None:
    policy = PolicyMatcher(TlsGatewaySection(
        ports=[443], destinations=[IPv6Network("2001:db8:8::/64")]))
    assert policy.matches(_tcp6(CN, 443))
    assert not policy.matches(_tcp6(IPv6Address("2001:db8:9::1"), 443))


def test_policy_routing_diverts_the_device_and_returns_marked_replies() -> None:
    config = TlsGatewaySection(device="tls0", reply_mark=0x1301, divert_mark=0x1302)
    routes, rules = policy_routing(config, device_index=7, lo_index=1)
    assert {"dst": "::/0", "oif": 7, "table": 0x1301} in routes  # replies leave by tls0
    assert {"dst": "::/0", "oif": 1, "table": 0x1302, "type": "local"} in routes  # AnyIP
    prefs = {r["table"]: r["priority"] for r in rules}
    assert prefs[0x1301] < prefs[LOCAL_TABLE] and prefs[0x1302] < prefs[LOCAL_TABLE]
    assert {"priority": prefs[0x1301], "fwmark": 0x1301, "table": 0x1301} in rules
    assert {"priority": prefs[0x1302], "iifname": "tls0", "table": 0x1302} in rules


# ---------------------------------------------------------------- CONNECT (h11)

def test_connect_request_names_the_original_destination() -> None:
    conn = h11.Connection(h11.CLIENT)
    data = connect_request(conn, authority(str(CN), 443))
    assert data.startswith(b"CONNECT [2001:db8:8::1001]:443 HTTP/1.1\r\n")
    assert b"Host: [2001:db8:8::1001]:443\r\n" in data
    assert authority("198.51.100.1", 8443) == "198.51.100.1:8443"


def test_connect_target_asks_for_ipv4_literals_as_ipv4() -> None:
    nat64 = IPv6Network("64:ff9b::/96")
    assert connect_target("2001:db8:8::1001", 443, nat64) == "[2001:db8:8::1001]:443"
    assert connect_target("64:ff9b::c000:201", 443, nat64) == "192.0.2.1:443"
    assert connect_target("64:ff9b::c000:201", 443, None) == "[64:ff9b::c000:201]:443"


def _answer(raw: bytes) -> bytes:
    async def run() -> bytes:
        conn = h11.Connection(h11.CLIENT)
        connect_request(conn, "[2001:db8:8::1001]:443")
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await read_connect_response(conn, reader)

    return asyncio.run(run())


def test_connect_established_returns_the_bytes_behind_the_answer() -> None:
    assert _answer(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03") == b"\x16\x03\x03"
    assert _answer(b"HTTP/1.1 200 Connection established\r\n\r\n") == b""


@pytest.mark.parametrize("raw, reason", [
    (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "refused"),
    (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", "refused"),
    (b"", "closed"),
])
def test_connect_refusals_are_gateway_errors(raw: bytes, reason: str) -> None:
    with pytest.raises(GatewayError) as caught:
        _answer(raw)
    assert caught.value.reason == reason


def test_garbage_answer_is_a_protocol_error() -> None:
    with pytest.raises(h11.RemoteProtocolError):
        _answer(b"SSH-2.0-OpenSSH\r\n\r\n")


# ---------------------------------------------------------------- config, CLI, status

def test_bed_writes_the_guest_policy_and_the_agent_reads_it(tmp_path: Path) -> None:
    sdir = str(tmp_path)
    agents.write_configs(sdir, guest_extra=gateway.guest_tables(sdir))
    config = load_agent_config(agents.config_path(sdir, agents.GUEST))
    tls = config.tls_gateway
    assert tls.enabled and tls.name == "gw.example" and tls.address == gateway.GW_ADDRESS
    assert tls.port == 3128 and tls.ports == [443, 8443]
    assert tls.ca_file == Path(tls_ca.ca_certificate_path(sdir))
    assert tls.keylog_file == Path(gateway.keylog_path(sdir))
    assert tls.client_cert == Path(sdir, "tls", "mn.example.pem")
    assert tls.client_key == Path(sdir, "tls", "mn.example.key")
    plain = tmp_path / "plain"
    plain.mkdir()
    agents.write_configs(str(plain))
    assert not load_agent_config(agents.config_path(str(plain), agents.GUEST)).tls_gateway.enabled


@pytest.mark.parametrize("changes, message", [
    ({"ports": []}, "ports"), ({"ports": [443, 70000]}, "ports"), ({"port": 0}, "port"),
    ({"connect_timeout": 0}, "connect_timeout"), ({"reply_mark": 0x1302}, "mark"),
    ({"ca_file": Path("/nonexistent/ca.pem")}, "ca_file"),
    ({"client_cert": Path("/nonexistent/mn.pem")}, "client_cert"),
])
def test_bad_policy_is_one_clear_config_error(changes: dict[str, object], message: str) -> None:
    section = TlsGatewaySection(enabled=True, **changes)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        validate(section)


def test_cli_tls_gateway_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = cli.build_parser().parse_args(["testbed", "up", "--tls-gateway", "--prefix", "x"])
    assert args.tls_gateway
    assert cli.build_parser().parse_args(["testbed", "keys", "--tls-keylog"]).tls_keylog
    assert cli.main(["testbed", "ca", "--prefix", "nosuchb"]) == 1
    assert "--tls-gateway" in capsys.readouterr().err


def test_status_renders_the_outer_sessions() -> None:
    console = Console(width=200, record=True)
    render_tls_gateway({
        "gateway": {"name": "gw.example", "address": "2001:db8:8::3128", "port": 3128},
        "policy": {"ports": [443], "destinations": ["any"]},
        "outer_sessions": [{"id": 7, "client": "[2001:db8:6::1000]:5000",
                            "destination": "[2001:db8:8::1001]:443", "state": "relaying",
                            "outer_local": "[2001:db8:6::1000]:41000", "tls_version": "TLSv1.3",
                            "cipher": "TLS_AES_256_GCM_SHA384", "outer_uptime": 3.5,
                            "bytes_up": 1, "bytes_down": 2, "outer_session": "ab" * 32}],
        "last_error": "refused: connection refused",
    }, console)
    text = console.export_text()
    assert "gw.example" in text and "TLSv1.3" in text and "[2001:db8:6::1000]:41000" in text
    assert "refused" in text

"""`testbed up --sip` (issue 12, patent E5 Fig. 23): Kamailio in a `sip` node, baresip phones.

- `sip`: a namespace behind `core` (its own veth, core routes 2001:db8:8::5060/128 to it), so
  the proxy sits in the CN's prefix without sharing the CN's point-to-point link. Kamailio
  (network/sip/kamailio.cfg) runs in the foreground (-DD -E); the bed waits for it to answer
  OPTIONS. `sip.example` is its AAAA in the home resolver's zone (provisioning/nodes/dns.py).
- phones (baresip, one config dir each under <state dir>/phones/<name>): `cn` (IPv6 only, the
  CN address), `host6` (the host's IPv6 phone on the home address, E2 style) and `host4` (the
  host's IPv4-only phone on the home IPv4, which reaches sip.example through the guest's DNS
  and translation, with the guest's SIP ALG). ausine at 48 kHz stereo, answermode auto,
  ctrl_tcp on loopback for `testbed call`, rtcpsummary for the RTP statistics.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path

from provisioning import netns, processes
from provisioning.errors import ProvisioningError
from provisioning.nodes import stub_node
from provisioning.topology import CN_ADDRESS, DNS_ADDRESS, HOME_ADDRESS, namespace

SIP_NODE = "sip"
SIP_ADDRESS = IPv6Address("2001:db8:8::5060")
SIP_DOMAIN = "sip.example"
SIP_PORT = 5060
CORE_LINK_LOCAL = "fe80::5060:1"  # core's end of the sip link, the sip node's default router
KAMAILIO = "/usr/sbin/kamailio"
BARESIP = "/usr/bin/baresip"
CONFIG_TEMPLATE = Path(__file__).resolve().parents[2] / "network" / "sip" / "kamailio.cfg"
READY_TIMEOUT = 20.0
_REGISTERED = re.compile(r"\{0/(UDP|TCP)/v[46]\} 200 OK")


@dataclass(frozen=True)
class Phone:
    name: str  # host4, host6, cn: the AOR user part too
    node: str
    family: int  # 4 or 6: baresip -4 / -6
    sip_listen: str
    rtp_ports: tuple[int, int]
    ctrl_port: int
    dns_server: str | None  # None: the node's resolv.conf (host4: the guest's DNS)
    transport: str = "udp"


def phones(home_ipv4: str) -> dict[str, Phone]:
    dns6 = f"[{DNS_ADDRESS}]:53"
    return {
        "host4": Phone("host4", "host", 4, f"{home_ipv4}:5062", (30000, 30999), 4444, None),
        # the same IPv4 softphone speaking SIP over TCP (the ALG shifts TCP sequence numbers)
        "host4tcp": Phone("host4tcp", "host", 4, f"{home_ipv4}:5066", (32000, 32999), 4446,
                          None, "tcp"),
        "host6": Phone("host6", "host", 6, f"[{HOME_ADDRESS}]:5064", (31000, 31999), 4445, dns6),
        "cn": Phone("cn", "cn", 6, f"[{CN_ADDRESS}]:5060", (40000, 40999), 4444, dns6),
    }


def phone_dir(state_dir: str, name: str) -> str:
    return os.path.join(state_dir, "phones", name)


def phone_log(state_dir: str, name: str) -> str:
    return os.path.join(state_dir, f"baresip-{name}.log")


def kamailio_config(listen: IPv6Address = SIP_ADDRESS, alias: str = SIP_DOMAIN) -> str:
    return CONFIG_TEMPLATE.read_text().replace("{LISTEN}", str(listen)).replace("{ALIAS}", alias)


def baresip_config(phone: Phone) -> str:
    low, high = phone.rtp_ports
    lines = [
        "poll_method epoll",
        f"sip_listen {phone.sip_listen}",
        f"sip_trans_def {phone.transport}",
        "audio_source ausine,440",
        "audio_player aubridge,sink",
        "ausrc_srate 48000",
        "ausrc_channels 2",
        "auplay_srate 48000",
        "auplay_channels 2",
        f"rtp_ports {low}-{high}",
        "rtp_stats yes",
        "call_max_calls 64",  # concurrent calls (benchmarks: many calls through the ALG)
        "module_path /usr/lib/baresip/modules",
        "module g711.so",
        "module ausine.so",
        "module aubridge.so",
        "module account.so",
        "module menu.so",
        "module_app ctrl_tcp.so",
        f"ctrl_tcp_listen 127.0.0.1:{phone.ctrl_port}",
        "module_app rtcpsummary.so",
    ]
    if phone.dns_server:
        lines.append(f"dns_server {phone.dns_server}")
    return "\n".join(lines) + "\n"


def baresip_account(phone: Phone) -> str:
    # An explicit port skips NAPTR/SRV: sip.example resolves with A (host4) or AAAA.
    transport = "" if phone.transport == "udp" else f";transport={phone.transport}"
    return (f"<sip:{phone.name}@{SIP_DOMAIN}{transport}>;"
            f"outbound=\"sip:{SIP_DOMAIN}:{SIP_PORT}{transport}\";"
            "regint=600;answermode=auto;audio_codecs=PCMU\n")


# ---------------------------------------------------------------------- the sip node


def build_node(prefix: str) -> None:
    """The `sip` namespace, its link to core and the routes that reach it."""
    stub_node.build(prefix, SIP_NODE, SIP_ADDRESS, "eth-sip", CORE_LINK_LOCAL)


def options_probe(timeout: float = 1.0) -> bytes:
    """One OPTIONS to the proxy from the calling namespace; returns the answer's first line."""
    branch = f"z9hG4bK{os.getpid()}{int(time.monotonic() * 1000)}"
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.bind(("::", 0))
        port = s.getsockname()[1]
        message = (
            f"OPTIONS sip:{SIP_DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP [{SIP_ADDRESS}]:{port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{SIP_DOMAIN}>;tag={branch[-8:]}\r\n"
            f"To: <sip:{SIP_DOMAIN}>\r\n"
            f"Call-ID: {branch}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        s.sendto(message, (str(SIP_ADDRESS), SIP_PORT))
        data = s.recv(4096)
    return data.split(b"\r\n", 1)[0]


def start_proxy(state_dir: str, prefix: str) -> None:
    path = os.path.join(state_dir, "kamailio.cfg")
    with open(path, "w") as f:
        f.write(kamailio_config())
    ns = namespace(prefix, SIP_NODE)
    processes.start(state_dir, processes.ProcessSpec(
        name="kamailio", namespace=ns,
        argv=[KAMAILIO, "-DD", "-E", "-f", path, "-P", os.path.join(state_dir, "kamailio.pid"),
              "-Y", os.path.join(state_dir, "kamailio-run")],
        log=os.path.join(state_dir, "kamailio.log"),
    ))
    os.makedirs(os.path.join(state_dir, "kamailio-run"), exist_ok=True)
    processes.ensure_running(state_dir, "kamailio")
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with netns.inside(ns):
                first = options_probe()
            if first.startswith(b"SIP/2.0 200"):
                return
            last = first.decode(errors="replace")
        except OSError as exc:
            last = str(exc)
        if not processes.is_running(state_dir, "kamailio"):
            break
        time.sleep(0.2)
    raise ProvisioningError(f"kamailio does not answer OPTIONS ({last}); log "
                            f"{os.path.join(state_dir, 'kamailio.log')}: "
                            f"{processes.log_tail(os.path.join(state_dir, 'kamailio.log'))}")


# ---------------------------------------------------------------------- phones


def start_phones(state_dir: str, prefix: str, home_ipv4: str) -> dict[str, Phone]:
    all_phones = phones(home_ipv4)
    for phone in all_phones.values():
        directory = phone_dir(state_dir, phone.name)
        os.makedirs(directory, exist_ok=True)
        for name, text in (("config", baresip_config(phone)),
                           ("accounts", baresip_account(phone)), ("contacts", "")):
            with open(os.path.join(directory, name), "w") as f:
                f.write(text)
        processes.start(state_dir, processes.ProcessSpec(
            name=f"baresip-{phone.name}", namespace=namespace(prefix, phone.node),
            # line-buffered: the RTP summary printed at call end must reach the log at once
            argv=["stdbuf", "-oL", "-eL", BARESIP, f"-{phone.family}", "-f", directory],
            log=phone_log(state_dir, phone.name), cwd=directory,
        ))
    for phone in all_phones.values():
        wait_registered(state_dir, phone.name)
    return all_phones


def wait_registered(state_dir: str, name: str, timeout: float = READY_TIMEOUT) -> None:
    log = phone_log(state_dir, name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(log, errors="replace") as f:
                if _REGISTERED.search(f.read()):
                    return
        except OSError:
            pass
        if not processes.is_running(state_dir, f"baresip-{name}"):
            break
        time.sleep(0.2)
    raise ProvisioningError(f"phone {name} did not register with {SIP_DOMAIN}; log {log}: "
                            f"{processes.log_tail(log, 5)}")


def is_up(state_dir: str) -> bool:
    return os.path.isdir(os.path.join(state_dir, "phones"))


def write_alg_config(state_dir: str, *, enabled: bool) -> None:
    """The guest agent's [sip_alg] section (appended to guest.toml before the agent starts)."""
    from provisioning.nodes.agents import GUEST, config_path

    with open(config_path(state_dir, GUEST), "a") as f:
        f.write(f"[sip_alg]\nenabled = {'true' if enabled else 'false'}\nports = [{SIP_PORT}]\n")


def start(state_dir: str, prefix: str, *, home_ipv4: str, with_phones: bool = True) -> None:
    """The sip node, Kamailio (answering OPTIONS), then the three phones (registered)."""
    build_node(prefix)
    start_proxy(state_dir, prefix)
    if with_phones:
        start_phones(state_dir, prefix, home_ipv4)

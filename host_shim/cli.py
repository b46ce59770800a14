"""`host-shim up|down|status` (also `python -m host_shim`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, ip_address
from typing import Any

from host_shim import config as cfg
from host_shim import shim
from host_shim.agentlink import fetch_host_config
from host_shim.errors import AgentUnsupported, ShimError
from host_shim.state import default_state_file

PROG = "host-shim"
EXIT_AGENT_UNSUPPORTED = 3  # the caller may fall back to explicit flags


def _arg(conv: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type that turns ValueError into a clean usage error."""
    def parse(text: str) -> Any:
        try:
            return conv(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = conv.__name__
    return parse


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interface", help=f"host interface (default {cfg.DEFAULT_INTERFACE}, or the "
                   "agent's interface_hint)")
    p.add_argument("--netns-name", help="lite mode: the host's network namespace name; the "
                   "resolver goes to /etc/netns/NAME/resolv.conf")
    p.add_argument("--state-file", help="where up records what it changed (default "
                   "/run/host-shim/<netns-name|default>-<interface>.json)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="configure the host end of the mip6term guest link "
        "(virtual IPv4 address of the home address, routes, MTU, resolver)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="configure the interface")
    _common(up)
    up.add_argument("--agent-socket", help="ask the guest agent (host_config) instead of flags")
    up.add_argument("--wait", type=float, default=5.0,
                    help="seconds to wait for the agent to answer (default 5)")
    up.add_argument("--ipv4", type=_arg(IPv4Interface), default=cfg.DEFAULT_IPV4,
                    help=f"virtual IPv4 address of the home address (default {cfg.DEFAULT_IPV4})")
    up.add_argument("--gateway", type=_arg(IPv4Address), default=cfg.DEFAULT_GATEWAY,
                    help=f"IPv4 default gateway: the agent (default {cfg.DEFAULT_GATEWAY})")
    up.add_argument("--pool", type=_arg(IPv4Network), default=None,
                    help="virtual IPv4 pool (default: the subnet of --ipv4)")
    up.add_argument("--mtu", type=int, default=cfg.DEFAULT_MTU,
                    help=f"interface MTU (default {cfg.DEFAULT_MTU})")
    up.add_argument("--dns", type=_arg(ip_address), action="append",
                    help=f"nameserver (repeatable; default {cfg.DEFAULT_DNS[0]})")
    up.add_argument("--home-address", type=_arg(IPv6Address), default=cfg.DEFAULT_HOME_ADDRESS,
                    help=f"E2: home address for IPv6 apps (default {cfg.DEFAULT_HOME_ADDRESS})")
    up.add_argument("--ipv6-gateway", type=_arg(IPv6Address), default=cfg.DEFAULT_IPV6_GATEWAY,
                    help=f"E2: IPv6 default gateway (default {cfg.DEFAULT_IPV6_GATEWAY})")
    up.add_argument("--no-ipv4", action="store_true", help="no IPv4 translation side")
    up.add_argument("--no-ipv6", action="store_true", help="no home address (E2) side")
    up.add_argument("--no-default-route", action="store_true",
                    help="do not add the IPv4 default route (only the pool is routed)")
    up.add_argument("--write-resolv-conf", action="store_true",
                    help="replace /etc/resolv.conf (restored by down); without it and without "
                    "--netns-name the resolver is only printed")
    up.add_argument("--resolv-conf", default="/etc/resolv.conf", help=argparse.SUPPRESS)
    down = sub.add_parser("down", help="remove exactly what up added")
    _common(down)
    status = sub.add_parser("status", help="show what up configured")
    _common(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _config_from_flags(args: argparse.Namespace) -> cfg.ShimConfig:
    ipv4 = None if args.no_ipv4 else args.ipv4
    return cfg.ShimConfig(
        interface=args.interface or cfg.DEFAULT_INTERFACE,
        ipv4=ipv4,
        ipv4_gateway=None if ipv4 is None or args.no_default_route else args.gateway,
        pool=None if ipv4 is None else (args.pool or ipv4.network),
        mtu=args.mtu,
        dns=tuple(args.dns) if args.dns else cfg.DEFAULT_DNS,
        home_address=None if args.no_ipv6 else args.home_address,
        ipv6_gateway=None if args.no_ipv6 else args.ipv6_gateway,
    ).validate()


def _state_path(args: argparse.Namespace, interface: str | None) -> str:
    return args.state_file or default_state_file(interface or cfg.DEFAULT_INTERFACE,
                                                 args.netns_name)


def _cmd_up(args: argparse.Namespace) -> int:
    if args.agent_socket:
        config = cfg.config_from_agent(fetch_host_config(args.agent_socket, wait=args.wait),
                                       args.interface)
        if args.no_default_route:
            config = replace(config, ipv4_gateway=None)
    else:
        config = _config_from_flags(args)
    options = shim.ResolverOptions(netns_name=args.netns_name,
                                   write_resolv_conf=args.write_resolv_conf,
                                   resolv_conf=args.resolv_conf)
    path = _state_path(args, config.interface)
    result = shim.up(config, path, options)
    for item in result.added:
        print(f"added {item.describe()} on {config.interface}")
    if config.mtu is not None:
        print(f"MTU {config.mtu} on {config.interface}")
    for line in result.messages:
        print(line)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    for line in shim.down(_state_path(args, args.interface)):
        print(line)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    info = shim.status(_state_path(args, args.interface))
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    if not info["configured"]:
        print(f"not configured (no state file {info['state_file']})")
        return 0
    where = f" (netns {info['netns_name']})" if info["netns_name"] else ""
    print(f"{info['interface']}{where}: "
          f"{'present' if info['interface_present'] else 'MISSING'}, MTU {info['mtu']}"
          + (f" (was {info['mtu_before']})" if info["mtu_before"] else ""))
    for item in info["items"]:
        mark = "ok" if item["present"] else "missing"
        owner = "" if item["owned"] else " (not ours)"
        print(f"  {item['item']:<40} {mark}{owner}")
    res = info["resolver"]
    print(f"  nameservers: {', '.join(res['nameservers']) or '-'}")
    for path in res["files"]:
        print(f"  resolver file: {path}")
    for line in res["plan"]:
        print(f"  to configure: {line}")
    return 0


_COMMANDS = {"up": _cmd_up, "down": _cmd_down, "status": _cmd_status}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `host-shim` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except AgentUnsupported as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_AGENT_UNSUPPORTED
    except ShimError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1

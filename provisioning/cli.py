"""The `mip6term` command line: test bed, handover, status, agent control."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence

from provisioning.errors import ProvisioningError
from provisioning.topology import (
    BRIDGES,
    DEFAULT_PREFIX,
    HMIP_BRIDGE_PREFIXES,
    NODES,
    STATE_ROOT,
    SWITCH,
    state_dir,
)
from provisioning.vm import cli as vm_cli

PROG = "mip6term"


def _add_prefix(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", default=DEFAULT_PREFIX,
                        help=f"namespace prefix of the test bed (default {DEFAULT_PREFIX})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Mobile IPv6 terminal appliance")
    sub = parser.add_subparsers(dest="command", required=True)

    testbed = sub.add_parser("testbed", help="network-namespace test bed (patent Fig. 1)")
    tb_sub = testbed.add_subparsers(dest="testbed_command", required=True)
    tb_up = tb_sub.add_parser("up", help="build the test bed and start its daemons")
    _add_prefix(tb_up)
    tb_up.add_argument("--no-agents", action="store_true", help="do not start the HA and guest agents")
    tb_up.add_argument("--ha-refuse", action="store_true",
                       help="configure the HA to refuse the guest's home address")
    tb_up.add_argument("--pool", default="198.18.0.0/24",
                       help="the guest's virtual IPv4 pool (default 198.18.0.0/24; .1 gateway, "
                       ".2 home address)")
    tb_up.add_argument("--idle-timeout", type=int, default=300,
                       help="lifetime in seconds of an idle translation entry (default 300)")
    tb_up.add_argument("--ipsec", default="", metavar="SWITCHES",
                       help="IPsec: any of signalling,tunnel,tunnel-only,e2e (comma-separated; "
                       "tunnel = ESP around the IPv6-in-IPv6 tunnel, tunnel-only = ESP tunnel "
                       "without the mobile tunnel header)")
    tb_up.add_argument("--no-fastpath", action="store_true",
                       help="agents without the eBPF fast path: the pure Python data path")
    tb_up.add_argument("--hmip", action="store_true",
                       help="HMIPv6 MAP domain: map node, MAP option in ar-a/ar-b RAs, network c")
    tb_up.add_argument("--hmip-type", type=int, choices=(1, 2, 3), default=1,
                       help="MAP registration type of the guest (scenario 10100/10200/10300)")
    tb_up.add_argument("--nemo", action="store_true",
                       help="the guest is a mobile router for 2001:db8:6:100::/64 on its host "
                            "link; vmn = a mobile node behind it (RFC 3963, patent Fig. 34)")
    tb_up.add_argument("--guest", choices=("lite", "vm"), default="lite",
                       help="lite: the guest agent in a namespace; vm: the QEMU guest (issue 5)")
    tb_up.add_argument("--tls-gateway", action="store_true",
                       help="Squid TLS gateway gw.example, HTTPS on the CN, a test CA; the "
                       "guest carries host TCP 443/8443 inside TLS to the gateway (issue 13)")
    tb_up.add_argument("--ro", action="store_true",
                       help="route optimisation at the terminal and at the CN (its userspace "
                       "daemon), and cn2 (2001:db8:8::2001), a correspondent without Mobile IPv6")
    tb_up.add_argument("--sip", action="store_true",
                       help="SIP (issue 12): Kamailio at sip.example, baresip phones host4, "
                       "host6, cn")
    tb_up.add_argument("--no-sip-alg", action="store_true",
                       help="with --sip: the guest's SIP ALG off (the 488 control case)")
    tb_call = tb_sub.add_parser("call", help="place a SIP call between the bed's phones (--sip)")
    _add_prefix(tb_call)
    phones = ("host4", "host6", "cn", "host4tcp")
    tb_call.add_argument("caller", choices=phones, metavar="FROM",
                         help="host4, host6, cn or host4tcp (the IPv4 phone over TCP)")
    tb_call.add_argument("callee", choices=phones, metavar="TO", help="as FROM")
    tb_call.add_argument("--seconds", type=float, default=5.0,
                         help="how long the call stays up (default 5)")
    tb_keys = tb_sub.add_parser("keys", help="the running bed's IPsec key files")
    _add_prefix(tb_keys)
    tb_keys.add_argument("--tshark", action="store_true",
                         help="print the tshark -o arguments that decrypt every SA of the bed")
    tb_keys.add_argument("--tls-keylog", action="store_true",
                         help="print the path of the guest's outer TLS sessions' key log "
                         "(SSLKEYLOGFILE format, for tshark -o tls.keylog_file:PATH)")
    tb_ca = tb_sub.add_parser("ca", help="print the path of the bed's test CA certificate (PEM)")
    _add_prefix(tb_ca)
    tb_down = tb_sub.add_parser("down", help="stop everything and delete the namespaces")
    _add_prefix(tb_down)
    tb_exec = tb_sub.add_parser("exec", help="run a command in a node's namespace")
    _add_prefix(tb_exec)
    tb_exec.add_argument("node", help=f"node name ({', '.join((*NODES, SWITCH))}, or a probe)")
    tb_exec.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")

    keys = sub.add_parser("keys", help="IPsec key files of a deployment (manual keying)")
    keys.add_argument("--key-file", action="append", required=True, metavar="FILE",
                      help="a key file (netstack.ipsec.keys TOML format); repeatable")
    keys.add_argument("--tshark", action="store_true",
                      help="print the tshark -o arguments that decrypt these SAs")

    move = sub.add_parser("move", help="hand the guest over to another network")
    move.add_argument("target", choices=(*BRIDGES, *HMIP_BRIDGE_PREFIXES),
                      help="visited network a, b, home (c with --hmip)")
    _add_prefix(move)
    move.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (default 10)")

    status = sub.add_parser("status", help="binding update list, binding cache, counters")
    _add_prefix(status)
    status.add_argument("--json", action="store_true", help="print JSON instead of tables")
    status.add_argument("--vm", metavar="NAME", help="ask an installed VM over SSH instead")

    agent = sub.add_parser("agent", help="guest agent control")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    restart = agent_sub.add_parser("restart", help="restart the guest agent")
    _add_prefix(restart)
    restart.add_argument("--vm", metavar="NAME", help="restart it in an installed VM (SSH)")
    restart.add_argument("--node", choices=("guest", "ha", "map"), default="guest",
                         help="which daemon of the test bed (default: the guest agent)")

    demo = sub.add_parser("demo", help="the main job: register, fetch, hand over, report")
    demo.add_argument("--guest", choices=("lite", "vm"), default="lite",
                      help="lite: the guest agent in a namespace; vm: the QEMU guest")
    demo.add_argument("--prefix", default="demo", help="namespace prefix (default demo)")
    demo.add_argument("--keep", action="store_true", help="leave the test bed up afterwards")
    vm_cli.add_parsers(sub)  # image, vm, deploy (issue 5)
    return parser


def _require_root() -> None:
    if os.geteuid() != 0:
        raise ProvisioningError("this command needs root (network namespaces)")


def _cmd_testbed(args: argparse.Namespace) -> int:
    from provisioning import testbed

    if args.testbed_command == "up":
        _require_root()
        options = testbed.UpOptions(prefix=args.prefix, agents=not args.no_agents,
                                    ha_refuse=args.ha_refuse, state_root=STATE_ROOT,
                                    pool=args.pool, idle_timeout=args.idle_timeout,
                                    ipsec=args.ipsec, guest=args.guest,
                                    fastpath=not args.no_fastpath,
                                    tls_gateway=args.tls_gateway,
                                    hmip=args.hmip, hmip_type=args.hmip_type, ro=args.ro,
                                    nemo=args.nemo, sip=args.sip, sip_alg=not args.no_sip_alg)
        try:
            sdir = testbed.up(options)
        except ProvisioningError as exc:
            if "already exists" in str(exc):
                raise
            # keep the half-built bed for inspection (logs); say how to clean it
            raise ProvisioningError(
                f"{exc} (clean up with `{PROG} testbed down --prefix {args.prefix}`)") from exc
        print(f"test bed {args.prefix} up (state dir {sdir})")
        return 0
    if args.testbed_command == "ca" or (args.testbed_command == "keys" and args.tls_keylog):
        from provisioning.nodes import tls_paths

        print(tls_paths.bed_file(args.prefix, STATE_ROOT, args.testbed_command))
        return 0
    if args.testbed_command == "call":
        return _cmd_call(args)
    if args.testbed_command == "keys":
        from provisioning.nodes import ipsec
        from provisioning.topology import validate_prefix

        paths = ipsec.bed_key_files(state_dir(validate_prefix(args.prefix), STATE_ROOT))
        if not paths:
            raise ProvisioningError(f"test bed {args.prefix} has no IPsec key files "
                                    "(was it brought up with --ipsec?)")
        return _print_keys(paths, args.tshark)
    if args.testbed_command == "down":
        _require_root()
        removed = testbed.down(args.prefix, STATE_ROOT)
        print(f"test bed {args.prefix} down ({len(removed)} namespaces removed)")
        return 0
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    return testbed.exec_argv(args.prefix, args.node, argv)


def _cmd_call(args: argparse.Namespace) -> int:
    _require_root()
    from provisioning.sip_call import place_call
    from provisioning.topology import validate_prefix

    if args.seconds <= 0:
        raise ProvisioningError("--seconds must be positive")
    sdir = state_dir(validate_prefix(args.prefix), STATE_ROOT)
    result = place_call(args.prefix, sdir, args.caller, args.callee, seconds=args.seconds)
    print(json.dumps(result.as_dict(), sort_keys=True))
    return 0 if result.established else 1


def _cmd_move(args: argparse.Namespace) -> int:
    from provisioning import handover

    if args.timeout <= 0:
        raise ProvisioningError("--timeout must be positive")
    elapsed = handover.move(args.prefix, args.target, args.timeout, state_root=STATE_ROOT)
    print(f"moved to {args.target} in {elapsed:.3f}s")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from provisioning import status
    from provisioning.topology import validate_prefix

    if args.vm:
        from provisioning.vm.cli import vm_status

        merged = vm_status(args.vm)
    else:
        merged = status.collect(state_dir(validate_prefix(args.prefix), STATE_ROOT))
    if args.json:
        print(json.dumps(merged, indent=2, sort_keys=True, default=str))
    else:
        from rich.console import Console

        # Addresses are long: a pipe or a narrow terminal still gets readable columns.
        width = max(shutil.get_terminal_size((160, 40)).columns, 140)
        status.render(merged, Console(width=width))
    return 0


def _cmd_agent(args: argparse.Namespace) -> int:
    from provisioning.nodes import agents
    from provisioning.topology import validate_prefix
    from provisioning.vm.cli import bed_vm_name, vm_agent_restart

    sdir = state_dir(validate_prefix(args.prefix), STATE_ROOT)
    if args.node in ("ha", "map"):  # the MAP exists in an --hmip bed
        agents.restart_agent(sdir, args.node)
        print("home agent restarted" if args.node == "ha" else "MAP restarted")
        return 0
    vm = args.vm or bed_vm_name(sdir)
    if vm:  # the VM's agent, over SSH (busybox init respawns it)
        vm_agent_restart(vm)
    else:
        agents.restart_agent(sdir, agents.GUEST)
    print("guest agent restarted")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    _require_root()
    from rich.console import Console

    from provisioning.demo import run_demo

    report = run_demo(Console(), prefix=args.prefix, keep=args.keep, guest=args.guest)
    return 0 if report.all_ok else 1


def _print_keys(paths: list[str], tshark: bool) -> int:
    import shlex

    from netstack.ipsec.errors import KeyFileError
    from provisioning.nodes import ipsec

    if not tshark:
        print("\n".join(paths))
        return 0
    try:
        options = ipsec.tshark_options(paths)
    except (KeyFileError, OSError, ValueError) as exc:
        raise ProvisioningError(str(exc)) from exc
    for pair in zip(*[iter(ipsec.tshark_arguments(options))] * 2, strict=True):
        print(shlex.join(pair))
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    return _print_keys(list(args.key_file), args.tshark)


_COMMANDS = {"testbed": _cmd_testbed, "move": _cmd_move, "status": _cmd_status,
             "agent": _cmd_agent, "demo": _cmd_demo, "keys": _cmd_keys}
_COMMANDS.update(vm_cli.COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mip6term` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ProvisioningError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130

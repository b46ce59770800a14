"""`python -m benchmarks [inprocess|testbed|tayga|handover|hmip|ro|sip|tls-gateway|all]
[--json out.json]`;
`python -m benchmarks fuzz --inputs N`; `python -m benchmarks ha-scale`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from benchmarks import report
from benchmarks.inprocess import DEFAULT_ITERATIONS, DEFAULT_REPEATS

SUITES = ("inprocess", "testbed", "tayga", "handover", "hmip", "ro", "sip", "tls-gateway", "nemo",
          "fastpath", "all")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suite", nargs="?", default="inprocess", choices=SUITES,
                        help="what to measure (default inprocess; all = the three)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                        help=f"in-process batches per run (default {DEFAULT_ITERATIONS})")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                        help=f"in-process runs, best reported (default {DEFAULT_REPEATS})")
    parser.add_argument("--duration", type=int, default=5,
                        help="seconds per iperf3 run (test bed and TAYGA; default 5)")
    parser.add_argument("--prefix", default="bench",
                        help="test bed namespace prefix (default bench)")
    parser.add_argument("--keep", action="store_true",
                        help="leave a test bed that this run brought up")
    return parser


# Suites with parsers of their own (issue 15): `python -m benchmarks fuzz|ha-scale --help`.
_OWN_PARSERS = {"fuzz": "benchmarks.fuzz", "ha-scale": "benchmarks.ha_scale"}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _OWN_PARSERS:
        import importlib

        return importlib.import_module(_OWN_PARSERS[argv[0]]).main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.iterations < 1 or args.repeats < 1 or not 1 <= args.duration <= 60:
        print("iterations and repeats must be >= 1, duration 1..60 s", file=sys.stderr)
        return 2
    console = report.make_console()
    results: list[report.Measurement] = []
    skipped: list[report.Skipped] = []
    if args.suite in ("inprocess", "all"):
        from benchmarks import inprocess

        with console.status("in-process data path"):
            found, missing = inprocess.run(args.iterations, args.repeats)
        results += found
        skipped += missing
    if args.suite in ("testbed", "all"):
        from benchmarks import testbed

        with console.status(f"test bed {args.prefix}"):
            found, missing = testbed.run(args.prefix, args.duration, keep=args.keep)
        results += found
        skipped += missing
        with console.status(f"test bed {args.prefix}e with ESP-GCM on the tunnel"):
            found, missing = testbed.run(f"{args.prefix}e", args.duration, keep=args.keep,
                                         ipsec="tunnel")
        results += found
        skipped += missing
    if args.suite in ("nemo", "all"):
        from benchmarks import nemo

        with console.status(f"NEMO test bed {args.prefix}n"):
            found, missing = nemo.run(f"{args.prefix}n", args.duration, keep=args.keep)
        results += found
        skipped += missing
    if args.suite in ("handover", "all"):
        from benchmarks import handover

        with console.status("handover latency"):
            found, missing = handover.run()
        results += found
        skipped += missing
        if args.suite == "handover":  # with RO: to the tunnel and to the direct path (issue 9)
            from benchmarks import route_optimisation

            with console.status("handover latency with route optimisation"):
                found, missing = route_optimisation.handover()
            results += found
            skipped += missing
    if args.suite in ("tls-gateway", "all"):
        from benchmarks import tls_gateway

        with console.status("HTTPS through the TLS gateway vs direct"):
            found, missing = tls_gateway.run()
        results += found
        skipped += missing
    if args.suite in ("sip", "all"):
        from benchmarks import sip

        with console.status("SIP calls (issue 12)"):
            found, missing = sip.run()
        results += found
        skipped += missing
    if args.suite in ("hmip", "all"):
        from benchmarks import hmip_handover

        with console.status("intra-MAP handover against full Mobile IPv6"):
            found, missing = hmip_handover.run()
        results += found
        skipped += missing
    if args.suite in ("ro", "all"):  # issue 9: handover with RO, direct vs tunnelled
        from benchmarks import route_optimisation

        with console.status("route optimisation"):
            found, missing = route_optimisation.run(args.duration)  # handover + throughput
        results += found
        skipped += missing
    if args.suite in ("fastpath", "all"):
        from benchmarks import fastpath

        with console.status("eBPF fast path vs Python path, TAYGA, kernel forwarding"):
            found, missing = fastpath.run(args.prefix, args.duration)
        results += found
        skipped += missing
    if args.suite in ("tayga", "all"):
        from benchmarks import tayga

        with console.status("TAYGA reference"):
            found, missing = tayga.run(args.duration)
        results += found
        skipped += missing
    report.render(results, skipped, console)
    if args.json:
        report.write_json(args.json, results, skipped)
        console.print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m benchmarks [inprocess|testbed|tayga|handover|hmip|ro|sip|tls-gateway|all]
[--json out.json]`;
`python -m benchmarks fuzz --inputs N`; `python -m benchmarks ha-scale`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import report
from benchmarks.inprocess import DEFAULT_ITERATIONS, DEFAULT_REPEATS

SUITES = ("inprocess", "testbed", "tayga", "handover", "hmip", "ro", "sip", "tls-gateway", "nemo",
          "fastpath", "all")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suite", nargs="?", default="inprocess", choices=SUITES,
                        help="what to measure (default inprocess; all = every suite but fuzz and ha-scale)")
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

_Results = tuple[list[report.Measurement], list[report.Skipped]]
_Step = tuple[tuple[str, ...], str, str, Callable[[Any, argparse.Namespace], _Results]]

# One row per measurement, in the order `all` runs them: the suites that include it, the
# benchmarks module (imported only when it runs: each brings its own heavy dependencies), the
# progress line (formatted with the arguments) and the call.
_STEPS: tuple[_Step, ...] = (
    (("inprocess", "all"), "inprocess", "in-process data path",
     lambda m, a: m.run(a.iterations, a.repeats)),
    (("testbed", "all"), "testbed", "test bed {prefix}",
     lambda m, a: m.run(a.prefix, a.duration, keep=a.keep)),
    (("testbed", "all"), "testbed", "test bed {prefix}e with ESP-GCM on the tunnel",
     lambda m, a: m.run(f"{a.prefix}e", a.duration, keep=a.keep, ipsec="tunnel")),
    (("nemo", "all"), "nemo", "NEMO test bed {prefix}n",
     lambda m, a: m.run(f"{a.prefix}n", a.duration, keep=a.keep)),
    (("handover", "all"), "handover", "handover latency", lambda m, a: m.run()),
    # with RO: to the tunnel and to the direct path (issue 9); `all` has it in the ro suite
    (("handover",), "route_optimisation", "handover latency with route optimisation",
     lambda m, a: m.handover()),
    (("tls-gateway", "all"), "tls_gateway", "HTTPS through the TLS gateway vs direct",
     lambda m, a: m.run()),
    (("sip", "all"), "sip", "SIP calls (issue 12)", lambda m, a: m.run()),
    (("hmip", "all"), "hmip_handover", "intra-MAP handover against full Mobile IPv6",
     lambda m, a: m.run()),
    # issue 9: handover with RO, direct vs tunnelled; handover + throughput
    (("ro", "all"), "route_optimisation", "route optimisation", lambda m, a: m.run(a.duration)),
    (("fastpath", "all"), "fastpath", "eBPF fast path vs Python path, TAYGA, kernel forwarding",
     lambda m, a: m.run(a.prefix, a.duration)),
    (("tayga", "all"), "tayga", "TAYGA reference", lambda m, a: m.run(a.duration)),
)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _OWN_PARSERS:
        return importlib.import_module(_OWN_PARSERS[argv[0]]).main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.iterations < 1 or args.repeats < 1 or not 1 <= args.duration <= 60:
        print("iterations and repeats must be >= 1, duration 1..60 s", file=sys.stderr)
        return 2
    console = report.make_console()
    results: list[report.Measurement] = []
    skipped: list[report.Skipped] = []
    for suites, module_name, label, run in _STEPS:
        if args.suite in suites:
            module = importlib.import_module(f"benchmarks.{module_name}")
            with console.status(label.format(**vars(args))):
                found, missing = run(module, args)
            results += found
            skipped += missing
    report.render(results, skipped, console)
    if args.json:
        report.write_json(args.json, results, skipped)
        console.print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m benchmarks fuzz --inputs 1000000`: mutation fuzzing of every network/user parser.

Inputs are mutated from each target's valid seeds (benchmarks/fuzz_targets.py), spread evenly
over the targets and over `--workers` processes. Reports inputs per second per target and
every distinct crash (target, exception, source line) with the first input that caused it;
`--crash-dir` saves those inputs as files for a regression test. Exit status 1 if any crash.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.fuzz_targets import Crash, daemon_targets, mutate, run_target, targets


def _worker(args: tuple[int, int, list[str]]) -> tuple[dict[str, tuple[int, float]], list[Crash]]:
    seed, count, names = args
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="mip6term-fuzz-") as state_dir:
        every = targets() + daemon_targets(state_dir)
        return _fuzz(rng, [t for t in every if t.name in names], count)


def _fuzz(rng: random.Random, chosen: list, count: int
          ) -> tuple[dict[str, tuple[int, float]], list[Crash]]:
    stats: dict[str, tuple[int, float]] = {}
    crashes: dict[tuple[str, str, str], Crash] = {}
    per_target = max(1, -(-count // len(chosen)))  # at least `count` inputs in all
    for target in chosen:
        start = time.perf_counter()
        for _ in range(per_target):
            crash = run_target(target, mutate(rng, rng.choice(target.seeds)))
            if crash is not None:
                crashes.setdefault((crash.target, crash.error.split(":")[0], crash.where), crash)
        stats[target.name] = (per_target, time.perf_counter() - start)
    return stats, list(crashes.values())


def run(inputs: int, seed: int, workers: int, names: list[str]) -> tuple[dict, list[Crash], float]:
    chunks = [(seed + i, -(-inputs // workers), names) for i in range(workers)]
    start = time.perf_counter()
    if workers == 1:
        results = [_worker(chunks[0])]
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_worker, chunks)
    elapsed = time.perf_counter() - start
    stats: dict[str, list[float]] = {}
    crashes: dict[tuple[str, str, str], Crash] = {}
    for worker_stats, worker_crashes in results:
        for name, (count, seconds) in worker_stats.items():
            total = stats.setdefault(name, [0, 0.0])
            total[0] += count
            total[1] += seconds
        for crash in worker_crashes:
            crashes.setdefault((crash.target, crash.error.split(":")[0], crash.where), crash)
    return stats, list(crashes.values()), elapsed


def main(argv: Sequence[str] | None = None) -> int:
    names = [t.name for t in targets()] + ["ha_receive_loop", "guest_receive_loop"]
    parser = argparse.ArgumentParser(prog="python -m benchmarks fuzz", description=__doc__)
    parser.add_argument("--inputs", type=int, default=100_000, help="total inputs (default 100k)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (reproducible runs)")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--target", action="append", choices=names,
                        help="only these parsers (repeatable; default all)")
    parser.add_argument("--crash-dir", type=Path, help="save crashing inputs here")
    args = parser.parse_args(argv)
    if args.inputs < 1 or args.workers < 1:
        print("--inputs and --workers must be >= 1", file=sys.stderr)
        return 2
    chosen = args.target or names
    stats, crashes, elapsed = run(args.inputs, args.seed, args.workers, chosen)
    total = sum(int(c) for c, _ in stats.values())
    print(f"{'parser':<18}{'inputs':>10}{'inputs/s':>12}")
    for name in chosen:
        count, seconds = stats[name]
        print(f"{name:<18}{int(count):>10}{count / seconds if seconds else 0:>12,.0f}")
    print(f"{'total':<18}{total:>10}{total / elapsed:>12,.0f}   "
          f"({elapsed:.1f} s wall, {args.workers} worker(s), seed {args.seed})")
    if not crashes:
        print("crashes: none")
        return 0
    print(f"crashes: {len(crashes)} distinct")
    for crash in crashes:
        print(f"  {crash.target}: {crash.error} at {crash.where}\n    input {crash.data.hex()}")
        if args.crash_dir is not None:
            args.crash_dir.mkdir(parents=True, exist_ok=True)
            name = f"{crash.target}-{abs(hash(crash.where)) % 10**8}.bin"
            (args.crash_dir / name).write_bytes(crash.data)
    return 1

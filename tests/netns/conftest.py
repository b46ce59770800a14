"""Fixtures for netns tests: a whole test bed with a unique prefix, always torn down."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from provisioning import netns, topology
from provisioning import testbed as testbed_module


def _cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioning", *argv], capture_output=True,
                          text=True, timeout=timeout, check=False)


_COMMAND_WORDS = {"testbed", "up", "down", "exec", "move", "status", "agent", "restart", "keys",
                  "ca"}
_bed_counter = itertools.count()


@dataclass
class BedHandle:
    prefix: str
    state_dir: str
    probes: list[str] = field(default_factory=list)
    fastpath: bool = True  # issue 14: the agents' eBPF fast path (testbed up --no-fastpath)

    def namespace(self, node: str) -> str:
        return topology.namespace(self.prefix, node)

    def exec(self, node: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        """Run argv in the node's namespace and capture its output."""
        return netns.run(self.namespace(node), argv, timeout=timeout)

    def cli(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a `mip6term` subcommand against this bed (adds --prefix after the command
        words, so it never lands in the argv of `testbed exec NODE -- CMD`)."""
        k = 0
        while k < len(argv) and argv[k] in _COMMAND_WORDS:
            k += 1
        return _cli(*argv[:k], "--prefix", self.prefix, *argv[k:], timeout=timeout)

    def move(self, target: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return self.cli("move", target, "--timeout", str(timeout), timeout=timeout + 30)

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def add_probe(self, bridge_key: str, name: str = "probe") -> str:
        ns = testbed_module.add_probe(self.prefix, bridge_key, name)
        self.probes.append(ns)
        return ns


def _bring_up(*extra: str) -> Iterator[BedHandle]:
    if os.geteuid() != 0:
        pytest.skip("netns tests need root")
    # unique per pytest process and per bed, so parallel runs never share namespaces
    prefix = f"t{os.getpid() % 1000}x{next(_bed_counter)}"
    bed = BedHandle(prefix=prefix, state_dir=topology.state_dir(prefix))
    try:
        result = _cli("testbed", "up", "--prefix", prefix, *extra, timeout=120)
        assert result.returncode == 0, f"testbed up failed: {result.stderr}"
        yield bed
    finally:
        _cli("testbed", "down", "--prefix", prefix, timeout=120)


@pytest.fixture(scope="module")
def testbed_no_agents() -> Iterator[BedHandle]:
    """The Fig. 1 bed with radvd and CN servers, without the mobility agents (shared by the
    tests of a module: tests must not break it)."""
    yield from _bring_up("--no-agents")


@pytest.fixture
def fresh_testbed_no_agents() -> Iterator[BedHandle]:
    """A private bed without agents, for tests that change or tear down the bed."""
    yield from _bring_up("--no-agents")


@pytest.fixture
def testbed() -> Iterator[BedHandle]:
    """The full Fig. 1 bed including the HA and guest agents (one per test)."""
    yield from _bring_up()


@pytest.fixture(params=[True, False], ids=["fastpath", "python-path"])
def testbed_either_path(request: pytest.FixtureRequest) -> Iterator[BedHandle]:
    """The full bed twice: with the eBPF fast path (the default), then `--no-fastpath`."""
    for bed in _bring_up(*(() if request.param else ("--no-fastpath",))):
        bed.fastpath = request.param
        yield bed

"""Fixtures for netns tests: a whole test bed with a unique prefix, always torn down."""

from __future__ import annotations

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


@dataclass
class BedHandle:
    prefix: str
    state_dir: str
    probes: list[str] = field(default_factory=list)

    def namespace(self, node: str) -> str:
        return topology.namespace(self.prefix, node)

    def exec(self, node: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        """Run argv in the node's namespace and capture its output."""
        return netns.run(self.namespace(node), argv, timeout=timeout)

    def cli(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a `mip6term` subcommand against this bed (adds --prefix)."""
        return _cli(*argv, "--prefix", self.prefix, timeout=timeout)

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


def _bring_up(request: pytest.FixtureRequest, *extra: str) -> Iterator[BedHandle]:
    if os.geteuid() != 0:
        pytest.skip("netns tests need root")
    prefix = f"t{os.getpid() % 1000}{request.node.name.__hash__() % 100:02d}"[:8]
    bed = BedHandle(prefix=prefix, state_dir=topology.state_dir(prefix))
    try:
        result = _cli("testbed", "up", "--prefix", prefix, *extra, timeout=120)
        assert result.returncode == 0, f"testbed up failed: {result.stderr}"
        yield bed
    finally:
        _cli("testbed", "down", "--prefix", prefix, timeout=120)


@pytest.fixture
def testbed_no_agents(request: pytest.FixtureRequest) -> Iterator[BedHandle]:
    """The Fig. 1 bed with radvd and CN servers, without the mobility agents."""
    yield from _bring_up(request, "--no-agents")


@pytest.fixture
def testbed(request: pytest.FixtureRequest) -> Iterator[BedHandle]:
    """The full Fig. 1 bed including the HA and guest agents."""
    yield from _bring_up(request)

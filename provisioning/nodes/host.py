"""The `host` node (the workstation of lite mode): host_shim configures its eth0, the host
end of virtual network 15, from the guest agent's host_config answer (issue 3)."""

from __future__ import annotations

import contextlib
import os
import sys

from host_shim import resolver
from host_shim import state as shim_state
from host_shim.cli import EXIT_AGENT_UNSUPPORTED
from provisioning import netns
from provisioning.errors import ProvisioningError
from provisioning.nodes.agents import GUEST, TranslationOptions, socket_path

HOST_NODE = "host"
HOST_INTERFACE = "eth0"
AGENT_WAIT = 5.0  # seconds host_shim waits for the agent's answer


def state_file(state_dir: str) -> str:
    return os.path.join(state_dir, "host-shim.json")


def fallback_flags(translation: TranslationOptions) -> list[str]:
    """Explicit flags matching guest.toml, for an agent without host_config."""
    pool, gateway, home_ipv4 = translation.addresses()
    return ["--ipv4", f"{home_ipv4}/{pool.prefixlen}", "--gateway", str(gateway),
            "--pool", str(pool), "--dns", str(gateway)]


def configure(state_dir: str, namespace: str, translation: TranslationOptions) -> str:
    """Run `host_shim up` in the host namespace; returns how it was configured."""
    base = [sys.executable, "-m", "host_shim", "up", "--interface", HOST_INTERFACE,
            "--netns-name", namespace, "--state-file", state_file(state_dir)]
    log = os.path.join(state_dir, "host-shim.log")
    result = _run(namespace, [*base, "--agent-socket", socket_path(state_dir, GUEST),
                              "--wait", str(AGENT_WAIT)], log)
    how = "agent host_config"
    if result == EXIT_AGENT_UNSUPPORTED:
        result = _run(namespace, [*base, *fallback_flags(translation)], log)
        how = "defaults (the agent has no host_config)"
    if result != 0:
        with open(log, errors="replace") as f:
            tail = " | ".join(f.read().strip().splitlines()[-2:])
        raise ProvisioningError(f"host shim failed in {namespace}: {tail}")
    return how


def _run(namespace: str, argv: list[str], log: str) -> int:
    completed = netns.run(namespace, argv, timeout=AGENT_WAIT + 30)
    with open(log, "ab") as f:
        f.write(b"$ " + " ".join(argv).encode() + b"\n" + completed.stdout + completed.stderr)
    return completed.returncode


def remove_resolver_overrides(prefix: str, state_dir: str,
                              etc_netns_dir: str = resolver.ETC_NETNS_DIR) -> list[str]:
    """Undo the /etc/netns/<prefix>-*/ files host_shim wrote (the namespaces, and with them
    the interfaces, are gone: only files are left). Also sweeps directories of the prefix
    that hold nothing but host_shim's own files, after a crash lost the state file."""
    removed = []
    with contextlib.suppress(Exception):
        recorded = shim_state.load(state_file(state_dir))
        if recorded is not None:
            resolver.undo(recorded)
    if not os.path.isdir(etc_netns_dir):
        return removed
    for name in sorted(os.listdir(etc_netns_dir)):
        directory = os.path.join(etc_netns_dir, name)
        if not name.startswith(f"{prefix}-") or not os.path.isdir(directory):
            continue
        files = [os.path.join(directory, f) for f in os.listdir(directory)]
        if all(resolver.is_ours(f) for f in files):
            for f in files:
                os.unlink(f)
            os.rmdir(directory)
            removed.append(directory)
    with contextlib.suppress(OSError):
        os.rmdir(etc_netns_dir)  # only when empty
    return removed

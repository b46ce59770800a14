"""The real VM as the terminal of the Fig. 1 test bed (`testbed up --guest vm`).

The bed is built without the `guest` namespace; instead the VM's TAPs are moved into it:
- eth0's TAP goes into `<prefix>-sw` as `p-guest` on the start bridge, so `mip6term move`
  re-enslaves it exactly as it does the lite guest's veth (a real handover for the VM);
- eth1's TAP goes into `<prefix>-host` as `eth0`, the interface host_shim configures.
A relay process serves `<state_dir>/guest.sock` so everything that talks to the guest agent
(status, move, host shim, demo) works unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pyroute2 import IPRoute

from provisioning import control, processes
from provisioning.errors import ProvisioningError
from provisioning.image import GUEST_STATE_DIR, GuestImage
from provisioning.nodes import tls_vm
from provisioning.nodes.agents import GUEST, config_path, socket_path
from provisioning.offloads import set_offloads_off
from provisioning.topology import BRIDGES, GUEST_START_BRIDGE, GUEST_SWITCH_PORT, SWITCH, namespace
from provisioning.vm import domain, guestops
from provisioning.vm.ssh import GuestShell, wait_for_ssh

RELAY = "guest-relay"
HOST_NODE = "host"
HOST_IFNAME = "eth0"
MARKER = "vm.json"


def vm_name(prefix: str) -> str:
    return f"bed-{prefix}"


def marker_path(state_dir: str) -> str:
    return os.path.join(state_dir, MARKER)


def bed_vm(state_dir: str) -> domain.VmSpec | None:
    """The VM that is this bed's terminal, or None for a lite bed."""
    try:
        with open(marker_path(state_dir)) as f:
            return domain.load(json.load(f)["vm"])
    except (OSError, ValueError, KeyError, ProvisioningError):
        return None


def _move_tap(tap: str, target_ns: str, new_name: str,
              bridge_name: str = BRIDGES[GUEST_START_BRIDGE]) -> None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=tap)
        if not found:
            raise ProvisioningError(f"TAP {tap} not found in the root namespace")
        ipr.link("set", index=found[0], net_ns_fd=target_ns, ifname=new_name)
    with IPRoute(netns=target_ns) as ipr:
        index = ipr.link_lookup(ifname=new_name)[0]
        if target_ns.endswith(f"-{SWITCH}"):
            bridge = ipr.link_lookup(ifname=bridge_name)[0]
            ipr.link("set", index=index, master=bridge)
        ipr.link("set", index=index, state="up")
    set_offloads_off(target_ns, new_name)


def _start_relay(state_dir: str, name: str) -> None:
    log = open(os.path.join(state_dir, f"{RELAY}.log"), "ab")  # noqa: SIM115 (child owns it)
    with log:
        proc = subprocess.Popen([sys.executable, "-m", "provisioning.vm.relay", "--vm", name,
                                 "--socket", socket_path(state_dir, GUEST)],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    os.makedirs(os.path.dirname(processes.pid_file(state_dir, RELAY)), exist_ok=True)
    with open(processes.pid_file(state_dir, RELAY), "w") as f:
        f.write(f"{proc.pid}\n")
    proc.returncode = 0  # detached on purpose (testbed down stops it by pid file)


def guest_config_for_vm(state_dir: str) -> str:
    """The bed's guest.toml with the host state dir replaced by the guest's."""
    with open(config_path(state_dir, GUEST)) as f:
        return f.read().replace(state_dir.rstrip("/"), GUEST_STATE_DIR)


def start(prefix: str, state_dir: str, image: GuestImage, *, log=print,  # noqa: ANN001
          host_link: tuple[str, str] | None = None) -> dict[str, float]:
    """Install and boot the bed's VM, wire its TAPs, start the relay; returns timings.

    `host_link` = (switch port, bridge): eth1's TAP joins that bridge of the switch namespace
    instead of becoming the host's eth0 (`--nemo`: the mobile network bridge)."""
    name = vm_name(prefix)
    domain.destroy(name)  # a leftover of a crashed run
    with open(marker_path(state_dir), "w") as f:
        json.dump({"vm": name}, f)
    spec, described = domain.install(name, image, visited_tap=f"{prefix}-vm0",
                                     host_tap=f"{prefix}-vm1")
    log(f"VM {spec.domain_name}: {described}")
    timings: dict[str, float] = {}
    started = time.monotonic()
    domain.start(spec)
    _move_tap(spec.visited_tap, namespace(prefix, SWITCH), GUEST_SWITCH_PORT)
    if host_link is None:
        _move_tap(spec.host_tap, namespace(prefix, HOST_NODE), HOST_IFNAME)
    else:
        _move_tap(spec.host_tap, namespace(prefix, SWITCH), *host_link)
    wait_for_ssh(spec, timeout=120)
    timings["ssh"] = time.monotonic() - started
    config = guest_config_for_vm(state_dir)
    with GuestShell(spec) as shell:
        tls_vm.push_files(shell, state_dir)  # issue 13: the test CA the guest's relay trusts
        baked = shell.run("cat /etc/mip6term/guest.toml").stdout
        if baked.strip() != config.strip():
            log("guest.toml of this bed differs from the image's: deploying it")
            guestops.deploy(spec, config=config, code=False)
        else:
            guestops.wait_agent(shell, timeout=60)
    timings["agent"] = time.monotonic() - started
    _start_relay(state_dir, name)
    control.wait_for_ping(socket_path(state_dir, GUEST), 30)
    return timings


def stop(state_dir: str, prefix: str) -> None:
    """Destroy the bed's VM (the relay is stopped with the bed's other processes)."""
    if os.path.exists(marker_path(state_dir)) or Path(domain.record_path(vm_name(prefix))).exists():
        domain.destroy(vm_name(prefix))

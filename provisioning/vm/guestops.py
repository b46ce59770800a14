"""Operations on the running guest over SSH: status, agent restart, deploy (wheel + config).

The guest agent answers the same control requests as in lite mode on its unix socket inside
the guest; `mip6term-ctl` (baked into the image) is the tiny client we run over SSH.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from provisioning.errors import ProvisioningError
from provisioning.image import GUEST_CONFIG_PATH, GUEST_LIB
from provisioning.vm import paths
from provisioning.vm.domain import VmSpec
from provisioning.vm.ssh import GuestShell

AGENT_PID = "/run/mip6term/agent.pid"
# Packages of this project inside the guest's /opt/mip6term/lib, replaced by a deploy.
PROJECT_PACKAGES = ("netstack", "guest_agent", "host_shim", "network", "provisioning")


def control(shell: GuestShell, request: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
    result = shell.run(f"mip6term-ctl {shlex.quote(json.dumps(request))}", timeout=timeout,
                       check=False)
    try:
        answer = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise ProvisioningError(f"guest control: no answer ({result.stderr.strip()})") from exc
    if "relay_error" in answer:
        raise ProvisioningError(f"guest control socket: {answer['relay_error']}")
    return answer


def wait_agent(shell: GuestShell, timeout: float = 30.0) -> float:
    """Poll {"cmd": "ping"} inside the guest until the agent answers; returns seconds."""
    started = time.monotonic()
    tries = int(timeout / 0.2)
    script = (f"for i in $(seq 1 {tries}); do mip6term-ctl '{{\"cmd\": \"ping\"}}' "
              ">/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1")
    result = shell.run(script, timeout=timeout + 15, check=False)
    if result.exited != 0:
        log = shell.run("tail -5 /run/mip6term/agent.log", check=False).stdout.strip()
        raise ProvisioningError(f"guest agent did not answer within {timeout:g}s: {log}")
    return time.monotonic() - started


def restart_agent(shell: GuestShell) -> None:
    """Kill the agent; busybox init respawns it with the current code and config."""
    shell.run(f"kill $(cat {AGENT_PID}) 2>/dev/null; rm -f /run/mip6term/guest.sock", timeout=15,
              check=False)
    time.sleep(0.5)  # let init notice the exit before we poll the new socket
    wait_agent(shell)


def _pip(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", args[0], "--quiet", *args[1:]],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ProvisioningError(f"pip {args[0]} failed: {result.stderr.strip()[-400:]}")


def build_project_tarball(out_dir: Path) -> Path:
    """The project's wheel installed (with .pyc, compiled on the host: fast under TCG) into a
    staging dir and packed; dependencies are already in the image."""
    wheels = out_dir / "wheels"
    staging = out_dir / "lib"
    _pip("wheel", "--no-deps", "--wheel-dir", str(wheels), str(paths.REPO_ROOT))
    _pip("install", "--no-deps", "--no-index", "--target", str(staging),
         *map(str, wheels.glob("mip6term-*.whl")))
    tarball = out_dir / "mip6term-lib.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for entry in sorted(staging.iterdir()):
            if entry.name != "bin":
                tar.add(entry, arcname=entry.name)
    return tarball


def deploy(spec: VmSpec, *, config: str | None = None, code: bool = True) -> dict[str, float]:
    """Push a new wheel (code=True) and/or guest.toml text into the guest, restart the agent.
    Returns timings. The image is not touched: changes live in the VM's qcow2 overlay."""
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mip6term-deploy-") as tmp, GuestShell(spec) as shell:
        if code:
            t0 = time.monotonic()
            tarball = build_project_tarball(Path(tmp))
            timings["wheel"] = time.monotonic() - t0
            t0 = time.monotonic()
            shell.put(str(tarball), "/tmp/mip6term-lib.tar.gz")
            lib = "/" + GUEST_LIB
            old = " ".join(f"{lib}/{p}" for p in PROJECT_PACKAGES)
            shell.run(f"rm -rf {old} {lib}/mip6term-*.dist-info && "
                      f"tar -xzf /tmp/mip6term-lib.tar.gz -C {lib} && rm /tmp/mip6term-lib.tar.gz",
                      timeout=120)
            timings["push_code"] = time.monotonic() - t0
        if config is not None:
            t0 = time.monotonic()
            local = Path(tmp) / "guest.toml"
            local.write_text(config)
            shell.put(str(local), "/" + GUEST_CONFIG_PATH)
            timings["push_config"] = time.monotonic() - t0
        t0 = time.monotonic()
        shell.run("sync", timeout=30)
        restart_agent(shell)
        timings["restart"] = time.monotonic() - t0
    return timings


def read_config(spec: VmSpec) -> str:
    with GuestShell(spec) as shell:
        return shell.run(f"cat /{GUEST_CONFIG_PATH}").stdout


def interactive_ssh_argv(spec: VmSpec, command: list[str]) -> list[str]:
    """argv for the system ssh client with our key and the image's pinned host key."""
    key, _ = paths.ensure_ssh_keypair()
    known = spec.directory / "known_hosts"
    known.write_text(f"[127.0.0.1]:{spec.ssh_port} {spec.image.host_key.read_text().strip()}\n")
    return ["ssh", "-i", str(key), "-p", str(spec.ssh_port), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
            "-o", "PasswordAuthentication=no", "root@127.0.0.1", *command]


def exec_ssh(spec: VmSpec, command: list[str]) -> None:
    argv = interactive_ssh_argv(spec, command)
    os.execvp(argv[0], argv)

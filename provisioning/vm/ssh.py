"""SSH into the guest with fabric: the user's key, the image's pinned host key, no passwords."""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Any

from provisioning.errors import ProvisioningError
from provisioning.vm import paths
from provisioning.vm.domain import VmSpec

SSH_USER = "root"
# paramiko logs a traceback for every refused connection while the guest boots
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


def _host_key(spec: VmSpec) -> Any:
    from paramiko import Ed25519Key

    kind, blob = spec.image.host_key.read_text().split()[:2]
    return kind, Ed25519Key(data=__import__("base64").b64decode(blob))


class GuestShell:
    """A fabric Connection to the guest's sshd (forwarded on 127.0.0.1:<ssh_port>)."""

    def __init__(self, spec: VmSpec, *, connect_timeout: float = 10.0) -> None:
        from fabric import Connection
        from paramiko import RejectPolicy

        self.spec = spec
        key, _ = paths.ensure_ssh_keypair()
        self.connection = Connection(
            host="127.0.0.1", port=spec.ssh_port, user=SSH_USER, connect_timeout=connect_timeout,
            connect_kwargs={"key_filename": str(key), "look_for_keys": False,
                            "allow_agent": False, "banner_timeout": connect_timeout,
                            "auth_timeout": connect_timeout})
        client = self.connection.client
        kind, host_key = _host_key(spec)
        client.get_host_keys().add(f"[127.0.0.1]:{spec.ssh_port}", kind, host_key)
        client.set_missing_host_key_policy(RejectPolicy())

    def __enter__(self) -> GuestShell:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        try:
            self.connection.open()
        except Exception as exc:
            raise ProvisioningError(f"ssh to {self.spec.domain_name} "
                                    f"(127.0.0.1:{self.spec.ssh_port}): {exc}") from exc

    def close(self) -> None:
        self.connection.close()

    def run(self, command: str, *, timeout: float = 60.0, check: bool = True,
            stdin: str | None = None) -> Any:
        """Run a shell command in the guest; returns the invoke Result (stdout, exited)."""
        kwargs: dict[str, Any] = {"hide": True, "warn": True, "timeout": timeout}
        if stdin is not None:
            import io

            kwargs["in_stream"] = io.StringIO(stdin)
        else:
            kwargs["in_stream"] = False
        try:
            result = self.connection.run(command, **kwargs)
        except Exception as exc:
            raise ProvisioningError(f"ssh command failed: {command!r}: {exc}") from exc
        if check and result.exited != 0:
            raise ProvisioningError(f"guest command {command!r} exited {result.exited}: "
                                    f"{(result.stderr or result.stdout).strip()[-300:]}")
        return result

    def put(self, local: str, remote: str) -> None:
        self.connection.put(local, remote)


def wait_for_ssh(spec: VmSpec, timeout: float = 60.0) -> float:
    """Poll until the guest accepts our key; returns the seconds waited."""
    started = time.monotonic()
    last = ""
    while time.monotonic() - started < timeout:
        try:
            with GuestShell(spec, connect_timeout=5) as shell:
                shell.run("true", timeout=10)
                return time.monotonic() - started
        except ProvisioningError as exc:
            last = str(exc)
            time.sleep(0.5)
    raise ProvisioningError(f"guest SSH not reachable within {timeout:g}s ({last}); "
                            f"console log: {spec.console_log}")

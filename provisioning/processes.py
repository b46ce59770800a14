"""Background processes of the test bed: started in a namespace, tracked by pid files.

Each process `name` has <state_dir>/pids/<name>.pid and <name>.json (namespace, argv, cwd,
log) so `testbed down` can stop it after a crash and `agent restart` can rerun it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass

from provisioning import netns
from provisioning.errors import ProvisioningError


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    namespace: str
    argv: list[str]
    log: str
    cwd: str | None = None


def _pid_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "pids")


def pid_file(state_dir: str, name: str) -> str:
    return os.path.join(_pid_dir(state_dir), f"{name}.pid")


def _spec_file(state_dir: str, name: str) -> str:
    return os.path.join(_pid_dir(state_dir), f"{name}.json")


def start(state_dir: str, spec: ProcessSpec) -> int:
    """Start spec detached in its namespace (stdout+stderr appended to spec.log)."""
    os.makedirs(_pid_dir(state_dir), exist_ok=True)
    with open(spec.log, "ab") as log:
        try:
            proc = netns.popen(spec.namespace, spec.argv, stdout=log, stderr=log, cwd=spec.cwd,
                               detach=True)
        except OSError as exc:
            raise ProvisioningError(f"cannot start {spec.name}: {exc}") from exc
    with open(pid_file(state_dir, spec.name), "w") as f:
        f.write(f"{proc.pid}\n")
    with open(_spec_file(state_dir, spec.name), "w") as f:
        json.dump(asdict(spec), f)
    # the Popen object is dropped on purpose: the CLI exits and init reaps the daemon
    proc.returncode = 0  # silence "subprocess still running" ResourceWarning
    return proc.pid


def load_spec(state_dir: str, name: str) -> ProcessSpec:
    try:
        with open(_spec_file(state_dir, name)) as f:
            return ProcessSpec(**json.load(f))
    except (OSError, ValueError, TypeError) as exc:
        raise ProvisioningError(f"no record of process {name!r} in {state_dir}") from exc


def read_pid(state_dir: str, name: str) -> int | None:
    try:
        with open(pid_file(state_dir, name)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def is_running(state_dir: str, name: str) -> bool:
    pid = read_pid(state_dir, name)
    return pid is not None and netns.pid_alive(pid)


def ensure_running(state_dir: str, name: str, *, settle: float = 0.3) -> None:
    """Fail with the log tail if the process died right after start (bad config etc.)."""
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if not is_running(state_dir, name):
            break
        time.sleep(0.05)
    if not is_running(state_dir, name):
        spec = load_spec(state_dir, name)
        raise ProvisioningError(f"{name} exited at start; log {spec.log}: {log_tail(spec.log)}")


def log_tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(state_dir: str, name: str, *, grace: float = 3.0) -> None:
    pid = read_pid(state_dir, name)
    if pid is not None and netns.pid_alive(pid):
        netns.terminate([pid], grace=grace)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pid_file(state_dir, name))


def recorded_names(state_dir: str) -> list[str]:
    try:
        return sorted(f[:-4] for f in os.listdir(_pid_dir(state_dir)) if f.endswith(".pid"))
    except FileNotFoundError:
        return []


def stop_all(state_dir: str) -> None:
    pids = [p for n in recorded_names(state_dir) if (p := read_pid(state_dir, n)) is not None]
    netns.terminate([p for p in pids if netns.pid_alive(p)])

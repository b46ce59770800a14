"""The host's resolver: point IPv4 applications at the agent's DNS on the host link.

Three cases, and only the first two write anything:
- lite mode (`--netns-name NS`): write /etc/netns/NS/resolv.conf. Programs started in the
  namespace the way `ip netns exec` does it (provisioning.netns.enter does the same) see it
  bind-mounted over /etc/resolv.conf.
- `--write-resolv-conf`: replace the machine's resolv.conf, keeping the old one for `down`.
- otherwise: print what to configure (systemd-resolved or resolv.conf) and touch nothing:
  the user's resolver is never clobbered silently.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from host_shim.config import IPAddress
from host_shim.errors import ShimError
from host_shim.state import ShimState, WrittenFile, write_atomic

ETC_NETNS_DIR = "/etc/netns"
RESOLV_CONF = "/etc/resolv.conf"
SYSTEMD_RESOLVED_DIR = "/run/systemd/resolve"
MARKER = "# written by host-shim (mip6term): the guest agent answers DNS on the host link"


def render_resolv_conf(servers: Sequence[IPAddress]) -> str:
    return "\n".join([MARKER, *(f"nameserver {s}" for s in servers)]) + "\n"


def is_ours(path: str) -> bool:
    """A file host-shim wrote (its first line is the marker)."""
    try:
        with open(path) as f:
            return f.readline().rstrip("\n") == MARKER
    except OSError:
        return False


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ShimError(f"cannot read {path}: {exc.strerror}") from None


def _write(state: ShimState, path: str, content: str) -> None:
    previous_symlink = os.readlink(path) if os.path.islink(path) else None
    previous = _read(path)
    recorded = next((f for f in state.files if f.path == path), None)
    if recorded is not None:  # `up` again: keep the original previous content
        previous, previous_symlink = recorded.previous, recorded.previous_symlink
        state.files.remove(recorded)
    try:
        write_atomic(path, content)
    except OSError as exc:
        raise ShimError(f"cannot write {path}: {exc.strerror}") from None
    state.files.append(WrittenFile(path, content, previous, previous_symlink))


def configure_netns(state: ShimState, netns_name: str, servers: Sequence[IPAddress],
                    etc_netns_dir: str = ETC_NETNS_DIR) -> str:
    """Write <etc_netns_dir>/<netns_name>/resolv.conf; returns its path."""
    directory = os.path.join(etc_netns_dir, netns_name)
    for d in (etc_netns_dir, directory):
        if not os.path.isdir(d):
            try:
                os.makedirs(d)
            except OSError as exc:
                raise ShimError(f"cannot create {d}: {exc.strerror}") from None
            if d not in state.created_dirs:
                state.created_dirs.append(d)
    path = os.path.join(directory, "resolv.conf")
    _write(state, path, render_resolv_conf(servers))
    return path


def configure_file(state: ShimState, path: str, servers: Sequence[IPAddress]) -> None:
    """--write-resolv-conf: replace `path`, remembering what was there."""
    _write(state, path, render_resolv_conf(servers))


def uses_systemd_resolved(resolv_conf: str = RESOLV_CONF,
                          resolved_dir: str = SYSTEMD_RESOLVED_DIR) -> bool:
    target = os.path.realpath(resolv_conf)
    return target.startswith(resolved_dir + "/") or os.path.exists(
        os.path.join(resolved_dir, "stub-resolv.conf")) and os.path.islink(resolv_conf)


def workstation_plan(interface: str, servers: Sequence[IPAddress], *,
                     resolv_conf: str = RESOLV_CONF,
                     resolved_dir: str = SYSTEMD_RESOLVED_DIR) -> list[str]:
    """What the user should configure (printed, not done)."""
    if not servers:
        return []
    listed = " ".join(str(s) for s in servers)
    if uses_systemd_resolved(resolv_conf, resolved_dir):
        return [f"resolvectl dns {interface} {listed}",
                f"resolvectl domain {interface} '~.'"]
    return [f"{resolv_conf}: " + "; ".join(f"nameserver {s}" for s in servers)
            + " (or rerun with --write-resolv-conf)"]


def undo(state: ShimState) -> list[str]:
    """Restore every file `up` wrote and remove the directories it created.

    A file whose content changed since `up` belongs to someone else now: it is left alone
    and reported. Returns warnings.
    """
    warnings = []
    for written in reversed(state.files):
        current = _read(written.path)
        if current != written.content:
            if current is not None:
                warnings.append(f"{written.path} changed since up; left as it is")
            continue
        try:
            if written.previous_symlink is not None:
                os.unlink(written.path)
                os.symlink(written.previous_symlink, written.path)
            elif written.previous is None:
                os.unlink(written.path)
            else:
                write_atomic(written.path, written.previous)
        except OSError as exc:
            warnings.append(f"cannot restore {written.path}: {exc.strerror}")
    for directory in reversed(state.created_dirs):
        try:
            os.rmdir(directory)  # only if empty: never delete what others put there
        except FileNotFoundError:
            pass
        except OSError as exc:
            if os.path.isdir(directory) and os.listdir(directory):
                continue  # other namespaces' overrides still live in /etc/netns
            warnings.append(f"cannot remove {directory}: {exc.strerror}")
    state.files.clear()
    state.created_dirs.clear()
    return warnings

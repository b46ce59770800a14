"""The one exception the host shim raises: its message is the single line shown to the user."""

from __future__ import annotations


class ShimError(Exception):
    """Bad flags, a bad agent answer, or a netlink/file operation that failed."""


class AgentUnsupported(ShimError):
    """The guest agent answered, but does not know the `host_config` command."""

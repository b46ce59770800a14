"""The one error type the CLI turns into a single error line and a non-zero exit."""

from __future__ import annotations


class ProvisioningError(Exception):
    """Bad input or a test bed operation that could not be completed."""

"""Looking up one ND option by kind in a decoded message's option tuple."""

from __future__ import annotations


def find_option(options: tuple, kind: type) -> object | None:
    """The first option of `kind`, or None (RFC 4861 4.6: options may come in any order)."""
    return next((o for o in options if isinstance(o, kind)), None)

"""EUI-64 address formation and the RFC 4862 5.5.3 (e) valid-lifetime rule."""

from __future__ import annotations

import math
from ipaddress import IPv6Address, IPv6Network

import pytest

from netstack.nd.addresses import (
    address_from_prefix,
    interface_identifier,
    lifetime_deadline,
    link_local_address,
    updated_valid_until,
)


def test_modified_eui64_flips_universal_local_bit() -> None:
    # RFC 4291 appendix A: 00:11:22:33:44:55 -> 0211:22ff:fe33:4455
    assert interface_identifier(bytes.fromhex("001122334455")).hex() == "021122fffe334455"
    assert link_local_address(bytes.fromhex("001122334455")) == IPv6Address(
        "fe80::211:22ff:fe33:4455"
    )


def test_slaac_address_from_prefix() -> None:
    assert address_from_prefix(
        IPv6Network("2001:db8:a::/64"), bytes.fromhex("525400123456")
    ) == IPv6Address("2001:db8:a::5054:ff:fe12:3456")


def test_slaac_refuses_non_64_prefix() -> None:
    with pytest.raises(ValueError):
        address_from_prefix(IPv6Network("2001:db8::/48"), bytes(6))


def test_infinite_lifetime() -> None:
    assert lifetime_deadline(10.0, 0xFFFFFFFF) == math.inf
    assert lifetime_deadline(10.0, 30) == 40.0


@pytest.mark.parametrize(
    ("current_until", "advertised", "expected"),
    [
        (1000.0, 9000, 9000.0),  # longer than two hours: accepted
        (100000.0, 60, 7200.0),  # shortening a long lifetime: clamped to two hours
        (3000.0, 60, 3000.0),  # remaining <= two hours: ignored
        (3000.0, 5000, 5000.0),  # extends the remaining lifetime: accepted
        (math.inf, 60, 7200.0),
    ],
)
def test_two_hour_rule(current_until: float, advertised: int, expected: float) -> None:
    assert updated_valid_until(current_until, advertised, 0.0) == expected

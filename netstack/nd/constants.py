"""Neighbor Discovery and SLAAC protocol constants, by their RFC names.

RFC 4861 section 10 (host and node constants), RFC 4862 5.1 / 5.5.3, RFC 4429. Times are
seconds. `NdConfig` (netstack/nd/config.py) takes these as defaults and lets a node override them.
"""

from __future__ import annotations

# RFC 4861 10, host constants
MAX_RTR_SOLICITATION_DELAY = 1.0
RTR_SOLICITATION_INTERVAL = 4.0
MAX_RTR_SOLICITATIONS = 3

# RFC 4861 10, node constants
MAX_MULTICAST_SOLICIT = 3
MAX_UNICAST_SOLICIT = 3
MAX_ANYCAST_DELAY_TIME = 1.0
MAX_NEIGHBOR_ADVERTISEMENT = 3
REACHABLE_TIME = 30.0
RETRANS_TIMER = 1.0
DELAY_FIRST_PROBE_TIME = 5.0
MIN_RANDOM_FACTOR = 0.5
MAX_RANDOM_FACTOR = 1.5

# RFC 4862 5.1: DupAddrDetectTransmits default
DUP_ADDR_DETECT_TRANSMITS = 1
# RFC 4862 5.5.3 (e): the "two hours" rule protecting valid lifetimes from spoofed RAs
TWO_HOURS = 7200.0

# RFC 4861 7.2.2: "at least one" packet queued per unresolved neighbour; we hold three.
MAX_QUEUED_PACKETS = 3

# RFC 8200 5: links must carry 1280 octets
IPV6_MIN_MTU = 1280
ND_HOP_LIMIT = 255

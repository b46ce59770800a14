"""Mobile IPv6 protocol constants (RFC 6275 sections 12 and 13) and the overridable timers.

Names follow the RFC so a reader can grep for them. Times are in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 6275 section 12 (protocol constants)
DHAAD_RETRIES = 4
INITIAL_BINDACK_TIMEOUT = 1.0
INITIAL_DHAAD_TIMEOUT = 3.0
INITIAL_SOLICIT_TIMER = 3.0
MAX_BINDACK_TIMEOUT = 32.0
MAX_DELETE_BCE_WAIT_TIME = 10.0
MAX_NONCE_LIFETIME = 240
MAX_TOKEN_LIFETIME = 210
MAX_RR_BINDING_LIFETIME = 420
MAX_UPDATE_RATE = 3  # Binding Updates per second to one destination (RFC 6275 11.8)
PREFIX_ADV_RETRIES = 3
PREFIX_ADV_TIMEOUT = 3.0

# RFC 6275 section 13 (configuration variables, defaults) and 7.5
INITIAL_BINDACK_TIMEOUT_FIRST_REG = 1.5
MAX_MOBPFX_ADV_INTERVAL = 86400
MIN_MOBPFX_ADV_INTERVAL = 600
MIN_DELAY_BETWEEN_RAS = 3.0  # RFC 4861 default; RFC 6275 7.5 allows down to 0.03 s
MIN_DELAY_BETWEEN_RAS_LIMIT = 0.03

# Wire unit of the Binding Update / Acknowledgement lifetime field (RFC 6275 6.1.7).
LIFETIME_UNIT = 4
MAX_WIRE_LIFETIME = 0xFFFF * LIFETIME_UNIT

# Our choices (not RFC constants).
DEFAULT_REFRESH_FRACTION = 0.85  # re-register at 85% of the granted lifetime
DEFAULT_DEREGISTRATION_RETRIES = 3  # then give up and declare the node at home anyway


@dataclass(frozen=True)
class MobilityTimers:
    """The timers a deployment or a test may override.

    `refresh_fraction`: fraction of the granted lifetime after which the mobile node
    re-registers (unless a Binding Refresh Advice says earlier).
    `deregistration_retries`: retransmissions of a de-registration BU before the mobile
    node gives up waiting for the BA and declares itself at home (RFC 6275 leaves the
    number open; 3 retransmissions = 1 + 2 + 4 + 8 = 15 s with the default timeouts).
    `update_rate_window`: the window over which MAX_UPDATE_RATE is counted.
    """

    initial_bindack_timeout_first_reg: float = INITIAL_BINDACK_TIMEOUT_FIRST_REG
    initial_bindack_timeout: float = INITIAL_BINDACK_TIMEOUT
    max_bindack_timeout: float = MAX_BINDACK_TIMEOUT
    max_update_rate: int = MAX_UPDATE_RATE
    update_rate_window: float = 1.0
    refresh_fraction: float = DEFAULT_REFRESH_FRACTION
    deregistration_retries: int = DEFAULT_DEREGISTRATION_RETRIES
    max_delete_bce_wait_time: float = MAX_DELETE_BCE_WAIT_TIME


# The frozen default instance (used as a keyword default).
DEFAULT_TIMERS = MobilityTimers()

"""The HMIPv6 Mobility Anchor Point daemon (RFC 5380; patent E6, MAP 3 in Fig. 27)."""

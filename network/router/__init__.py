"""Our router advertisement daemon (RAs with the HMIPv6 MAP option, which radvd cannot send)."""

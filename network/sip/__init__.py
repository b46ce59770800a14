"""SIP proxy configuration for the test bed's `sip` node (Kamailio, issue 12)."""

"""Host side of the terminal: configures the host end of virtual network 15.

`host-shim up` puts the home address's virtual IPv4 address (interface 19 of the patent),
the pool and default routes, the tunnel-friendly MTU, the E2 home address and the resolver
on the host interface (a veth in lite mode, the VM's TAP later), with pyroute2; `down`
removes exactly that; `status` shows it. Defaults are documented in host_shim.config.
"""

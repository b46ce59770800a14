"""The kernel fast path: tc programs (bpf/*.bpf.c) under the Python control plane.

The programs carry the common data packets (translate + tunnel in the guest, tunnel forwarding
at the home agent) with maps the Python side owns; everything else reaches the Python path,
which stays the reference (DESIGN.md section 2). libbpf through ctypes loads, pyroute2
attaches.
"""

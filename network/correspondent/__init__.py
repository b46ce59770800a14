"""Userspace correspondent node: the CN's link owned through AF_PACKET, its address on a TUN
for unmodified kernel servers, and end-to-end ESP terminated in userspace (embodiment 5)."""

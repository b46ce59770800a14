"""Per-node setup of the test bed: servers on the CN, the mobility agents."""

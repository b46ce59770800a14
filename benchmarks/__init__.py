"""Performance harness: in-process data-path loops, the netns test bed, and a TAYGA reference.

Run with `python -m benchmarks [inprocess|testbed|tayga|all] [--json out.json]`. Numbers are
measured and reported here, never asserted in tests.
"""

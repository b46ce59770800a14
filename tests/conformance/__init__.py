"""TAHI-derived conformance suites (netns tier): HA, MN, CN, NEMO groups.

`python -m tests.conformance report` runs them and writes docs/conformance.md.
"""

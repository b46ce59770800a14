"""`python -m netstack.fastpath build`: compile the tc programs (scripts/setup.sh runs it)."""

from __future__ import annotations

import sys

from netstack.fastpath.build import build_all
from netstack.fastpath.libbpf import BpfError


def main(argv: list[str]) -> int:
    if argv[:1] != ["build"]:
        print("usage: python -m netstack.fastpath build", file=sys.stderr)
        return 2
    try:
        for path in build_all():
            print(f"fastpath: {path} ready")
    except BpfError as exc:
        print(f"fastpath: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

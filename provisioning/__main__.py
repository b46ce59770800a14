"""`python -m provisioning` is the `mip6term` CLI."""

from __future__ import annotations

import sys

from provisioning.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m host_shim up|down|status`."""

from __future__ import annotations

import sys

from host_shim.cli import main

sys.exit(main())

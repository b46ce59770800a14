import sys

from tests.conformance.report import main

sys.exit(main())
